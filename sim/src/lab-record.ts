import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LabCosts, measureLabCosts, median } from './lab.ts';

/** The repository's root, where `pnpm -s storm` runs (beside a measurement, or recorded). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where the real runs the simulator is checked against are kept. */
export const LAB_RUNS_FILE = fileURLToPath(new URL('../../docs/lab-runs.json', import.meta.url));

/** The figures of one scenario of one real run that the replay is compared on, and context. */
const KEPT = [
  'name',
  'logins',
  'forbidden',
  'forbiddenPerLogin',
  'graded',
  'submitted',
  'gradedPerMinute',
  'loginTimeouts',
  'connectionDeaths',
  'replicaRestarts',
  'verdict',
] as const;

type Kept = (typeof KEPT)[number];
export type RecordedScenario = Record<Kept, string | number>;

/** Real `pnpm storm` runs, one after another, and this machine's costs around them. */
export interface LabRuns {
  recorded: string;
  command: string;
  costs: LabCosts;
  costsNote: string;
  runs: {
    run: number;
    /** This machine's costs measured right before the run (they vary from minute to minute). */
    costs: LabCosts;
    /** The 1, 5 and 15-minute load averages once the run ended. */
    loadAverageAfter: string;
    durationsSeconds: number[];
    scenarios: RecordedScenario[];
  }[];
}

export interface RecordOptions {
  runs: number;
  /** What runs as `pnpm storm` (default `pnpm -s storm`); `--out DIR` is added. Tests stand in. */
  command?: readonly string[];
  /** How the costs are measured (default `measureLabCosts`); tests give them. */
  costs?: () => Promise<LabCosts>;
  onProgress?(line: string): void;
}

/**
 * Runs `pnpm storm` (its defaults, as a user types it) `runs` times one after another and keeps
 * each scenario's figures from its report.json, with this machine's costs measured right before
 * each run (their median is the recorded costs): the real lab's spread that `pnpm sim --lab` is
 * checked against (`lab.test.ts`, docs/lab-runs.md).
 */
export async function recordLabRuns(options: RecordOptions): Promise<LabRuns> {
  const [file, ...args] = options.command ?? ['pnpm', '-s', 'storm'];
  const say = options.onProgress ?? (() => undefined);
  const runs: LabRuns['runs'] = [];
  for (let run = 1; run <= options.runs; run++) {
    const out = await mkdtemp(join(tmpdir(), 'lab-record-'));
    try {
      const costs = await (options.costs ?? measureLabCosts)();
      say(`run ${run} of ${options.runs}: ${[file, ...args].join(' ')}`);
      await runToEnd(file as string, [...args, '--out', out]);
      const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as {
        scenarios: (Record<Kept, string | number> & { durationSeconds: number })[];
      };
      runs.push({
        run,
        costs,
        loadAverageAfter: loadavg()
          .map((value) => value.toFixed(2))
          .join(', '),
        durationsSeconds: report.scenarios.map((s) => Number(s.durationSeconds.toFixed(1))),
        scenarios: report.scenarios.map(
          (s) => Object.fromEntries(KEPT.map((key) => [key, s[key]])) as RecordedScenario,
        ),
      });
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }
  return {
    recorded: new Date().toISOString(),
    command: `${[file, ...args].join(' ')} (its defaults), ${options.runs} runs one after another`,
    costs: {
      iterationNs: median(runs.map((run) => run.costs.iterationNs)),
      requestMs: median(runs.map((run) => run.costs.requestMs)),
    },
    costsNote:
      'the median of the costs sim/src/lab.ts measured right before each run (they vary from minute to minute on this machine)',
    runs,
  };
}

/** Reads recorded runs (default: the committed ones). */
export async function readLabRuns(file: string = LAB_RUNS_FILE): Promise<LabRuns> {
  return JSON.parse(await readFile(file, 'utf8')) as LabRuns;
}

/** Writes the runs as the committed file's layout. */
export async function writeLabRuns(file: string, runs: LabRuns): Promise<void> {
  await writeFile(file, `${JSON.stringify(runs, null, 2)}\n`);
}

/** Runs a command to its end; rejects, with the end of its stderr, unless it exits 0. */
function runToEnd(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-2000);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${file} ${args.join(' ')} ended with ${code ?? signal}: ${stderr}`));
    });
  });
}
