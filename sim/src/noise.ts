import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Random } from './random.ts';

/** The committed samples `pnpm sim --lab` draws from, and where `--measure-noise` writes. */
export const LAB_NOISE_FILE = fileURLToPath(new URL('../lab-noise.json', import.meta.url));

/** What the real lab's timing looked like on this machine: raw samples and where they came from. */
export interface LabNoise {
  /** When the measurement ended (ISO 8601, UTC). */
  measured: string;
  cpus: number;
  /** The 1-minute load average when the measurement started and when it ended. */
  loadAverage: { start: number; end: number };
  /** What ran beside the measurement: nothing, or `pnpm -s storm` (the default comparison). */
  beside: string;
  /**
   * Node's async PBKDF2-SHA256 at the lab's iteration count, one at a time (on libuv's threads,
   * as the lab's LMS hashes): each hash's duration, and that divided by `baselineMs`, the median
   * of hashes timed before anything ran beside (how much slower the machine hashed, and how
   * unevenly).
   */
  hash: {
    iterations: number;
    concurrency: number;
    baselineMs: number;
    medianMs: number;
    durationsMs: number[];
    ratios: number[];
  };
  /**
   * BullMQ's hand-over on a private redis-server: from the watcher's `addGradeJob` call until a
   * waiting Worker's processor starts the job, in ms.
   */
  handOverMs: number[];
  /** How late a `setTimeout` of the lab's poll interval (`intervalMs`) fired, in ms. */
  timerLateness: { intervalMs: number; samplesMs: number[] };
}

/** The recorded samples a run draws its timing noise from (see {@link timingNoise}). */
export interface NoiseSamples {
  /** Factors on a password hash's cost (a hash's duration over the median). */
  hashRatios: number[];
  /** Milliseconds from adding a BullMQ job until a worker starts it. */
  handOverMs: number[];
  /** Milliseconds a watcher's timer fires late. */
  timerLatenessMs: number[];
}

/** One draw per event, each a recorded sample picked uniformly (the empirical distribution). */
export interface TimingNoise {
  /** The factor on one password hash's cost (1 without noise). */
  hashRatio(): number;
  /** The delay before one BullMQ job starts, in ms (0 without noise). */
  handOverMs(): number;
  /** How late one watcher timer fires, in ms (0 without noise). */
  timerLatenessMs(): number;
}

/** No timing noise: every hash at its cost, jobs start at once, timers on time. */
export const NO_NOISE: TimingNoise = {
  hashRatio: () => 1,
  handOverMs: () => 0,
  timerLatenessMs: () => 0,
};

/**
 * Draws from recorded samples: each kind on its own stream forked from `random`, so that adding
 * draws of one kind never shifts another's (nor the rest of the world's). `null`: no noise.
 *
 * @example
 * const noise = timingNoise({ hashRatios: [0.9, 1.1], handOverMs: [0.4], timerLatenessMs: [1] }, seededRandom(1));
 * noise.hashRatio(); // 0.9 or 1.1
 */
export function timingNoise(
  samples: NoiseSamples | null,
  random: { fork(label: string): Random },
): TimingNoise {
  if (!samples) return NO_NOISE;
  return {
    hashRatio: picker(samples.hashRatios, random.fork('noise:hash'), 1),
    handOverMs: picker(samples.handOverMs, random.fork('noise:hand-over'), 0),
    timerLatenessMs: picker(samples.timerLatenessMs, random.fork('noise:timer'), 0),
  };
}

/** Picks one of `values` uniformly on each call (`none` when there are none). */
function picker(values: readonly number[], random: Random, none: number): () => number {
  if (values.length === 0) return () => none;
  return () => values[Math.floor(random() * values.length)] as number;
}

/** The samples of a measurement, as a run draws them. */
export function samplesOf(noise: LabNoise): NoiseSamples {
  return {
    hashRatios: noise.hash.ratios,
    handOverMs: noise.handOverMs,
    timerLatenessMs: noise.timerLateness.samplesMs,
  };
}

/** Reads a measurement file (default: the committed one), checking its shape. */
export async function readLabNoise(file: string = LAB_NOISE_FILE): Promise<LabNoise> {
  const noise = JSON.parse(await readFile(file, 'utf8')) as LabNoise;
  const lists = [noise.hash?.ratios, noise.handOverMs, noise.timerLateness?.samplesMs];
  if (!lists.every((list) => Array.isArray(list) && list.every(Number.isFinite))) {
    throw new Error(
      `${file}: not a timing-noise measurement (pnpm sim --measure-noise writes one)`,
    );
  }
  return noise;
}
