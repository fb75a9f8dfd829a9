import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { XQueueClient, XQueueTimeoutError } from '@storm-lab/lms-client';
import { pino } from 'pino';
import { percentile, type Verdict, verdictOf } from './verdict.ts';

export interface ProbeOptions {
  lmsUrl: string;
  username: string;
  password: string;
  connections: number;
  durationMs: number;
  /** Upstream's REQUESTS_TIMEOUT: both login requests and every poll. */
  requestTimeoutMs: number;
  /** Upstream's POLL_INTERVAL: the sleep after an empty or failed poll. */
  pollIntervalMs: number;
  /** Upstream's LOGIN_POLL_INTERVAL: the sleep after a refused first login. */
  loginPollIntervalMs: number;
  /**
   * At most one request per connection per poll interval (logins included). The CLI sets it for
   * any target outside loopback, so a probe of a real LMS never adds more than its fleet would.
   */
  rateBound: boolean;
  /** The queue to poll; default a random `storm-probe-...` name no course can have. */
  queue?: string;
  /** Ends the probe early (Ctrl-C); the report covers what ran. */
  signal?: AbortSignal;
  now?: () => number;
}

/** The figures so far; `onProgress` receives them while the probe runs. */
export interface ProbeFigures {
  elapsedMs: number;
  connections: number;
  /** Connections still polling, or that polled to the end (a login timeout at the start ends one). */
  connectionsAlive: number;
  logins: number;
  /** 403 answers on any xqueue request; each made the client log in again. */
  forbidden: number;
  /** Every answer that made a client log in again, by HTTP status. */
  authFailures: Record<string, number>;
  /** Requests given up after a re-login (upstream: "Received N after re-authentication"). */
  reloginGiveups: number;
  loginTimeouts: number;
  pollTimeouts: number;
  polls: number;
  loginLatencyMs: { p50: number | null; p95: number | null };
}

/** A submission came back: the probe stopped at once and posted nothing. */
export interface PulledSubmission {
  queue: string;
  /** The xqueue header the LMS sent (submission id and key), as received. */
  header: string | null;
}

export interface ProbeReport extends ProbeFigures {
  verdict: Verdict;
  target: string;
  username: string;
  queue: string;
  durationSeconds: number;
  /** How a storm is cured, or null when healthy. */
  suggestion: string | null;
  pulledSubmission: PulledSubmission | null;
}

/** The first login was refused: the credentials are wrong, so there is nothing to measure. */
export class ProbeLoginRefusedError extends Error {
  override name = 'ProbeLoginRefusedError';
}

/**
 * Runs K connections of one account, each as upstream's `XQueueClient.run`
 * (xqueue_watcher/client.py) in its current release: a first login (a refused one retries every
 * LOGIN_POLL_INTERVAL, a timed-out one ends the connection), then poll `get_submission`, sleep
 * POLL_INTERVAL after an empty or failed poll, poll again at once after a timeout. It polls a
 * queue no course has, never posts a result, and stops everything if a submission comes back.
 *
 * @example
 * const report = await runProbe({ lmsUrl, username: 'xqueue_svc', password, connections: 4, ... });
 * report.verdict; // 'STORM' or 'HEALTHY'
 */
export async function runProbe(
  options: ProbeOptions,
  onProgress: (figures: ProbeFigures) => void = () => {},
): Promise<ProbeReport> {
  const now = options.now ?? Date.now;
  const queue = options.queue ?? `storm-probe-${randomBytes(6).toString('hex')}`;
  const tally = new Tally(options.connections, now);
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), options.durationMs);
  options.signal?.addEventListener('abort', () => stop.abort(), { once: true });
  const ticker = setInterval(() => onProgress(tally.figures()), 1000);
  let pulled: PulledSubmission | null = null;
  let refused = false;
  const logger = pino({ level: 'silent' });
  const clients = Array.from(
    { length: options.connections },
    () =>
      new XQueueClient({
        serverUrl: options.lmsUrl.replace(/\/+$/, ''),
        queue,
        username: options.username,
        password: options.password,
        mode: 'current',
        instanceId: null,
        requestsTimeoutMs: options.requestTimeoutMs,
        logger,
        now,
        observer: tally.observer(options.rateBound ? options.pollIntervalMs : 0, stop.signal),
      }),
  );
  const connection = async (client: XQueueClient) => {
    try {
      if (!(await firstLogin(client, options, stop.signal, () => tally.logins > 0))) {
        // Refused before any connection got in: wrong account or password, nothing to measure.
        refused = true;
        stop.abort();
        return;
      }
      while (!stop.signal.aborted) {
        const outcome = await pollOnce(client, tally);
        if (outcome.kind === 'submission') {
          pulled ??= { queue, header: headerOf(outcome.content) };
          stop.abort();
          return;
        }
        if (outcome.kind === 'sleep') await sleep(options.pollIntervalMs, stop.signal);
      }
    } catch {
      // Upstream: an exception during the first login ends the thread (a login timeout).
      if (!stop.signal.aborted) tally.connectionDied();
    }
  };
  const startedMs = now();
  try {
    await Promise.all(clients.map(connection));
  } finally {
    clearTimeout(timer);
    clearInterval(ticker);
    await Promise.all(clients.map((client) => client.close()));
  }
  const figures = tally.figures();
  onProgress(figures);
  if (refused) {
    throw new ProbeLoginRefusedError(
      `the LMS refused the login of ${options.username} (wrong username or password?)`,
    );
  }
  const verdict = verdictOf(figures);
  return {
    verdict,
    ...figures,
    target: options.lmsUrl,
    username: options.username,
    queue,
    durationSeconds: Math.round((now() - startedMs) / 100) / 10,
    suggestion: verdict === 'STORM' ? suggestionFor(options.username) : null,
    pulledSubmission: pulled,
  };
}

