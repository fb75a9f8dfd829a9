/** Per-second counters the dashboard charts; each is bumped next to its Prometheus metric. */
export const LIVE_COUNTERS = ['logins', 'forbidden', 'evictions', 'graded'] as const;
export type LiveCounter = (typeof LIVE_COUNTERS)[number];

/** One point per second, oldest first, ending at the last complete second. */
export interface LiveSeries {
  /** Unix seconds (uPlot's time unit). */
  t: number[];
  logins: number[];
  /** 403 answers on `/xqueue/` routes. */
  forbidden: number[];
  evictions: number[];
  graded: number[];
  /** Mean grading latency of the results accepted in that second; null when there were none. */
  latencySeconds: (number | null)[];
  /**
   * Queue length by queue, sampled when someone reads the stats; null where no sample. Built
   * with own properties only (Object.fromEntries), so a queue named `__proto__` is a series too.
   */
  queues: Record<string, (number | null)[]>;
}

/** A small in-memory ring of per-second counters for the live dashboard. */
export interface LiveStats {
  count(counter: LiveCounter, amount?: number): void;
  observeLatency(seconds: number): void;
  /** Records the queue lengths of the current second (the metrics scrape reads the same). */
  sampleQueues(lengths: readonly { queue: string; length: number }[]): void;
  /**
   * The last `seconds` complete seconds before `at` (default now; at most the ring's capacity).
   * Workers asked with the same `at` answer for the same seconds (see mergeSeries).
   */
  series(seconds: number, at?: number): LiveSeries;
}

export interface LiveStatsOptions {
  /** Milliseconds since the epoch: the app's injected clock. */
  now: () => number;
  /** How many seconds the ring keeps (the current one included). Default 900: 15 minutes. */
  capacitySeconds?: number;
}

interface Bucket {
  /** The unix second this bucket holds; a bucket left from an older lap reads as empty. */
  second: number;
  counts: Record<LiveCounter, number>;
  latencySumSeconds: number;
  latencyCount: number;
  queues: Map<string, number> | null;
}

function emptyCounts(): Record<LiveCounter, number> {
  return { logins: 0, forbidden: 0, evictions: 0, graded: 0 };
}

/**
 * Creates the ring. Memory is bounded by the capacity, whatever the load; time comes from the
 * clock it is given, so tests move it by hand.
 *
 * @example
 * const live = createLiveStats({ now: Date.now });
 * live.count('logins');
 * live.series(300).logins; // [0, 0, ..., 1]
 */
export function createLiveStats(options: LiveStatsOptions): LiveStats {
  const capacity = Math.max(1, Math.floor(options.capacitySeconds ?? 900));
  const ring: (Bucket | undefined)[] = new Array(capacity);
  const secondOf = (ms: number) => Math.floor(ms / 1000);

  function bucketAt(second: number): Bucket {
    const slot = second % capacity;
    const found = ring[slot];
    if (found && found.second === second) return found;
    const fresh: Bucket = {
      second,
      counts: emptyCounts(),
      latencySumSeconds: 0,
      latencyCount: 0,
      queues: null,
    };
    ring[slot] = fresh;
    return fresh;
  }

  function peek(second: number): Bucket | undefined {
    const found = ring[second % capacity];
    return found && found.second === second ? found : undefined;
  }

  return {
    count(counter, amount = 1) {
      bucketAt(secondOf(options.now())).counts[counter] += amount;
    },
    observeLatency(seconds) {
      const bucket = bucketAt(secondOf(options.now()));
      bucket.latencySumSeconds += seconds;
      bucket.latencyCount += 1;
    },
    sampleQueues(lengths) {
      const bucket = bucketAt(secondOf(options.now()));
      bucket.queues = new Map(lengths.map(({ queue, length }) => [queue, length]));
    },
    series(seconds, at = options.now()) {
      const span = Math.max(1, Math.min(capacity - 1, Math.floor(seconds)));
      // The current second is still filling; showing it would draw a false dip at the edge.
      const last = secondOf(at) - 1;
      const out: Omit<LiveSeries, 'queues'> = {
        t: [],
        logins: [],
        forbidden: [],
        evictions: [],
        graded: [],
        latencySeconds: [],
      };
      // A Map, not an object: a queue may be named `__proto__` or `constructor`.
      const queues = new Map<string, (number | null)[]>();
      const queueNames = new Set<string>();
      for (let second = last - span + 1; second <= last; second++) {
        for (const name of peek(second)?.queues?.keys() ?? []) queueNames.add(name);
      }
      for (const name of [...queueNames].sort()) queues.set(name, []);
      for (let second = last - span + 1; second <= last; second++) {
        const bucket = peek(second);
        const counts = bucket?.counts ?? emptyCounts();
        out.t.push(second);
        for (const counter of LIVE_COUNTERS) out[counter].push(counts[counter]);
        out.latencySeconds.push(
          bucket && bucket.latencyCount > 0 ? bucket.latencySumSeconds / bucket.latencyCount : null,
        );
        for (const [name, values] of queues) values.push(bucket?.queues?.get(name) ?? null);
      }
      return { ...out, queues: Object.fromEntries(queues) };
    },
  };
}

/**
 * Adds up the series of several workers taken for the same seconds (the same `seconds` and
 * `at`): counts are summed, latency is the mean over every worker's graded results, and a queue
 * length is any worker's sample of that second (they all read one database).
 *
 * @example
 * mergeSeries(await Promise.all(workers.map((worker) => worker.series(300, at))));
 */
export function mergeSeries(parts: readonly LiveSeries[]): LiveSeries {
  const [first] = parts;
  if (first === undefined) throw new Error('mergeSeries needs at least one series');
  const points = first.t.length;
  for (const part of parts) {
    if (part.t.length !== points || part.t[0] !== first.t[0]) {
      throw new Error('mergeSeries: the series cover different seconds');
    }
  }
  const sum = (pick: (part: LiveSeries) => number[]) =>
    Array.from({ length: points }, (_, index) =>
      parts.reduce((total, part) => total + (pick(part)[index] ?? 0), 0),
    );
  const merged: Omit<LiveSeries, 'queues'> = {
    t: [...first.t],
    logins: sum((part) => part.logins),
    forbidden: sum((part) => part.forbidden),
    evictions: sum((part) => part.evictions),
    graded: sum((part) => part.graded),
    latencySeconds: [],
  };
  for (let index = 0; index < points; index++) {
    let weighted = 0;
    let weight = 0;
    for (const part of parts) {
      const latency = part.latencySeconds[index];
      if (latency === null || latency === undefined) continue;
      const graded = Math.max(1, part.graded[index] ?? 0);
      weighted += latency * graded;
      weight += graded;
    }
    merged.latencySeconds.push(weight === 0 ? null : weighted / weight);
  }
  // Own properties only: a queue may be named `__proto__` or `constructor`.
  const ownQueue = (part: LiveSeries, name: string) =>
    Object.hasOwn(part.queues, name) ? part.queues[name] : undefined;
  const names = [...new Set(parts.flatMap((part) => Object.keys(part.queues)))].sort();
  const queues = names.map((name) => [
    name,
    Array.from(
      { length: points },
      (_, index) =>
        parts.map((part) => ownQueue(part, name)?.[index]).find((value) => value != null) ?? null,
    ),
  ]);
  return { ...merged, queues: Object.fromEntries(queues) };
}
