import {
  CLIENT_INSTANCE_HEADER,
  type GradeResult,
  parseEnvelope,
  SESSION_END_HEADER,
  XQUEUE_PATHS,
} from '@storm-lab/xqueue-protocol';
import type { Logger } from 'pino';
import { Agent, fetch as undiciFetch } from 'undici';
import { CookieJar } from './cookie-jar.ts';

/** Which xqueue-watcher the client behaves like; see {@link XQueueClient}. */
export type ClientMode = 'current' | 'legacy' | 'hardened';

/**
 * The HTTP call a client makes; default undici's fetch on the client's own connection pool. A
 * simulation passes its own (an LMS called in process, on a virtual clock).
 */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** An xqueue endpoint, as it appears in metric labels. */
export type XQueueEndpoint = 'login' | 'get_submission' | 'put_result';

/**
 * What a client tells its owner as it works: the watcher turns these into Prometheus counters
 * and event lines, the probe into its report. Every method is optional.
 */
export interface XQueueClientObserver {
  /** A login succeeded after `seconds` (both requests of the handshake). */
  loggedIn?(seconds: number): void;
  /** A login got no answer within its timeout. */
  loginTimedOut?(message: string): void;
  /** The client's first login attempt ended, however it ended (once per client). */
  firstLoginEnded?(ok: boolean): void;
  /** An answer (301/302/401/403) that makes the client log in again. */
  authFailed?(endpoint: XQueueEndpoint, status: number): void;
  /** A request was given up: it failed again after a re-login, or the login failed. */
  gaveUp?(endpoint: XQueueEndpoint, reason: string): void;
  /** Called before every HTTP request the client sends; a rate bound can wait here. */
  beforeRequest?(): Promise<void>;
}

export interface XQueueClientOptions {
  serverUrl: string;
  /** The queue name sent to the LMS (upstream's NAME_OVERRIDE already applied). */
  queue: string;
  username: string;
  password: string;
  mode: ClientMode;
  /** Sent as `X-Client-Instance` on login when set; upstream sends none. */
  instanceId: string | null;
  requestsTimeoutMs: number;
  /** Upstream's HTTP_BASIC_AUTH, sent on every request when set. */
  httpBasicAuth?: { username: string; password: string } | null;
  /** Upstream's XQWATCHER_VERIFY_TLS; false accepts any certificate. */
  verifyTls?: boolean;
  observer?: XQueueClientObserver;
  logger: Logger;
  now: () => number;
  /** Sends the requests; default undici's fetch on this client's own connection pool. */
  fetch?: FetchLike;
}

/** A request got no answer within its timeout (upstream: `requests.exceptions.Timeout`). */
export class XQueueTimeoutError extends Error {
  override name = 'XQueueTimeoutError';
}

/** The server could not be reached (upstream: `requests.exceptions.ConnectionError`). */
export class XQueueConnectionError extends Error {
  override name = 'XQueueConnectionError';
}

/** What one get_submission brought. */
export type PullOutcome =
  | { kind: 'submission'; content: string }
  | { kind: 'empty' }
  | { kind: 'failed'; reason: string };

/** What one put_result brought; `retry` says whether trying again later can help. */
export type PutOutcome =
  | { kind: 'accepted' }
  | { kind: 'rejected'; reason: string; retry: boolean; message: string };

/** A finished request: the answer, or why there is none (upstream's `(False, message)`). */
type Reply =
  | { kind: 'reply'; status: number; returnCode: number | null; content: unknown }
  | { kind: 'failed'; reason: string; status: number | null };

// The hardened client waits this long for a login: the LMS spends the hashing CPU anyway, and
// aborting a slow login only makes the client log in again (upstream aborts after REQUESTS_TIMEOUT).
const HARDENED_LOGIN_TIMEOUT_MS = 30_000;

