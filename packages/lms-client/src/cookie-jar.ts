/**
 * A cookie jar for one origin, the LMS. Each xqueue client owns one, like each upstream client
 * owns a `requests.Session`. Domain and path matching are not needed: a client talks to a
 * single server, and the LMS scopes its cookies to `/`.
 *
 * @example
 * const jar = new CookieJar(() => Date.now());
 * jar.store(response.headers.getSetCookie());
 * fetch(url, { headers: { cookie: jar.header() } });
 */
export class CookieJar {
  private readonly cookies = new Map<string, { value: string; expiresAtMs: number | null }>();

  constructor(private readonly now: () => number) {}

  /** Takes the `Set-Cookie` lines of a response; `Max-Age<=0` or a past `Expires` deletes. */
  store(setCookieLines: readonly string[]): void {
    for (const line of setCookieLines) this.storeOne(line);
  }

  private storeOne(line: string): void {
    const [pair = '', ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const name = pair.slice(0, eq).trim();
    const value = pair
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    const attrs = new Map(
      attributes.map((attribute) => {
        const at = attribute.indexOf('=');
        const key = (at < 0 ? attribute : attribute.slice(0, at)).trim().toLowerCase();
        return [key, at < 0 ? '' : attribute.slice(at + 1).trim()] as const;
      }),
    );
    const expiresAtMs = this.expiry(attrs.get('max-age'), attrs.get('expires'));
    if (expiresAtMs !== null && expiresAtMs <= this.now()) {
      this.cookies.delete(name);
      return;
    }
    this.cookies.set(name, { value, expiresAtMs });
  }

  /** Max-Age wins over Expires (RFC 6265 5.3); null means a session cookie. */
  private expiry(maxAge: string | undefined, expires: string | undefined): number | null {
    if (maxAge !== undefined && /^-?\d+$/.test(maxAge)) return this.now() + Number(maxAge) * 1000;
    const at = expires === undefined ? Number.NaN : Date.parse(expires);
    return Number.isNaN(at) ? null : at;
  }

  /** The value of a live cookie, or undefined. */
  get(name: string): string | undefined {
    const cookie = this.cookies.get(name);
    if (!cookie) return undefined;
    if (cookie.expiresAtMs !== null && cookie.expiresAtMs <= this.now()) {
      this.cookies.delete(name);
      return undefined;
    }
    return cookie.value;
  }

  /** The `Cookie` request header for all live cookies ('' when none). */
  header(): string {
    const names = [...this.cookies.keys()];
    return names
      .flatMap((name) => {
        const value = this.get(name);
        return value === undefined ? [] : [`${name}=${value}`];
      })
      .join('; ');
  }

  clear(): void {
    this.cookies.clear();
  }
}
