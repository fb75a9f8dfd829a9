import {
  NOT_AUTHENTICATED_DETAIL,
  type NotAuthenticatedBody,
  SESSION_END_HEADER,
} from '@storm-lab/xqueue-protocol';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { createMiddleware } from 'hono/factory';
import { isSessionToken, sessionIdOf, shortId } from '../auth/tokens.ts';
import type { LmsEnv, Services } from './context.ts';
import { csrfFailure, isSecure, isUnsafeMethod } from './csrf.ts';

/** Django's session cookie name. */
export const SESSION_COOKIE = 'sessionid';

/**
 * Resolves the `sessionid` cookie on every request into `c.var.auth` (or null). A deleted or
 * expired session is simply anonymous; `c.var.sessionEnd` says why when the reason is known.
 * A session issued before its user's password changed is refused and ended here (the store
 * compares its session auth hash, as Django's `get_user` does): `password-change`.
 *
 * @example
 * app.use('*', sessionMiddleware(services));
 */
export function sessionMiddleware(services: Services) {
  return createMiddleware<LmsEnv>(async (c, next) => {
    c.set('auth', null);
    c.set('sessionEnd', null);
    const token = getCookie(c, SESSION_COOKIE);
    if (isSessionToken(token)) {
      const sessionId = sessionIdOf(token);
      const lookup = await services.store.lookup(sessionId);
      if (lookup.kind === 'live') {
        if (lookup.user.isActive) c.set('auth', { sessionId: lookup.sessionId, user: lookup.user });
      } else if (lookup.kind === 'ended') {
        c.set('sessionEnd', lookup.end);
        // Ended by this very lookup: its user's password changed since the login (whoever
        // changed it ended the session in neither store). Logged as the other endings are.
        if (lookup.endedNow) {
          const account = lookup.endedNow.username;
          services.logger.info(
            {
              event: 'session-end',
              account,
              session: shortId(sessionId),
              reason: lookup.end.reason,
            },
            `session ${shortId(sessionId)} of ${account} ended (${lookup.end.reason})`,
          );
        }
      }
    }
    await next();
  });
}

/**
 * Sets the session cookie: HttpOnly, SameSite=Lax, Secure over TLS ({@link isSecure}: a client's
 * own X-Forwarded-Proto counts only under TRUST_PROXY).
 */
export function setSessionCookie(c: Context, token: string, maxAgeSeconds: number): void {
  setCookie(c, SESSION_COOKIE, token, {
    path: '/',
    httpOnly: true,
    sameSite: 'Lax',
    secure: isSecure(c),
    maxAge: Math.floor(maxAgeSeconds),
  });
}

/** Clears the session cookie. */
export function clearSessionCookie(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: '/' });
}

/**
 * The 403 (or 401) for a request without a live session: upstream's body, plus `session_end`
 * and the `X-Session-End-Reason` header when the session was evicted, expired or logged out.
 */
export function notAuthenticated(c: Context<LmsEnv>, status: 401 | 403 = 403): Response {
  const end = c.get('sessionEnd');
  const body: NotAuthenticatedBody = { detail: NOT_AUTHENTICATED_DETAIL };
  if (end) {
    body.session_end = { reason: end.reason, at: new Date(end.at).toISOString() };
    if (end.eviction) {
      body.session_end.by_instance = end.eviction.byInstance;
      body.session_end.by_session = end.eviction.bySession;
      body.session_end.quota = end.eviction.quota;
    }
    c.header(SESSION_END_HEADER, end.reason);
  }
  return c.json(body, status);
}

/** DRF's message when an authenticated user lacks the permission. */
export const PERMISSION_DENIED_DETAIL = 'You do not have permission to perform this action.';

/**
 * Requires a live session and, on unsafe methods, the CSRF token (Django REST framework's
 * SessionAuthentication rule); with `group`, also membership of that group.
 *
 * @example
 * xqueue.use('/get_submission/', requireUser({ group: 'xqueue' }));
 */
export function requireUser(options: { group?: string } = {}) {
  return createMiddleware<LmsEnv>(async (c, next) => {
    const auth = c.get('auth');
    if (!auth) return notAuthenticated(c);
    if (isUnsafeMethod(c.req.method)) {
      const failure = csrfFailure(c);
      if (failure) return c.json({ detail: failure }, 403);
    }
    if (options.group && !auth.user.groups.includes(options.group)) {
      return c.json({ detail: PERMISSION_DENIED_DETAIL }, 403);
    }
    await next();
  });
}

/**
 * CSRF for a login POST: the anonymous login needs no token (DRF's rule), but a client that is
 * already logged in and logs in again must send it like any other unsafe request.
 */
export const csrfWhenLoggedIn = createMiddleware<LmsEnv>(async (c, next) => {
  if (c.get('auth')) {
    const failure = csrfFailure(c);
    if (failure) return c.json({ detail: failure }, 403);
  }
  await next();
});
