import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { runChaos } from './chaos.ts';
import { CleanupStack, exitOnSignal } from './cleanup.ts';
import { compressionNote, PRODUCTION } from './compression.ts';
import { type ScenarioFigures, VERDICT_RULE } from './figures.ts';
import { ProgressDisplay } from './progress.ts';
import { type RaceFigures, renderRace, runRace } from './race.ts';
import { buildReport, renderTable } from './report.ts';
import { runScenario } from './run-scenario.ts';
import { DEFAULT_COMPARISON, listScenarios, loadScenario, ScenarioError } from './scenarios.ts';
import { hashShare, type RunSettings } from './settings.ts';
import { writeReport } from './write-report.ts';

const HELP = `pnpm storm: reproduce the single-login storm and its cure side by side

Usage:
  pnpm storm                          compare ${DEFAULT_COMPARISON.join(', ')}
  pnpm storm --scenario NAME          run one scenario (a built-in name or a path to a .json file)
  pnpm storm --compare A,B,...        compare the named scenarios
  pnpm storm --list                   list the built-in scenarios (and chaos)
  pnpm storm --scenario chaos         faults while the account is exempt: replicas killed
                                      (SIGKILL) and restarted, Redis and the LMS restarted;
                                      counts lost, double-graded and wrong submissions
  pnpm storm --race                   one single-session account logged in --logins times at
                                      once, --rounds times, under SINGLE_LOGIN_ENFORCEMENT
                                      atomic and upstream (edx-platform's unlocked steps):
                                      live sessions per round, side by side; with
                                      --lms-workers N --session-store redis the logins
                                      spread over N LMS processes sharing Redis sessions
  pnpm storm --preset production      uncompressed: production values throughout (1,000,000
                                      PBKDF2 iterations, 1 s polls, 1 s request timeout,
                                      10 s POLL_TIME, 300 s lock, restarts 10 s..5 min);
                                      defaults --duration 120 --submissions 96 --drain 15

Options:
  --replicas N        watcher replica processes            (default 2)
  --queues N          queues, each with its own pullers     (default 2)
  --connections N     xqueue connections per queue/replica (default 2)
  --duration S        seconds of student load per scenario  (default 6)
  --submissions N     submissions per scenario              (default 24)
  --students N        students submitting                   (default 4)
  --compression X     production seconds per run second     (default 2)
  --preset production compression 1 and longer defaults (see above)
  --drain S           longest wait for grading after load  (default 3)
  --grading-seconds S production seconds one grading takes (default 1, a jailed
                      grader's run; chaos 0: instant), compressed like the rest
  --parallel N        scenarios run at the same time        (default 1; more is faster
                      but a storm's hashing then slows its neighbour's logins)
  --session-store S   where the LMS keeps sessions: sqlite (its database file) or
                      redis (the run's Redis, shared as Django's cache backend)
                                                            (default sqlite)
  --lms-workers N     LMS processes behind its port, as gunicorn workers (default 1;
                      more needs --session-store redis)
  --seed N            chaos: seed of the fault schedule       (default: from the clock)
  --logins K          race: logins sent at the same moment    (default 8)
  --rounds N          race: rounds                            (default 20)
  --out DIR           report folder                         (default ./storm-report)
  --json              print report.json to stdout instead of the table
  --open              at the end, open the report page (index.html) in the desktop's
                      browser, or print its file:// address where there is no desktop
  -h, --help          this help

Time compression X divides every production time and cost by X, so each keeps its ratio to
the others: PBKDF2 iterations (1,000,000/X), POLL_INTERVAL (1 s/X), LOGIN_POLL_INTERVAL (5 s/X),
REQUESTS_TIMEOUT (1 s/X), POLL_TIME (10 s/X), XQUEUE_LOCK_SECONDS (300/X) and the restart
backoff of replicas (Kubernetes' 10 s doubling to 5 min, /X).

Each scenario gets its own private redis-server (or REDIS_URL), a freshly seeded LMS and the
watcher fleet as real processes; a replica that exits is restarted, as Kubernetes does. Ctrl-C
stops everything and removes temporary files.`;

/**
 * Opens the page with xdg-open where a desktop session exists; otherwise (or when that fails)
 * prints its file:// address to open by hand.
 */
