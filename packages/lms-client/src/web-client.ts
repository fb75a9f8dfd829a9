/** A browser-like client of the LMS for one person: its own cookies and the CSRF handshake. */
export class WebClient {
  private readonly cookies = new Map<string, string>();

  constructor(private readonly baseUrl: string) {}

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
  async request(method: string, path: string, json?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.cookies.size > 0) {
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    }
    const csrf = this.cookies.get('csrftoken');
    if (method !== 'GET' && csrf) {
      headers['x-csrftoken'] = csrf;
      headers.referer = this.baseUrl;
    }
    if (json !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(new URL(path, this.baseUrl), {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      redirect: 'manual',
    });
    this.remember(response);
    return response;
  }

  /**
   * Logs in through the human login page (GET for the CSRF cookie, then POST). A 429 from the
   * login throttle is tried again after its `Retry-After`, as a person would, while that stays
   * within `retryThrottledForMs` (default 0: never).
   */
  async login(
    username: string,
    password: string,
    options: { retryThrottledForMs?: number } = {},
  ): Promise<void> {
    const deadline = Date.now() + (options.retryThrottledForMs ?? 0);
    for (;;) {
      await (await this.request('GET', '/login')).arrayBuffer();
      const response = await this.request('POST', '/login', { username, password });
      const text = await response.text();
      if (response.ok) return;
      const waitMs = Math.max(0, Number(response.headers.get('retry-after') ?? 1) * 1000 || 1000);
      if (response.status !== 429 || Date.now() + waitMs > deadline) {
        throw new Error(`login of ${username} failed: ${response.status} ${text}`);
      }
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }

  /** True when the server still knows this client's session. */
  async isLoggedIn(): Promise<boolean> {
    const response = await this.request('GET', '/me');
    await response.arrayBuffer();
    return response.status === 200;
  }
}
