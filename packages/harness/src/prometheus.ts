/** One sample of a Prometheus text exposition: metric name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Parses the Prometheus text format (the subset prom-client writes: no timestamps needed).
 *
 * @example
 * parsePrometheus('lms_logins_total{account="svc",path="xqueue"} 12');
 * // [{ name: 'lms_logins_total', labels: { account: 'svc', path: 'xqueue' }, value: 12 }]
 */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? '').matchAll(LABEL)) {
      labels[label[1] ?? ''] = (label[2] ?? '').replace(/\\(.)/g, (_, char: string) =>
        char === 'n' ? '\n' : char,
      );
    }
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sums the samples of one metric whose labels include every given label. */
export function sumOf(
  samples: readonly Sample[],
  name: string,
  where: Record<string, string> = {},
) {
  let total = 0;
  for (const sample of samples) {
    if (sample.name !== name) continue;
    if (Object.entries(where).every(([key, value]) => sample.labels[key] === value)) {
      total += sample.value;
    }
  }
  return total;
}

/**
 * Sums one metric over the samples whose labels include every given label, straight from the
 * exposition text.
 *
 * @example
 * sumMetric(await (await fetch(`${lms.url}/metrics`)).text(), 'lms_logins_total', { path: 'xqueue' });
 */
export function sumMetric(text: string, name: string, where: Record<string, string> = {}): number {
  return sumOf(parsePrometheus(text), name, where);
}

/**
 * Estimates the q-quantile (0..1) of a Prometheus histogram from its cumulative buckets, as
 * PromQL's `histogram_quantile` does: linear inside the bucket the rank falls in (from 0 for the
 * first bucket); the highest finite bound when the rank falls in `+Inf`. NaN without samples.
 *
 * @example
 * histogramQuantile(parsePrometheus(text), 'lms_session_admission_seconds', 0.99);
 */
export function histogramQuantile(samples: readonly Sample[], name: string, q: number): number {
  const buckets = new Map<number, number>();
  for (const sample of samples) {
    if (sample.name !== `${name}_bucket` || sample.labels.le === undefined) continue;
    const bound = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + sample.value);
  }
  const sorted = [...buckets].sort(([a], [b]) => a - b);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [bound, cumulative] of sorted) {
    if (cumulative >= rank) {
      if (bound === Number.POSITIVE_INFINITY) return lower;
      return lower + ((bound - lower) * (rank - below)) / (cumulative - below || 1);
    }
    lower = bound;
    below = cumulative;
  }
  return lower;
}