function openPage(page: string, out: NodeJS.WritableStream) {
  const url = pathToFileURL(page).href;
  const desktop = Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
  if (desktop) {
    const child = spawn('xdg-open', [url], { detached: true, stdio: 'ignore' });
    child.on('error', () => out.write(`Open ${url} in a browser (xdg-open failed).\n`));
    child.unref();
    out.write(`Opening ${url}\n`);
    return;
  }
  out.write(`No desktop here: open ${url} in a browser.\n`);
}

const STOPPING = 'stopping every process of this run...';

class UsageError extends Error {
  override readonly name = 'UsageError';
}

function positiveInt(
  name: string,
  raw: string | undefined,
  fallback: number,
  max = 10_000,
): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new UsageError(
      `--${name} must be an integer from 1 to ${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

/** A number of seconds from 0 to 600, fractions allowed. */
function seconds(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < 0 || value > 600) {
    throw new UsageError(
      `--${name} must be a number of seconds from 0 to 600 (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

/** True for `--preset production`, which runs uncompressed and so takes no --compression. */
function presetOf(preset: string | undefined, compression: string | undefined): boolean {
  if (preset === undefined) return false;
  if (preset !== 'production') {
    throw new UsageError(`--preset must be "production" (got ${JSON.stringify(preset)})`);
  }
  if (compression !== undefined && compression !== '1') {
    throw new UsageError('--preset production runs uncompressed: leave out --compression');
  }
  return true;
}

/** `--session-store`: where the LMS keeps sessions (its `SESSION_STORE`). */
function sessionStoreOf(raw: string | undefined): 'sqlite' | 'redis' {
  if (raw === undefined || raw === 'sqlite' || raw === 'redis') return raw ?? 'sqlite';
  throw new UsageError(`--session-store must be sqlite or redis (got ${JSON.stringify(raw)})`);
}

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string' },
      compare: { type: 'string' },
      list: { type: 'boolean' },
      replicas: { type: 'string' },
      queues: { type: 'string' },
      connections: { type: 'string' },
      duration: { type: 'string' },
      submissions: { type: 'string' },
      students: { type: 'string' },
      compression: { type: 'string' },
      preset: { type: 'string' },
      drain: { type: 'string' },
      'grading-seconds': { type: 'string' },
      parallel: { type: 'string' },
      'session-store': { type: 'string' },
      'lms-workers': { type: 'string' },
      seed: { type: 'string' },
      race: { type: 'boolean' },
      logins: { type: 'string' },
      rounds: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      open: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.scenario && values.compare)
    throw new UsageError('give --scenario or --compare, not both');
  if (values.race && (values.scenario || values.compare))
    throw new UsageError('--race runs on its own: leave out --scenario and --compare');
  const names = values.scenario
    ? [values.scenario]
    : values.compare
      ? values.compare
          .split(',')
          .map((name) => name.trim())
          .filter(Boolean)
      : [...DEFAULT_COMPARISON];
  const chaos = values.scenario === 'chaos';
  if (
    values['lms-workers'] !== undefined &&
    values['lms-workers'] !== '1' &&
    values['session-store'] !== 'redis'
  ) {
    throw new UsageError(
      '--lms-workers above 1 shares sessions through Redis: add --session-store redis',
    );
  }
  if (values['session-store'] === 'redis' && chaos) {
    throw new UsageError(
      '--session-store redis is not offered with chaos (it restarts Redis, which would end every session)',
    );
  }
  const production = presetOf(values.preset, values.compression);
  const settings: RunSettings = {
    replicas: positiveInt('replicas', values.replicas, chaos ? 3 : 2, 64),
    queues: positiveInt('queues', values.queues, 2, 64),
    connections: positiveInt('connections', values.connections, 2, 64),
    durationSeconds: positiveInt(
      'duration',
      values.duration,
      chaos ? 40 : production ? 120 : 6,
      3600,
    ),
    submissions: positiveInt(
      'submissions',
      values.submissions,
      chaos ? 2000 : production ? 96 : 24,
      100_000,
    ),
    students: positiveInt('students', values.students, 4, 1000),
    compression: production ? 1 : positiveInt('compression', values.compression, 2, 1000),
    drainSeconds: positiveInt('drain', values.drain, production ? 15 : 3, 600),
    // Chaos measures faults at thousands of submissions: its graders answer at once unless told.
    gradingSeconds: seconds(
      'grading-seconds',
      values['grading-seconds'],
      chaos ? 0 : PRODUCTION.gradingSeconds,
    ),
    redisUrl: process.env.REDIS_URL || undefined,
    sessionStore: sessionStoreOf(values['session-store']),
    lmsWorkers: positiveInt('lms-workers', values['lms-workers'], 1, 16),
    serviceUsername: 'xqueue_svc',
    servicePassword: 'storm-lab-service',
    studentPassword: 'storm-lab-student',
  };
  const base = process.env.INIT_CWD ?? process.cwd();
  const out = values.out ?? 'storm-report';
  return {
    help: values.help ?? false,
    list: values.list ?? false,
    json: values.json ?? false,
    open: values.open ?? false,
    names,
    settings,
    outDir: isAbsolute(out) ? out : resolve(base, out),
    parallel: positiveInt('parallel', values.parallel, 1, 16),
    chaos,
    seed: positiveInt('seed', values.seed, Date.now() % 1_000_000, 2 ** 31),
    race: values.race ?? false,
    logins: positiveInt('logins', values.logins, 8, 64),
    rounds: positiveInt('rounds', values.rounds, 20, 1000),
  };
}

