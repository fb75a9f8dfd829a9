import { type ChildProcess, spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CliIo,
  dispatch,
  numberFlag,
  parseFlags,
  processIo,
  runAsProgram,
  runCli,
  type Subcommand,
  UsageError,
} from '@storm-lab/cli-kit';
import { ConfigError, describeConfig, loadConfig } from './config.ts';
import { EnvError, parseEnv, type WatcherEnv } from './env.ts';

const SYNOPSIS = `Usage: pnpm watcher start [--config-dir DIR] [--replicas N]
       pnpm watcher config [--config-dir DIR]
       pnpm watcher --help`;

const CONFIG_DIR_HELP = `  --config-dir DIR  an xqueue-watcher config directory, unchanged: DIR/conf.d/*.json (sorted;
                    {"QUEUE": {"SERVER" | "SERVER_REF", "AUTH", "CONNECTIONS", "CLASS",
                    "NAME_OVERRIDE", "HANDLERS": [{"HANDLER", "KWARGS", "CODEJAIL"}]}}),
                    optional DIR/xqwatcher.json (HTTP_BASIC_AUTH, POLL_TIME, REQUESTS_TIMEOUT,
                    POLL_INTERVAL, LOGIN_POLL_INTERVAL in seconds, FOLLOW_CLIENT_REDIRECTS),
                    optional DIR/xqueue_servers.json ({"NAME": {"SERVER", "AUTH"}} for
                    SERVER_REF); DIR/logging.json is ignored. Relative to where you ran pnpm.`;
const REPLICAS_HELP = `  --replicas N      replica processes to start (default 1), ids <WATCHER_REPLICA_ID>-1..N`;

const ENV_HELP = `Environment (overrides the config files):
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
  Each variable, its default and what it means: docs/configuration.md.`;

const USAGE = `${SYNOPSIS}

Runs a fleet of xqueue-watcher replicas that all log in to the LMS as one shared account.
Grading work goes through BullMQ on Redis, so a replica that dies loses no submission.

Commands:
  start             start the replicas (validates the configuration once first)
  config            print the resolved configuration as JSON, passwords redacted, and exit:
                    0 when it is usable, 2 with the error otherwise

Options:
${CONFIG_DIR_HELP}
${REPLICAS_HELP}
  -h, --help        this text; "pnpm watcher COMMAND --help" for one command's

${ENV_HELP}

Examples:
  pnpm watcher config --config-dir /etc/xqueue-watcher
  LMS_URL=http://127.0.0.1:8000 XQUEUE_USERNAME=xqueue_svc XQUEUE_PASSWORD=secret \\
  WATCHER_QUEUES=a,b WATCHER_CONNECTIONS=2 pnpm watcher start --replicas 3`;

const START_HELP = `Usage: pnpm watcher start [--config-dir DIR] [--replicas N]

Starts the replicas, each a process that logs in to the LMS as the shared account, once the
configuration has been checked (a mistake is reported once, not by every replica). SIGINT and
SIGTERM stop them all; the exit status is the highest of theirs.
To check a configuration without starting anything: pnpm watcher config [--config-dir DIR]

Options:
${CONFIG_DIR_HELP}
${REPLICAS_HELP}
  -h, --help        this text

${ENV_HELP}`;

const CONFIG_HELP = `Usage: pnpm watcher config [--config-dir DIR]

Prints the resolved configuration as JSON, passwords redacted, and exits: 0 when it is usable,
2 with the error otherwise.

Options:
${CONFIG_DIR_HELP}
  -h, --help        this text

${ENV_HELP}`;

const MAIN = join(dirname(fileURLToPath(import.meta.url)), 'main.ts');

/** Where the watcher CLI writes, and the environment it reads and hands to the replicas. */
export interface WatcherCliIo extends CliIo {
  env: Record<string, string | undefined>;
}

const HELP_FLAG = { help: { type: 'boolean', short: 'h' } } as const;
/** Both commands take the same flags (`config` refuses --replicas with a word of why). */
const FLAGS = {
  'config-dir': { type: 'string' },
  replicas: { type: 'string' },
  ...HELP_FLAG,
} as const;

