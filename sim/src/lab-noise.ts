import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { processExists, startLms, startRedis, waitFor } from '@storm-lab/harness';
import { SEED_DEFAULTS } from '@storm-lab/lms';
import { XQueueClient } from '@storm-lab/lms-client';
import {
  addGradeJob,
  type GradeJobData,
  type GradeJobResult,
  gradeQueueName,
} from '@storm-lab/watcher';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { pino } from 'pino';
import { REPO_ROOT } from './lab-record.ts';
import type { LabNoise } from './noise.ts';
import { RunQueueSampler } from './run-queue.ts';

export interface LabNoiseOptions {
  /** The lab's poll interval, in ms: the timers measured. */
  pollIntervalMs: number;
  /** Rounds of samples (default 200); beside a storm, the most taken while it runs (default 2000). */
  samples?: number;
  /**
   * Runs `pnpm -s storm --out <tmpdir>` (the default comparison) beside the measurement, which
   * starts once the storm prints its progress and takes rounds until the storm ends.
   */
  besideStorm?: boolean;
  /** What runs as the storm beside (default `pnpm -s storm --out <tmpdir>`); tests stand in. */
  besideCommand?: readonly string[];
  /** Beside a storm, the fewest rounds a measurement must take (default 20). */
  minimumRounds?: number;
  /**
   * The private processes the rounds are taken on (see {@link startNoiseProbes}); default: started
   * for this measurement and stopped at its end. Tests share one between measurements.
   */
  probes?: NoiseProbes;
  /** Progress lines. */
  onProgress?(line: string): void;
}

/** The private processes a measurement takes its rounds on, and how to stop them. */
export interface NoiseProbes {
  jobs: JobRounds;
  requests: RoundTrips;
  /** Their pids: left out of the run queue with this process. */
  pids(): number[];
  close(): Promise<void>;
}

/**
 * Starts what the rounds are taken on: a private redis-server with a waiting BullMQ Worker and a
 * QueueEvents, and a private LMS process with an xqueue client logged in.
 */
export async function startNoiseProbes(): Promise<NoiseProbes> {
  const [jobs, requests] = await allStarted<[JobRounds, RoundTrips]>([jobRounds(), roundTrips()]);
  return {
    jobs,
    requests,
    pids: () => [jobs.pid, requests.pid],
    close: async () => {
      await Promise.all([jobs.close(), requests.close()]);
    },
  };
}

/**
 * Measures, on real time on this machine, the timing noise a replay of `pnpm storm` lacks: the
 * run queue every 10 ms (how many threads were runnable besides the lab LMS's hashing threads:
 * what its PBKDF2 shares the cores with; see {@link RunQueueSampler}), and, in rounds, BullMQ's
 * hand-over from the watcher's `addGradeJob` to a Worker and the job's completion reaching a
 * `waitUntilFinished` (a private redis-server), an HTTP round trip to a real LMS process (the
 * harness's, seeded with one empty queue), and the lateness of a timer of the lab's poll
 * interval; the private processes are left out of the run queue with this one. One thing at a
 * time, so the measurement itself takes little of the machine. Beside a real `pnpm storm`,
 * rounds go on until the storm ends, so they sample every part of its run.
 */
export async function measureLabNoise(options: LabNoiseOptions): Promise<LabNoise> {
  const samples = options.samples ?? (options.besideStorm ? 2000 : 200);
  const say = options.onProgress ?? (() => undefined);
  const probes = options.probes ?? (await startNoiseProbes());
  const closeProbes = () => (options.probes ? undefined : probes.close());
  const { jobs, requests } = probes;
  // Once they are ready, so that the rounds start at the storm's first progress.
  const storm = options.besideStorm
    ? await startBeside(say, options.besideCommand).catch(async (error: unknown) => {
        await closeProbes();
        throw error;
      })
    : null;
  const runQueue = new RunQueueSampler({
    ...(storm?.child.pid !== undefined && { root: storm.child.pid }),
    own: () => probes.pids(),
  });
  try {
    const start = loadavg()[0] as number;
    runQueue.start();
    const handOverMs: number[] = [];
    const completionMs: number[] = [];
    const roundTripMs: number[] = [];
    const lateness: number[] = [];
    while (handOverMs.length < samples && !(storm && ended(storm.child))) {
      const job = await jobs.next();
      handOverMs.push(job.handOverMs);
      completionMs.push(job.completionMs);
      roundTripMs.push(await requests.next());
      lateness.push(await timerLateness(options.pollIntervalMs));
      if (handOverMs.length % 50 === 0) say(`${handOverMs.length} rounds`);
    }
    const counts = runQueue.stop();
    const end = loadavg()[0] as number;
    if (storm) besideEnded(storm, handOverMs.length, options.minimumRounds ?? 20);
    if (storm && !counts.whileHashing.some((count) => count > 0)) {
      throw new Error(`${storm.label}: no sample saw its LMS hash (is its LMS the harness's?)`);
    }
    return {
      measured: new Date().toISOString(),
      cpus: cpus().length,
      loadAverage: { start, end },
      beside: storm
        ? `${storm.label}: every round while it ran (from its first progress to its end)`
        : 'no pnpm storm (a quiet measurement: only what else ran on the machine, see loadAverage)',
      runQueue: counts,
      handOverMs: handOverMs.map((ms) => round(ms)),
      completionMs: completionMs.map((ms) => round(ms)),
      roundTripMs: roundTripMs.map((ms) => round(ms)),
      timerLateness: {
        intervalMs: options.pollIntervalMs,
        samplesMs: lateness.map((ms) => round(ms)),
      },
    };
  } finally {
    runQueue.stop();
    await Promise.all([closeProbes(), storm?.close()]);
  }
}

