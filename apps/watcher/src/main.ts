import { hostname } from 'node:os';
import { fetch } from 'undici';
import { ConfigError, loadConfig } from './config.ts';
import { EnvError, parseEnv } from './env.ts';
import { logEvent, logReplicaCounters } from './events.ts';
import { createLogger } from './logger.ts';
import { createMetrics, serveMetrics } from './metrics.ts';
import { startReplica } from './replica.ts';

/** One replica process. The only place (with cli.ts) that reads process.env and listens. */
async function main(): Promise<void> {
  // The handler is there before the `metrics listening` line, so a signal just after it (a
  // replica descheduled there on a busy machine) stops the replica instead of killing it; one
  // that comes while it starts still ends the process at once, as with no handler.
  let shutdown: ((signal: NodeJS.Signals) => Promise<void>) | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (shutdown) void shutdown(signal);
    else process.kill(process.pid, signal); // `once`: the handler is gone, so the default acts
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const env = parseEnv(process.env);
  const replicaId = env.WATCHER_REPLICA_ID ?? env.HOSTNAME ?? hostname();
  const logger = createLogger({ replicaId, level: env.LOG_LEVEL });
  const config = await loadConfig(env);
  const metrics = createMetrics(replicaId);
  const server = await serveMetrics(metrics.registry, {
    host: env.WATCHER_METRICS_HOST,
    port: env.WATCHER_METRICS_PORT,
  });
  // undici compiles its HTTP parser (WebAssembly, synchronously) on its first connection: done
  // here, against our own metrics endpoint, it cannot stall the first logins past REQUESTS_TIMEOUT.
  await (await fetch(server.url)).arrayBuffer();
  const replica = await startReplica({
    config,
    replicaId,
    redisUrl: env.REDIS_URL,
    queuePrefix: env.WATCHER_QUEUE_PREFIX,
    concurrency: env.WATCHER_CONCURRENCY,
    jobLockMs: env.WATCHER_JOB_LOCK_MS,
    mode: env.WATCHER_MODE,
    sendInstanceId: env.WATCHER_SEND_INSTANCE_ID,
    gradeEveryJobTwice: env.WATCHER_TEST_GRADE_EVERY_JOB_TWICE,
    metrics,
    logger,
  });
  shutdown = async (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'stopping: no new pulls, finishing in-flight jobs');
    await replica.stop();
    await server.close();
    await logReplicaCounters(logger, metrics);
    logger.info('stopped');
    process.exit(0);
  };
  // Printed whatever LOG_LEVEL says: the harness and operators find the replica by this line.
  logger.child({}, { level: 'info' }).info({ url: server.url }, 'metrics listening');
  logger.info(
    {
      queues: config.queues.map(({ name, connections, serverUrl }) => ({
        name,
        connections,
        serverUrl,
      })),
      mode: env.WATCHER_MODE,
      manager: { ...config.manager, httpBasicAuth: config.manager.httpBasicAuth ? 'set' : null },
    },
    'watcher started',
  );
  for (const warning of config.warnings) logger.warn(warning);
  // As upstream's Manager.wait: a dead connection stops every connection and ends the process,
  // so the supervisor (compose `restart:`, Kubernetes) starts the replica again. Upstream's
  // `sys.exit()` exits 0; we exit 1 so an on-failure restart policy restarts it too.
  void replica.died.then(async (reason) => {
    logger.error({ reason }, 'a connection died: stopping every connection');
    await replica.stop();
    await server.close();
    await logReplicaCounters(logger, metrics);
    logEvent(logger, 'error', 'replica-exit', { code: 1 }, 'replica exits');
    process.exit(1);
  });
}

main().catch((error: unknown) => {
  if (error instanceof EnvError || error instanceof ConfigError) {
    process.stderr.write(`watcher: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(
    `watcher: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
