import type { Context } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { createMiddleware } from 'hono/factory';
import { isCsrfToken, newCsrfToken, safeEqual } from '../auth/tokens.ts';
import { type ProxyTrust, TRUST_NO_PROXY, trustedForwarded } from './client-address.ts';
import type { LmsEnv } from './context.ts';

/** Django's cookie and header names; real xqueue clients send exactly these. */
export const CSRF_COOKIE = 'csrftoken';
export const CSRF_HEADER = 'X-CSRFToken';
/** Django's form field for the token. */
export const CSRF_FIELD = 'csrfmiddlewaretoken';

const ONE_YEAR_SECONDS = 365 * 24 * 60 * 60;

/** What the CSRF checks and cookies trust; the app sets it on every request ({@link csrfSettings}). */
export interface CsrfSettings {
  /**
   * TRUST_PROXY: our reverse proxies. X-Forwarded-Proto and X-Forwarded-Host count only on a
   * request whose socket peer is one of them (see clientAddress, which reads X-Forwarded-For so).
   */
  trustProxy: ProxyTrust;
  /** CSRF_TRUSTED_ORIGINS: other origins (`scheme://host[:port]`) that may post to us. */
  trustedOrigins: readonly string[];
}

declare module 'hono' {
  interface ContextVariableMap {
    /** Set by {@link csrfSettings}; unset means nothing is trusted. */
    csrfSettings: CsrfSettings;
  }
}

// A route mounted without csrfSettings (a unit test) trusts no proxy header and no other site.
const TRUST_NOTHING: CsrfSettings = { trustProxy: TRUST_NO_PROXY, trustedOrigins: [] };

function settingsOf(c: Context): CsrfSettings {
  return (c.get('csrfSettings') as CsrfSettings | undefined) ?? TRUST_NOTHING;
}

/**
 * The origin `text` names, normalised (`https://LMS.example:443` is `https://lms.example`), or
 * null when it is not exactly an http(s) origin: a path, query, fragment, credentials or a
 * wildcard make it null.
 *
 * @example
 * originOf('http://127.0.0.1:8000/'); // 'http://127.0.0.1:8000'
 * originOf('https://lms.example/login'); // null
 */
export function originOf(text: string): string | null {
  return knownOrigins(text);
}

// Every login of a client that sends a Referer (xqueue-watcher does) parses it and the
// request's own origin as URLs, which cost more than the rest of the check. The answers depend
// on the text alone and clients send the same few: a small memo keeps them. Emptied when full,
// so no client can make it grow.
const MEMO_LIMIT = 1024;

function memoized<T>(compute: (text: string) => T): (text: string) => T {
  const memo = new Map<string, T>();
  return (text) => {
    if (memo.has(text)) return memo.get(text) as T;
    const value = compute(text);
    if (memo.size >= MEMO_LIMIT) memo.clear();
    memo.set(text, value);
    return value;
  };
}

const knownOrigins = memoized(parseOrigin);

function parseOrigin(text: string): string | null {
  // Django allows `https://*.example.com`; we list origins exactly, so a `*` is a mistake.
  if (text.includes('*')) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) return null;
  return url.origin;
}

/**
 * Sets the settings the CSRF checks and cookie flags read, on every request. Throws when a
 * trusted origin is not `scheme://host[:port]`.
 *
 * @example
 * app.use('*', csrfSettings({ trustProxy: TRUST_NO_PROXY, trustedOrigins: ['https://lms.example'] }));
 */
export function csrfSettings(settings: CsrfSettings) {
  const trustedOrigins = settings.trustedOrigins.map((text) => {
    const origin = originOf(text);
    if (origin === null) {
      throw new Error(
        `csrfTrustedOrigins: ${JSON.stringify(text)} is not an origin (expected scheme://host[:port])`,
      );
    }
    return origin;
  });
  const resolved: CsrfSettings = { trustProxy: settings.trustProxy, trustedOrigins };
  return createMiddleware(async (c, next) => {
    c.set('csrfSettings', resolved);
    await next();
  });
}

/**
 * Whether the request arrived over TLS: an https URL, or `X-Forwarded-Proto: https` from one of
 * our proxies. From any other peer the header is the client's word and counts for nothing.
 */
export function isSecure(c: Context): boolean {
  if (c.req.url.startsWith('https:')) return true;
  const proto = trustedForwarded(c, settingsOf(c).trustProxy, 'x-forwarded-proto');
  return proto?.toLowerCase() === 'https';
}

/**
 * The origin the client addressed, as Django's `request.get_host()` with the scheme: the Host
 * header (X-Forwarded-Host from one of our proxies, TRUST_PROXY), null when it is not a host.
 *
 * @example
 * requestOrigin(c); // 'http://127.0.0.1:8000'
 */
export function requestOrigin(c: Context): string | null {
  const forwarded = trustedForwarded(c, settingsOf(c).trustProxy, 'x-forwarded-host');
  const host = forwarded ?? c.req.header('host') ?? new URL(c.req.url).host;
  return originOf(`${isSecure(c) ? 'https' : 'http'}://${host}`);
}

