import type { Context } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { isCsrfToken, newCsrfToken, safeEqual } from '../auth/tokens.ts';

/** Django's cookie and header names; real xqueue clients send exactly these. */
export const CSRF_COOKIE = 'csrftoken';
export const CSRF_HEADER = 'X-CSRFToken';
/** Django's form field for the token. */
export const CSRF_FIELD = 'csrfmiddlewaretoken';

const ONE_YEAR_SECONDS = 365 * 24 * 60 * 60;

/** Whether the request arrived over TLS (directly or through a proxy that says so). */
export function isSecure(c: Context): boolean {
  return c.req.url.startsWith('https:') || c.req.header('x-forwarded-proto') === 'https';
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
  const token = newCsrfToken();
  setCookie(c, CSRF_COOKIE, token, {
    path: '/',
    sameSite: 'Lax',
    secure: isSecure(c),
    maxAge: ONE_YEAR_SECONDS,
  });
  return token;
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
