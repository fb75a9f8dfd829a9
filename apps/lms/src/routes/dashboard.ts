import { type Context, Hono } from 'hono';
import { createAssetReader } from '../dashboard/assets.ts';
import { DASHBOARD_CSP, dashboardPage, loginPage } from '../dashboard/page.ts';
import type { LmsEnv } from '../http/context.ts';
import { ensureCsrfCookie } from '../http/csrf.ts';

function pageHeaders(c: Context) {
  c.header('Content-Security-Policy', DASHBOARD_CSP);
  // The CSP's frame-ancestors 'none', for browsers that know only the older header.
  c.header('X-Frame-Options', 'DENY');
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'same-origin');
  // The page names the signed-in user; a shared proxy or the back button must not replay it.
  c.header('Cache-Control', 'no-store');
}

/**
 * The live storm dashboard: `GET /dashboard` (staff; anyone else is sent to the login page or
 * told it is staff only), `GET /dashboard/login`, and the page's own scripts and styles under
 * `/dashboard/assets/` (uPlot from its npm package, no CDN). The data comes from `/api/admin`.
 *
 * @example
 * app.route('/dashboard', dashboardRoutes());
 */
export function dashboardRoutes() {
  const app = new Hono<LmsEnv>();
  const assets = createAssetReader();

  app.get('/', (c) => {
    const auth = c.get('auth');
    if (!auth) return c.redirect('/dashboard/login', 302);
    pageHeaders(c);
    if (!auth.user.isStaff) {
      return c.html(loginPage(ensureCsrfCookie(c), auth.user.username), 403);
    }
    // The page's script sends the cookie's token back in X-CSRFToken.
    ensureCsrfCookie(c);
    return c.html(dashboardPage(auth.user.username));
  });

  app.get('/login', (c) => {
    pageHeaders(c);
    const user = c.get('auth')?.user;
    const nonStaff = user && !user.isStaff ? user.username : null;
    return c.html(loginPage(ensureCsrfCookie(c), nonStaff));
  });

  app.get('/assets/:name', (c) => {
    const asset = assets(c.req.param('name'));
    if (!asset) return c.json({ detail: 'Not found' }, 404);
    return c.body(asset.body, 200, {
      'Content-Type': asset.contentType,
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-cache',
    });
  });

  return app;
}
