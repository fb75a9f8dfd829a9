import { type ChildProcess, spawn } from 'node:child_process';
import { pbkdf2 } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startRedis, waitFor } from '@storm-lab/harness';
import {
  addGradeJob,
  type GradeJobData,
  type GradeJobResult,
  gradeQueueName,
} from '@storm-lab/watcher';
import { Queue, Worker } from 'bullmq';
import type { LabNoise } from './noise.ts';

const pbkdf2Async = promisify(pbkdf2);

/** The repository's root, where `pnpm -s storm` runs when a measurement runs beside it. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface LabNoiseOptions {
  /** PBKDF2 iterations of one hash: the lab's compressed count. */
  iterations: number;
  /** The lab's poll interval, in ms: the timers measured. */
  pollIntervalMs: number;
  /** Samples of each kind (default 200). */
  samples?: number;
  /**
   * Runs `pnpm -s storm --out <tmpdir>` (the default comparison) beside the measurement, which
   * starts once the storm prints its progress; the storm is stopped at the end.
   */
  besideStorm?: boolean;
  /** What runs as the storm beside (default `pnpm -s storm --out <tmpdir>`); tests stand in. */
  besideCommand?: readonly string[];
  /** Progress lines. */
  onProgress?(line: string): void;
}

/**
 * Measures, on real time on this machine, the timing noise a replay of `pnpm storm` lacks:
 * PBKDF2 durations as the lab's LMS hashes, BullMQ's hand-over from the watcher's `addGradeJob`
 * to a Worker (a private redis-server), and the lateness of the lab's poll-interval timer.
 * Optionally while a real `pnpm storm` runs beside it.
 */
export async function measureLabNoise(options: LabNoiseOptions): Promise<LabNoise> {
  const samples = options.samples ?? 200;
  const say = options.onProgress ?? (() => undefined);
  const storm = options.besideStorm ? await startBeside(say, options.besideCommand) : null;
  try {
    const start = loadavg()[0] as number;
    const concurrency = availableParallelism();
    say(`hashing ${samples} x ${options.iterations} iterations, ${concurrency} at once`);
    const durationsMs = await hashDurations(options.iterations, concurrency, samples);
    say(`adding ${samples} BullMQ jobs`);
    const handOverMs = await handOvers(samples);
    say(`${samples} timers of ${options.pollIntervalMs} ms`);
    const lateness = await timerLateness(options.pollIntervalMs, samples);
    const end = loadavg()[0] as number;
    if (storm && ended(storm.child)) {
      throw new Error(
        `${storm.label} ended before the measurement did: its samples are not all beside it`,
      );
    }
    const medianMs = median(durationsMs);
    return {
      measured: new Date().toISOString(),
      cpus: cpus().length,
      loadAverage: { start, end },
      beside: storm
        ? `${storm.label}, running throughout (measured once it printed its progress)`
        : 'no pnpm storm (a quiet measurement: only what else ran on the machine, see loadAverage)',
      hash: {
        iterations: options.iterations,
        concurrency,
        medianMs: round(medianMs),
        durationsMs: durationsMs.map((ms) => round(ms)),
        ratios: durationsMs.map((ms) => round(ms / medianMs, 4)),
      },
      handOverMs: handOverMs.map((ms) => round(ms)),
      timerLateness: {
        intervalMs: options.pollIntervalMs,
        samplesMs: lateness.map((ms) => round(ms)),
      },
    };
  } finally {
    if (storm) await stopBeside(storm);
  }
}

