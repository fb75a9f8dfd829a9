import { describe, expect, it } from 'vitest';
import { perSecond, rateOf, type Sample } from './samples.ts';

const sample = (t: number, logins: number, graded = 0): Sample => ({
  t,
  logins,
  forbidden: logins,
  graded,
  evictions: 0,
  stormAlerts: 0,
  alive: 8,
  restarts: 0,
  waiting: 0,
});

describe('perSecond', () => {
  it('counts what happened in each whole second from samples four times a second', () => {
    const samples = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25].map((t, i) =>
      sample(t, i * 2, i),
    );
    expect(perSecond(samples)).toEqual({
      seconds: [1, 2, 3],
      logins: [8, 8, 2],
      forbidden: [8, 8, 2],
      graded: [4, 4, 1],
    });
  });

  it('is empty without samples', () => {
    expect(perSecond([])).toEqual({ seconds: [], logins: [], forbidden: [], graded: [] });
  });
});

describe('rateOf', () => {
  it('is the change over the trailing window, per second', () => {
    const samples = [sample(0, 0), sample(0.5, 2), sample(1, 6), sample(1.5, 6), sample(3, 9)];
    expect(rateOf(samples, 'logins', 1)).toEqual([
      { t: 0, rate: 0 },
      { t: 0.5, rate: 4 },
      { t: 1, rate: 6 },
      { t: 1.5, rate: 4 },
      // A gap longer than the window: the rate over the gap.
      { t: 3, rate: 2 },
    ]);
  });
});
