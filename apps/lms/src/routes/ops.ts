import { sql } from 'drizzle-orm';
import { Hono } from 'hono';
import type { LmsEnv, Services } from '../http/context.ts';

/**
 * `GET /metrics` (Prometheus text) and `GET /healthz` (the database answers).
 *
 * @example
 * app.route('/', opsRoutes(services));
 */
export function opsRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  app.get('/metrics', async (c) => {
    const { registry } = services.metrics;
    return c.body(await registry.metrics(), 200, { 'Content-Type': registry.contentType });
  });
  app.get('/healthz', (c) => {
    services.db.get(sql`SELECT 1`);
    return c.json({ status: 'ok' });
  });
  return app;
}
