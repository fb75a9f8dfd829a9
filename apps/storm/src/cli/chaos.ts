import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CliIo, numberFlag, parseFlags, type Subcommand } from '@storm-lab/cli-kit';
import { type ChaosFigures, runChaos } from '../chaos.ts';
import { CleanupStack, exitOnSignal } from '../cleanup.ts';
import type { RunSettings } from '../settings.ts';
import {
  FLEET_FLAGS,
  type FleetDefaults,
  fleetHelp,
  OUTPUT_FLAGS,
  outDirOf,
  outputHelp,
  runSettingsOf,
} from './run-flags.ts';

export const CHAOS_FLAGS = {
  ...FLEET_FLAGS,
  seed: { type: 'string' },
  ...OUTPUT_FLAGS,
} as const;

/** Chaos measures faults at thousands of submissions: its graders answer at once unless told. */
const CHAOS_DEFAULTS: FleetDefaults = () => ({
  replicas: 3,
  durationSeconds: 40,
  submissions: 2000,
  gradingSeconds: 0,
});

export const CHAOS_HELP = `pnpm storm chaos: faults while the service account is exempt

Usage:
  pnpm storm chaos [options]          (also: pnpm storm --scenario chaos [options])

Watcher replicas killed (SIGKILL) and restarted at random moments, Redis restarted once, the
LMS restarted once with SIGTERM and once with SIGKILL, while thousands of submissions are made
and graded by the hardened client. Counts lost, double-graded and wrongly graded submissions
(the target for each is zero) and writes chaos.json; exits 0 when all three are zero, 1
otherwise. Sessions stay in SQLite: a Redis restart would end every Redis session.

Options:
  --seed N            seed of the fault schedule, so a failing run repeats
                                                            (default: from the clock)
${fleetHelp(CHAOS_DEFAULTS, 'uncompressed (compression 1), --drain 15')}
${outputHelp('chaos.json')}`;

export interface ChaosCommandOptions {
  help: boolean;
  json: boolean;
  settings: RunSettings;
  seed: number;
  outDir: string;
}

/** Parses chaos's flags; a mistake is a `UsageError`. */
export function parseChaos(argv: readonly string[]): ChaosCommandOptions {
  const { values } = parseFlags(argv, CHAOS_FLAGS);
  return {
    help: values.help ?? false,
    json: values.json ?? false,
    settings: runSettingsOf(values, CHAOS_DEFAULTS),
    seed: numberFlag('seed', values.seed, Date.now() % 1_000_000, {
      min: 1,
      max: 2 ** 31,
      integer: true,
    }),
    outDir: outDirOf(values.out),
  };
}

/** `pnpm storm chaos`: the fault run, its figures and its verdict. */
export const chaos: Subcommand = {
  summary: 'kill replicas, Redis and the LMS under load: nothing lost or graded twice',
  run: async (argv, io) => {
    const options = parseChaos(argv);
    if (options.help) {
      io.out.write(`${CHAOS_HELP}\n`);
      return 0;
    }
    return runChaosCommand(options, io);
  },
};

async function runChaosCommand(options: ChaosCommandOptions, io: CliIo): Promise<number> {
  const { settings, seed } = options;
  const cleanup = new CleanupStack();
  const interrupted = exitOnSignal(
    'stopping every process of this run...',
    () => cleanup.run(),
    130,
  );
  const started = Date.now();
  const log = (message: string) =>
    (options.json ? io.err : io.out).write(
      `chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s  ${message}\n`,
    );
  log(
    `seed ${seed}: ${settings.submissions} submissions, ${settings.replicas} replicas, faults for ${settings.durationSeconds} s`,
  );
  let figures: ChaosFigures;
  try {
    figures = await runChaos(
      {
        settings,
        submissions: settings.submissions,
        faultSeconds: settings.durationSeconds,
        settleSeconds: Math.max(30, settings.drainSeconds),
        seed,
        onEvent: log,
      },
      cleanup,
    );
  } finally {
    if (!interrupted()) await cleanup.run();
  }
  if (interrupted()) return new Promise(() => undefined); // the signal handler exits
  const report = { generatedAt: new Date().toISOString(), seed, ...figures };
  await mkdir(options.outDir, { recursive: true });
  await writeFile(join(options.outDir, 'chaos.json'), `${JSON.stringify(report, null, 2)}\n`);
  const ok = figures.lost === 0 && figures.gradedTwice === 0 && figures.wrongScores === 0;
  if (options.json) io.out.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    io.out.write(
      `\nsubmitted ${figures.submitted}  graded ${figures.graded}  lost ${figures.lost}  graded twice ${figures.gradedTwice}  wrong ${figures.wrongScores}  (${figures.faults.length} faults, ${figures.durationSeconds} s)\n` +
        `${ok ? 'PASS: nothing lost, nothing graded twice, no wrong score' : 'FAIL'}; repeat with --seed ${seed}\n` +
        `Report: ${options.outDir}/chaos.json\n`,
    );
  }
  return ok ? 0 : 1;
}
