/** How long a request may keep waiting for an LMS that asks it to try again later. */
export interface Patience {
  /** Milliseconds; default 0 (no retry). */
  retryForMs?: number;
}

/** A browser-like client of the LMS for one person: its own cookies and the CSRF handshake. */
export interface WebClientOptions {
  /**
   * Sent as `X-Forwarded-For` on every request, as the reverse proxy in front of an LMS names
   * the client it forwards: a lab that runs many people's browsers on one machine gives each its
   * own address (the LMS reads it only from a peer TRUST_PROXY names, e.g. `loopback`).
   */
  forwardedFor?: string;
  /** Sends the requests; default the global fetch. A simulation passes its own. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

export class WebClient {
  private readonly cookies = new Map<string, string>();

  constructor(
    private readonly baseUrl: string,
    private readonly options: WebClientOptions = {},
  ) {}

  private remember(response: Response) {
    for (const header of response.headers.getSetCookie()) {
      const [pair = ''] = header.split(';');
      const index = pair.indexOf('=');
      if (index <= 0) continue;
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      // An expired or empty cookie is the server deleting it.
      if (value === '' || /max-age=0/i.test(header)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  /** Sends a request with this client's cookies and, on unsafe methods, its CSRF token. */
  private async send(method: string, path: string, json?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.options.forwardedFor) headers['x-forwarded-for'] = this.options.forwardedFor;
    if (this.cookies.size > 0) {
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    }
    const csrf = this.cookies.get('csrftoken');
    if (method !== 'GET' && csrf) {
      headers['x-csrftoken'] = csrf;
      headers.referer = this.baseUrl;
    }
    if (json !== undefined) headers['content-type'] = 'application/json';
    const send = this.options.fetch ?? fetch;
    const response = await send(new URL(path, this.baseUrl).href, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      redirect: 'manual',
    });
    this.remember(response);
    return response;
  }

  /**
   * Sends a request with this client's cookies and, on unsafe methods, its CSRF token. When the
   * LMS says to try later without having done anything (429 from the login throttle, 503 while
   * another process holds the database), it is sent again after its `Retry-After`, as long as
   * that stays within `retryForMs` (default 0: the 429 or 503 is returned).
   */
  async request(
    method: string,
    path: string,
    json?: unknown,
    { retryForMs = 0 }: Patience = {},
  ): Promise<Response> {
    const deadline = Date.now() + retryForMs;
    for (;;) {
      const response = await this.send(method, path, json);
      if (response.status !== 429 && response.status !== 503) return response;
      const seconds = Number(response.headers.get('retry-after'));
      const waitMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000;
      if (Date.now() + waitMs > deadline) return response;
      await response.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }

  /**
   * Logs in through the human login page (GET for the CSRF cookie, then POST). A 429 (login
   * throttle) or 503 (database busy) is tried again after its `Retry-After`, as a person would,
   * within `retryForMs` (default 0: never); then the login fails with the LMS's answer.
   */
  async login(username: string, password: string, patience: Patience = {}): Promise<void> {
    await (await this.request('GET', '/login', undefined, patience)).arrayBuffer();
    const response = await this.request('POST', '/login', { username, password }, patience);
    const text = await response.text();
    if (!response.ok) throw new Error(`login of ${username} failed: ${response.status} ${text}`);
  }

  /** True when the server still knows this client's session. */
  async isLoggedIn(): Promise<boolean> {
    const response = await this.request('GET', '/me');
    await response.arrayBuffer();
    return response.status === 200;
  }
}