/** The settings that exempt the account, as upstream's PR #38825 reads them. */
export function suggestionFor(username: string): string {
  return `SINGLE_LOGIN_EXEMPT_USERNAMES=${username} (or SINGLE_LOGIN_EXEMPT_GROUPS=<a group ${username} belongs to>)`;
}

// Upstream's `run` before its loop: a refused login waits LOGIN_POLL_INTERVAL and tries again;
// a timeout escapes (the caller ends the connection). Resolves false when the LMS refuses while
// no connection has got in yet (the credentials are wrong, and upstream would retry forever).
async function firstLogin(
  client: XQueueClient,
  options: ProbeOptions,
  signal: AbortSignal,
  anyLoggedIn: () => boolean,
) {
  while (!signal.aborted) {
    if (await client.login()) return true;
    if (!anyLoggedIn()) return false;
    await sleep(options.loginPollIntervalMs, signal);
  }
  return true;
}

type PollStep = { kind: 'again' } | { kind: 'sleep' } | { kind: 'submission'; content: string };

// Upstream's `process_one` without the grading: a timeout means "poll again at once".
async function pollOnce(client: XQueueClient, tally: Tally): Promise<PollStep> {
  tally.polls += 1;
  const loginTimeoutsBefore = tally.loginTimeouts;
  try {
    const pulled = await client.getSubmission();
    return pulled.kind === 'submission' ? pulled : { kind: 'sleep' };
  } catch (error) {
    // A re-login that timed out is counted once, as a login timeout.
    const duringLogin = tally.loginTimeouts > loginTimeoutsBefore;
    if (error instanceof XQueueTimeoutError && !duringLogin) tally.pollTimeouts += 1;
    return { kind: 'again' };
  }
}

function headerOf(content: string): string | null {
  try {
    const header = (JSON.parse(content) as { xqueue_header?: unknown }).xqueue_header;
    return typeof header === 'string' ? header : null;
  } catch {
    return null;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}

/** Counts what the clients report. */
class Tally {
  logins = 0;
  forbidden = 0;
  reloginGiveups = 0;
  loginTimeouts = 0;
  pollTimeouts = 0;
  polls = 0;
  private alive: number;
  private readonly authFailures: Record<string, number> = {};
  private readonly loginSeconds: number[] = [];
  private readonly startedMs: number;

  constructor(
    private readonly connections: number,
    private readonly now: () => number,
  ) {
    this.alive = connections;
    this.startedMs = now();
  }

  connectionDied() {
    this.alive -= 1;
  }

  observer(minGapMs: number, signal: AbortSignal) {
    let nextAllowedMs = 0;
    return {
      loggedIn: (seconds: number) => {
        this.logins += 1;
        this.loginSeconds.push(seconds);
      },
      loginTimedOut: () => {
        this.loginTimeouts += 1;
      },
      authFailed: (_endpoint: string, status: number) => {
        if (status === 403) this.forbidden += 1;
        this.authFailures[status] = (this.authFailures[status] ?? 0) + 1;
      },
      gaveUp: () => {
        this.reloginGiveups += 1;
      },
      // One request per connection per `minGapMs` at most: each client gets its own observer.
      beforeRequest: async () => {
        if (minGapMs <= 0) return;
        const waitMs = nextAllowedMs - this.now();
        nextAllowedMs = Math.max(nextAllowedMs, this.now()) + minGapMs;
        if (waitMs > 0) await sleep(waitMs, signal);
        if (signal.aborted) throw new Error('the probe has stopped');
      },
    };
  }

  figures(): ProbeFigures {
    const latencies = this.loginSeconds.map((seconds) => seconds * 1000);
    const rounded = (value: number | null) => (value === null ? null : Math.round(value));
    return {
      elapsedMs: this.now() - this.startedMs,
      connections: this.connections,
      connectionsAlive: this.alive,
      logins: this.logins,
      forbidden: this.forbidden,
      authFailures: { ...this.authFailures },
      reloginGiveups: this.reloginGiveups,
      loginTimeouts: this.loginTimeouts,
      pollTimeouts: this.pollTimeouts,
      polls: this.polls,
      loginLatencyMs: {
        p50: rounded(percentile(latencies, 50)),
        p95: rounded(percentile(latencies, 95)),
      },
    };
  }
}
