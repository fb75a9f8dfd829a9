import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capturedIo } from '@storm-lab/cli-kit';
import { processExists } from '@storm-lab/harness';
import { addGradeJob, type GradeJobData } from '@storm-lab/watcher';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labSettings, labTimes, runCli } from './cli.ts';
import { SimJobs } from './fleet.ts';
import type { LabCosts } from './lab.ts';
import { measureLabNoise, type NoiseProbes, startNoiseProbes } from './lab-noise.ts';
import { readLabRuns } from './lab-record.ts';
import type { LmsCosts, RunQueue } from './lms-host.ts';
import {
  LAB_NOISE_FILE,
  type NoiseSamples,
  readLabNoise,
  samplesOf,
  timingNoise,
} from './noise.ts';
import { scenarioFor } from './presets.ts';
import { seededRandom } from './random.ts';
import { simulateScenario } from './run.ts';
import { serviceClient, testLmsDatabase, testSimLms, timedOn } from './testing.ts';
import { withVirtualClock } from './virtual-clock.ts';

const _logger = pino({ level: 'silent' });

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir() {
  const dir = await mkdtemp(join(tmpdir(), 'lab-noise-test-'));
  dirs.push(dir);
  return dir;
}

async function cli(args: string[], cwd: string) {
  const io = capturedIo();
  const code = await runCli(args, { ...io, cwd });
  return { code, stdout: io.stdout, stderr: io.stderr };
}

// Whole milliseconds: the virtual clock's timers are (fake-timers drops a delay's fraction).
const SAMPLES: NoiseSamples = {
  otherThreads: [1, 0, 3],
  otherThreadsEveryMs: 10,
  handOverMs: [1, 3, 7],
  completionMs: [2, 5],
  roundTripMs: [0.5, 2.25, 4],
  timerLatenessMs: [1, 2],
};

/** No noise but what a test gives. */
const QUIET: NoiseSamples = {
  otherThreads: [1],
  otherThreadsEveryMs: 10,
  handOverMs: [0],
  completionMs: [0],
  roundTripMs: [],
  timerLatenessMs: [0],
};

/** The costs the real lab runs were recorded with (docs/lab-runs.json). */
async function recordedCosts(): Promise<LabCosts> {
  return (await readLabRuns()).costs;
}

describe('timingNoise', () => {
  it("pays a draw's fraction of a millisecond with a later draw (the clock is whole ms)", () => {
    const noise = timingNoise(
      { ...QUIET, handOverMs: [1.5], completionMs: [0.5], timerLatenessMs: [-0.25] },
      seededRandom(1),
    );
    expect(Array.from({ length: 4 }, () => noise.handOverMs())).toEqual([1, 2, 1, 2]);
    expect(Array.from({ length: 4 }, () => noise.completionMs())).toEqual([0, 1, 0, 1]);
    expect(Array.from({ length: 4 }, () => noise.timerLatenessMs())).toEqual([-1, 0, 0, 0]);
  });

  it('draws round trips as recorded (the LMS pays their legs in whole ms); none without', () => {
    const noise = timingNoise(SAMPLES, seededRandom(2));
    const drawn = Array.from({ length: 50 }, () => noise.roundTripMs?.());
    expect(new Set(drawn)).toEqual(new Set(SAMPLES.roundTripMs));
    expect(timingNoise({ ...SAMPLES, roundTripMs: [] }, seededRandom(2)).roundTripMs).toBeNull();
    expect(timingNoise(null, seededRandom(2)).roundTripMs).toBeNull();
  });

  it('picks recorded samples, each kind on its own seeded stream; none without samples', () => {
    const draw = (seed: number) => {
      const noise = timingNoise(SAMPLES, seededRandom(seed));
      return Array.from({ length: 50 }, () => [
        noise.handOverMs(),
        noise.timerLatenessMs(),
        noise.completionMs(),
      ]);
    };
    const drawn = draw(3);
    expect(drawn).toEqual(draw(3));
    expect(drawn).not.toEqual(draw(4));
    expect(new Set(drawn.map(([ms]) => ms))).toEqual(new Set(SAMPLES.handOverMs));
    expect(new Set(drawn.map(([, ms]) => ms))).toEqual(new Set(SAMPLES.timerLatenessMs));
    expect(new Set(drawn.map(([, , ms]) => ms))).toEqual(new Set(SAMPLES.completionMs));
    // Timer draws do not shift hand-over draws.
    const handOversOnly = timingNoise(SAMPLES, seededRandom(3));
    expect(drawn.map(([ms]) => ms)).toEqual(drawn.map(() => handOversOnly.handOverMs()));
    // The run queue is drawn by the hashing pool, step by step.
    const { runQueue } = timingNoise(SAMPLES, seededRandom(3));
    expect([runQueue.others, runQueue.stepMs]).toEqual([SAMPLES.otherThreads, 10]);
    const none = timingNoise(null, seededRandom(3));
    expect([
      none.runQueue.others,
      none.handOverMs(),
      none.completionMs(),
      none.timerLatenessMs(),
    ]).toEqual([[1], 0, 0, 0]);
  });
});

