import { availableParallelism, cpus } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type CliIo as CliKitIo,
  numberFlag,
  parseFlags,
  runAsProgram,
  runCli as runCliKit,
  UsageError,
} from '@storm-lab/cli-kit';
import {
  buildReport,
  compress,
  compressionNote,
  DEFAULT_COMPARISON,
  hashShare,
  renderTable,
  ScenarioError,
  type ScenarioFigures,
  scenarioNamesOf,
  writeReport,
} from '@storm-lab/storm';
import { faultRun } from './faults.ts';
import { type LabCosts, measureLabCosts } from './lab.ts';
import { measureLabNoise, writeLabNoise } from './lab-noise.ts';
import { LAB_RUNS_FILE, readLabRuns, recordLabRuns, writeLabRuns } from './lab-record.ts';
import { LAB_NOISE_FILE, type NoiseSamples, readLabNoise, samplesOf } from './noise.ts';
import { comparisonOf, MIT_SETTINGS, mitPlan, type PlannedRun } from './presets.ts';
import { REGIME_MAP_SETTINGS, runRegimeMap } from './regime-map.ts';
import { simulateScenario } from './run.ts';
import { samplesIn } from './run-queue.ts';
import {
  type LoadShape,
  PRODUCTION_SETTINGS,
  type SimSettings,
  settingsNote,
  submissionsOf,
} from './settings.ts';
import { SIM_EPOCH_MS } from './virtual-clock.ts';

