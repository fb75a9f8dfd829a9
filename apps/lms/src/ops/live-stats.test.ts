import { describe, expect, it } from 'vitest';
import { createTestClock } from '../testing/fixtures.ts';
import { createLiveStats, mergeSeries } from './live-stats.ts';

describe('createLiveStats', () => {
  it('counts per second and ends at the last complete second', () => {
    const clock = createTestClock(10_000_000);
    const live = createLiveStats({ now: clock.now });
    live.count('logins');
    live.count('evictions', 3);
    clock.advance(1000);
    live.count('logins', 2);
    live.count('forbidden');
    const before = live.series(3);
    expect(before.t).toEqual([9998, 9999, 10_000]);
    expect(before.logins).toEqual([0, 0, 1]);
    expect(before.evictions).toEqual([0, 0, 3]);
    clock.advance(1000);
    const after = live.series(3);
    expect(after.t).toEqual([9999, 10_000, 10_001]);
    expect(after.logins).toEqual([0, 1, 2]);
    expect(after.forbidden).toEqual([0, 0, 1]);
    expect(after.graded).toEqual([0, 0, 0]);
  });

  it('averages the grading latency of each second and leaves other seconds empty', () => {
    const clock = createTestClock(0);
    const live = createLiveStats({ now: clock.now });
    live.observeLatency(1);
    live.observeLatency(3);
    clock.advance(2000);
    expect(live.series(2).latencySeconds).toEqual([2, null]);
  });

  it('keeps queue samples per queue, null where nobody looked', () => {
    const clock = createTestClock(0);
    const live = createLiveStats({ now: clock.now });
    live.sampleQueues([{ queue: 'b', length: 4 }]);
    clock.advance(2000);
    live.sampleQueues([
      { queue: 'a', length: 1 },
      { queue: 'b', length: 2 },
    ]);
    clock.advance(1000);
    expect(live.series(3).queues).toEqual({ a: [null, null, 1], b: [4, null, 2] });
  });

  it('keeps a queue named like an Object.prototype member (__proto__, constructor) as its own series', () => {
    const clock = createTestClock(0);
    const live = createLiveStats({ now: clock.now });
    live.sampleQueues([
      { queue: '__proto__', length: 3 },
      { queue: 'constructor', length: 5 },
    ]);
    clock.advance(1000);
    const { queues } = live.series(1);
    expect(Object.entries(queues)).toEqual([
      ['__proto__', [3]],
      ['constructor', [5]],
    ]);
    // What the dashboard reads: the JSON of the series.
    expect(JSON.parse(JSON.stringify(queues))).toEqual(
      JSON.parse('{"__proto__":[3],"constructor":[5]}'),
    );
  });

  it('forgets seconds older than its capacity, so memory stays bounded', () => {
    const clock = createTestClock(0);
    const live = createLiveStats({ now: clock.now, capacitySeconds: 10 });
    live.count('graded', 5);
    clock.advance(10_000);
    live.count('graded', 1);
    clock.advance(1000);
    const series = live.series(100);
    expect(series.t).toHaveLength(9);
    expect(series.graded.reduce((sum, value) => sum + value, 0)).toBe(1);
  });
});

describe('mergeSeries (LMS_WORKERS > 1: the dashboard of the whole LMS)', () => {
  it("adds up the workers' seconds asked for the same moment, latency weighted by graded results", () => {
    const clock = createTestClock(5_000);
    const [one, two] = [createLiveStats({ now: clock.now }), createLiveStats({ now: clock.now })];
    one.count('logins', 2);
    one.count('graded');
    one.observeLatency(4);
    two.count('logins');
    two.count('evictions');
    two.count('graded', 3);
    for (const seconds of [1, 1, 1]) two.observeLatency(seconds);
    one.sampleQueues([{ queue: 'q', length: 7 }]);
    clock.advance(1000);
    two.sampleQueues([{ queue: 'q', length: 6 }]);
    const at = clock.now() + 1000;
    const merged = mergeSeries([one.series(2, at), two.series(2, at)]);
    expect(merged).toEqual({
      t: [5, 6],
      logins: [3, 0],
      forbidden: [0, 0],
      evictions: [1, 0],
      graded: [4, 0],
      latencySeconds: [(4 + 3 * 1) / 4, null],
      queues: { q: [7, 6] },
    });
  });

  it('merges queues named __proto__ and constructor, also after the series crossed IPC as JSON', () => {
    const clock = createTestClock(5_000);
    const [one, two] = [createLiveStats({ now: clock.now }), createLiveStats({ now: clock.now })];
    one.sampleQueues([{ queue: '__proto__', length: 2 }]);
    two.sampleQueues([{ queue: 'constructor', length: 4 }]);
    const at = clock.now() + 1000;
    const viaIpc = (series: ReturnType<typeof one.series>) =>
      JSON.parse(JSON.stringify(series)) as typeof series;
    const merged = mergeSeries([viaIpc(one.series(1, at)), viaIpc(two.series(1, at))]);
    expect(Object.entries(merged.queues)).toEqual([
      ['__proto__', [2]],
      ['constructor', [4]],
    ]);
  });

  it('refuses series of different seconds', () => {
    const clock = createTestClock(5_000);
    const live = createLiveStats({ now: clock.now });
    expect(() => mergeSeries([live.series(2), live.series(2, 9_000)])).toThrow(/different seconds/);
    expect(() => mergeSeries([])).toThrow(/at least one/);
  });
});
