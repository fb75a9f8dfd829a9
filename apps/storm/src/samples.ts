import type { Counters } from './sampler.ts';

/** The state of a run at one moment, every count cumulative since the load started. */
export interface Sample extends Counters {
  /** Seconds since the load started, when the LMS's counters were read. */
  t: number;
  /** Watcher connections whose loop runs, summed over the replicas that answer. */
  alive: number;
  /** Replicas restarted by the supervisor so far. */
  restarts: number;
  /** Submitted so far but not graded. */
  waiting: number;
}

/** Per-second counts (index i is second i+1 since the load started), as in report.json. */
export interface Series {
  seconds: number[];
  logins: number[];
  forbidden: number[];
  graded: number[];
}

type Counted = 'logins' | 'forbidden' | 'graded';

/**
 * Buckets fine samples into whole seconds: each second's count is the change of the cumulative
 * counter between the last samples taken at or before its two ends.
 */
export function perSecond(samples: readonly Sample[]): Series {
  const series: Series = { seconds: [], logins: [], forbidden: [], graded: [] };
  const last = samples.at(-1);
  if (!last) return series;
  const at = (second: number) => samples.findLast((sample) => sample.t <= second) ?? samples[0];
  for (let second = 1; second <= Math.ceil(last.t); second++) {
    const end = second >= last.t ? last : (at(second) as Sample);
    const start = at(second - 1) as Sample;
    series.seconds.push(second);
    for (const key of ['logins', 'forbidden', 'graded'] as const satisfies Counted[]) {
      series[key].push(end[key] - start[key]);
    }
  }
  return series;
}

/**
 * The rate of a cumulative counter at each sample, per second of run, over the trailing
 * `windowSeconds`, or since the previous sample when that is longer ago (the first sample's
 * rate is 0: nothing came before it).
 *
 * @example
 * rateOf([{ t: 0, logins: 0 }, { t: 0.5, logins: 2 }, { t: 1, logins: 6 }], 'logins', 1);
 * // [{ t: 0, rate: 0 }, { t: 0.5, rate: 4 }, { t: 1, rate: 6 }]
 */
export function rateOf(
  samples: readonly Pick<Sample, 't' | Counted>[],
  key: Counted,
  windowSeconds: number,
): { t: number; rate: number }[] {
  return samples.map((sample, index) => {
    // At least the previous sample, so that a gap longer than the window is a rate over the gap.
    let from = Math.max(0, index - 1);
    while (from > 0 && sample.t - (samples[from - 1] as Sample).t <= windowSeconds) from--;
    const start = samples[from] as Sample;
    const span = sample.t - start.t;
    return { t: sample.t, rate: span > 0 ? (sample[key] - start[key]) / span : 0 };
  });
}
