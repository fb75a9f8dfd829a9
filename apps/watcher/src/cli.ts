import { type ChildProcess, spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { EnvError, parseEnv, type WatcherEnv } from './env.ts';

const USAGE = `Usage: pnpm watcher start [--config-dir DIR] [--replicas N]
       pnpm watcher --help

Runs a fleet of xqueue-watcher replicas that all log in to the LMS as one shared account.
Grading work goes through BullMQ on Redis, so a replica that dies loses no submission.

Options:
  --config-dir DIR  xqueue-watcher config directory: DIR/conf.d/*.json, one
                    {"QUEUE": {"SERVER", "AUTH", "CONNECTIONS", "HANDLERS"}} per file,
                    and optional DIR/xqwatcher.json (POLL_INTERVAL, LOGIN_POLL_INTERVAL,
                    REQUESTS_TIMEOUT, in seconds). Relative to where you ran pnpm.
  --replicas N      replica processes to start (default 1), ids <WATCHER_REPLICA_ID>-1..N
  -h, --help        this text

Environment (overrides the config files):
  REDIS_URL                 redis://127.0.0.1:6379
  WATCHER_CONFIG_DIR        like --config-dir
  LMS_URL                   SERVER for every queue
  XQUEUE_USERNAME/PASSWORD  AUTH for every queue
  WATCHER_QUEUES            comma list of queues to watch (needs no conf.d with the three above)
  WATCHER_CONNECTIONS       CONNECTIONS for every queue
  WATCHER_RELOGIN           once-per-request (default) | unbounded
  WATCHER_SEND_INSTANCE_ID  false (default) | true: send X-Client-Instance on login
  WATCHER_CONCURRENCY       BullMQ worker concurrency per queue (4)
  WATCHER_METRICS_PORT      9100, replica i gets port+i-1; 0 = any free port
  WATCHER_METRICS_HOST      127.0.0.1
  WATCHER_QUEUE_PREFIX      BullMQ key prefix (storm)
  WATCHER_JOB_LOCK_MS       BullMQ lock and stalled-check interval (30000)
  WATCHER_POLL_INTERVAL, WATCHER_LOGIN_POLL_INTERVAL, WATCHER_REQUESTS_TIMEOUT  seconds
  WATCHER_REPLICA_ID        replica id base (host name)
  LOG_LEVEL                 info

Example:
  LMS_URL=http://127.0.0.1:8000 XQUEUE_USERNAME=xqueue_svc XQUEUE_PASSWORD=secret \\
  WATCHER_QUEUES=a,b WATCHER_CONNECTIONS=2 pnpm watcher start --replicas 3
`;

const MAIN = join(dirname(fileURLToPath(import.meta.url)), 'main.ts');

function fail(message: string, code = 2): never {
  process.stderr.write(`watcher: ${message}\n`);
  process.exit(code);
}

function parseCli(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'config-dir': { type: 'string' },
        replicas: { type: 'string', default: '1' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    return fail(`${(error as Error).message}\n\n${USAGE}`);
  }
}

function childEnv(env: WatcherEnv, configDir: string | undefined, index: number) {
  const base = env.WATCHER_REPLICA_ID ?? env.HOSTNAME ?? hostname();
  const port = env.WATCHER_METRICS_PORT === 0 ? 0 : env.WATCHER_METRICS_PORT + index;
  return {
    ...process.env,
    ...(configDir ? { WATCHER_CONFIG_DIR: configDir } : {}),
    WATCHER_REPLICA_ID: `${base}-${index + 1}`,
    WATCHER_METRICS_PORT: String(port),
  };
}

async function start(values: { 'config-dir'?: string; replicas?: string }): Promise<void> {
  const replicas = Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 64) {
    fail(`--replicas must be an integer from 1 to 64, got "${values.replicas}"`);
  }
  const env = parseEnv(process.env);
  const where = env.INIT_CWD ?? process.cwd();
  const configDir = values['config-dir'] ? resolve(where, values['config-dir']) : undefined;
  // Validate once here so a mistake is reported once, not by every replica.
  await loadConfig({ ...env, WATCHER_CONFIG_DIR: configDir ?? env.WATCHER_CONFIG_DIR });
  const children: ChildProcess[] = Array.from({ length: replicas }, (_, index) =>
    spawn(process.execPath, ['--import', 'tsx', MAIN], {
      cwd: dirname(MAIN),
      env: childEnv(env, configDir, index),
      stdio: 'inherit',
    }),
  );
  const exits = children.map(
    (child) => new Promise<number>((done) => child.once('exit', (code) => done(code ?? 1))),
  );
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      for (const child of children) if (child.exitCode === null) child.kill(signal);
    });
  }
  const codes = await Promise.all(exits);
  process.exit(Math.max(0, ...codes));
}

async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parseCli(argv);
  if (values.help || positionals[0] === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (positionals[0] !== 'start' || positionals.length > 1) {
    fail(`unknown command "${positionals.join(' ')}"; the command is "start"\n\n${USAGE}`);
  }
  await start(values);
}

run(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof EnvError || error instanceof ConfigError) fail(error.message);
  fail(error instanceof Error ? (error.stack ?? error.message) : String(error), 1);
});