/** Writes a measurement as the committed file's layout (2-space JSON, one value a line). */
export async function writeLabNoise(file: string, noise: LabNoise): Promise<void> {
  await writeFile(file, `${JSON.stringify(noise, null, 2)}\n`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function round(value: number, digits = 3): number {
  return Number(value.toFixed(digits));
}

/** `count` hashes, `concurrency` in flight at all times, as a burst of logins keeps the pool. */
async function hashDurations(
  iterations: number,
  concurrency: number,
  count: number,
): Promise<number[]> {
  await pbkdf2Async('warm-up', 'salt', iterations, 32, 'sha256');
  const durations: number[] = [];
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started += 1;
      const begin = performance.now();
      await pbkdf2Async(`password-${started}`, 'salt', iterations, 32, 'sha256');
      durations.push(performance.now() - begin);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return durations;
}

// Between one job's end and the next add: the worker is blocked on Redis again, as it waits
// between the lab's pulls (about four a second).
const JOB_GAP_MS = 20;

/**
 * Adds `count` jobs one after another through the watcher's `addGradeJob`, each once the
 * previous one finished and the worker waits again, and times each from the add call until the
 * worker's processor starts it.
 */
async function handOvers(count: number): Promise<number[]> {
  const redis = await startRedis();
  const bull = { connection: { host: '127.0.0.1', port: redis.port }, prefix: 'noise' };
  const name = gradeQueueName('noise');
  const queue = new Queue<GradeJobData, GradeJobResult>(name, bull);
  const started = new Map<string, (at: number) => void>();
  const worker = new Worker<GradeJobData, GradeJobResult>(
    name,
    async (job) => {
      started.get(job.id as string)?.(performance.now());
      return { outcome: 'correct', score: 1, result: { correct: true, score: 1, msg: '' } };
    },
    { ...bull, concurrency: 1 },
  );
  try {
    await worker.waitUntilReady();
    const delays: number[] = [];
    for (let index = 0; index <= count; index++) {
      const jobId = `noise-${index}`;
      const finished = new Promise<void>((resolve) => {
        const onCompleted = (job: { id?: string }) => {
          if (job.id !== jobId) return;
          worker.off('completed', onCompleted);
          resolve();
        };
        worker.on('completed', onCompleted);
      });
      const start = new Promise<number>((resolve) => started.set(jobId, resolve));
      const added = performance.now();
      await addGradeJob(queue, jobId, jobData(index));
      const delay = (await start) - added;
      await finished;
      // The first is a warm-up (the worker's first fetch).
      if (index > 0) delays.push(delay);
      await new Promise((resolve) => setTimeout(resolve, JOB_GAP_MS));
    }
    return delays;
  } finally {
    await worker.close();
    await queue.close();
    await redis.stop();
  }
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

// Timers measured side by side, staggered over one interval, so the measurement takes
// count / CHAINS intervals rather than count.
const CHAINS = 10;

/** `count` timers of `intervalMs`, each's lateness: when it fired, less when it was due. */
async function timerLateness(intervalMs: number, count: number): Promise<number[]> {
  const lateness: number[] = [];
  const chains = Math.min(CHAINS, count);
  let left = count;
  const once = () =>
    new Promise<number>((resolve) => {
      const due = performance.now() + intervalMs;
      setTimeout(() => resolve(performance.now() - due), intervalMs);
    });
  const chain = async (offsetMs: number) => {
    await new Promise((resolve) => setTimeout(resolve, offsetMs));
    while (left > 0) {
      left -= 1;
      lateness.push(await once());
    }
  };
  await Promise.all(
    Array.from({ length: chains }, (_, index) => chain((index * intervalMs) / chains)),
  );
  return lateness;
}

/** A process group started beside the measurement, and the folder its report goes to. */
interface Beside {
  child: ChildProcess;
  outDir: string;
  /** What it is, for the file. */
  label: string;
}

const ended = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

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
  const beside = { child, outDir, label };
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

/** True while any process of the group `id` exists. */
function groupAlive(id: number): boolean {
  try {
    process.kill(-id, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops the group by its id: SIGTERM (the storm runner stops what it started), then SIGKILL for
 * whatever is left after 15 s.
 */
async function stopBeside({ child, outDir }: Beside): Promise<void> {
  const group = child.pid;
  if (group !== undefined && groupAlive(group)) {
    process.kill(-group, 'SIGTERM');
    try {
      await waitFor(() => (groupAlive(group) ? undefined : true), {
        timeoutMs: 15_000,
        intervalMs: 50,
        what: `process group ${group} to end`,
      });
    } catch {
      if (groupAlive(group)) process.kill(-group, 'SIGKILL');
    }
  }
  await rm(outDir, { recursive: true, force: true });
}
