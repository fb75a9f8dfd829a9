import { createStormDetector, type PolicySettings } from '@storm-lab/session-policy';
import { failure } from '@storm-lab/xqueue-protocol';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { createMiddleware } from 'hono/factory';
import { HTTPException } from 'hono/http-exception';
import { matchedRoutes } from 'hono/route';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createLoginService, type PasswordChecker } from './auth/login.ts';
import {
  createLoginThrottle,
  DEFAULT_THROTTLE_FAILURES,
  DEFAULT_THROTTLE_WINDOW_SECONDS,
} from './auth/throttle.ts';
import { joinCluster } from './cluster/worker.ts';
import { DatabaseBusyError } from './db/busy-retry.ts';
import type { ClientDb } from './db/client.ts';
import { createTickBatcher } from './db/tick-batch.ts';
import { compileProxyTrust } from './http/client-address.ts';
import type { LmsEnv, Services } from './http/context.ts';
import { csrfSettings } from './http/csrf.ts';
import { sessionMiddleware } from './http/session.ts';
import { isBusy } from './ops/errors.ts';
import { createLiveStats } from './ops/live-stats.ts';
import { createMetrics } from './ops/metrics.ts';
import { localStormWatch } from './ops/storm-watch.ts';
import { createPolicyStore } from './policy/policy-store.ts';
import { createSubmissionQueue } from './queue/submission-queue.ts';
import { adminRoutes } from './routes/admin.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { opsRoutes } from './routes/ops.ts';
import { sessionRoutes } from './routes/sessions.ts';
import { submissionRoutes } from './routes/submissions.ts';
import { webAuthRoutes } from './routes/web-auth.ts';
import { xqueueRoutes } from './routes/xqueue.ts';
import { createSessionStore } from './sessions/factory.ts';
import type { SessionStore } from './sessions/store.ts';

/** The settings createApp needs (main.ts builds them from the environment). */
export interface AppConfig {
  /** The policy at start; staff overrides saved in the database apply on top. */
  policy: PolicySettings;
  passwordHashIterations: number;
  xqueueLockSeconds: number;
  /** Expired locks after which a submission is marked failed; 0 = never. */
  xqueueMaxFailures: number;
  sessionTtlSeconds: number;
  stormAlertEvictionsPerMinute: number;
  maxBodyBytes: number;
  /** Failed logins per account or address within the window before 429; 0 = off. Default 10. */
  loginThrottleFailures?: number;
  /** Default 300. */
  loginThrottleWindowSeconds?: number;
  /**
   * TRUST_PROXY: the reverse proxies' addresses or ranges (proxy-addr's notation: `127.0.0.1`,
   * `10.0.0.0/8`, `loopback`). Only a request from one of them has its X-Forwarded-For,
   * -Proto and -Host read. Default none.
   */
  trustProxy?: readonly string[];
  /** Other origins (`scheme://host[:port]`) allowed to post to the login and logout. Default none. */
  csrfTrustedOrigins?: readonly string[];
  /** When set, `GET /metrics` requires `Authorization: Bearer <token>`. Default: open. */
  metricsToken?: string | null;
  /** How long a request's batched queries wait for another process's lock before 503. Default 5000. */
  databaseBusyDeadlineMs?: number;
  /** SINGLE_LOGIN_ENFORCEMENT. Default `atomic`. */
  enforcement?: 'atomic' | 'upstream';
}

export interface AppDeps {
  db: ClientDb;
  config: AppConfig;
  logger: Logger;
  /** Milliseconds since the epoch; tests pass a controllable clock. */
  now?: () => number;
  /** The session store; default the SQLite store on `db`, or the Redis store given `redis`. */
  store?: SessionStore;
  /**
   * Keep sessions in this Redis under `prefix` (`SESSION_STORE=redis`), as Django's cache
   * session backend; the caller owns the connection.
   */
  sessionRedis?: { client: Redis; prefix: string };
  /** This process is one of LMS_WORKERS: `/metrics` answers for every worker (cluster/). */
  clusterWorker?: boolean;
  /** How passwords are checked; default Django's pbkdf2_sha256. */
  passwords?: PasswordChecker;
}

/** What a client is told to wait when another process holds the database lock. */
const BUSY_RETRY_AFTER_SECONDS = 1;

/**
 * The 503 for a request whose queries found the database locked by another process (past the
 * batcher's deadline, or at once outside the batcher): nothing was written, it can be repeated.
 */
function databaseBusy(c: Context, logger: Logger, error: unknown): Response {
  logger.warn({ err: error, method: c.req.method, path: c.req.path }, 'database busy');
  c.header('Retry-After', String(BUSY_RETRY_AFTER_SECONDS));
  const message = 'The database is busy (locked by another process); retry later';
  // xqueue clients read every answer as an envelope.
  if (c.req.path.startsWith('/xqueue/')) return c.json(failure(message), 503);
  return c.json({ detail: message }, 503);
}