/**
 * One xqueue client, as upstream's `XQueueClient` (xqueue_watcher/client.py): its own cookie
 * jar and connection pool, its own CSRF handshake, its own login as the shared account.
 *
 * `mode` picks the re-login rule of `_request`:
 * - `current` (xqueue-watcher since a00741d): 301/302/401/403 log in again once; a second
 *   failure gives the request up. Timeouts throw {@link XQueueTimeoutError}, as requests does.
 * - `legacy` (before a00741d): only 301/302 log in again (without limit); a 401/403 is an
 *   unexpected status, so an evicted connection never recovers against a DRF LMS.
 * - `hardened` (this project): as `current`, but a login may take 30 s and timeouts and
 *   unreachable servers are failures, never exceptions.
 *
 * @example
 * const client = new XQueueClient({ serverUrl, queue: 'a', mode: 'current', ... });
 * if (await client.login()) await client.getSubmission();
 */
export class XQueueClient {
  private readonly jar: CookieJar;
  private readonly agent: Agent;
  private readonly fetch: FetchLike;
  private readonly headers: Record<string, string> = {};
  private generation = 0;
  private triedLogin = false;
  private loginInFlight: Promise<boolean> | null = null;

  constructor(private readonly options: XQueueClientOptions) {
    this.jar = new CookieJar(options.now);
    this.agent = new Agent(
      options.verifyTls === false ? { connect: { rejectUnauthorized: false } } : {},
    );
    this.fetch =
      options.fetch ??
      ((url, init) =>
        undiciFetch(url, {
          ...(init as Parameters<typeof undiciFetch>[1]),
          dispatcher: this.agent,
        }) as unknown as Promise<Response>);
  }

  get queue(): string {
    return this.options.queue;
  }

  get loggedIn(): boolean {
    return this.generation > 0;
  }

  /** Closes the client's sockets (upstream: `session.close()`). */
  close(): Promise<void> {
    return this.agent.close();
  }

  /**
   * Logs in unless a login newer than `staleGeneration` happened or is under way. Resolves
   * false when the LMS refuses; in `current` and `legacy` mode a timeout or an unreachable
   * server rejects, as upstream's `_login` raises.
   */
  login(staleGeneration = this.generation): Promise<boolean> {
    if (this.generation > staleGeneration) return Promise.resolve(true);
    this.loginInFlight ??= this.guardedLogin().finally(() => {
      this.loginInFlight = null;
    });
    return this.loginInFlight;
  }

  private async guardedLogin(): Promise<boolean> {
    try {
      const ok = await this.freshLogin();
      this.firstLoginEnded(ok);
      return ok;
    } catch (error) {
      this.firstLoginEnded(false);
      if (error instanceof XQueueTimeoutError) {
        this.observer.loginTimedOut?.(error.message);
      } else {
        this.options.logger.warn({ reason: (error as Error).message }, 'login request failed');
      }
      if (this.options.mode === 'hardened') return false;
      throw error;
    }
  }

  private firstLoginEnded(ok: boolean) {
    if (this.triedLogin) return;
    this.triedLogin = true;
    this.observer.firstLoginEnded?.(ok);
  }

  private get observer(): XQueueClientObserver {
    return this.options.observer ?? {};
  }

  // As upstream's `_login` since 398c45f: forget the old session, GET for the CSRF cookie,
  // POST the form with X-CSRFToken and Referer, both under the same timeout.
  private async freshLogin(): Promise<boolean> {
    const url = this.url(XQUEUE_PATHS.login);
    const timeoutMs =
      this.options.mode === 'hardened' ? HARDENED_LOGIN_TIMEOUT_MS : this.options.requestsTimeoutMs;
    const startedMs = this.options.now();
    this.jar.clear();
    for (const name of Object.keys(this.headers)) delete this.headers[name];
    // Read to the end (as requests does before it returns), so the POST can reuse the socket.
    await this.send('GET', url, undefined, {}, timeoutMs, (response) => response.arrayBuffer());
    const extra: Record<string, string> = { Referer: url };
    const csrf = this.jar.get('csrftoken');
    if (csrf) extra['X-CSRFToken'] = csrf;
    if (this.options.instanceId) extra[CLIENT_INSTANCE_HEADER] = this.options.instanceId;
    const form = { username: this.options.username, password: this.options.password };
    const { response, body: text } = await this.send('POST', url, form, extra, timeoutMs, textOf);
    const envelope = parseEnvelope(text);
    if (response.status !== 200 || !envelope.ok || envelope.value.return_code !== 0) {
      this.options.logger.error(
        { status: response.status, body: text.slice(0, 200) },
        'login failed',
      );
      return false;
    }
    // Django rotates the CSRF token on login; upstream keeps the new one and Referer: SERVER.
    const rotated = this.jar.get('csrftoken');
    if (rotated) this.headers['X-CSRFToken'] = rotated;
    this.headers.Referer = this.options.serverUrl;
    this.generation += 1;
    this.observer.loggedIn?.((this.options.now() - startedMs) / 1000);
    return true;
  }

