import {
  CLIENT_INSTANCE_HEADER,
  type Envelope,
  type GradeResult,
  parseEnvelope,
  SESSION_END_HEADER,
  XQUEUE_PATHS,
} from '@storm-lab/xqueue-protocol';
import type { Logger } from 'pino';
import { CookieJar } from './cookie-jar.ts';
import type { ReloginMode } from './env.ts';
import type { Endpoint, WatcherMetrics } from './metrics.ts';

export interface XQueueClientOptions {
  serverUrl: string;
  queue: string;
  username: string;
  password: string;
  relogin: ReloginMode;
  /** Sent as `X-Client-Instance` on login when set; upstream sends none. */
  instanceId: string | null;
  requestsTimeoutMs: number;
  metrics: WatcherMetrics;
  logger: Logger;
  now: () => number;
}

/** An HTTP answer that was not an authentication failure. */
type Reply = { kind: 'reply'; status: number; envelope: Envelope | null };
type Failed = { kind: 'gave-up' | 'unreachable'; reason: string };

/** What one get_submission brought. */
export type PullOutcome =
  | { kind: 'submission'; content: string }
  | { kind: 'empty' }
  | { kind: 'failed'; reason: string };

/** What one put_result brought; `retry` says whether trying again later can help. */
export type PutOutcome =
  | { kind: 'accepted' }
  | { kind: 'rejected'; reason: string; retry: boolean; message: string };

// A login hashes a password on the LMS; upstream sets no timeout on it at all.
const LOGIN_TIMEOUT_MS = 30_000;

/**
 * One upstream-style xqueue client: its own cookie jar, its own CSRF handshake, its own login.
 * On 301/302/401/403 it logs in again and retries: once per request (`once-per-request`, current
 * upstream) or without limit (`unbounded`, older upstream). Concurrent callers that hit the same
 * dead session share one re-login, so a healthy client logs in exactly once.
 *
 * @example
 * const client = new XQueueClient({ serverUrl, queue: 'a', relogin: 'once-per-request', ... });
 * await client.login();
 * const pulled = await client.getSubmission();
 */
export class XQueueClient {
  private readonly jar: CookieJar;
  private readonly headers: Record<string, string> = {};
  private generation = 0;
  private loginInFlight: Promise<boolean> | null = null;

  constructor(private readonly options: XQueueClientOptions) {
    this.jar = new CookieJar(options.now);
  }

  get queue(): string {
    return this.options.queue;
  }

  get loggedIn(): boolean {
    return this.generation > 0;
  }

  /** Logs in unless a login newer than `staleGeneration` happened or is under way. */
  login(staleGeneration = this.generation): Promise<boolean> {
    if (this.generation > staleGeneration) return Promise.resolve(true);
    this.loginInFlight ??= this.freshLogin().finally(() => {
      this.loginInFlight = null;
    });
    return this.loginInFlight;
  }

  private async freshLogin(): Promise<boolean> {
    const url = this.url(XQUEUE_PATHS.login);
    const { logger, metrics } = this.options;
    // As upstream: forget the old session, fetch a CSRF cookie, then post the form.
    this.jar.clear();
    for (const name of Object.keys(this.headers)) delete this.headers[name];
    try {
      await this.send('GET', url, undefined, {}, LOGIN_TIMEOUT_MS);
      const csrf = this.jar.get('csrftoken');
      if (csrf) this.headers['X-CSRFToken'] = csrf;
      this.headers.Referer = url;
      const extra: Record<string, string> = {};
      if (this.options.instanceId) extra[CLIENT_INSTANCE_HEADER] = this.options.instanceId;
      const form = { username: this.options.username, password: this.options.password };
      const response = await this.send('POST', url, form, extra, LOGIN_TIMEOUT_MS);
      const text = await response.text();
      const envelope = parseEnvelope(text);
      if (response.status !== 200 || !envelope.ok || envelope.value.return_code !== 0) {
        logger.warn({ status: response.status, body: text.slice(0, 200) }, 'login failed');
        return false;
      }
    } catch (error) {
      const reason =
        error instanceof Error ? `${error.message} ${String(error.cause ?? '')}` : String(error);
      logger.warn({ url, reason: reason.trim() }, 'login request failed');
      return false;
    }
    // Django rotates the CSRF secret on login; follow it so later POSTs still pass.
    const rotated = this.jar.get('csrftoken');
    if (rotated) this.headers['X-CSRFToken'] = rotated;
    this.generation += 1;
    metrics.logins.inc({ queue: this.options.queue });
    logger.debug({ generation: this.generation }, 'logged in');
    return true;
  }

