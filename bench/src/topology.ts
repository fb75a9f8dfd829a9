import { histogramQuantile, parsePrometheus, sumOf, useRedis } from '@storm-lab/harness';
import type { LoadFigures } from './load.ts';
import { benchLms, queuelenLoad, SERVICE, STUDENT } from './sections.ts';
import { type StoreAdmissionFigures, storeAdmission } from './store-admission.ts';
import { type FleetRun, fleetRun } from './storm-cost.ts';
import { XQueueSession } from './xqueue-session.ts';

/** How the LMS was run: worker processes and where sessions live. */
export interface Topology {
  workers: number;
  sessionStore: 'sqlite' | 'redis';
}

const ADMISSION = 'lms_session_admission_seconds';

let lmsRuns = 0;

/** Starts the bench LMS as `topology` says, its Redis sessions (if any) on `redisUrl`. */
function topologyLms(
  topology: Topology,
  redisUrl: string,
  env: Record<string, string> = {},
  students = 1,
) {
  lmsRuns += 1;
  return benchLms(
    {
      LMS_WORKERS: String(topology.workers),
      SESSION_STORE: topology.sessionStore,
      SESSION_REDIS_URL: redisUrl,
      SESSION_REDIS_PREFIX: `bench-${process.pid}-${lmsRuns}:`,
      ...env,
    },
    students,
  );
}

export interface QueuelenFigures extends Topology, LoadFigures {}

/** Authenticated get_queuelen requests per second (50 connections; wrk when installed). */
export async function queuelenRate(
  topology: Topology,
  redisUrl: string,
  seconds: number,
): Promise<QueuelenFigures> {
  const lms = await topologyLms(topology, redisUrl);
  try {
    const figures = await queuelenLoad(lms.url, 50, seconds);
    return { ...topology, ...figures };
  } finally {
    await lms.stop();
  }
}

export interface AdmissionFigures extends Topology {
  /** `one`: every login is the same single-session account (a storm); `many`: each its own. */
  accounts: 'one' | 'many';
  parallel: number;
  rounds: number;
  /** Admissions the LMS timed (its `lms_session_admission_seconds_count`). */
  admissions: number;
  /** Estimated from the histogram's buckets, as PromQL's histogram_quantile does. */
  p50Ms: number;
  p99Ms: number;
  /** Share of admissions that took at most 2 ms: exact (a bucket bound), not estimated. */
  within2Ms: number;
  /** The rounds' logins over their wall time, as the bench's clients saw them. */
  loginsPerSecond: number;
}

/**
 * `rounds` rounds of `parallel` simultaneous logins; the LMS times each admission (register,
 * decide, evict) in `lms_session_admission_seconds`, summed over its workers. With one account
 * they are all the service account, not exempt, so every login evicts and waits for the others
 * (the storm's shape); with many, `parallel` students log in once each per round, each evicting
 * their previous session.
 */
export async function admissionLatency(
  topology: Topology,
  redisUrl: string,
  accounts: 'one' | 'many',
  parallel: number,
  rounds: number,
): Promise<AdmissionFigures> {
  const lms = await topologyLms(
    topology,
    redisUrl,
    { SINGLE_LOGIN_EXEMPT_USERNAMES: '' },
    accounts === 'many' ? parallel : 1,
  );
  try {
    const started = performance.now();
    for (let round = 0; round < rounds; round++) {
      await Promise.all(
        Array.from({ length: parallel }, (_, index) =>
          accounts === 'one'
            ? new XQueueSession(lms.url).login(SERVICE.username, SERVICE.password)
            : new XQueueSession(lms.url).login(`student${index + 1}`, STUDENT.password),
        ),
      );
    }
    const seconds = (performance.now() - started) / 1000;
    const samples = parsePrometheus(await (await fetch(`${lms.url}/metrics`)).text());
    const admissions = sumOf(samples, `${ADMISSION}_count`);
    const ms = (q: number) => Math.round(histogramQuantile(samples, ADMISSION, q) * 1e6) / 1e3;
    return {
      ...topology,
      accounts,
      parallel,
      rounds,
      admissions,
      p50Ms: ms(0.5),
      p99Ms: ms(0.99),
      within2Ms:
        Math.round((sumOf(samples, `${ADMISSION}_bucket`, { le: '0.002' }) / admissions) * 1e4) /
        1e4,
      loginsPerSecond: Math.round((parallel * rounds) / seconds),
    };
  } finally {
    await lms.stop();
  }
}

export interface TopologyFigures {
  getQueuelen: QueuelenFigures[];
  /** get_queuelen with 2 workers over 1 worker, both on Redis sessions. */
  workersRatio: number;
  admission: AdmissionFigures[];
  /** The same admissions through the LMS's store alone, in the bench process (no HTTP). */
  storeAdmission: StoreAdmissionFigures[];
  /** 8 connections at production settings, storm and cure, 2 workers on Redis sessions. */
  storm: FleetRun[];
}

const TOPOLOGIES: Topology[] = [
  { workers: 1, sessionStore: 'sqlite' },
  { workers: 1, sessionStore: 'redis' },
  { workers: 2, sessionStore: 'redis' },
];

/** 5. LMS workers and the Redis session store: throughput, admission latency, the storm. */
export async function topology(options: {
  seconds: number;
  rounds: number;
  stormSeconds: number;
}): Promise<TopologyFigures> {
  const redis = await useRedis();
  try {
    const getQueuelen: QueuelenFigures[] = [];
    for (const each of TOPOLOGIES) {
      getQueuelen.push(await queuelenRate(each, redis.url, options.seconds));
    }
    const rate = (workers: number) =>
      getQueuelen.find((f) => f.workers === workers && f.sessionStore === 'redis')
        ?.requestsPerSecond ?? Number.NaN;
    const admission: AdmissionFigures[] = [];
    for (const accounts of ['one', 'many'] as const) {
      for (const each of TOPOLOGIES) {
        admission.push(await admissionLatency(each, redis.url, accounts, 32, options.rounds));
      }
    }
    const stores: StoreAdmissionFigures[] = [];
    for (const accounts of ['one', 'many'] as const) {
      for (const target of [
        'sqlite',
        'redis',
        'redis-registry',
        'redis-registry-optimistic',
      ] as const) {
        stores.push(
          await storeAdmission({
            target,
            redisUrl: redis.url,
            accounts,
            parallel: 32,
            rounds: options.rounds,
          }),
        );
      }
    }
    const storm: FleetRun[] = [];
    for (const exempt of [false, true]) {
      storm.push(
        await fleetRun({
          connections: 8,
          exempt,
          seconds: options.stormSeconds,
          compression: 1,
          prefill: 200,
          redisUrl: redis.url,
          lmsWorkers: 2,
          sessionStore: 'redis',
        }),
      );
    }
    return {
      getQueuelen,
      workersRatio: Math.round((rate(2) / rate(1)) * 100) / 100,
      admission,
      storeAdmission: stores,
      storm,
    };
  } finally {
    await redis.stop();
  }
}