async function main(argv: string[]): Promise<number> {
  const options = parse(argv);
  if (options.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (options.list) {
    const names = [...(await listScenarios()), 'chaos'].sort();
    process.stdout.write(`${names.join('\n')}\n`);
    return 0;
  }
  const { settings } = options;
  if (options.chaos) return chaosMain(settings, options);
  if (options.race) return raceMain(settings, options);
  const variables = {
    serviceUsername: settings.serviceUsername,
    totalConnections: settings.replicas * settings.queues * settings.connections,
  };
  const scenarios = await Promise.all(options.names.map((name) => loadScenario(name, variables)));

  const active = new Set<CleanupStack>();
  const interrupted = exitOnSignal(
    STOPPING,
    () => Promise.all([...active].map((stack) => stack.run())),
    130,
  );

  const progressOut = options.json ? process.stderr : process.stdout;
  const display = new ProgressDisplay(progressOut);
  const results: ScenarioFigures[] = new Array(scenarios.length);
  let next = 0;
  // One at a time by default: a storm keeps both cores busy hashing passwords, so a scenario
  // run beside it would measure its neighbour's storm (a cure's first logins time out).
  const worker = async () => {
    while (!interrupted() && next < scenarios.length) {
      const index = next++;
      const stack = new CleanupStack();
      active.add(stack);
      try {
        const scenario = scenarios[index] as (typeof scenarios)[number];
        results[index] = await runScenario(scenario, settings, stack, (progress) =>
          display.update(progress),
        );
      } finally {
        if (!interrupted()) {
          await stack.run();
          active.delete(stack);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.parallel, scenarios.length) }, worker));
  if (interrupted()) return new Promise(() => undefined); // the signal handler exits

  const report = buildReport(results, {
    compression: settings.compression,
    compressionNote: compressionNote(
      settings.compression,
      settings.durationSeconds,
      settings.gradingSeconds,
      hashShare(settings),
    ),
    cpus: cpus().length,
    run: {
      replicas: settings.replicas,
      queues: settings.queues,
      connections: settings.connections,
      loadSeconds: settings.durationSeconds,
      submissions: settings.submissions,
      students: settings.students,
      drainSeconds: settings.drainSeconds,
      gradingSeconds: settings.gradingSeconds,
    },
  });
  const page = await writeReport(options.outDir, report, results);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${renderTable(results)}\n\n`);
    process.stdout.write(`Verdict rule: ${VERDICT_RULE}.\n`);
    process.stdout.write(
      `Time compression: ${compressionNote(settings.compression, settings.durationSeconds, settings.gradingSeconds, hashShare(settings))}\n`,
    );
    process.stdout.write(
      `Report: ${page} (report.md, report.json and the charts as SVG beside it)\n`,
    );
  }
  if (options.open) openPage(page, options.json ? process.stderr : process.stdout);
  return 0;
}

async function chaosMain(
  settings: RunSettings,
  options: ReturnType<typeof parse>,
): Promise<number> {
  const cleanup = new CleanupStack();
  const interrupted = exitOnSignal(STOPPING, () => cleanup.run(), 130);
  const started = Date.now();
  const log = (message: string) =>
    (options.json ? process.stderr : process.stdout).write(
      `chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s  ${message}\n`,
    );
  log(
    `seed ${options.seed}: ${settings.submissions} submissions, ${settings.replicas} replicas, faults for ${settings.durationSeconds} s`,
  );
  let figures: Awaited<ReturnType<typeof runChaos>>;
  try {
    figures = await runChaos(
      {
        settings,
        submissions: settings.submissions,
        faultSeconds: settings.durationSeconds,
        settleSeconds: Math.max(30, settings.drainSeconds),
        seed: options.seed,
        onEvent: log,
      },
      cleanup,
    );
  } finally {
    if (!interrupted()) await cleanup.run();
  }
  if (interrupted()) return new Promise(() => undefined); // the signal handler exits
  const report = { generatedAt: new Date().toISOString(), seed: options.seed, ...figures };
  await mkdir(options.outDir, { recursive: true });
  await writeFile(join(options.outDir, 'chaos.json'), `${JSON.stringify(report, null, 2)}\n`);
  if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const ok = figures.lost === 0 && figures.gradedTwice === 0 && figures.wrongScores === 0;
    process.stdout.write(
      `\nsubmitted ${figures.submitted}  graded ${figures.graded}  lost ${figures.lost}  graded twice ${figures.gradedTwice}  wrong ${figures.wrongScores}  (${figures.faults.length} faults, ${figures.durationSeconds} s)\n` +
        `${ok ? 'PASS: nothing lost, nothing graded twice, no wrong score' : 'FAIL'}; repeat with --seed ${options.seed}\n` +
        `Report: ${options.outDir}/chaos.json\n`,
    );
  }
  return figures.lost === 0 && figures.gradedTwice === 0 && figures.wrongScores === 0 ? 0 : 1;
}

async function raceMain(settings: RunSettings, options: ReturnType<typeof parse>): Promise<number> {
  const cleanup = new CleanupStack();
  const interrupted = exitOnSignal(STOPPING, () => cleanup.run(), 130);
  const out = options.json ? process.stderr : process.stdout;
  out.write(
    `race: ${options.logins} logins at once of one single-session account, ${options.rounds} rounds, ` +
      `under each SINGLE_LOGIN_ENFORCEMENT (PBKDF2 at ${settings.compression}x; ` +
      `${settings.lmsWorkers} LMS worker${settings.lmsWorkers === 1 ? '' : 's'}, sessions in ${settings.sessionStore})\n`,
  );
  let figures: RaceFigures[];
  try {
    figures = await runRace(
      {
        logins: options.logins,
        rounds: options.rounds,
        compression: settings.compression,
        lmsWorkers: settings.lmsWorkers,
        sessionStore: settings.sessionStore,
        redisUrl: process.env.REDIS_URL || undefined,
        onRound: (mode, round) =>
          out.write(
            `${mode.padEnd(8)} round ${String(round.round).padStart(3)}  live ${round.liveTotal} ` +
              `(${round.liveOfRound} of this round's ${options.logins})\n`,
          ),
      },
      cleanup,
    );
  } finally {
    if (!interrupted()) await cleanup.run();
  }
  if (interrupted()) return new Promise(() => undefined); // the signal handler exits
  const report = { generatedAt: new Date().toISOString(), logins: options.logins, figures };
  await mkdir(options.outDir, { recursive: true });
  await writeFile(join(options.outDir, 'race.json'), `${JSON.stringify(report, null, 2)}\n`);
  if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    process.stdout.write(
      `\n${renderRace(figures, options.rounds)}\n\n` +
        'atomic: read, decide, evict and record in one transaction. upstream: ' +
        "edx-platform's set_login_session, each step its own statement with no lock: logins " +
        'that overlap all read the same slot, all survive, and all but the last are never ' +
        `tracked again.\nReport: ${options.outDir}/race.json\n`,
    );
  }
  const atomic = figures.find((f) => f.mode === 'atomic');
  return atomic && atomic.roundsSingle === options.rounds ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const known =
      error instanceof UsageError ||
      error instanceof ScenarioError ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`storm: ${(error as Error).message}\n`);
    if (known) process.stderr.write('Run "pnpm storm --help" for usage.\n');
    else if (error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exit(known ? 2 : 1);
  },
);