  /** Pulls the oldest pending submission of this client's queue. */
  async getSubmission(): Promise<PullOutcome> {
    const path = `${XQUEUE_PATHS.getSubmission}?queue_name=${encodeURIComponent(this.options.queue)}`;
    const reply = await this.request('get_submission', 'GET', path);
    if (reply.kind !== 'reply') return { kind: 'failed', reason: `${reply.kind}: ${reply.reason}` };
    const { envelope, status } = reply;
    if (status !== 200 || envelope === null) return { kind: 'failed', reason: `http-${status}` };
    if (envelope.return_code === 1) {
      return /empty/i.test(envelope.content)
        ? { kind: 'empty' }
        : { kind: 'failed', reason: envelope.content };
    }
    if (typeof envelope.content !== 'string')
      return { kind: 'failed', reason: 'content is not a string' };
    return { kind: 'submission', content: envelope.content };
  }

  /** Posts a result under the pull key in `xqueueHeader` (sent back exactly as received). */
  async putResult(xqueueHeader: string, result: GradeResult): Promise<PutOutcome> {
    const form = { xqueue_header: xqueueHeader, xqueue_body: JSON.stringify(result) };
    const reply = await this.request('put_result', 'POST', XQUEUE_PATHS.putResult, form);
    if (reply.kind !== 'reply') {
      return { kind: 'rejected', reason: reply.kind, retry: true, message: reply.reason };
    }
    return classifyPut(reply);
  }

  private async request(
    endpoint: Endpoint,
    method: 'GET' | 'POST',
    path: string,
    form?: Record<string, string>,
  ): Promise<Reply | Failed> {
    let relogins = 0;
    for (;;) {
      if (this.generation === 0 && !(await this.login(0)))
        return this.giveUp(endpoint, 'could not log in');
      const generation = this.generation;
      let response: Response;
      try {
        response = await this.send(
          method,
          this.url(path),
          form,
          {},
          this.options.requestsTimeoutMs,
        );
      } catch (error) {
        return { kind: 'unreachable', reason: (error as Error).message };
      }
      const text = await response.text().catch(() => '');
      const envelope = parseEnvelope(text);
      if (!isAuthFailure(response.status, envelope.ok)) {
        return {
          kind: 'reply',
          status: response.status,
          envelope: envelope.ok ? envelope.value : null,
        };
      }
      this.options.metrics.authFailures.inc({ endpoint, status: String(response.status) });
      this.options.logger.debug(
        { endpoint, status: response.status, sessionEnd: response.headers.get(SESSION_END_HEADER) },
        'not authenticated',
      );
      if (this.options.relogin === 'once-per-request' && relogins >= 1) {
        return this.giveUp(endpoint, `HTTP ${response.status} again after re-login`);
      }
      relogins += 1;
      if (!(await this.login(generation))) return this.giveUp(endpoint, 'could not log in');
    }
  }

  private giveUp(endpoint: Endpoint, reason: string): Failed {
    this.options.metrics.reloginGiveups.inc({ endpoint });
    this.options.logger.warn({ endpoint, reason }, 'request given up');
    return { kind: 'gave-up', reason };
  }

  private async send(
    method: 'GET' | 'POST',
    url: string,
    form: Record<string, string> | undefined,
    extra: Record<string, string>,
    timeoutMs: number,
  ): Promise<Response> {
    const headers: Record<string, string> = {
      ...this.headers,
      ...extra,
      Accept: 'application/json',
    };
    const cookie = this.jar.header();
    if (cookie) headers.Cookie = cookie;
    if (form) headers['Content-Type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, {
      method,
      headers,
      body: form ? new URLSearchParams(form).toString() : undefined,
      redirect: 'manual', // a redirect to a login page means "log in", as upstream reads it
      signal: AbortSignal.timeout(timeoutMs),
    });
    this.jar.store(response.headers.getSetCookie());
    return response;
  }

  private url(path: string): string {
    return `${this.options.serverUrl}${path}`;
  }
}

/**
 * Upstream re-logs in on 301/302/401/403. A 403 whose body is an xqueue envelope is not about
 * the session: it is put_result's "Incorrect key" (the pull lock expired), so it is a reply.
 */
function isAuthFailure(status: number, bodyIsEnvelope: boolean): boolean {
  if (status === 301 || status === 302 || status === 401) return true;
  return status === 403 && !bodyIsEnvelope;
}

function classifyPut(reply: Reply): PutOutcome {
  const { status, envelope } = reply;
  const message = envelope && typeof envelope.content === 'string' ? envelope.content : '';
  if (status === 200 && envelope?.return_code === 0) return { kind: 'accepted' };
  if (status === 403 || (status === 200 && /key/i.test(message))) {
    return { kind: 'rejected', reason: 'stale-key', retry: false, message };
  }
  if (status === 404) return { kind: 'rejected', reason: 'not-found', retry: false, message };
  if (status === 409) return { kind: 'rejected', reason: 'conflict', retry: true, message };
  const retry = status >= 500 || status === 429;
  return {
    kind: 'rejected',
    reason: status === 200 ? 'refused' : `http-${status}`,
    retry,
    message,
  };
}
