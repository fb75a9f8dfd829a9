import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SimLms, sharedRates, ThreadPool } from './lms-host.ts';
import { seededRandom } from './random.ts';
import { serviceClient, testLmsDatabase } from './testing.ts';
import { WholeMs, withVirtualClock } from './virtual-clock.ts';

const logger = pino({ level: 'silent' });

describe('SimLms', () => {
  it('leaves no timer behind once a client has read its answers', async () => {
    const { database, config } = await testLmsDatabase(1000);
    await withVirtualClock(async (clock) => {
      const lms = new SimLms({
        database,
        config,
        costs: { model: 'workers', workers: 1, iterationNs: 250, requestMs: 10, latencyMs: 1 },
        faults: { dropResponseRate: 0, hashSlowdown: 1 },
        random: seededRandom(1),
        logger,
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

describe('ThreadPool (libuv threads on fewer cores)', () => {
  /** When each of `works` (ms of one core), all started at 0, ends on the virtual clock. */
  async function ends(cores: number, threads: number, works: number[]) {
    return withVirtualClock(async (clock) => {
      const pool = new ThreadPool(cores, threads);
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

describe('sharedRates (the hashing threads beside the run queue)', () => {
  it("averages a thread's share of the cores over the other threads' histogram", () => {
    // Always one other thread on 2 cores: one hash runs at full speed, two at 2/3, four at 2/5.
    expect(sharedRates(2, 4, [0, 1])).toEqual([1, 1, 2 / 3, 2 / 4, 2 / 5]);
    // Half the time none, half the time three: a lone hash at (1 + 2/4) / 2.
    expect(sharedRates(2, 1, [1, 0, 0, 1])).toEqual([1, 0.75]);
    expect(() => sharedRates(2, 4, [])).toThrow(/at least one sample/);
    expect(() => sharedRates(2, 4, [0, -1, 2])).toThrow(/histogram/);
  });

  it('slows the pool by the others: two hashes on two cores beside one other thread', async () => {
    const { at, busyMs } = await withVirtualClock(async (clock) => {
      const pool = new ThreadPool(2, 4, [0, 1]);
      const start = Date.now();
      const ends: number[] = [];
      const all = Promise.all(
        [30, 30].map((ms) => pool.run(ms).then(() => ends.push(Date.now() - start))),
      );
      while (ends.length < 2) await clock.next();
      await all;
      return { at: ends, busyMs: pool.stats.busyMs };
    });
    // Each at 2/3 of a core: 45 ms; the pool used 2 x 30 ms of the cores.
    expect(at).toEqual([45, 45]);
    expect(busyMs).toBeCloseTo(60, 6);
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
