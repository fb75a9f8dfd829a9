import type { XQueueClient } from '@storm-lab/lms-client';
import { pino } from 'pino';
import { createWatcherClient, type WatcherClientOptions } from '../client.ts';
import type { WatcherConfig } from '../config.ts';
import { parseHandler } from '../graders.ts';
import { createMetrics, type WatcherMetrics } from '../metrics.ts';
import { SERVICE_PASSWORD, SERVICE_USERNAME } from './lab.ts';

/**
 * An xqueue client for the service account with test-friendly defaults.
 *
 * @example
 * const client = createTestClient({ serverUrl: lms.url, queue: 'a' });
 */
export function createTestClient(
  overrides: Partial<WatcherClientOptions> & { serverUrl: string; queue: string },
): XQueueClient {
  return createWatcherClient({
    username: SERVICE_USERNAME,
    password: SERVICE_PASSWORD,
    mode: 'current',
    instanceId: null,
    requestsTimeoutMs: 5_000,
    metrics: createMetrics('test'),
    logger: pino({ level: 'silent' }),
    now: Date.now,
    ...overrides,
  });
}

/** Reads one counter's value for the given labels (0 when never incremented). */
export async function counterValue(
  metrics: WatcherMetrics,
  name: keyof Omit<WatcherMetrics, 'registry' | 'jobLatency'>,
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await metrics[name].get();
  return values
    .filter((value) => {
      const actual = value.labels as Record<string, string | number | undefined>;
      return Object.entries(labels).every(([key, wanted]) => actual[key] === wanted);
    })
    .reduce((sum, value) => sum + value.value, 0);
}

/**
 * A one-queue watcher config for the service account, with a slow-flaky grader of
 * `latencyMs` and short intervals.
 *
 * @example
 * const config = createTestConfig({ serverUrl: lms.url, queue: 'a', connections: 2, latencyMs: 150 });
 */
export function createTestConfig(options: {
  serverUrl: string;
  queue: string;
  connections: number;
  latencyMs: number;
  pollIntervalMs?: number;
}): WatcherConfig {
  const handler = parseHandler('slow-flaky', { latency_ms: options.latencyMs });
  if (!handler.ok) throw new Error(handler.error);
  return {
    configDir: null,
    warnings: [],
    manager: {
      pollIntervalMs: options.pollIntervalMs ?? 50,
      loginPollIntervalMs: 200,
      requestsTimeoutMs: 5_000,
      pollTimeMs: 1_000,
      httpBasicAuth: null,
      followClientRedirects: false,
      verifyTls: true,
    },
    queues: [
      {
        name: options.queue,
        sentName: options.queue,
        serverUrl: options.serverUrl,
        username: SERVICE_USERNAME,
        password: SERVICE_PASSWORD,
        connections: options.connections,
        clientClass: 'XQueueClientThread',
        handlers: [handler.value],
        source: 'test',
      },
    ],
  };
}