/** Virtual ms one empty get_submission takes against an LMS whose requests cost 1 ms. */
async function pullMs(roundTripMs?: () => number): Promise<number> {
  const db = await testLmsDatabase(1);
  try {
    return await withVirtualClock(async (clock) => {
      const costs = { model: 'workers', workers: 1, iterationNs: 1, requestMs: 1, latencyMs: 10 };
      const lms = testSimLms(db, costs as LmsCosts, roundTripMs ? { roundTripMs } : {});
      const client = serviceClient(lms, 10_000);
      expect((await timedOn(clock, () => client.login())).value).toBe(true);
      const pull = await timedOn(clock, () => client.getSubmission());
      expect(pull.value.kind).toBe('empty');
      return pull.ms;
    });
  } finally {
    db.database.close();
  }
}

/** Virtual ms one login takes against an event-loop LMS hashing on 2 cores beside `runQueue`. */
async function loginMs(runQueue?: RunQueue): Promise<number> {
  const db = await testLmsDatabase(100_000);
  try {
    return await withVirtualClock(async (clock) => {
      // 100,000 iterations at 250 ns: a 25 ms hash on a core of its own.
      const costs: LmsCosts = {
        model: 'event-loop',
        workers: 2,
        threads: 4,
        iterationNs: 250,
        requestMs: 1,
        latencyMs: 1,
      };
      const client = serviceClient(testSimLms(db, costs, runQueue ? { runQueue } : {}), 10_000);
      const login = await timedOn(clock, () => client.login());
      expect(login.value).toBe(true);
      return login.ms;
    });
  } finally {
    db.database.close();
  }
}

/** The cure's grading latency p50 (production ms) in a replay of the lab with `samples`. */
async function cureLatencyMs(samples: NoiseSamples | null): Promise<number> {
  const settings = await labSettings(await recordedCosts(), samples);
  const scenario = await scenarioFor('exempt-username', settings);
  return (await simulateScenario(scenario, settings)).latencyP50Ms as number;
}

