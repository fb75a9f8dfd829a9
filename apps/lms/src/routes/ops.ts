import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { type Context, Hono } from 'hono';
import { safeEqual } from '../auth/tokens.ts';
import type { LmsEnv, Services } from '../http/context.ts';

/** Options of {@link opsRoutes}. */
export interface OpsOptions {
  /** When set (METRICS_TOKEN), `/metrics` requires `Authorization: Bearer <token>`; null: open. */
  metricsToken: string | null;
}

// `Bearer` is case-insensitive (RFC 7235); the token is RFC 6750's b64token.
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Whether the request carries `Authorization: Bearer <token>`. Digests are compared, so the
 * comparison takes the same time whatever the length or the content of the presented token.
 */
function bearerMatches(c: Context<LmsEnv>, token: string): boolean {
  const presented = BEARER.exec(c.req.header('authorization') ?? '')?.[1];
  return presented !== undefined && safeEqual(sha256(presented), sha256(token));
}

/**
 * `GET /metrics` (Prometheus text) and `GET /healthz` (the database answers). `/metrics` is open
 * unless `metricsToken` is set; `/healthz` is always open.
 *
 * @example
 * app.route('/', opsRoutes(services, { metricsToken: config.metricsToken ?? null }));
 */
export function opsRoutes(services: Services, options: OpsOptions = { metricsToken: null }) {
  const app = new Hono<LmsEnv>();
  const { metricsToken } = options;
  app.get('/metrics', async (c) => {
    if (metricsToken && !bearerMatches(c, metricsToken)) {
      c.header('WWW-Authenticate', 'Bearer realm="metrics"');
      return c.json({ detail: 'Metrics require Authorization: Bearer <METRICS_TOKEN>' }, 401);
    }
    const { registry } = services.metrics;
    const text = await (services.clusterMetrics ?? (() => registry.metrics()))();
    return c.body(text, 200, { 'Content-Type': registry.contentType });
  });
  app.get('/healthz', (c) => {
    services.db.get(sql`SELECT 1`);
    return c.json({ status: 'ok' });
  });
  return app;
}
