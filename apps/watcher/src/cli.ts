import { type ChildProcess, spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, describeConfig, loadConfig } from './config.ts';
import { EnvError, parseEnv, type WatcherEnv } from './env.ts';

const USAGE = `Usage: pnpm watcher start [--config-dir DIR] [--replicas N]
       pnpm watcher config [--config-dir DIR]
       pnpm watcher --help

Runs a fleet of xqueue-watcher replicas that all log in to the LMS as one shared account.
Grading work goes through BullMQ on Redis, so a replica that dies loses no submission.

Commands:
  start             start the replicas (validates the configuration once first)
  config            print the resolved configuration as JSON, passwords redacted, and exit:
                    0 when it is usable, 2 with the error otherwise

Options:
  --config-dir DIR  an xqueue-watcher config directory, unchanged: DIR/conf.d/*.json (sorted;
                    {"QUEUE": {"SERVER" | "SERVER_REF", "AUTH", "CONNECTIONS", "CLASS",
                    "NAME_OVERRIDE", "HANDLERS": [{"HANDLER", "KWARGS", "CODEJAIL"}]}}),
                    optional DIR/xqwatcher.json (HTTP_BASIC_AUTH, POLL_TIME, REQUESTS_TIMEOUT,
                    POLL_INTERVAL, LOGIN_POLL_INTERVAL in seconds, FOLLOW_CLIENT_REDIRECTS),
                    optional DIR/xqueue_servers.json ({"NAME": {"SERVER", "AUTH"}} for
                    SERVER_REF); DIR/logging.json is ignored. Relative to where you ran pnpm.
  --replicas N      replica processes to start (default 1), ids <WATCHER_REPLICA_ID>-1..N
  -h, --help        this text

Environment (overrides the config files):
  REDIS_URL                 redis://127.0.0.1:6379
  WATCHER_CONFIG_DIR        like --config-dir
  LMS_URL                   SERVER for every queue
  XQUEUE_USERNAME/PASSWORD  AUTH for every queue
  WATCHER_QUEUES            comma list of conf.d keys to watch (one not in conf.d is built
                            from the three above, with the default handler)
  WATCHER_CONNECTIONS       CONNECTIONS for every queue
  WATCHER_MODE              current (default) | legacy | hardened: which watcher to behave like
  WATCHER_PYTHON_HANDLER    mock grader standing in for a Python HANDLER path: exact-answer
                            (default) | slow-flaky | test-report
  WATCHER_DEFAULT_HANDLER   handler of a queue that names none, one HANDLERS entry as JSON:
                            {"HANDLER": "slow-flaky", "KWARGS": {"latency_ms": 500}}
                            (default {"HANDLER": "exact-answer"})
  WATCHER_SEND_INSTANCE_ID  false (default) | true: send X-Client-Instance on login
  WATCHER_CONCURRENCY       BullMQ worker concurrency per queue (4)
  WATCHER_METRICS_PORT      9100, replica i gets port+i-1; 0 = any free port
  WATCHER_METRICS_HOST      127.0.0.1
  WATCHER_QUEUE_PREFIX      BullMQ key prefix (storm)
  WATCHER_JOB_LOCK_MS       BullMQ lock and stalled-check interval (30000)
  WATCHER_REPLICA_ID        replica id base (host name)
  XQWATCHER_POLL_INTERVAL, XQWATCHER_LOGIN_POLL_INTERVAL, XQWATCHER_REQUESTS_TIMEOUT,
  XQWATCHER_POLL_TIME       seconds, fractions allowed (1, 5, 1, 10)
  XQWATCHER_HTTP_BASIC_AUTH user:pass for HTTP Basic Auth on every request
  XQWATCHER_FOLLOW_CLIENT_REDIRECTS  false (default) | true
  XQWATCHER_VERIFY_TLS      true (default) | false
  XQWATCHER_LOG_LEVEL       DEBUG | INFO | WARNING | ERROR | CRITICAL, when LOG_LEVEL is unset
  LOG_LEVEL                 info
  Booleans take true/false, 1/0 or yes/no.

Examples:
  pnpm watcher config --config-dir /etc/xqueue-watcher
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
        replicas: { type: 'string' },
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

interface CliValues {
  'config-dir'?: string;
  replicas?: string;
}

/** The environment, with --config-dir resolved where the user ran pnpm. */
function cliEnv(values: CliValues): { env: WatcherEnv; configDir: string | undefined } {
  const env = parseEnv(process.env);
  const where = env.INIT_CWD ?? process.cwd();
  const configDir = values['config-dir'] ? resolve(where, values['config-dir']) : undefined;
  return { env: { ...env, WATCHER_CONFIG_DIR: configDir ?? env.WATCHER_CONFIG_DIR }, configDir };
}

async function start(values: CliValues): Promise<void> {
  const replicas = Number(values.replicas ?? '1');
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 64) {
    fail(`--replicas must be an integer from 1 to 64, got "${values.replicas}"`);
  }
  const { env, configDir } = cliEnv(values);
  // Validate once here so a mistake is reported once, not by every replica.
  await loadConfig(env);
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

async function printConfig(values: CliValues): Promise<void> {
  if (values.replicas !== undefined) fail('--replicas applies to "start" only');
  const config = await loadConfig(cliEnv(values).env);
  process.stdout.write(`${JSON.stringify(describeConfig(config), null, 2)}\n`);
}

async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parseCli(argv);
  if (values.help || positionals[0] === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const [command] = positionals;
  if ((command !== 'start' && command !== 'config') || positionals.length > 1) {
    fail(
      `unknown command "${positionals.join(' ')}"; the commands are "start" and "config"\n\n${USAGE}`,
    );
  }
  await (command === 'start' ? start(values) : printConfig(values));
}

run(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof EnvError || error instanceof ConfigError) fail(error.message);
  fail(error instanceof Error ? (error.stack ?? error.message) : String(error), 1);
});
