import type { WatcherFleet } from '@storm-lab/harness';
import { type Counters, readConnectionsAlive, readCounters, since } from '../sampler.ts';
import type { Sample } from '../samples.ts';

/** Four samples per run second: fine enough for a 6 s run's charts to show its shape. */
const SAMPLE_EVERY_MS = 250;

export const NO_COUNTS: Counters = {
  logins: 0,
  forbidden: 0,
  graded: 0,
  evictions: 0,
  stormAlerts: 0,
};

export interface SamplingOptions {
  lmsUrl: string;
  serviceUsername: string;
  /** The LMS's counters before the fleet started; samples count from them. */
  base: Counters;
  fleet: Pick<WatcherFleet, 'metricsUrls' | 'restarts'>;
  /** Submissions made so far (the waiting count is those minus the graded). */
  submitted: () => number;
  /** When the load started: a sample's `t` is seconds since then. */
  startedAt: number;
  /** Called with every sample taken, and its counters alone. */
  onSample?: (sample: Sample, counters: Counters) => void;
  /**
   * Reads the LMS's counters (not yet counted from `base`) and the replicas' live connections;
   * by default over HTTP from `lmsUrl` and the fleet's metrics (a test passes its own).
   */
  read?: () => Promise<{ counters: Counters; alive: number }>;
}

/**
 * The LMS's counters and the replicas' live connections, read about four times a second while
 * a scenario runs, into the samples its charts are drawn from.
 *
 * @example
 * const sampling = Sampling.start({ lmsUrl, serviceUsername, base, fleet, submitted, startedAt });
 * // ... the load ...
 * const counters = await sampling.finish();
 */
export class Sampling {
  readonly samples: Sample[] = [];
  /** The counters of the latest sample. */
  last: Counters = NO_COUNTS;
  private readonly stopping = new AbortController();
  private loop: Promise<void> = Promise.resolve();

  private constructor(private readonly options: SamplingOptions) {}

  static start(options: SamplingOptions): Sampling {
    const sampling = new Sampling(options);
    sampling.loop = sampling.run();
    return sampling;
  }

  /** Stops sampling; resolves once a sample in flight is in. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  /** Stops sampling and takes one last sample (a failure to read it is thrown); its counters. */
  async finish(): Promise<Counters> {
    await this.stop();
    await this.sample();
    return this.last;
  }

  // One sample after another, each started SAMPLE_EVERY_MS after the previous one started (or
  // at once when a read took longer, as it may on an LMS busy hashing a storm's logins).
  private async run(): Promise<void> {
    const { signal } = this.stopping;
    while (!signal.aborted) {
      const next = Date.now() + SAMPLE_EVERY_MS;
      await this.sample().catch(() => undefined);
      const wait = next - Date.now();
      if (wait > 0) await pause(wait, signal);
    }
  }

  private async sample(): Promise<void> {
    const { base, fleet, submitted, startedAt } = this.options;
    const { counters, alive } = await (this.options.read ?? (() => this.readOverHttp()))();
    const now = since(counters, base);
    const t = Math.round(Date.now() - startedAt) / 1000;
    const waiting = Math.max(0, submitted() - now.graded);
    const sample: Sample = { t, ...now, alive, restarts: fleet.restarts, waiting };
    this.samples.push(sample);
    this.last = now;
    this.options.onSample?.(sample, now);
  }

  private async readOverHttp(): Promise<{ counters: Counters; alive: number }> {
    const { lmsUrl, serviceUsername, fleet } = this.options;
    const [counters, alive] = await Promise.all([
      readCounters(lmsUrl, serviceUsername),
      readConnectionsAlive(fleet.metricsUrls),
    ]);
    return { counters, alive };
  }
}

/**
 * Resolves after `ms`, or at once when `signal` aborts. On the global timers, which a test's
 * fake timers drive (they leave node:timers/promises alone).
 */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal.aborted) done();
    else signal.addEventListener('abort', done, { once: true });
  });
}
