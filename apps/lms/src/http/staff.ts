import { createMiddleware } from 'hono/factory';
import type { LmsEnv } from './context.ts';
import { csrfFailure, isUnsafeMethod } from './csrf.ts';
import { notAuthenticated, PERMISSION_DENIED_DETAIL } from './session.ts';

/**
 * Staff only, for JSON APIs: 401 without a live session, 403 for a non-staff user, and on
 * unsafe methods the Django CSRF token (cookie + `X-CSRFToken`), checked before the permission
 * as Django REST framework does.
 *
 * @example
 * admin.use('*', requireStaff);
 */
export const requireStaff = createMiddleware<LmsEnv>(async (c, next) => {
  const auth = c.get('auth');
  if (!auth) return notAuthenticated(c, 401);
  if (isUnsafeMethod(c.req.method)) {
    const failure = csrfFailure(c);
    if (failure) return c.json({ detail: failure }, 403);
  }
  if (!auth.user.isStaff) return c.json({ detail: PERMISSION_DENIED_DETAIL }, 403);
  await next();
});