const HELP = `pnpm sim: the login storm on the project's own code, on a virtual clock

Runs the LMS (createApp: the single-login hook, the session policy, the xqueue and student
APIs, in-memory SQLite), the watcher fleet's own clients and loops, and students, in one
process on a virtual clock: hours of production in seconds, every run replayable by its seed.
Only time, CPU and the network are modelled: W synchronous LMS workers behind an accept queue,
each request holding one for its service time (a login: its PBKDF2), network latency, and
REQUESTS_TIMEOUT counting the wait for a worker.

Usage:
  pnpm sim                        compare ${DEFAULT_COMPARISON.join(', ')} for an hour
  pnpm sim --scenario NAME        one scenario (a built-in name or a path to a .json file)
  pnpm sim --compare A,B,...      the named scenarios side by side
  pnpm sim --preset mit           MIT's incident: storm (2x2x5), their stop-gap (1x1x1) and the
                                  cure, an hour with a deadline surge, at MIT's deployed
                                  REQUESTS_TIMEOUT 10, POLL_INTERVAL 10 and POLL_TIME 10, the
                                  second queue idle (see docs/simulation.md)
  pnpm sim --faults N             N seeds (from --seed) of a 10-minute storm and cure under
                                  faults (replicas killed, an LMS restart, dropped responses,
                                  slow hashes); checks that once the faults stop every
                                  submission is graded, none accepted twice, no wrong score,
                                  no person with two live sessions; a failing seed prints the
                                  command that replays it (--scenario/--compare choose)
  pnpm sim --map                  the regime map: storm and cure over fleet size (4, 8, 20, 40
                                  connections) x LMS workers (1, 2, 4, 8) at REQUESTS_TIMEOUT
                                  1 s and 5 s; writes regime-map.svg/.md/.json to --out
                                  (see docs/regime-map.md)
  pnpm sim --lab                  what \`pnpm storm\` runs by default (2x compression, its fleet,
                                  load and drain) with this machine's measured costs and the
                                  lab's recorded timing noise (sim/lab-noise.json)
  pnpm sim --measure-noise        measures the lab's timing noise on this machine: the run
                                  queue every 10 ms (the threads runnable besides the lab LMS's
                                  hashing ones) and, in rounds, one BullMQ job on a private
                                  redis-server (its hand-over and its completion), one HTTP
                                  round trip to a private LMS process and one poll-interval
                                  timer; writes the samples to --out (default
                                  sim/lab-noise.json); --beside-storm
                                  measures while a real \`pnpm storm\` runs, until it ends
  pnpm sim --record-lab N         runs the real \`pnpm storm\` N times one after another and
                                  writes each scenario's figures and this machine's costs to
                                  --out (default docs/lab-runs.json): the spread --lab is
                                  checked against (see docs/lab-runs.md)

Options (production values by default, uncompressed; --preset mit starts from MIT's):
  --replicas N          watcher replicas                        (default 2)
  --queues N            conf.d queue entries per replica        (default 2)
  --connections N       CONNECTIONS per entry                   (default 2; MIT's 5)
  --lms-workers N       the LMS's synchronous workers           (default 4)
  --login-ms MS         one login's PBKDF2 in a worker          (default 250: 1,000,000
                        iterations at 250 ns)
  --request-ms MS       a worker's time for any request besides hashing (default 10)
  --requests-timeout S  XQWATCHER_REQUESTS_TIMEOUT              (default 1; MIT's 10)
  --poll-interval S     XQWATCHER_POLL_INTERVAL: a connection's sleep after an empty
                        queue                                   (default 1; MIT's 10)
  --poll-time S         XQWATCHER_POLL_TIME: Manager.wait's sleep between looks at its
                        connections                             (default 10)
  --latency-jitter F    each network leg's latency drawn uniformly from 1 ms x (1 +/- F)
                        (default 0.5; 0: every leg exactly 1 ms, the connections in
                        lockstep; --lab draws recorded round trips instead)
  --grading-seconds S   one grading                              (default 1)
  --duration S          seconds of student load                 (default 3600)
  --drain S             longest wait for grading after the load (default 600; MIT's
                        1800)
  --students N          students submitting                     (default 40; MIT's 300)
  --per-minute N        steady submissions per minute           (default 20; MIT's 2)
  --surge N             a deadline surge of N submissions; 0: none (default none;
                        MIT's 1200)
  --surge-at S          seconds after the start the surge begins (default 900)
  --surge-seconds S     how long the surge lasts, within --duration (default 600)
  --seed N              the run's seed                           (default 1)
  --noise FILE|none     recorded timing noise: the LMS's hashing threads share the cores
                        with the recorded run queue's other threads, each BullMQ job
                        starts a recorded hand-over late (and, upstream's mode, its
                        connection hears of its end a recorded completion late), each
                        request takes a recorded round trip, each watcher timer fires a
                        recorded lateness late (default: sim/lab-noise.json with --lab,
                        none otherwise)
  --samples N           with --measure-noise: rounds (default 200; beside a storm, the
                        most, default 2000)
  --beside-storm        with --measure-noise: run \`pnpm -s storm\` beside the measurement
  --recorded-costs      with --lab: this machine's costs as recorded with the real runs
                        (docs/lab-runs.json) instead of measured now, as lab.test.ts replays
  --out DIR             report folder                            (default ./sim-report)
  --json                print report.json to stdout instead of the table
  -h, --help            this help

The same seed and flags give a byte-identical report.json.`;

/** A seed: any 31-bit whole number. */
const SEED_RULE = { min: 0, max: 2 ** 31 - 1, integer: true };