interface Closable {
  close(): Promise<void>;
}

/** All of what was started, or (one failed) the others closed again and its error thrown. */
async function allStarted<T extends readonly Closable[]>(
  starting: {
    [K in keyof T]: Promise<T[K]>;
  },
): Promise<T> {
  const settled = await Promise.allSettled(starting);
  const failed = settled.find((one) => one.status === 'rejected');
  if (!failed) return settled.map((one) => (one as PromiseFulfilledResult<unknown>).value) as never;
  await Promise.all(
    settled.map((one) => (one.status === 'fulfilled' ? one.value.close() : undefined)),
  );
  throw failed.reason;
}

/** Writes a measurement as the committed file's layout (2-space JSON, one value a line). */
export async function writeLabNoise(file: string, noise: LabNoise): Promise<void> {
  await writeFile(file, `${JSON.stringify(noise, null, 2)}\n`);
}

function round(value: number, digits = 3): number {
  return Number(value.toFixed(digits));
}

// Between one job's end and the next add: the worker is blocked on Redis again, as it waits
// between the lab's pulls (about four a second).
const JOB_GAP_MS = 20;

/** A private redis-server, a BullMQ Worker waiting on it, and one timed job at a time. */
export interface JobRounds extends Closable {
  /**
   * Adds a job through the watcher's `addGradeJob` and waits on it as a connection of the lab's
   * watcher in upstream's mode does (`waitUntilFinished` on a QueueEvents): ms from the call
   * until its processor starts, and from the processor's end until the wait resolves.
   */
  next(): Promise<{ handOverMs: number; completionMs: number }>;
  /** The redis-server's pid. */
  pid: number;
}

/**
 * Readies a queue, a waiting worker and a QueueEvents, and warms them up (the worker's first
 * fetch is not a hand-over the lab's pulls see). Each `next` adds a job once the previous one
 * finished and the worker waits again.
 */
async function jobRounds(): Promise<JobRounds> {
  const redis = await startRedis();
  const bull = { connection: { host: '127.0.0.1', port: redis.port }, prefix: 'noise' };
  const name = gradeQueueName('noise');
  const queue = new Queue<GradeJobData, GradeJobResult>(name, bull);
  const events = new QueueEvents(name, bull);
  const times = new Map<string, { started?: number; ended?: number }>();
  const worker = new Worker<GradeJobData, GradeJobResult>(
    name,
    async (job) => {
      const at = times.get(job.id as string);
      if (at) at.started = performance.now();
      // It ends as it returns: BullMQ then marks the job done and publishes that.
      if (at) at.ended = performance.now();
      return { outcome: 'correct', score: 1, result: { correct: true, score: 1, msg: '' } };
    },
    { ...bull, concurrency: 1 },
  );
  let index = 0;
  const next = async () => {
    index += 1;
    const jobId = `noise-${index}`;
    const at: { started?: number; ended?: number } = {};
    times.set(jobId, at);
    const added = performance.now();
    const { job } = await addGradeJob(queue, jobId, jobData(index));
    await job.waitUntilFinished(events, 10_000);
    const finished = performance.now();
    times.delete(jobId);
    if (at.started === undefined || at.ended === undefined) {
      throw new Error(`job ${jobId} finished without its processor's times`);
    }
    await new Promise((resolve) => setTimeout(resolve, JOB_GAP_MS));
    return { handOverMs: at.started - added, completionMs: finished - at.ended };
  };
  const close = async () => {
    await worker.close();
    await events.close();
    await queue.close();
    await redis.stop();
  };
  try {
    await Promise.all([worker.waitUntilReady(), events.waitUntilReady()]);
    await next();
  } catch (error) {
    await close();
    throw error;
  }
  return { next, close, pid: redis.process.pid };
}

/** A real LMS process and a logged-in xqueue client of it: one timed request at a time. */
export interface RoundTrips extends Closable {
  /** One get_submission of the empty queue: ms from the call until its answer is read. */
  next(): Promise<number>;
  /** The LMS server's pid. */
  pid: number;
}

const ROUND_TRIP_QUEUE = 'noise';

