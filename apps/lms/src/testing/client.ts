import { request } from 'node:http';
import type { Hono } from 'hono';
import type { LmsEnv } from '../http/context.ts';

/** Sends one request to the LMS. */
export type Fetcher = (path: string, init: RequestInit) => Promise<Response>;

/** How a test client reaches the LMS: in process (`app.request`) or over a real socket. */
export function appFetcher(app: Hono<LmsEnv>): Fetcher {
  return async (path, init) => app.request(path, init);
}

export function urlFetcher(baseUrl: string): Fetcher {
  return (path, init) => fetch(new URL(path, baseUrl), init);
}

/**
 * Sends each request over a connection from `localAddress`: any 127.0.0.0/8 address reaches a
 * server on 127.0.0.1, so a test can be a client other than the proxy it trusts (TRUST_PROXY).
 *
 * @example
 * const direct = new TestClient(localAddressFetcher(server.url, '127.0.0.2'));
 */
export function localAddressFetcher(baseUrl: string, localAddress: string): Fetcher {
  return (path, init) =>
    new Promise((resolve, reject) => {
      const headers = Object.fromEntries(new Headers(init.headers));
      const body = init.body == null ? undefined : String(init.body);
      if (init.body instanceof URLSearchParams) {
        headers['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8';
      }
      const options = { method: init.method ?? 'GET', headers, localAddress };
      const sent = request(new URL(path, baseUrl), options, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const answer = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            for (const each of [value ?? []].flat()) answer.append(name, each);
          }
          const status = response.statusCode ?? 0;
          // A Response refuses a body, even an empty one, on these statuses.
          const content = [204, 205, 304].includes(status) ? null : Buffer.concat(chunks);
          resolve(new Response(content, { status, headers: answer }));
        });
      });
      sent.on('error', reject);
      sent.end(body);
    });
}

/**
 * Sends each request on a new connection (`Connection: close`): node:cluster hands out
 * connections, not requests, so this is how consecutive requests reach different workers.
 */
export function newConnectionFetcher(baseUrl: string): Fetcher {
  return (path, init) => {
    const headers = new Headers(init?.headers);
    headers.set('connection', 'close');
    return fetch(new URL(path, baseUrl), { ...init, headers });
  };
}

/**
 * A client with its own cookie jar that behaves like xqueue-watcher's: GET the login URL for
 * the CSRF cookie, POST the credentials, then send `X-CSRFToken` with every later request.
 *
 * @example
 * const grader = new TestClient(appFetcher(app));
 * await grader.xqueueLogin('xqueue_svc', 'xqueue-pass');
 */
export class TestClient {
  readonly cookies = new Map<string, string>();
  readonly headers: Record<string, string> = {};

  constructor(private readonly fetcher: Fetcher) {}

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const headers = new Headers({ ...this.headers, ...(init.headers as Record<string, string>) });
    if (cookie) headers.set('cookie', cookie);
    const response = await this.fetcher(path, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.request(path, { headers });
  }

  postForm(path: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
    return this.request(path, { method: 'POST', body: new URLSearchParams(fields), headers });
  }

  postJson(path: string, value: unknown, headers: Record<string, string> = {}) {
    return this.request(path, {
      method: 'POST',
      body: JSON.stringify(value),
      headers: { 'content-type': 'application/json', ...headers },
    });
  }

  /** The xqueue-watcher login sequence; returns the POST's response. */
  async xqueueLogin(username: string, password: string, headers: Record<string, string> = {}) {
    this.cookies.clear();
    await this.get('/xqueue/login/');
    const csrf = this.cookies.get('csrftoken');
    if (csrf) this.headers['X-CSRFToken'] = csrf;
    const response = await this.postForm('/xqueue/login/', { username, password }, headers);
    this.rereadCsrfToken();
    return response;
  }

  /** The browser login sequence: GET /login for the cookie, POST the form with the token. */
  async webLogin(username: string, password: string) {
    await this.get('/login');
    const csrf = this.cookies.get('csrftoken') ?? '';
    this.headers['X-CSRFToken'] = csrf;
    const response = await this.postForm('/login', {
      username,
      password,
      csrfmiddlewaretoken: csrf,
    });
    this.rereadCsrfToken();
    return response;
  }

  // A login rotates the token (as Django's); xqueue-watcher and page scripts read the new one.
  private rereadCsrfToken() {
    const csrf = this.cookies.get('csrftoken');
    if (csrf) this.headers['X-CSRFToken'] = csrf;
  }
}
