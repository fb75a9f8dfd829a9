import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type RunQueue, ThreadPool } from './lms-host.ts';
import { seededRandom } from './random.ts';
import { serviceClient, testLmsDatabase, testSimLms, timedOn } from './testing.ts';
import { WholeMs, withVirtualClock } from './virtual-clock.ts';

const _logger = pino({ level: 'silent' });

describe('SimLms', () => {
  it('draws each leg of a request from latencyMs +/- latencyJitter, or takes exactly latencyMs', async () => {
    const db = await testLmsDatabase(1000);
    const roundTrips = (latencyJitter: number) =>
      withVirtualClock(async (clock) => {
        const costs = { model: 'workers' as const, workers: 4, iterationNs: 1, requestMs: 0 };
        const lms = testSimLms(db, { ...costs, latencyMs: 10, latencyJitter });
        const fetch = lms.fetchFor({ address: '10.0.0.1' });
        const took: number[] = [];
        for (let index = 0; index < 200; index++) {
          const { value, ms } = await timedOn(clock, () => fetch(`${lms.baseUrl}/healthz`, {}));
          expect(value.status).toBe(200);
          took.push(ms);
        }
        return took;
      });
    const exact = await roundTrips(0);
    expect(new Set(exact)).toEqual(new Set([20]));
    const jittered = await roundTrips(0.5);
    // Two legs of 5 to 15 ms each, whole milliseconds as they add up.
    expect(Math.min(...jittered)).toBeGreaterThanOrEqual(10);
    expect(Math.max(...jittered)).toBeLessThanOrEqual(30);
    expect(new Set(jittered).size).toBeGreaterThan(10);
    const mean = jittered.reduce((sum, ms) => sum + ms, 0) / jittered.length;
    expect(mean).toBeGreaterThan(19);
    expect(mean).toBeLessThan(21);
    db.database.close();
  });

  it('leaves no timer behind once a client has read its answers', async () => {
    const db = await testLmsDatabase(1000);
    const { database } = db;
    await withVirtualClock(async (clock) => {
      const lms = testSimLms(db, {
        model: 'workers',
        workers: 1,
        iterationNs: 250,
        requestMs: 10,
        latencyMs: 1,
      });
      const client = serviceClient(lms, 1000);
      let pulled: unknown = null;
      const pulling = client.getSubmission().then((outcome) => {
        pulled = outcome;
      });
      while (pulled === null) await clock.next();
      await pulling;
      // The login's two requests and the pull: each timeout ends with its answer.
      expect(pulled).toEqual({ kind: 'empty' });
      expect(clock.pendingTimers()).toBe(0);
    });
    database.close();
  });
});

/** When each of `works` (ms of one core), all started at 0, ends on the virtual clock. */
async function ends(cores: number, threads: number, works: number[], runQueue?: RunQueue) {
  return withVirtualClock(async (clock) => {
    const pool = new ThreadPool(cores, threads, runQueue);
    const start = Date.now();
    const at: number[] = works.map(() => -1);
    const all = Promise.all(
      works.map((ms, index) =>
        pool.run(ms).then(() => {
          at[index] = Date.now() - start;
        }),
      ),
    );
    while (at.includes(-1)) await clock.next();
    await all;
    return { at, busyMs: pool.stats.busyMs };
  });
}

describe('ThreadPool (libuv threads on fewer cores)', () => {
  it('shares the cores evenly among the threads that run: four hashes on two cores end together', async () => {
    expect(await ends(2, 4, [50, 50, 50, 50])).toEqual({ at: [100, 100, 100, 100], busyMs: 200 });
  });

  it('with as many threads as cores, runs them in turn at full speed', async () => {
    expect(await ends(2, 2, [50, 50, 50, 50])).toEqual({ at: [50, 50, 100, 100], busyMs: 200 });
  });

  it('starts a waiting task once a thread frees, and a lone task runs at a full core', async () => {
    // Four at half a core end at 80; the fifth then runs alone: 40 ms more.
    expect(await ends(2, 4, [40, 40, 40, 40, 40])).toEqual({
      at: [80, 80, 80, 80, 120],
      busyMs: 200,
    });
    // A short one ends first, and the others speed up.
    expect((await ends(1, 2, [10, 30])).at).toEqual([20, 40]);
  });
});

describe('ThreadPool: a task on its core, beside the run queue', () => {
  it('keeps a task on its core: of three hashes on two cores, the lone one runs at full speed', async () => {
    // The first and third share core 0 at half speed; the second ends at 20 ms alone on core 1,
    // which then takes the third: both finish their last 10 ms alone.
    expect(await ends(2, 4, [20, 20, 20])).toEqual({ at: [30, 20, 30], busyMs: 60 });
  });

  it("shares a core with the other threads drawn onto it, not the others' cores", async () => {
    // Always one other thread: drawn onto core 0 (random 0), it halves the hash there; drawn
    // onto core 1 (random 0.99), the hash on core 0 runs alone.
    const always = (random: number): RunQueue => ({
      others: [0, 1],
      stepMs: 10,
      random: () => random,
    });
    expect(await ends(2, 4, [30], always(0))).toEqual({ at: [60], busyMs: 30 });
    expect(await ends(2, 4, [30], always(0.99))).toEqual({ at: [30], busyMs: 30 });
    expect(() => new ThreadPool(2, 4, { ...always(0), others: [] })).toThrow(/at least one sample/);
    expect(() => new ThreadPool(2, 4, { ...always(0), others: [0, -1] })).toThrow(/histogram/);
  });

  it('draws the other threads afresh every step, from the seed', async () => {
    const seeded = (seed: number): RunQueue => ({
      others: [0, 1],
      stepMs: 10,
      random: seededRandom(seed),
    });
    // One at a time: each run installs the virtual clock.
    const durations: number[] = [];
    for (let seed = 0; seed < 30; seed++) {
      durations.push((await ends(2, 4, [30], seeded(seed))).at[0] as number);
    }
    // Each step the other thread is on the hash's core or not: between 30 and 60 ms, varying.
    for (const ms of durations) expect(ms).toBeGreaterThanOrEqual(30);
    for (const ms of durations) expect(ms).toBeLessThanOrEqual(60);
    expect(new Set(durations).size).toBeGreaterThan(2);
    expect(await ends(2, 4, [30], seeded(3))).toEqual(await ends(2, 4, [30], seeded(3)));
  });
});

describe('WholeMs (sub-millisecond costs on a whole-millisecond clock)', () => {
  it('pays what is owed in whole milliseconds, the same in total', () => {
    const cost = new WholeMs(0.3);
    const paid = Array.from({ length: 10 }, () => cost.next());
    expect(paid).toEqual([0, 0, 0, 1, 0, 0, 1, 0, 0, 1]);
    // A whole cost is paid as it is, every time.
    const whole = new WholeMs(10);
    expect([whole.next(), whole.next()]).toEqual([10, 10]);
    const many = new WholeMs(0.06);
    let total = 0;
    for (let index = 0; index < 1000; index++) total += many.next();
    expect(total).toBe(60);
  });
});