/**
 * The origin of a Referer URL (which has a path): null when it is not an http(s) URL, undefined
 * when it is no URL at all.
 */
const refererOrigin = memoized((referer: string): string | null | undefined => {
  let url: URL;
  try {
    url = new URL(referer);
  } catch {
    return undefined;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : null;
});

/** Whether `origin` is the request's own or one of CSRF_TRUSTED_ORIGINS. */
function isTrusted(
  origin: string | null,
  trusted: { own: string | null; others: readonly string[] },
) {
  return origin !== null && (origin === trusted.own || trusted.others.includes(origin));
}

/**
 * Django's Origin check (CsrfViewMiddleware, Django 4): an `Origin` other than the request's
 * own and not in CSRF_TRUSTED_ORIGINS fails, even when the token matches. Without Origin, a
 * `Referer` is checked the same way (Django does that over HTTPS only; we on both, as browsers
 * that send no Origin still send a Referer). Neither header passes: non-browser clients such as
 * xqueue-watcher send none. Returns the failure message, or null when it passes.
 *
 * @example
 * originFailure(c); // 'CSRF Failed: Origin checking failed - https://evil.example does not ...'
 */
export function originFailure(c: Context): string | null {
  const { trustedOrigins } = settingsOf(c);
  const own = requestOrigin(c);
  const trusted = { own, others: trustedOrigins };
  const origin = c.req.header('origin');
  if (origin !== undefined) {
    if (isTrusted(originOf(origin), trusted)) return null;
    return `CSRF Failed: Origin checking failed - ${origin} does not match any trusted origins.`;
  }
  const referer = c.req.header('referer')?.trim();
  if (!referer) return null;
  const refererFrom = refererOrigin(referer);
  if (refererFrom === undefined) {
    return 'CSRF Failed: Referer checking failed - Referer is malformed.';
  }
  if (isTrusted(refererFrom, trusted)) return null;
  return `CSRF Failed: Referer checking failed - ${referer} does not match any trusted origins.`;
}

/**
 * Refuses a request from another site ({@link originFailure}) with 403 in the route's own shape,
 * before anything else runs: for the login and logout POSTs, which have no session token to
 * check when anonymous.
 *
 * @example
 * app.post('/logout', requireSameOrigin((c, message) => c.json({ detail: message }, 403)), logout);
 */
export function requireSameOrigin(refuse: (c: Context<LmsEnv>, message: string) => Response) {
  return createMiddleware<LmsEnv>(async (c, next) => {
    const failure = originFailure(c);
    if (failure) return refuse(c, failure);
    await next();
  });
}

function setCsrfCookie(c: Context, token: string): string {
  setCookie(c, CSRF_COOKIE, token, {
    path: '/',
    sameSite: 'Lax',
    secure: isSecure(c),
    maxAge: ONE_YEAR_SECONDS,
  });
  return token;
}

/**
 * Returns the request's CSRF token, setting a new `csrftoken` cookie when it has none. Not
 * HttpOnly: clients read it to send it back in `X-CSRFToken`.
 *
 * @example
 * app.get('/login', (c) => c.html(form(ensureCsrfCookie(c))));
 */
export function ensureCsrfCookie(c: Context): string {
  const existing = getCookie(c, CSRF_COOKIE);
  if (isCsrfToken(existing)) return existing;
  return setCsrfCookie(c, newCsrfToken());
}

/**
 * Sets a new `csrftoken` cookie, as Django's `rotate_token` on login: a token known before the
 * login (planted in the browser, or read by someone else) no longer passes afterwards. Clients
 * read the new one from the login's answer, as xqueue-watcher does.
 *
 * @example
 * setSessionCookie(c, outcome.token, ttl);
 * rotateCsrfCookie(c);
 */
export function rotateCsrfCookie(c: Context): string {
  return setCsrfCookie(c, newCsrfToken());
}

/**
 * Checks the double-submit token as Django does: the `csrftoken` cookie must equal the
 * `X-CSRFToken` header (or the form field). Returns the failure message, or null when it passes.
 */
export function csrfFailure(c: Context, formToken?: string): string | null {
  const cookie = getCookie(c, CSRF_COOKIE);
  if (!isCsrfToken(cookie)) return 'CSRF Failed: CSRF cookie not set.';
  const sent = c.req.header(CSRF_HEADER) ?? formToken;
  if (sent === undefined || sent === '') return 'CSRF Failed: CSRF token missing.';
  if (!safeEqual(sent, cookie)) return 'CSRF Failed: CSRF token incorrect.';
  return null;
}

/** Methods that change state; only these are CSRF-checked (as Django). */
export function isUnsafeMethod(method: string): boolean {
  return !['GET', 'HEAD', 'OPTIONS', 'TRACE'].includes(method.toUpperCase());
}