const OPTIONS = {
  scenario: { type: 'string' },
  compare: { type: 'string' },
  preset: { type: 'string' },
  lab: { type: 'boolean' },
  noise: { type: 'string' },
  'measure-noise': { type: 'boolean' },
  'record-lab': { type: 'string' },
  'recorded-costs': { type: 'boolean' },
  'beside-storm': { type: 'boolean' },
  samples: { type: 'string' },
  faults: { type: 'string' },
  map: { type: 'boolean' },
  replicas: { type: 'string' },
  queues: { type: 'string' },
  connections: { type: 'string' },
  'lms-workers': { type: 'string' },
  'login-ms': { type: 'string' },
  'request-ms': { type: 'string' },
  'requests-timeout': { type: 'string' },
  'poll-interval': { type: 'string' },
  'poll-time': { type: 'string' },
  'latency-jitter': { type: 'string' },
  'grading-seconds': { type: 'string' },
  duration: { type: 'string' },
  drain: { type: 'string' },
  students: { type: 'string' },
  'per-minute': { type: 'string' },
  surge: { type: 'string' },
  'surge-at': { type: 'string' },
  'surge-seconds': { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseFlags<typeof OPTIONS>>['values'];

/** The settings the flags ask for, on top of `base`. */
export function settingsOf(values: Values, base: SimSettings): SimSettings {
  const int = (name: keyof Values, fallback: number, min: number, max: number) =>
    numberFlag(name, values[name] as string | undefined, fallback, { min, max, integer: true });
  const num = (name: keyof Values, fallback: number, min: number, max: number) =>
    numberFlag(name, values[name] as string | undefined, fallback, { min, max });
  const durationSeconds = num('duration', base.durationSeconds, 1, 7 * 24 * 3600);
  const baseSurge = base.load.kind === 'steady' ? base.load.surge : null;
  // --surge 0: none, even where the base has one (--preset mit's).
  const submissions = numberFlag('surge', values.surge, baseSurge?.submissions ?? 0, {
    min: 0,
    max: 1_000_000,
    integer: true,
  });
  if (submissions === 0 && (values['surge-at'] ?? values['surge-seconds']) !== undefined) {
    throw new UsageError('--surge-at and --surge-seconds go with a surge (--surge N)');
  }
  const surge =
    submissions === 0
      ? null
      : {
          submissions,
          startSeconds: num('surge-at', baseSurge?.startSeconds ?? 900, 0, durationSeconds),
          seconds: num('surge-seconds', baseSurge?.seconds ?? 600, 1, durationSeconds),
        };
  if (surge && surge.startSeconds + surge.seconds > durationSeconds) {
    throw new UsageError(
      `the surge (from ${surge.startSeconds} s for ${surge.seconds} s) ends after the load's ${durationSeconds} s: give --surge-at and --surge-seconds to fit, --surge 0, or a longer --duration`,
    );
  }
  const load: LoadShape =
    values['per-minute'] !== undefined || values.surge !== undefined || base.load.kind === 'steady'
      ? {
          kind: 'steady',
          perMinute: num(
            'per-minute',
            base.load.kind === 'steady' ? base.load.perMinute : 20,
            0,
            100_000,
          ),
          surge,
        }
      : base.load;
  const iterations = base.iterations;
  const loginMs = num('login-ms', (iterations * base.iterationNs) / 1e6, 0, 600_000);
  return {
    ...base,
    replicas: int('replicas', base.replicas, 1, 1000),
    queues: int('queues', base.queues, 1, 100),
    connections: int('connections', base.connections, 1, 100),
    lmsWorkers: int('lms-workers', base.lmsWorkers, 1, 10_000),
    iterationNs: (loginMs * 1e6) / iterations,
    requestMs: num('request-ms', base.requestMs, 0, 60_000),
    requestsTimeoutSeconds: num('requests-timeout', base.requestsTimeoutSeconds, 0.001, 3600),
    pollIntervalSeconds: num('poll-interval', base.pollIntervalSeconds, 0.001, 3600),
    pollTimeSeconds: num('poll-time', base.pollTimeSeconds, 0.001, 3600),
    latencyJitter: num('latency-jitter', base.latencyJitter, 0, 1),
    gradingSeconds: num('grading-seconds', base.gradingSeconds, 0, 3600),
    durationSeconds,
    drainSeconds: num('drain', base.drainSeconds, 0, 7 * 24 * 3600),
    students: int('students', base.students, 1, 100_000),
    load,
    seed: int('seed', base.seed, 0, 2 ** 31 - 1),
  };
}

/**
 * What a run's hash is divided by besides its compression (`pnpm storm`'s share of cores, see
 * `hashShare`), read off its iterations: 1 for production's 1,000,000 uncompressed.
 */
function hashShareOf(settings: Pick<SimSettings, 'compression' | 'iterations'>): number {
  return PRODUCTION_SETTINGS.iterations / settings.compression / settings.iterations;
}

/** Threads in libuv's pool when UV_THREADPOOL_SIZE is not set, as the lab runs its LMS. */
const LIBUV_THREADS = 4;

/** `pnpm storm`'s default compression and the shape of its replicas. */
const LAB_COMPRESSION = 2;
const LAB_SHAPE = { queues: 2, connections: 2 };

/** `pnpm storm`'s default compressed times on this machine: its hash and its poll interval. */
export function labTimes() {
  const times = compress(LAB_COMPRESSION, 1, hashShare(LAB_SHAPE));
  return { iterations: times.hashIterations, pollIntervalMs: times.pollIntervalSeconds * 1000 };
}

/**
 * `pnpm storm`'s default run, as the simulator replays it (`--lab`), at `costs` (default: this
 * machine's, measured now) and with the timing noise of `noise` (default: the recorded samples,
 * `sim/lab-noise.json`; `null`: none).
 */
export async function labSettings(
  costs?: LabCosts,
  noise?: NoiseSamples | null,
): Promise<SimSettings> {
  costs ??= await measureLabCosts();
  if (noise === undefined) noise = samplesOf(await readLabNoise());
  return {
    ...PRODUCTION_SETTINGS,
    ...LAB_SHAPE,
    replicas: 2,
    // The lab's LMS is one Node process: its event loop serves, and it hashes on libuv's
    // threads, which share this machine's cores.
    lmsModel: 'event-loop',
    loginThrottle: true,
    lmsWorkers: availableParallelism(),
    // libuv's pool: the lab's LMS leaves UV_THREADPOOL_SIZE at its default.
    lmsThreads: LIBUV_THREADS,
    iterations: labTimes().iterations,
    iterationNs: costs.iterationNs,
    requestMs: costs.requestMs,
    latencyMs: 0.05,
    latencyJitter: 0,
    replicaStartupSeconds: 1,
    oneByOne: true,
    students: 4,
    load: { kind: 'even', submissions: 24 },
    durationSeconds: 12,
    drainSeconds: 6,
    drainAsks: 'every-round',
    compression: LAB_COMPRESSION,
    noise,
  };
}

/**
 * `--noise`: a file of recorded samples, `none`, or `undefined` when not given (the base's
 * noise, read only when needed).
 */
async function noiseFlag(values: Values, cwd: string): Promise<NoiseSamples | null | undefined> {
  if (values.noise === undefined) return undefined;
  if (values.noise === 'none') return null;
  try {
    return samplesOf(await readLabNoise(resolve(cwd, values.noise)));
  } catch (error) {
    throw new UsageError(`--noise ${values.noise}: ${(error as Error).message}`);
  }
}

async function plan(values: Values, cwd: string): Promise<PlannedRun[]> {
  if (values.scenario && values.compare)
    throw new UsageError('give --scenario or --compare, not both');
  if (values.preset !== undefined && values.preset !== 'mit') {
    throw new UsageError(`--preset must be "mit" (got ${JSON.stringify(values.preset)})`);
  }
  if (values.preset && values.lab) throw new UsageError('give --preset mit or --lab, not both');
  if (values.preset === 'mit') {
    if (values.scenario || values.compare) {
      throw new UsageError(
        '--preset mit runs its own three scenarios: leave out --scenario and --compare',
      );
    }
    return mitPlan({
      ...settingsOf(values, MIT_SETTINGS),
      noise: (await noiseFlag(values, cwd)) ?? MIT_SETTINGS.noise,
    });
  }
  if (values['recorded-costs'] && !values.lab) {
    throw new UsageError('--recorded-costs goes with --lab');
  }
  const costs = values['recorded-costs'] ? (await readLabRuns()).costs : undefined;
  const noise = await noiseFlag(values, cwd);
  const base = values.lab ? await labSettings(costs, noise) : PRODUCTION_SETTINGS;
  const settings = { ...settingsOf(values, base), noise: noise ?? base.noise };
  return comparisonOf(scenarioNamesOf(values, DEFAULT_COMPARISON), settings);
}

export interface CliIo extends CliKitIo {
  /** Where `--out` is resolved from. */
  cwd: string;
}

/**
 * `pnpm sim`: plans the runs, simulates each (one after another), prints the side-by-side
 * table and writes the report. Returns the exit code; never exits the process itself.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  return runCliKit(
    async () => {
      try {
        return await run(argv, io);
      } catch (error) {
        // A scenario name or file that does not load is a mistake in the command line.
        if (error instanceof ScenarioError) throw new UsageError(error.message);
        throw error;
      }
    },
    { help: 'pnpm sim --help', io },
  );
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseFlags(argv, OPTIONS);
  if (values.help) {
    io.out.write(`${HELP}\n`);
    return 0;
  }
  if (values['measure-noise']) return runMeasureNoise(values, io);
  if (values['record-lab'] !== undefined) return runRecordLab(values, io);
  for (const flag of ['beside-storm', 'samples'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} goes with --measure-noise`);
  }
  if (values.noise !== undefined && (values.faults !== undefined || values.map)) {
    throw new UsageError('--noise is not offered with --faults or --map (they run without noise)');
  }
  const runs = await plan(values, io.cwd);
  if (values.faults !== undefined) return runFaults(values, io);
  if (values.map) return runMap(values, io);
  const figures: ScenarioFigures[] = [];
  for (const run of runs) {
    const started = performance.now();
    const result = await simulateScenario(run.scenario, run.settings);
    const wallSeconds = (performance.now() - started) / 1000;
    const simulated = result.durationSeconds * run.settings.compression;
    io.err.write(
      `${run.scenario.name}: ${result.verdict}, ${result.logins} logins, ${result.graded}/${result.submitted} graded; ${Math.round(simulated)} s of production in ${wallSeconds.toFixed(1)} s (${Math.round(simulated / wallSeconds)}x)\n`,
    );
    figures.push(result);
  }
  const first = runs[0] as PlannedRun;
  const settings = first.settings;
  const report = buildReport(figures, {
    compression: settings.compression,
    compressionNote: `${
      settings.compression === 1
        ? settingsNote(settings)
        : compressionNote(
            settings.compression,
            settings.durationSeconds / settings.compression,
            settings.gradingSeconds,
            hashShareOf(settings),
          )
    } Simulated on a virtual clock, seed ${settings.seed}.`,
    cpus: cpus().length,
    run: {
      replicas: settings.replicas,
      queues: settings.queues,
      connections: settings.connections,
      loadSeconds: settings.durationSeconds / settings.compression,
      submissions: submissionsOf(settings.load, settings.durationSeconds),
      students: settings.students,
      drainSeconds: settings.drainSeconds / settings.compression,
      gradingSeconds: settings.gradingSeconds,
    },
    generatedAt: new Date(SIM_EPOCH_MS).toISOString(),
  });
  const dir = resolve(io.cwd, values.out ?? 'sim-report');
  const page = await writeReport(isAbsolute(dir) ? dir : join(io.cwd, dir), report, figures);
  if (values.json) {
    io.out.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    io.out.write(`${renderTable(figures)}\n\nReport: ${pathToFileURL(page).href}\n`);
  }
  return 0;
}

async function runRecordLab(values: Values, io: CliIo): Promise<number> {
  const file = values.out === undefined ? LAB_RUNS_FILE : resolve(io.cwd, values.out);
  const runs = numberFlag('record-lab', values['record-lab'], 5, {
    min: 1,
    max: 100,
    integer: true,
  });
  const recorded = await recordLabRuns({
    runs,
    onProgress: (line) => io.err.write(`${line}\n`),
  });
  await writeLabRuns(file, recorded);
  io.out.write(`${runs} real runs of pnpm storm: ${file}\n`);
  return 0;
}

async function runMeasureNoise(values: Values, io: CliIo): Promise<number> {
  const file = values.out === undefined ? LAB_NOISE_FILE : resolve(io.cwd, values.out);
  const besideStorm = values['beside-storm'] ?? false;
  const samples = numberFlag('samples', values.samples, besideStorm ? 2000 : 200, {
    min: 1,
    max: 100_000,
    integer: true,
  });
  const noise = await measureLabNoise({
    pollIntervalMs: labTimes().pollIntervalMs,
    samples,
    besideStorm,
    onProgress: (line) => io.err.write(`${line}\n`),
  });
  await writeLabNoise(file, noise);
  io.out.write(
    `${noise.handOverMs.length} rounds, ${samplesIn(noise.runQueue)} run-queue samples (load average ${noise.loadAverage.start.toFixed(2)} to ${noise.loadAverage.end.toFixed(2)}; beside: ${noise.beside}): ${file}\n`,
  );
  return 0;
}

async function runMap(values: Values, io: CliIo): Promise<number> {
  const dir = resolve(io.cwd, values.out ?? 'sim-report');
  const seed = numberFlag('seed', values.seed, REGIME_MAP_SETTINGS.seed, SEED_RULE);
  const started = performance.now();
  const map = await runRegimeMap({
    settings: { ...REGIME_MAP_SETTINGS, seed },
    outDir: dir,
    onProgress: ({ done, total, cell, wallSeconds }) =>
      io.err.write(
        `${done}/${total}: ${cell.totalConnections} connections, ${cell.workers} workers, timeout ${cell.timeoutSeconds} s: storm/cure ${cell.ratio === null ? '-' : cell.ratio.toFixed(2)} (${wallSeconds.toFixed(1)} s)\n`,
      ),
  });
  const minutes = ((performance.now() - started) / 60_000).toFixed(1);
  io.out.write(
    `${map.cells.length} cells in ${minutes} min; the rule holds for the storm in ${map.rule.stormAgrees} of ${map.cells.length} cells.\nRegime map: ${pathToFileURL(join(dir, 'regime-map.svg')).href}\n`,
  );
  return 0;
}

async function runFaults(values: Values, io: CliIo): Promise<number> {
  const seeds = numberFlag('faults', values.faults, 200, { min: 1, max: 100_000, integer: true });
  const first = numberFlag('seed', values.seed, 1, SEED_RULE);
  const names = scenarioNamesOf(values, ['storm', 'exempt-username']);
  let failed = 0;
  for (let seed = first; seed < first + seeds; seed++) {
    for (const name of names) {
      const run = await faultRun(name, seed);
      if (run.ok) continue;
      failed += 1;
      io.out.write(
        `FAIL seed ${seed} ${name}: ${JSON.stringify(run.invariants)}\n  faults: ${run.faults.map((f) => `${f.at} s ${f.what}`).join('; ')}\n  replay: ${run.replay}\n`,
      );
    }
    io.err.write(`seed ${seed}: ${seed - first + 1}/${seeds} done, ${failed} failed\n`);
  }
  io.out.write(`${seeds * names.length - failed} passed, ${failed} failed (fault runs)\n`);
  return failed > 0 ? 1 : 0;
}

await runAsProgram(
  import.meta.url,
  (argv) =>
    runCli(argv, {
      out: process.stdout,
      err: process.stderr,
      cwd: process.env.INIT_CWD ?? process.cwd(),
    }),
  { name: 'sim' },
);
