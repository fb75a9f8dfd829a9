// The sampler's cadence on a controlled clock (vitest's fake timers): a sample is started every
// 250 ms, or at once when a read took longer. The real-process run (cli.test.ts) checks only that
// samples cover the run; how many fit in a second there is the machine's.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Counters } from '../sampler.ts';
import { NO_COUNTS, Sampling } from './sampling.ts';

const START = 1_000_000;

/** A sampling whose every read takes `readMs` of the controlled clock and counts one more login. */
function sampling(readMs: number, fail: (call: number) => boolean = () => false) {
  let calls = 0;
  const read = async (): Promise<{ counters: Counters; alive: number }> => {
    calls += 1;
    const call = calls;
    if (readMs > 0) await new Promise((resolve) => setTimeout(resolve, readMs));
    if (fail(call)) throw new Error(`read ${call} failed`);
    return { counters: { ...NO_COUNTS, logins: call }, alive: 4 };
  };
  return Sampling.start({
    lmsUrl: 'http://unused.invalid',
    serviceUsername: 'xqueue_svc',
    base: NO_COUNTS,
    fleet: { metricsUrls: [], restarts: 0 },
    submitted: () => 0,
    startedAt: START,
    read,
  });
}

const times = (run: Sampling) => run.samples.map((sample) => sample.t);

/** Stops `run`, letting the clock run on while a read in flight finishes. */
async function stop(run: Sampling) {
  const stopped = run.stop();
  await vi.advanceTimersByTimeAsync(1_000);
  await stopped;
}

describe('Sampling cadence', { timeout: 5_000 }, () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: START });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts a sample every 250 ms when reads are instant: four a second', async () => {
    const run = sampling(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(times(run)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(run.samples).toHaveLength(9);
    await stop(run);
  });

  it('counts the 250 ms from the start of the previous read, not its end', async () => {
    const run = sampling(100);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(times(run)).toEqual([0.1, 0.35, 0.6, 0.85]);
    await stop(run);
  });

  it('starts the next sample at once when a read took longer than 250 ms', async () => {
    const run = sampling(400);
    await vi.advanceTimersByTimeAsync(1_200);
    expect(times(run)).toEqual([0.4, 0.8, 1.2]);
    await stop(run);
  });

  it('keeps sampling after a failed read, which leaves no sample', async () => {
    const run = sampling(0, (call) => call === 2);
    await vi.advanceTimersByTimeAsync(750);
    expect(times(run)).toEqual([0, 0.5, 0.75]);
    expect(run.samples.map((sample) => sample.logins)).toEqual([1, 3, 4]);
    await stop(run);
  });

  it('takes no sample after stop, and finish takes one last sample at once', async () => {
    const run = sampling(0);
    await vi.advanceTimersByTimeAsync(600);
    await stop(run);
    expect(times(run)).toEqual([0, 0.25, 0.5]);
    const counters = await run.finish();
    expect(times(run)).toEqual([0, 0.25, 0.5, 1.6]);
    expect(counters).toEqual({ ...NO_COUNTS, logins: 4 });
    expect(run.last).toEqual(counters);
  });
});