function childEnv(io: WatcherCliIo, env: WatcherEnv, configDir: string | undefined, index: number) {
  const base = env.WATCHER_REPLICA_ID ?? env.HOSTNAME ?? hostname();
  const port = env.WATCHER_METRICS_PORT === 0 ? 0 : env.WATCHER_METRICS_PORT + index;
  return {
    ...io.env,
    ...(configDir ? { WATCHER_CONFIG_DIR: configDir } : {}),
    WATCHER_REPLICA_ID: `${base}-${index + 1}`,
    WATCHER_METRICS_PORT: String(port),
  };
}

/** The environment, with --config-dir resolved where the user ran pnpm. */
function cliEnv(
  io: WatcherCliIo,
  configDirFlag: string | undefined,
): { env: WatcherEnv; configDir: string | undefined } {
  const env = parseEnv(io.env);
  const where = env.INIT_CWD ?? process.cwd();
  const configDir = configDirFlag ? resolve(where, configDirFlag) : undefined;
  return { env: { ...env, WATCHER_CONFIG_DIR: configDir ?? env.WATCHER_CONFIG_DIR }, configDir };
}

/** Prints `text` on stdout; a command's status 0. */
function say(io: CliIo, text: string): number {
  io.out.write(`${text}\n`);
  return 0;
}

async function start(io: WatcherCliIo, argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, FLAGS);
  if (values.help) return say(io, START_HELP);
  const replicas = numberFlag('replicas', values.replicas, 1, { min: 1, max: 64, integer: true });
  const { env, configDir } = cliEnv(io, values['config-dir']);
  // Validate once here so a mistake is reported once, not by every replica.
  await loadConfig(env);
  const children: ChildProcess[] = Array.from({ length: replicas }, (_, index) =>
    spawn(process.execPath, ['--import', 'tsx', MAIN], {
      cwd: dirname(MAIN),
      env: childEnv(io, env, configDir, index),
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
  return Math.max(0, ...codes);
}

async function printConfig(io: WatcherCliIo, argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, FLAGS);
  if (values.help) return say(io, CONFIG_HELP);
  if (values.replicas !== undefined) throw new UsageError('--replicas applies to "start" only');
  const config = await loadConfig(cliEnv(io, values['config-dir']).env);
  return say(io, JSON.stringify(describeConfig(config), null, 2));
}

function commands(io: WatcherCliIo): Record<string, Subcommand> {
  return {
    start: { summary: 'start the replicas', run: (argv) => start(io, argv) },
    config: { summary: 'print the resolved configuration', run: (argv) => printConfig(io, argv) },
    help: {
      summary: 'this text',
      run(argv) {
        parseFlags(argv, HELP_FLAG);
        return say(io, USAGE);
      },
    },
  };
}

/**
 * Runs `pnpm watcher ARGS` and returns its exit status: a mistake in the command line, the
 * environment or the configuration is printed and returns 2; `start` returns the highest exit
 * status of its replicas. Never exits the process.
 *
 * @example
 * const status = await main(['config', '--config-dir', dir], { ...processIo, env });
 */
export async function main(
  argv: string[],
  io: WatcherCliIo = { ...processIo, env: process.env },
): Promise<number> {
  const all = commands(io);
  const [first] = argv;
  const named = first !== undefined && first !== 'help' && Object.hasOwn(all, first);
  try {
    const status = await runCli(
      () => {
        if (argv.length === 0) throw new UsageError('name a command: start or config');
        return dispatch(argv, all, 'help', io);
      },
      { help: named ? `pnpm watcher ${first} --help` : 'pnpm watcher --help', io },
    );
    // A command line that names no known command: what the commands are.
    if (status === 2 && !named) io.err.write(`\n${SYNOPSIS}\n`);
    return status;
  } catch (error) {
    if (!(error instanceof EnvError || error instanceof ConfigError)) throw error;
    io.err.write(`watcher: ${error.message}\n`);
    return 2;
  }
}

await runAsProgram(import.meta.url, (argv) => main(argv), { name: 'watcher', forceExit: true });