function routeOf(c: Parameters<Parameters<typeof createMiddleware>[0]>[0]): string {
  // The last matched route with a method is the handler; middleware is registered as ALL.
  const handler = matchedRoutes(c).findLast((route) => route.method !== 'ALL');
  return handler?.path ?? 'unmatched';
}

function buildServices(deps: AppDeps): Services {
  const now = deps.now ?? Date.now;
  const { config, db, logger } = deps;
  const queue = createSubmissionQueue(db, {
    lockMs: config.xqueueLockSeconds * 1000,
    maxFailures: config.xqueueMaxFailures,
  });
  const batch = createTickBatcher(db.$client, { busyDeadlineMs: config.databaseBusyDeadlineMs });
  const store =
    deps.store ??
    createSessionStore(
      deps.sessionRedis ? { kind: 'redis', ...deps.sessionRedis } : { kind: 'sqlite' },
      {
        db,
        ttlMs: config.sessionTtlSeconds * 1000,
        now,
        enforcement: config.enforcement ?? 'atomic',
        read: (op) => batch.read(op),
        write: (op) => batch.write(op),
      },
    );
  const throttle = createLoginThrottle({
    client: db.$client,
    maxFailures: config.loginThrottleFailures ?? DEFAULT_THROTTLE_FAILURES,
    windowMs: (config.loginThrottleWindowSeconds ?? DEFAULT_THROTTLE_WINDOW_SECONDS) * 1000,
    now,
    write: (op) => batch.write(op),
  });
  const live = createLiveStats({ now });
  const policy = createPolicyStore({ db, defaults: config.policy, now });
  const metrics = createMetrics(() => queue.lengths(now()), live, policy.current);
  const worker = deps.clusterWorker ? joinCluster({ registry: metrics.registry, live }) : null;
  const detector =
    worker?.storms ??
    localStormWatch(
      createStormDetector({ evictionsPerMinuteThreshold: config.stormAlertEvictionsPerMinute }),
    );
  const login = createLoginService({
    db,
    store,
    policy: policy.current,
    detector,
    metrics,
    logger,
    now,
    passwordHashIterations: config.passwordHashIterations,
    throttle,
    passwords: deps.passwords,
  });
  return {
    db,
    store,
    batch,
    login,
    metrics,
    ...(worker && { clusterMetrics: worker.metrics }),
    liveSeries: worker?.liveSeries ?? (async (seconds, at) => live.series(seconds, at)),
    detector,
    logger,
    policy,
    stormAlertEvictionsPerMinute: config.stormAlertEvictionsPerMinute,
    queue,
    sessionTtlSeconds: config.sessionTtlSeconds,
    trustProxy: compileProxyTrust(config.trustProxy ?? []),
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
      const route = routeOf(c);
      services.metrics.httpResponses.inc({ route, status: String(c.res.status) });
      // What a storm costs the graders: each 403 is a request of an evicted worker.
      if (c.res.status === 403 && route.startsWith('/xqueue/')) {
        services.metrics.live.count('forbidden');
      }
    }),
  );
  const tooLarge = (c: Context) => {
    const message = `Request body larger than ${deps.config.maxBodyBytes} bytes`;
    // xqueue clients read every answer as an envelope.
    if (c.req.path.startsWith('/xqueue/')) return c.json(failure(message), 413);
    return c.json({ detail: message }, 413);
  };
  const limitBody = bodyLimit({ maxSize: deps.config.maxBodyBytes, onError: tooLarge });
  const checkBody = async (c: Context, next: () => Promise<void>) => {
    // A declared length is checked as bodyLimit checks it; only a body without one is counted
    // as it streams. Asking for the stream would make node-server build a full fetch Request.
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      if (Number.parseInt(length || '0', 10) > deps.config.maxBodyBytes) return tooLarge(c);
      return next();
    }
    return limitBody(c, next);
  };
  // GET and HEAD carry no body (neither fetch nor @hono/node-server passes one on).
  app.use('*', (c, next) =>
    c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : checkBody(c, next),
  );
  const trustedOrigins = deps.config.csrfTrustedOrigins ?? [];
  app.use('*', csrfSettings({ trustProxy: services.trustProxy, trustedOrigins }));
  app.use('*', sessionMiddleware(services));

  app.route('/', opsRoutes(services, { metricsToken: deps.config.metricsToken ?? null }));
  app.route('/', webAuthRoutes(services));
  app.route('/xqueue', xqueueRoutes(services));
  app.route('/api/submissions', submissionRoutes(services));
  app.route('/api/sessions', sessionRoutes(services));
  app.route('/api/admin', adminRoutes(services));
  app.route('/dashboard', dashboardRoutes());

  app.notFound((c) => c.json({ detail: 'Not found' }, 404));
  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return c.json({ detail: error.message || 'Request failed' }, error.status);
    }
    if (error instanceof DatabaseBusyError || isBusy(error)) {
      return databaseBusy(c, deps.logger, error);
    }
    deps.logger.error({ err: error, method: c.req.method, path: c.req.path }, 'request failed');
    return c.json({ detail: 'Internal server error' }, 500);
  });
  return app;
}
