import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CliIo,
  numberFlag,
  parseFlags,
  processIo,
  runAsProgram,
  runCli,
  type Subcommand,
  UsageError,
} from '@storm-lab/cli-kit';
import { freePort } from '@storm-lab/harness';
import { CleanupStack, exitOnSignal } from './cleanup.ts';
import { sessionsOf } from './cli/run-flags.ts';
import { ensureBaseImages } from './compose/base-images.ts';
import { installed, run } from './compose/command.ts';
import { CheckError, engineRunning, ensureTools, useEngine } from './compose/engine.ts';
import { checkHardening } from './compose/hardening.ts';
import { ComposeStack, type WindowFigures } from './compose/stack.ts';
import { VERDICT_RULE } from './figures.ts';

export const COMPOSE_CHECK_HELP = `pnpm compose:check: build the compose stack, show the storm, scale up, show the cure

Usage:
  pnpm compose:check [options]        (also: pnpm storm compose-check [options])

Builds the images of docker-compose.yml, starts Redis, the session Redis, the LMS and
--replicas watchers with the defaults (PREVENT_CONCURRENT_LOGINS on, nothing exempt) and waits
until every container is healthy. Checks the hardened defaults: the LMS published on 127.0.0.1
only, /metrics refused without METRICS_TOKEN (the check sets one), the session Redis refusing a
client without its password and out of a watcher's reach, and no secret in the logs or on a
process command line. Then measures --window seconds: the storm. Then sets
SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc, scales the watchers to --scale-to (docker-compose
recreates the LMS and adds replicas) and measures again: the cure. Prints both verdicts and
exits 0 when every check holds, the first verdict is STORM and the second HEALTHY, 1
otherwise, 2 when it could not run.

Whatever happens (also Ctrl-C), it removes what it started: the project's containers,
network, volumes and images, stand-in base images it built, and a container engine it
started (then also the bridge, firewall tables and ip_forward setting the engine changed).

Options:
  --replicas N          watcher replicas for the storm                (default 3)
  --scale-to N          watcher replicas for the cure, more than --replicas (default 5)
  --window S            seconds each verdict is measured over          (default 30)
  --session-store S     SESSION_STORE of the LMS: sqlite, or redis (sessions in its own
                        Redis, as Django's cache backend)             (default sqlite)
  --lms-workers N       LMS_WORKERS: LMS processes behind its port, as gunicorn's
                        workers (more than 1 needs --session-store redis) (default 1)
  --install             install Debian's docker.io and docker-compose (and debootstrap,
                        nftables) when missing, saying so; needs root
  --local-base-images   when node:20-bookworm-slim or redis:7-bookworm cannot be pulled
                        (no image registry), build stand-ins from Debian's packages and
                        this host's Node.js
  --keep-images         keep the built images and stand-ins (a later run skips building)
  -h, --help            this help

The LMS is published on 127.0.0.1 only, on a free port; each replica's metrics are read over
the compose network. From nothing it takes minutes (the LMS's image compiles better-sqlite3;
recorded runs in docs/runs-log.md); after a run with --keep-images, the next reuses the
stand-ins and the build cache.`;

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SERVICE_USERNAME = 'xqueue_svc';

function count(name: string, raw: string | undefined, fallback: number, max: number): number {
  return numberFlag(name, raw, fallback, { min: 1, max, integer: true });
}