/**
 * Starts the LMS as the lab does (the harness's `startLms`, its own database, a cheap hash for
 * the one login) and logs one `XQueueClient` in as the service account, as a watcher's
 * connection; the first request, which opens the connection, is left out.
 */
async function roundTrips(): Promise<RoundTrips> {
  const lms = await startLms({
    env: { PASSWORD_HASH_ITERATIONS: '1000' },
    seed: ['--queues', ROUND_TRIP_QUEUE, '--students', '1'],
  });
  const client = new XQueueClient({
    serverUrl: lms.url,
    queue: ROUND_TRIP_QUEUE,
    username: SEED_DEFAULTS.serviceUsername,
    password: SEED_DEFAULTS.servicePassword,
    mode: 'current',
    instanceId: null,
    requestsTimeoutMs: 10_000,
    logger: pino({ level: 'silent' }),
    now: Date.now,
  });
  const next = async () => {
    const started = performance.now();
    const pulled = await client.getSubmission();
    const ms = performance.now() - started;
    if (pulled.kind !== 'empty') {
      throw new Error(`get_submission of an empty queue gave ${pulled.kind}, not empty`);
    }
    return ms;
  };
  const close = () => lms.stop();
  try {
    if (!(await client.login())) throw new Error('the service account could not log in');
    await next();
  } catch (error) {
    await close();
    throw error;
  }
  return { next, close, pid: lms.process.pid };
}

function jobData(index: number): GradeJobData {
  return {
    queue: 'noise',
    submissionId: index,
    xqueueHeader: JSON.stringify({ submission_id: index, submission_key: `k${index}` }),
    content: '{}',
    pulledAtMs: Date.now(),
    pulledBy: 'noise/0',
    handlers: [],
    serverUrl: 'http://127.0.0.1:1',
    postResult: true,
  };
}

/** How late one timer of `intervalMs` fires: when it fired, less when it was due. */
function timerLateness(intervalMs: number): Promise<number> {
  return new Promise<number>((resolve) => {
    const due = performance.now() + intervalMs;
    setTimeout(() => resolve(performance.now() - due), intervalMs);
  });
}

/** A process group started beside the measurement, and the folder its report goes to. */
interface Beside extends Closable {
  child: ChildProcess;
  outDir: string;
  /** What it is, for the file. */
  label: string;
}

const ended = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/**
 * Once the rounds stop beside a storm: it must have ended by itself with success (its report
 * is not needed, only that it ran as a user runs it), after enough rounds to say something.
 */
function besideEnded(storm: Beside, rounds: number, minimum: number): void {
  if (!ended(storm.child)) return; // the rounds ran out first: stopped below
  if (storm.child.exitCode !== 0) {
    throw new Error(`${storm.label} failed (${storm.child.exitCode ?? storm.child.signalCode})`);
  }
  if (rounds < minimum) {
    throw new Error(
      `${storm.label} ended after ${rounds} rounds, fewer than ${minimum}: too few samples`,
    );
  }
}

/**
 * Starts `command` (default `pnpm -s storm --out <tmpdir>`) in a process group of its own (so the
 * storm's LMS, watchers and Redis stop with it) and resolves once it prints its first progress.
 */
async function startBeside(
  say: (line: string) => void,
  command: readonly string[] | undefined,
): Promise<Beside> {
  const outDir = await mkdtemp(join(tmpdir(), 'lab-noise-storm-'));
  const [file, ...args] = command ?? ['pnpm', '-s', 'storm', '--out', outDir];
  const child = spawn(file as string, args, {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  child.on('error', () => undefined);
  const label = command ? command.join(' ') : 'pnpm -s storm (the default comparison)';
  const beside: Beside = { child, outDir, label, close: () => stopBeside(beside) };
  let printed = false;
  child.stdout?.on('data', () => {
    printed = true;
  });
  say(`${[file, ...args].join(' ')} started (pid ${child.pid}), waiting for its progress`);
  try {
    if (child.pid === undefined) throw new Error(`could not start ${file}`);
    await waitFor(() => (printed || ended(child) ? true : undefined), {
      timeoutMs: 120_000,
      intervalMs: 100,
      what: 'the storm to print its progress',
    });
    if (ended(child))
      throw new Error(`the storm ended at once (${child.exitCode ?? child.signalCode})`);
  } catch (error) {
    await stopBeside(beside);
    throw error;
  }
  return beside;
}

/**
 * Stops the group by its id: SIGTERM (the storm runner stops what it started), then SIGKILL for
 * whatever is left after 15 s.
 */
async function stopBeside({ child, outDir }: Beside): Promise<void> {
  const group = child.pid;
  if (group !== undefined && processExists(-group)) {
    process.kill(-group, 'SIGTERM');
    try {
      await waitFor(() => (processExists(-group) ? undefined : true), {
        timeoutMs: 15_000,
        intervalMs: 50,
        what: `process group ${group} to end`,
      });
    } catch {
      if (processExists(-group)) process.kill(-group, 'SIGKILL');
    }
  }
  await rm(outDir, { recursive: true, force: true });
}
