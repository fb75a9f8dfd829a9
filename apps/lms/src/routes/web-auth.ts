import { Hono } from 'hono';
import { html } from 'hono/html';
import { secureHeaders } from 'hono/secure-headers';
import { clientAddress } from '../http/client-address.ts';
import type { LmsEnv, Services } from '../http/context.ts';
import {
  CSRF_FIELD,
  csrfFailure,
  ensureCsrfCookie,
  requireSameOrigin,
  rotateCsrfCookie,
} from '../http/csrf.ts';
import { readFields } from '../http/fields.ts';
import { clearSessionCookie, notAuthenticated, setSessionCookie } from '../http/session.ts';
import { clientInstance, MAX_CREDENTIAL_LENGTH, throttledMessage } from './xqueue.ts';

function loginForm(csrfToken: string) {
  return html`<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>Log in</title></head>
  <body>
    <h1>Log in</h1>
    <form method="post" action="/login">
      <input type="hidden" name="${CSRF_FIELD}" value="${csrfToken}">
      <label>Username <input name="username" autocomplete="username" required></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
      <button type="submit">Log in</button>
    </form>
  </body>
</html>`;
}

/**
 * The login page's headers: no other site may frame it (clickjacking: CSP `frame-ancestors` for
 * today's browsers, `X-Frame-Options` for older ones), and, having no script, style or image,
 * it loads nothing. HSTS stays with the TLS proxy; the lab itself speaks plain HTTP.
 */
const loginPageHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    formAction: ["'self'"],
    baseUri: ["'none'"],
    frameAncestors: ["'none'"],
  },
  xFrameOptions: 'DENY',
  referrerPolicy: 'same-origin',
  strictTransportSecurity: false,
});

/**
 * Human login and logout with Django's CSRF scheme (Origin/Referer check, then the token; a new
 * token on login), and `GET /me`.
 *
 * @example
 * app.route('/', webAuthRoutes(services));
 */
export function webAuthRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  // Another site may neither log a browser in (login CSRF) nor out, with or without a session.
  const sameOrigin = requireSameOrigin((c, message) => c.json({ detail: message }, 403));

  app.get('/login', loginPageHeaders, (c) => c.html(loginForm(ensureCsrfCookie(c))));

  app.post('/login', sameOrigin, async (c) => {
    const read = await readFields(c);
    if (!read.ok) return c.json({ detail: read.error }, 400);
    // Django's login view checks CSRF even for anonymous users (login CSRF).
    const csrf = csrfFailure(c, read.fields[CSRF_FIELD]);
    if (csrf) return c.json({ detail: csrf }, 403);
    const { username, password } = read.fields;
    if (!username || !password) {
      return c.json({ detail: 'Fields username and password are required' }, 400);
    }
    if (username.length > MAX_CREDENTIAL_LENGTH || password.length > MAX_CREDENTIAL_LENGTH) {
      return c.json({ detail: 'Invalid username or password.' }, 401);
    }
    const outcome = await services.login({
      username,
      password,
      path: 'web',
      requestPath: c.req.path,
      instanceId: clientInstance(c),
      replacing: c.get('auth')?.sessionId ?? null,
      address: clientAddress(c, services.trustProxy),
      userAgent: c.req.header('user-agent') ?? null,
    });
    if (!outcome.ok) {
      if (outcome.reason === 'denied') {
        return c.json({ detail: 'Session limit reached for this account.' }, 403);
      }
      if (outcome.reason === 'throttled') {
        c.header('Retry-After', String(outcome.retryAfterSeconds));
        return c.json({ detail: throttledMessage(outcome.retryAfterSeconds) }, 429);
      }
      return c.json({ detail: 'Invalid username or password.' }, 401);
    }
    setSessionCookie(c, outcome.token, services.sessionTtlSeconds);
    rotateCsrfCookie(c);
    return c.json({ detail: 'Logged in', username: outcome.user.username });
  });

  app.post('/logout', sameOrigin, async (c) => {
    const auth = c.get('auth');
    if (auth) {
      const csrf = csrfFailure(c);
      if (csrf) return c.json({ detail: csrf }, 403);
      await services.store.end(auth.sessionId, 'logged-out');
    }
    clearSessionCookie(c);
    return c.json({ detail: 'Logged out' });
  });

  app.get('/me', (c) => {
    const auth = c.get('auth');
    if (!auth) return notAuthenticated(c, 401);
    const { user } = auth;
    return c.json({ username: user.username, groups: user.groups, is_staff: user.isStaff });
  });

  return app;
}
