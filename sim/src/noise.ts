import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { NO_OTHERS, type RunQueue } from './lms-host.ts';
import type { Random } from './random.ts';
import { WholeMs } from './virtual-clock.ts';

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
   * The machine's run queue, sampled every `intervalMs`: how many threads were runnable besides
   * the lab LMS's hashing threads (and the measurement's own), as histograms (index: threads,
   * value: samples), while the LMS hashed and while it did not. The LMS's hashing threads are
   * its runnable threads other than its main one (its event loop counts among the others, as it
   * takes a core from the hashes).
   */
  runQueue: {
    intervalMs: number;
    /** Other runnable threads while at least one of the LMS's hashing threads ran. */
    whileHashing: number[];
    /** Other runnable threads while none did (or no LMS ran: a quiet measurement). */
    otherwise: number[];
  };
  /**
   * BullMQ's hand-over on a private redis-server: from the watcher's `addGradeJob` call until a
   * waiting Worker's processor starts the job, in ms.
   */
  handOverMs: number[];
  /**
   * The same jobs' completion: from the processor's end until `job.waitUntilFinished` (through a
   * QueueEvents, as a connection of the lab's watcher in upstream's mode waits) resolves, in ms.
   */
  completionMs: number[];
  /**
   * HTTP round trips to a real LMS process on this machine (the harness's, as the lab starts
   * it): an authenticated get_submission of an empty queue by an `XQueueClient`, in ms.
   */
  roundTripMs: number[];
  /** How late a `setTimeout` of the lab's poll interval (`intervalMs`) fired, in ms. */
  timerLateness: { intervalMs: number; samplesMs: number[] };
}

/** The recorded samples a run draws its timing noise from (see {@link timingNoise}). */
export interface NoiseSamples {
  /**
   * How many other threads were runnable beside the LMS's hashing ones, as a histogram (index:
   * threads, value: samples): the thread pool's cores are shared with them.
   */
  otherThreads: number[];
  /** How often the run queue was sampled, in ms: each draw of `otherThreads` lasts this long. */
  otherThreadsEveryMs: number;
  /** Milliseconds from adding a BullMQ job until a worker starts it. */
  handOverMs: number[];
  /** Milliseconds from a job's end until the connection waiting on it hears (upstream's mode). */
  completionMs: number[];
  /** Milliseconds of one HTTP request's round trip between a client and the LMS. */
  roundTripMs: number[];
  /** Milliseconds a watcher's timer fires late. */
  timerLatenessMs: number[];
}

/**
 * One draw per event, each a recorded sample picked uniformly (the empirical distribution); the
 * run queue's, one per sampling interval of virtual time (see `ThreadPool`).
 */
export interface TimingNoise {
  /** The other runnable threads, drawn by the hashing pool (none without noise). */
  runQueue: RunQueue;
  /** The delay before one BullMQ job starts, in ms (0 without noise). */
  handOverMs(): number;
  /** The delay from a job's end until the connection waiting on it hears, in ms (0 without). */
  completionMs(): number;
  /**
   * One request's round trip, in ms as recorded (not whole: the LMS pays its legs as they add
   * up); null without noise, when the LMS's fixed latency applies.
   */
  roundTripMs: (() => number) | null;
  /** How late one watcher timer fires, in ms (0 without noise). */
  timerLatenessMs(): number;
}

/** No timing noise: the cores for the LMS alone, jobs start at once, timers on time. */
export const NO_NOISE: TimingNoise = {
  runQueue: NO_OTHERS,
  handOverMs: () => 0,
  completionMs: () => 0,
  roundTripMs: null,
  timerLatenessMs: () => 0,
};

/**
 * Draws from recorded samples: each kind on its own stream forked from `random`, so that adding
 * draws of one kind never shifts another's (nor the rest of the world's). `null`: no noise.
 *
 * @example
 * const samples = { otherThreads: [3, 1], otherThreadsEveryMs: 10, handOverMs: [1, 2], completionMs: [1], roundTripMs: [2.5], timerLatenessMs: [1] };
 * timingNoise(samples, seededRandom(1)).handOverMs(); // 1 or 2
 */
export function timingNoise(
  samples: NoiseSamples | null,
  random: { fork(label: string): Random },
): TimingNoise {
  if (!samples) return NO_NOISE;
  return {
    runQueue: {
      others: samples.otherThreads.some((count) => count > 0) ? samples.otherThreads : [1],
      stepMs: samples.otherThreadsEveryMs,
      random: random.fork('noise:run-queue'),
    },
    handOverMs: picker(samples.handOverMs, random.fork('noise:hand-over'), 0),
    completionMs: picker(samples.completionMs, random.fork('noise:completion'), 0),
    roundTripMs:
      samples.roundTripMs.length > 0
        ? uniform(samples.roundTripMs, random.fork('noise:round-trip'))
        : null,
    timerLatenessMs: picker(samples.timerLatenessMs, random.fork('noise:timer'), 0),
  };
}

/** Picks one of `values` (at least one) uniformly on each call, as recorded. */
function uniform(values: readonly number[], random: Random): () => number {
  return () => values[Math.floor(random() * values.length)] as number;
}

/**
 * Picks one of `values` uniformly on each call (`none` when there are none), in the virtual
 * clock's whole milliseconds as the draws add up (see {@link WholeMs}): a 1.43 ms draw is not
 * cut to 1 ms each time, its fraction is paid with a later draw.
 */
function picker(values: readonly number[], random: Random, none: number): () => number {
  if (values.length === 0) return () => none;
  const draw = uniform(values, random);
  const whole = new WholeMs();
  return () => whole.next(draw());
}

/** The samples of a measurement, as a run draws them. */
export function samplesOf(noise: LabNoise): NoiseSamples {
  return {
    otherThreads: busiest(noise.runQueue),
    otherThreadsEveryMs: noise.runQueue.intervalMs,
    handOverMs: noise.handOverMs,
    completionMs: noise.completionMs,
    roundTripMs: noise.roundTripMs,
    timerLatenessMs: noise.timerLateness.samplesMs,
  };
}

/**
 * The run queue the LMS's hashes met: while they ran, or (a quiet measurement, no LMS) all of it.
 */
function busiest(runQueue: LabNoise['runQueue']): number[] {
  return runQueue.whileHashing.some((count) => count > 0)
    ? runQueue.whileHashing
    : runQueue.otherwise;
}

/** Reads a measurement file (default: the committed one), checking its shape. */
export async function readLabNoise(file: string = LAB_NOISE_FILE): Promise<LabNoise> {
  const noise = JSON.parse(await readFile(file, 'utf8')) as LabNoise;
  const lists = [
    noise.runQueue?.whileHashing,
    noise.runQueue?.otherwise,
    noise.handOverMs,
    noise.completionMs,
    noise.roundTripMs,
    noise.timerLateness?.samplesMs,
  ];
  const every = noise.runQueue?.intervalMs;
  if (
    !lists.every((list) => Array.isArray(list) && list.every(Number.isFinite)) ||
    !(typeof every === 'number' && every > 0)
  ) {
    throw new Error(
      `${file}: not a timing-noise measurement (pnpm sim --measure-noise writes one)`,
    );
  }
  return noise;
}
