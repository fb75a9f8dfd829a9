import { startLms, startWatchers, useRedis } from '@storm-lab/harness';
import { CleanupStack, exitOnSignal } from './cleanup.ts';
import { PRODUCTION } from './compression.ts';
import { readCounters } from './sampler.ts';
import { oneByOne } from './scenario/start-stack.ts';
import {
  lmsEnv,
  queueNames,
  type RunSettings,
  restartBackoff,
  seedArgs,
  watcherEnv,
} from './settings.ts';
import { studentLoad } from './student-load.ts';

/** DEV_GRADING_SECONDS: production seconds one grading takes (0 is instant). */
function gradingSeconds(raw: string | undefined): number {
  if (raw === undefined || raw === '') return PRODUCTION.gradingSeconds;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 600)
    throw new Error(`DEV_GRADING_SECONDS must be a number of seconds from 0 to 600 (got ${raw})`);
  return value;
}

/**
 * `pnpm dev`: the full stack for a person to watch, until Ctrl-C. Policy settings come from the
 * environment (PREVENT_CONCURRENT_LOGINS, SINGLE_LOGIN_*), so restarting with an exemption shows
 * the difference; fleet size from DEV_REPLICAS, DEV_QUEUES, DEV_CONNECTIONS; the client from
 * WATCHER_MODE (current, legacy or hardened; default current). Replicas that exit are restarted.
 */
async function main() {
  const env = process.env;
  const number = (name: string, fallback: number) => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isFinite(value) || value <= 0)
      throw new Error(`${name} must be a number > 0 (got ${env[name]})`);
    return value;
  };
  const settings: RunSettings = {
    replicas: number('DEV_REPLICAS', 2),
    queues: number('DEV_QUEUES', 1),
    connections: number('DEV_CONNECTIONS', 2),
    durationSeconds: 0,
    submissions: 0,
    students: 3,
    compression: number('DEV_COMPRESSION', 2),
    drainSeconds: 0,
    gradingSeconds: gradingSeconds(env.DEV_GRADING_SECONDS),
    redisUrl: env.REDIS_URL || undefined,
    sessionStore: env.SESSION_STORE === 'redis' ? 'redis' : 'sqlite',
    lmsWorkers: number('LMS_WORKERS', 1),
    serviceUsername: 'xqueue_svc',
    servicePassword: 'storm-lab-service',
    studentPassword: 'storm-lab-student',
  };
  const policy = Object.fromEntries(
    Object.entries(env).filter(
      (entry): entry is [string, string] =>
        (entry[0] === 'PREVENT_CONCURRENT_LOGINS' || entry[0].startsWith('SINGLE_LOGIN_')) &&
        entry[1] !== undefined,
    ),
  );
  const scenario = { name: 'dev', description: 'pnpm dev', lms: policy, watcher: {} };
  const cleanup = new CleanupStack();
  const stopping = exitOnSignal('stopping the stack...', () => cleanup.run(), 0);

  const redis = await useRedis(settings.redisUrl);
  cleanup.add(() => redis.stop());
  const redisUrl = redis.url;
  console.log(`redis      ${redisUrl}${redis.owned ? ' (private, started for you)' : ''}`);
  const queues = queueNames(settings.queues);
  const lms = await startLms({
    env: {
      ...lmsEnv(settings, scenario, { url: redisUrl, sessionPrefix: `dev-${process.pid}:lms:` }),
      LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
      PORT: env.PORT ?? '8000',
      HOST: env.HOST ?? '127.0.0.1',
    },
    seed: seedArgs(settings, queues),
  });
  cleanup.add(() => lms.stop());
  // Students first, then the replicas one by one: see startStack.
  const load = await studentLoad(lms.url, settings, queues);
  const fleet = await startWatchers({
    replicas: settings.replicas,
    env: {
      ...watcherEnv(settings, scenario, lms.url, redisUrl, `dev-${process.pid}`),
      ...(env.WATCHER_MODE ? { WATCHER_MODE: env.WATCHER_MODE } : {}),
    },
    // A replica that exits is restarted, as Kubernetes or compose `restart:` would.
    supervise: restartBackoff(settings),
    oneByOne: oneByOne(settings),
  });
  cleanup.add(() => fleet.stopAll());
  console.log(
    `lms        ${lms.url}  (dashboard ${lms.url}/dashboard as staff / staff-pass, metrics ${lms.url}/metrics)`,
  );
  fleet.metricsUrls.forEach((url, index) => {
    console.log(`watcher ${index + 1}  ${url || '(restarting)'}`);
  });
  console.log(
    `policy     ${
      Object.entries(policy)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || 'defaults (PREVENT_CONCURRENT_LOGINS=true, no exemption)'
    }`,
  );
  console.log(
    'Try again with SINGLE_LOGIN_EXEMPT_GROUPS=xqueue pnpm dev to see the cure. Ctrl-C stops.\n',
  );

  let index = 0;
  const trickle = setInterval(
    () => void load.submit(index++).catch((error: Error) => console.error(error.message)),
    1000,
  );
  const status = setInterval(async () => {
    try {
      const counters = await readCounters(lms.url, settings.serviceUsername);
      console.log(
        `logins ${counters.logins}  403s ${counters.forbidden}  evictions ${counters.evictions}  graded ${counters.graded}/${load.submitted.length}  storm alerts ${counters.stormAlerts}` +
          `  connection deaths ${fleet.events['connection-died'] ?? 0}  replica restarts ${fleet.restarts}`,
      );
    } catch (error) {
      if (!stopping()) console.error(`metrics: ${(error as Error).message}`);
    }
  }, 5000);
  cleanup.add(async () => {
    clearInterval(trickle);
    clearInterval(status);
  });
}

main().catch((error: unknown) => {
  console.error(`dev: ${(error as Error).message}`);
  process.exit(1);
});