  /** Pulls the oldest servable submission of this client's queue. */
  async getSubmission(): Promise<PullOutcome> {
    const path = `${XQUEUE_PATHS.getSubmission}?queue_name=${encodeURIComponent(this.options.queue)}`;
    const reply = await this.request('get_submission', 'GET', path);
    if (reply.kind === 'failed') return { kind: 'failed', reason: reply.reason };
    if (reply.returnCode !== 0) {
      const message = String(reply.content);
      return /empty/i.test(message) ? { kind: 'empty' } : { kind: 'failed', reason: message };
    }
    if (typeof reply.content !== 'string') {
      return { kind: 'failed', reason: 'content is not a string' };
    }
    return { kind: 'submission', content: reply.content };
  }

  /** Posts a result under the pull key in `xqueueHeader` (sent back exactly as received). */
  async putResult(xqueueHeader: string, result: GradeResult): Promise<PutOutcome> {
    const form = { xqueue_header: xqueueHeader, xqueue_body: JSON.stringify(result) };
    const reply = await this.request('put_result', 'POST', XQUEUE_PATHS.putResult, form);
    return classifyPut(reply);
  }

  // As upstream's `_request`: the re-login rule depends on the mode (see the class comment).
  private async request(
    endpoint: XQueueEndpoint,
    method: 'GET' | 'POST',
    path: string,
    form?: Record<string, string>,
  ): Promise<Reply> {
    const { mode, logger } = this.options;
    let reauthenticated = false;
    for (;;) {
      const generation = this.generation;
      let answer: { response: Response; body: string };
      try {
        answer = await this.send(
          method,
          this.url(path),
          form,
          {},
          this.options.requestsTimeoutMs,
          textOf,
        );
      } catch (error) {
        if (error instanceof XQueueConnectionError || mode === 'hardened') {
          return { kind: 'failed', reason: (error as Error).message, status: null };
        }
        throw error; // a timeout: upstream's `_request` does not catch it
      }
      const { response, body: text } = answer;
      const status = response.status;
      if (status === 200) return parseReply(text);
      // Beyond upstream: a 403 carrying an xqueue envelope is put_result's "Incorrect key",
      // not a lost session, so the hardened client does not log in again for it.
      if (mode === 'hardened' && status === 403 && parseEnvelope(text).ok) {
        return { kind: 'failed', reason: text.slice(0, 200), status };
      }
      const reloginStatuses = mode === 'legacy' ? [301, 302] : [301, 302, 401, 403];
      if (!reloginStatuses.includes(status)) {
        logger.error({ endpoint, status, body: text.slice(0, 200) }, 'unexpected response status');
        return {
          kind: 'failed',
          reason: `unexpected status ${status}: ${text.slice(0, 200)}`,
          status,
        };
      }
      this.observer.authFailed?.(endpoint, status);
      logger.debug(
        { endpoint, status, sessionEnd: response.headers.get(SESSION_END_HEADER) },
        'not authenticated',
      );
      if (reauthenticated && mode !== 'legacy') {
        return this.giveUp(endpoint, `Received ${status} after re-authentication`, status);
      }
      reauthenticated = true;
      if (!(await this.login(generation))) return this.giveUp(endpoint, 'Could not log in', status);
    }
  }