describe('timing noise in the simulated world', () => {
  it("shares the hashing cores with the recorded run queue's other threads", async () => {
    const plain = await loginMs();
    // Always one other thread: on the lone hash's core (random 0) it halves the 25 ms hash; on
    // the other core (random 0.99) it takes nothing from it.
    const onCore = (random: number): RunQueue => ({
      others: [0, 1],
      stepMs: 10,
      random: () => random,
    });
    expect((await loginMs(onCore(0))) - plain).toBe(25);
    expect(await loginMs(onCore(0.99))).toBe(plain);
  });

  it("takes a drawn round trip per request, the request's own work inside it", async () => {
    // Without: 10 ms each way and the request's 1 ms.
    expect(await pullMs()).toBe(21);
    // A drawn 7 ms round trip: 3 ms each way around the request's 1 ms.
    expect(await pullMs(() => 7)).toBe(7);
    // A round trip below the request's own work: no time on the wire.
    expect(await pullMs(() => 0.5)).toBe(1);
  });

  it('starts each BullMQ job a drawn recorded hand-over after it was added', async () => {
    const expected = timingNoise(SAMPLES, seededRandom(5));
    const delays: number[] = [];
    await withVirtualClock(async (clock) => {
      const noise = timingNoise(SAMPLES, seededRandom(5));
      const jobs = new SimJobs({ concurrency: 1, jobLockMs: 60_000, noise }, () => undefined);
      let startedAt: number | null = null;
      const replica = {
        alive: true,
        processor: (async () => {
          startedAt = Date.now();
          return { outcome: 'correct', score: 1, result: { correct: true, score: 1, msg: '' } };
        }) as never,
      };
      jobs.startWorkers(replica, ['q']);
      for (let index = 0; index < 20; index++) {
        startedAt = null;
        const added = Date.now();
        await addGradeJob(jobs.queueFor('q'), `job-${index}`, {
          submissionId: index,
        } as GradeJobData);
        while (startedAt === null) await clock.next();
        delays.push((startedAt as number) - added);
        // The worker is free again once its job's answer settled.
        await clock.advance(100);
      }
    });
    const drawn = delays.map(() => expected.handOverMs());
    expect(delays).toEqual(drawn);
    expect(new Set(delays).size).toBeGreaterThan(1);
  });

  it("fires the watcher's timers a drawn recorded lateness late", async () => {
    const late = { ...QUIET, timerLatenessMs: [50] };
    // A submission waits for a poll's sleep, then its grading's: both fire 50 ms late.
    expect(await cureLatencyMs(late)).toBeGreaterThanOrEqual((await cureLatencyMs(null)) + 50);
  });

  it("grades upstream's way through a job: its hand-over before, its completion after", async () => {
    const quiet = await cureLatencyMs(QUIET);
    const slow = await cureLatencyMs({ ...QUIET, handOverMs: [20], completionMs: [30] });
    // 50 virtual ms between a pull and its put_result: 100 production ms at the lab's 2x (more
    // where the longer cycles also move the connections' polls away from the submissions).
    expect(slow - quiet).toBeGreaterThanOrEqual(100);
  });

  it('with --lab noise: the same seed gives the same figures, another seed others', async () => {
    const costs = await recordedCosts();
    const noise = samplesOf(await readLabNoise());
    const run = async (seed: number, samples: NoiseSamples | null) => {
      const settings = { ...(await labSettings(costs, samples)), seed };
      const scenario = await scenarioFor('storm-hardened-watcher', settings);
      return JSON.stringify(await simulateScenario(scenario, settings));
    };
    const first = await run(1, noise);
    expect(await run(1, noise)).toBe(first);
    expect(await run(2, noise)).not.toBe(first);
    // Without noise nothing in the lab's replay draws on chance: seeds give the same run.
    expect(await run(2, null)).toBe(await run(1, null));
  });

  it("--noise FILE (from the caller's directory): byte-identical report.json for one seed, another for another seed", async () => {
    const args = [
      '--scenario',
      'storm-hardened-watcher',
      '--duration',
      '10',
      '--drain',
      '10',
      '--noise',
      'noise.json',
    ];
    const report = async (seed: number) => {
      const dir = await tempDir();
      await copyFile(LAB_NOISE_FILE, join(dir, 'noise.json'));
      const result = await cli([...args, '--seed', String(seed), '--out', dir], dir);
      expect(result.code, result.stderr).toBe(0);
      return readFile(join(dir, 'report.json'), 'utf8');
    };
    const first = await report(7);
    expect(await report(7)).toBe(first);
    expect(await report(8)).not.toBe(first);
  });

  it("--lab: the report's note gives the iterations the replay hashes", async () => {
    const dir = await tempDir();
    const result = await cli(['--lab', '--scenario', 'exempt-username', '--out', dir], dir);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as {
      compressionNote: string;
    };
    const iterations = labTimes().iterations.toLocaleString('en-US');
    expect(report.compressionNote).toContain(`PBKDF2 iterations 1,000,000 -> ${iterations}`);
  });
});

/**
 * A stand-in for `pnpm storm`: it starts a stand-in LMS (its command line as the harness starts
 * the LMS's server) that hashes without a pause, prints progress once that hashes, and ends with
 * `code` after `ms` (never, without). `pidsFile` gets its pid and its LMS's.
 */
function standInStorm(options: { pidsFile?: string; code?: number; ms?: number }): string[] {
  const hashing = `const { pbkdf2 } = require('node:crypto');
    const hash = () => pbkdf2('password', 'salt', 100000, 32, 'sha256', hash);
    hash();
    console.log('hashing');
    setInterval(() => {}, 1000);`;
  const storm = `const { spawn } = require('node:child_process');
    const lms = spawn(process.execPath, ['-e', ${JSON.stringify(hashing)}, 'src/cli.ts', 'serve'],
      { stdio: ['ignore', 'pipe', 'ignore'] });
    ${options.pidsFile ? `require('node:fs').writeFileSync(${JSON.stringify(options.pidsFile)}, process.pid + ' ' + lms.pid);` : ''}
    lms.stdout.once('data', () => {
      console.log('progress');
      setInterval(() => console.log('progress'), 50);
      ${options.ms === undefined ? '' : `setTimeout(() => process.exit(${options.code ?? 0}), ${options.ms});`}
    });`;
  return [process.execPath, '-e', storm];
}

