import { createStormDetector, type PolicySettings } from '@storm-lab/session-policy';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { createMiddleware } from 'hono/factory';
import { HTTPException } from 'hono/http-exception';
import { matchedRoutes } from 'hono/route';
import type { Logger } from 'pino';
import { createLoginService } from './auth/login.ts';
import { createSessionStore } from './auth/session-store.ts';
import type { Db } from './db/client.ts';
import type { LmsEnv, Services } from './http/context.ts';
import { sessionMiddleware } from './http/session.ts';
import { createMetrics } from './ops/metrics.ts';
import { queueLengths } from './queue/submissions.ts';
import { opsRoutes } from './routes/ops.ts';
import { submissionRoutes } from './routes/submissions.ts';
import { webAuthRoutes } from './routes/web-auth.ts';
import { xqueueRoutes } from './routes/xqueue.ts';

/** The settings createApp needs (main.ts builds them from the environment). */
export interface AppConfig {
  policy: PolicySettings;
  passwordHashIterations: number;
  xqueueLockSeconds: number;
  /** Expired locks after which a submission is marked failed; 0 = never. */
  xqueueMaxFailures: number;
  sessionTtlSeconds: number;
  stormAlertEvictionsPerMinute: number;
  maxBodyBytes: number;
}

export interface AppDeps {
  db: Db;
  config: AppConfig;
  logger: Logger;
  /** Milliseconds since the epoch; tests pass a controllable clock. */
  now?: () => number;
}

function routeOf(c: Parameters<Parameters<typeof createMiddleware>[0]>[0]): string {
  // The last matched route with a method is the handler; middleware is registered as ALL.
  const handler = matchedRoutes(c).findLast((route) => route.method !== 'ALL');
  return handler?.path ?? 'unmatched';
}

function buildServices(deps: AppDeps): Services {
  const now = deps.now ?? Date.now;
  const { config, db, logger } = deps;
  const queue = { lockMs: config.xqueueLockSeconds * 1000, maxFailures: config.xqueueMaxFailures };
  const store = createSessionStore({ db, ttlMs: config.sessionTtlSeconds * 1000, now });
  const metrics = createMetrics(() => queueLengths(db, queue.lockMs, now()));
  const detector = createStormDetector({
    evictionsPerMinuteThreshold: config.stormAlertEvictionsPerMinute,
  });
  const login = createLoginService({
    db,
    store,
    policy: config.policy,
    detector,
    metrics,
    logger,
    now,
    passwordHashIterations: config.passwordHashIterations,
  });
  return {
    db,
    store,
    login,
    metrics,
    detector,
    logger,
    policy: config.policy,
    queue,
    sessionTtlSeconds: config.sessionTtlSeconds,
    now,
  };
}

/**
 * Builds the LMS as a Hono app from its dependencies; no module-level state, so tests build as
 * many as they like.
 *
 * @example
 * const app = createApp({ db, config, logger: pino({ level: 'silent' }) });
 * const res = await app.request('/healthz');
 */
export function createApp(deps: AppDeps): Hono<LmsEnv> {
  const services = buildServices(deps);
  const app = new Hono<LmsEnv>();

  app.use(
    '*',
    createMiddleware(async (c, next) => {
      await next();
      services.metrics.httpResponses.inc({ route: routeOf(c), status: String(c.res.status) });
    }),
  );
  app.use(
    '*',
    bodyLimit({
      maxSize: deps.config.maxBodyBytes,
      onError: (c) =>
        c.json({ detail: `Request body larger than ${deps.config.maxBodyBytes} bytes` }, 413),
    }),
  );
  app.use('*', sessionMiddleware(services));

  app.route('/', opsRoutes(services));
  app.route('/', webAuthRoutes(services));
  app.route('/xqueue', xqueueRoutes(services));
  app.route('/api/submissions', submissionRoutes(services));

  app.notFound((c) => c.json({ detail: 'Not found' }, 404));
  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return c.json({ detail: error.message || 'Request failed' }, error.status);
    }
    deps.logger.error({ err: error, method: c.req.method, path: c.req.path }, 'request failed');
    return c.json({ detail: 'Internal server error' }, 500);
  });
  return app;
}