  private giveUp(endpoint: XQueueEndpoint, reason: string, status: number): Reply {
    this.observer.gaveUp?.(endpoint, reason);
    this.options.logger.warn({ endpoint, reason }, 'request given up');
    return { kind: 'failed', reason, status };
  }

  /**
   * Sends a request and reads its answer with `read`, both under one timeout (as requests' does
   * until it returns); the timer ends with the read, so no request leaves one behind.
   */
  private async send<T>(
    method: 'GET' | 'POST',
    url: string,
    form: Record<string, string> | undefined,
    extra: Record<string, string>,
    timeoutMs: number,
    read: (response: Response) => Promise<T>,
  ): Promise<{ response: Response; body: T }> {
    const headers: Record<string, string> = {
      ...this.headers,
      ...extra,
      Accept: 'application/json',
    };
    const cookie = this.jar.header();
    if (cookie) headers.Cookie = cookie;
    if (form) headers['Content-Type'] = 'application/x-www-form-urlencoded';
    const basic = this.options.httpBasicAuth;
    if (basic) {
      headers.Authorization = `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}`;
    }
    await this.observer.beforeRequest?.();
    const timeout = timeoutSignal(timeoutMs);
    try {
      let response: Response;
      try {
        response = await this.fetch(url, {
          method,
          headers,
          body: form ? new URLSearchParams(form).toString() : undefined,
          redirect: 'manual', // upstream never follows: a redirect to a login page means "log in"
          signal: timeout.signal,
        });
      } catch (error) {
        const name = (error as Error).name;
        if (name === 'TimeoutError' || name === 'AbortError') {
          throw new XQueueTimeoutError(`${method} ${url}: no answer within ${timeoutMs} ms`);
        }
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        throw new XQueueConnectionError(
          `${method} ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
        );
      }
      this.jar.store(response.headers.getSetCookie());
      return { response, body: await read(response) };
    } finally {
      timeout.clear();
    }
  }

  private url(path: string): string {
    return `${this.options.serverUrl}${path}`;
  }
}

/**
 * Aborts after `ms` with a `TimeoutError`, as `AbortSignal.timeout` does, but on the global
 * `setTimeout`, so a virtual clock (the simulator's) governs it too; `clear` ends the timer once
 * the answer is read.
 */
function timeoutSignal(ms: number): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')),
    ms,
  );
  // Like AbortSignal.timeout's timer, it never keeps the process alive.
  (timer as { unref?: () => void }).unref?.();
  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
    },
  };
}

/** An answer's body as text; one that cannot be read is empty (upstream then fails to parse it). */
const textOf = (response: Response) => response.text().catch(() => '');

// As upstream's `_parse_response`: a 200 must carry `return_code` (0 is success).
function parseReply(text: string): Reply {
  const envelope = parseEnvelope(text);
  if (!envelope.ok) return { kind: 'failed', reason: 'Could not parse xreply.', status: 200 };
  return {
    kind: 'reply',
    status: 200,
    returnCode: envelope.value.return_code,
    content: envelope.value.content,
  };
}

function classifyPut(reply: Reply): PutOutcome {
  if (reply.kind === 'reply') {
    if (reply.returnCode === 0) return { kind: 'accepted' };
    return { kind: 'rejected', reason: 'refused', retry: false, message: String(reply.content) };
  }
  const { status, reason: message } = reply;
  if (status === null) return { kind: 'rejected', reason: 'unreachable', retry: true, message };
  // A 403 that survived a re-login is put_result's "Incorrect key for submission".
  if (status === 403) return { kind: 'rejected', reason: 'stale-key', retry: false, message };
  if (status === 404) return { kind: 'rejected', reason: 'not-found', retry: false, message };
  if (status === 409) return { kind: 'rejected', reason: 'conflict', retry: true, message };
  const retry = status >= 500 || status === 429;
  return { kind: 'rejected', reason: `http-${status}`, retry, message };
}