const FLAGS = {
  replicas: { type: 'string' },
  'scale-to': { type: 'string' },
  window: { type: 'string' },
  'session-store': { type: 'string' },
  'lms-workers': { type: 'string' },
  install: { type: 'boolean', default: false },
  'local-base-images': { type: 'boolean', default: false },
  'keep-images': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

type CheckOptions = ReturnType<typeof parse>;

function parse(argv: readonly string[]) {
  const { values } = parseFlags(argv, FLAGS);
  const replicas = count('replicas', values.replicas, 3, 50);
  const scaleTo = count('scale-to', values['scale-to'], replicas + 2, 50);
  if (scaleTo <= replicas)
    throw new UsageError(`--scale-to (${scaleTo}) must be more than --replicas (${replicas})`);
  return {
    ...sessionsOf(values),
    help: values.help,
    replicas,
    scaleTo,
    window: count('window', values.window, 30, 3600),
    install: values.install,
    localBaseImages: values['local-base-images'],
    keepImages: values['keep-images'],
  };
}

function verdictLine(figures: WindowFigures, settings: string): string {
  const { counters, before } = figures;
  return (
    `${figures.label.padEnd(5)} ${figures.verdict.padEnd(7)} ${figures.replicas} watcher replicas ` +
    `(${figures.connections} connections), ${figures.seconds} s, ${settings}: ` +
    `${counters.logins} logins, ${counters.forbidden} 403s, ${counters.evictions} evictions, ` +
    `${figures.alive}/${figures.connections} connections alive, ${figures.restarts} replica restarts ` +
    `(before the window, since the LMS started: ${before.logins} logins, ${before.evictions} evictions)`
  );
}

/**
 * `pnpm compose:check` (and `pnpm storm compose-check`): exit 0 when every check holds, the
 * storm is STORM and the cure HEALTHY; 1 otherwise; 2 when it could not run. After Ctrl-C the
 * clean-up the signal began exits the process, so this never settles.
 */
export const composeCheck: Subcommand = {
  summary: 'build the compose stack, show the storm, scale up, show the cure (docker)',
  run: async (argv, io) => {
    const options = parse(argv);
    if (options.help) {
      io.out.write(`${COMPOSE_CHECK_HELP}\n`);
      return 0;
    }
    let interrupted = () => false;
    try {
      const code = await check(options, io, (began) => {
        interrupted = began;
      });
      return interrupted() ? new Promise<number>(() => undefined) : code;
    } catch (error) {
      // A command that Ctrl-C interrupted fails; the clean-up that the signal began exits.
      if (interrupted()) return new Promise<number>(() => undefined);
      io.err.write(`compose:check: ${(error as Error).message}\n`);
      if (!(error instanceof CheckError) && error instanceof Error && error.stack)
        io.err.write(`${error.stack}\n`);
      return 2;
    }
  },
};

async function check(
  options: CheckOptions,
  io: CliIo,
  onSignal: (interrupted: () => boolean) => void,
): Promise<number> {
  const say = (line: string) => io.out.write(`${line}\n`);
  const started = Date.now();
  const seconds = () => Math.round((Date.now() - started) / 1000);
  const step = (line: string) => say(`${line} (at ${seconds()} s)`);
  const cleanup = new CleanupStack();
  const interrupted = exitOnSignal(
    'removing what the compose check started...',
    () => cleanup.run(),
    130,
  );
  onSignal(interrupted);
  const work = await mkdtemp(join(tmpdir(), 'storm-compose-check-'));
  const log = join(work, 'compose-check.log');
  let failed = true;
  cleanup.add(async () => {
    const logs = (await readdir(work)).length > 0;
    if (failed && logs) say(`Logs kept in ${work}`);
    else await rm(work, { recursive: true, force: true });
  });
  try {
    // Before anything is installed: what the host had, so the clean-up removes only what this
    // run added.
    const hadEngine = (await installed('docker')) && (await engineRunning());
    const hadDockerData = existsSync('/var/lib/docker');
    step('[1/5] Container engine');
    await ensureTools({ install: options.install, localBaseImages: options.localBaseImages, say });
    const engine = await useEngine(work, hadEngine, say);
    if (engine.owned && !hadDockerData && !options.keepImages)
      cleanup.add(async () => {
        await rm('/var/lib/docker', { recursive: true, force: true });
        say('Removed /var/lib/docker (the engine had no data before this run).');
      });
    cleanup.add(() => engine.stop());
    if (interrupted()) return 130;

    step('[2/5] Base images');
    const created: string[] = [];
    cleanup.add(async () => {
      if (options.keepImages || created.length === 0) return;
      // The project's images are gone by now (down --rmi local), so nothing uses these.
      await run('docker', ['rmi', '--force', ...created]);
      say(`Removed the stand-in base images: ${created.join(', ')}.`);
    });
    await ensureBaseImages({ localBaseImages: options.localBaseImages, work, log, say, created });

    const project = `stormcheck${randomBytes(3).toString('hex')}`;
    const lmsPort = await freePort();
    const metricsToken = randomBytes(24).toString('base64url');
    // The storm's settings are set here, not taken from the shell: an exemption left in the
    // environment would hide the storm. LMS_BIND is empty so that the file's default applies.
    const env = {
      LMS_BIND: '',
      LMS_PORT: String(lmsPort),
      METRICS_TOKEN: metricsToken,
      PREVENT_CONCURRENT_LOGINS: 'true',
      SINGLE_LOGIN_EXEMPT_USERNAMES: '',
      SINGLE_LOGIN_EXEMPT_GROUPS: '',
      SESSION_STORE: options.sessionStore,
      LMS_WORKERS: String(options.lmsWorkers),
    };
    const stack = new ComposeStack({
      file: join(REPO, 'docker-compose.yml'),
      project,
      lmsPort,
      serviceUsername: SERVICE_USERNAME,
      metricsToken,
      env,
      log,
      say,
      tty: Boolean((io.out as { isTTY?: boolean }).isTTY),
    });
    cleanup.add(async () => {
      await stack.down(!options.keepImages);
      say(
        `Removed compose project ${project} (containers, network, volumes${options.keepImages ? '' : ', images'}).`,
      );
    });

    step(`[3/5] Building the images (project ${project}; log ${log})`);
    await stack.build();
    if (interrupted()) return 130;

    const queues = (process.env.LMS_QUEUES ?? 'python,java').split(',').filter(Boolean).length;
    const perReplica = queues * Number(process.env.WATCHER_CONNECTIONS ?? 2);
    const topology = `LMS_WORKERS=${options.lmsWorkers} SESSION_STORE=${options.sessionStore}`;
    step(`[4/5] Storm: ${options.replicas} replicas, defaults (nothing exempt), ${topology}`);
    await stack.up(options.replicas, {});
    const hardening = await checkHardening(stack, { lmsPort, metricsToken });
    for (const check of hardening)
      say(`  ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`);
    const hardened = hardening.every((check) => check.ok);
    if (interrupted()) return 130;
    const storm = await stack.measure(
      'storm',
      options.replicas,
      options.replicas * perReplica,
      options.window,
    );
    say(verdictLine(storm, 'nothing exempt'));
    if (interrupted()) return 130;

    const exempt = `SINGLE_LOGIN_EXEMPT_USERNAMES=${SERVICE_USERNAME}`;
    step(`[5/5] Cure: ${exempt}, scaling the watchers ${options.replicas} -> ${options.scaleTo}`);
    await stack.up(options.scaleTo, { SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE_USERNAME });
    const cure = await stack.measure(
      'cure',
      options.scaleTo,
      options.scaleTo * perReplica,
      options.window,
    );
    say(verdictLine(cure, exempt));

    const ok = hardened && storm.verdict === 'STORM' && cure.verdict === 'HEALTHY';
    const failedChecks = hardening.filter((check) => !check.ok).length;
    const checks = hardened
      ? 'hardened defaults hold'
      : `${failedChecks} hardening check(s) failed`;
    say(
      `\n${ok ? 'PASS' : 'FAIL'}: storm ${storm.verdict}, cure ${cure.verdict} with ${options.scaleTo} watcher replicas, ${checks} (${seconds()} s so far).`,
    );
    say(`Verdict rule: ${VERDICT_RULE}`);
    failed = !ok;
    return ok ? 0 : 1;
  } finally {
    if (!interrupted()) {
      step('Cleaning up');
      await cleanup.run();
      say(`Done in ${seconds()} s.`);
    }
  }
}

await runAsProgram(
  import.meta.url,
  (argv) =>
    runCli((io) => composeCheck.run(argv, io), {
      help: '"pnpm compose:check --help"',
      io: processIo,
    }),
  { name: 'compose:check', forceExit: true },
);
