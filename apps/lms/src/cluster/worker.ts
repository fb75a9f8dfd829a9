import cluster from 'node:cluster';
import type { Registry } from 'prom-client';
import type { LiveSeries, LiveStats } from '../ops/live-stats.ts';
import type { StormWatch } from '../ops/storm-watch.ts';
import {
  createEndpoint,
  type Peer,
  type PrimaryTopics,
  REQUEST_TIMEOUT_MS,
  type ReplyMessage,
  type RequestMessage,
  type WorkerTopics,
} from './channel.ts';

/** True in a process `runPrimary` forked. */
export const isClusterWorker = () => cluster.isWorker;

/** A worker's link to the primary: node:cluster's IPC channel, or a test's. */
export interface PrimaryLink {
  send(message: RequestMessage | ReplyMessage): void;
  /** Calls `listener` with every message from the primary. */
  onMessage(listener: (message: unknown) => void): void;
}

/** This process's IPC channel to the primary that forked it. */
export function processLink(): PrimaryLink {
  return {
    // Once the worker closed its channel (shutting down) a reply has nobody to go to.
    send: (message) => {
      if (process.connected) process.send?.(message);
    },
    onMessage: (listener) => process.on('message', listener),
  };
}

/** What one worker of LMS_WORKERS gets from the primary: answers for the whole LMS. */
export interface ClusterWorker {
  /** Every worker's metrics, summed, for `/metrics`. */
  metrics(): Promise<string>;
  /** The LMS-wide storm detector, which runs in the primary. */
  storms: StormWatch;
  /** The dashboard's per-second series of every worker, added up. */
  liveSeries(seconds: number, at: number): Promise<LiveSeries>;
}

export interface JoinClusterOptions {
  /** This worker's metrics, which it sends when the primary gathers them. */
  registry: Registry;
  /** This worker's per-second counters, likewise. */
  live: LiveStats;
  link?: PrimaryLink;
  timeoutMs?: number;
}

/**
 * In a worker: answers the primary's requests for this worker's metrics and series, and returns
 * how to ask the primary for the LMS-wide answers.
 *
 * @example
 * const worker = joinCluster({ registry: metrics.registry, live });
 * const text = await worker.metrics(); // lms_logins_total of all workers
 * const alerts = await worker.storms.record('xqueue_svc', Date.now(), 1);
 */
export function joinCluster({
  registry,
  live,
  link = processLink(),
  timeoutMs = REQUEST_TIMEOUT_MS,
}: JoinClusterOptions): ClusterWorker {
  const primary: Peer = { name: 'the primary', send: (message) => link.send(message) };
  const endpoint = createEndpoint<PrimaryTopics, WorkerTopics>(
    {
      metrics: () => registry.getMetricsAsJSON(),
      'live-series': async ({ seconds, at }) => live.series(seconds, at),
    },
    { timeoutMs },
  );
  link.onMessage((message) => endpoint.receive(primary, message));
  return {
    metrics: () => endpoint.request(primary, 'metrics', {}),
    storms: {
      record: (account, at, evicted) =>
        endpoint.request(primary, 'storm-record', { account, at, evicted }),
      rates: (at) => endpoint.request(primary, 'storm-rates', { at }),
    },
    liveSeries: (seconds, at) => endpoint.request(primary, 'live-series', { seconds, at }),
  };
}