describe('pnpm sim --measure-noise', () => {
  // One private Redis and LMS for the measurements below (the CLI's own starts and stops its own).
  let probes: NoiseProbes;
  beforeAll(async () => {
    probes = await startNoiseProbes();
  });
  afterAll(() => probes?.close());

  it('writes a well-formed file of raw samples (a private Redis, no storm beside)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'noise.json');
    const result = await cli(['--measure-noise', '--samples', '4', '--out', file], dir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(file);
    const noise = await readLabNoise(file);
    expect(Date.parse(noise.measured)).not.toBeNaN();
    expect(noise.beside).toContain('no pnpm storm');
    expect(noise.cpus).toBeGreaterThan(0);
    expect(Number.isFinite(noise.loadAverage.start)).toBe(true);
    expect(Number.isFinite(noise.loadAverage.end)).toBe(true);
    const { pollIntervalMs } = labTimes();
    // No LMS ran: every run-queue sample counts as one while nothing hashed.
    expect(noise.runQueue.whileHashing).toEqual([]);
    expect(noise.runQueue.otherwise.reduce((sum, count) => sum + count, 0)).toBeGreaterThan(0);
    for (const samples of [noise.handOverMs, noise.completionMs, noise.roundTripMs]) {
      expect(samples).toHaveLength(4);
      for (const ms of samples) expect(ms).toBeGreaterThan(0);
    }
    expect(noise.timerLateness.intervalMs).toBe(pollIntervalMs);
    expect(noise.timerLateness.samplesMs).toHaveLength(4);
    // A timer fires at most a millisecond early (libuv's clock), never before that.
    for (const ms of noise.timerLateness.samplesMs) expect(ms).toBeGreaterThan(-1.5);
  });

  it('refuses --beside-storm without --measure-noise, and --noise with --map', async () => {
    const result = await cli(['--beside-storm'], await tempDir());
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--beside-storm goes with --measure-noise');
    const map = await cli(['--map', '--noise', 'none'], await tempDir());
    expect(map.code).toBe(2);
    expect(map.stderr).toContain('--noise is not offered with --faults or --map');
  });

  it('measures beside a process group it stops by its id at the end (a stand-in storm)', async () => {
    const dir = await tempDir();
    const pids = join(dir, 'pids');
    const noise = await measureLabNoise({
      pollIntervalMs: 20,
      samples: 3,
      besideStorm: true,
      probes,
      besideCommand: standInStorm({ pidsFile: pids }),
    });
    expect(noise.beside).toContain('while it ran');
    expect(noise.handOverMs).toHaveLength(3);
    // The stand-in LMS hashed all along: the run queue was sampled while it did.
    expect(noise.runQueue.whileHashing.reduce((sum, count) => sum + count, 0)).toBeGreaterThan(0);
    const [parent, child] = (await readFile(pids, 'utf8')).split(' ').map(Number);
    expect([processExists(parent as number), processExists(child as number)]).toEqual([
      false,
      false,
    ]);
  });

  it('takes rounds until the storm beside ends, and fails when it failed or ended too soon', async () => {
    const options = { pollIntervalMs: 20, samples: 10_000 };
    const noise = await measureLabNoise({
      ...options,
      besideStorm: true,
      probes,
      besideCommand: standInStorm({ code: 0, ms: 1500 }),
      minimumRounds: 2,
    });
    const rounds = noise.handOverMs.length;
    expect(rounds).toBeGreaterThanOrEqual(2);
    expect(rounds).toBeLessThan(options.samples);
    expect(noise.timerLateness.samplesMs).toHaveLength(rounds);
    await expect(
      measureLabNoise({
        ...options,
        besideStorm: true,
        probes,
        besideCommand: standInStorm({ code: 3, ms: 300 }),
      }),
    ).rejects.toThrow(/failed \(3\)/);
    await expect(
      measureLabNoise({
        ...options,
        besideStorm: true,
        probes,
        besideCommand: standInStorm({ code: 0, ms: 100 }),
      }),
    ).rejects.toThrow(/fewer than 20: too few samples/);
  });

  it("fails when no sample saw the storm's LMS hash", async () => {
    const noLms = [process.execPath, '-e', "console.log('progress'); setTimeout(() => {}, 1500);"];
    await expect(
      measureLabNoise({
        pollIntervalMs: 20,
        samples: 3,
        besideStorm: true,
        probes,
        besideCommand: noLms,
      }),
    ).rejects.toThrow(/no sample saw its LMS hash/);
  });
});
