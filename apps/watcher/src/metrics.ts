import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** An xqueue endpoint, as it appears in metric labels. */
export type Endpoint = 'login' | 'get_submission' | 'put_result';

/** The per-replica metrics. Names are a contract with the storm runner: keep them. */
export interface WatcherMetrics {
  registry: Registry;
  logins: Counter<'queue'>;
  authFailures: Counter<'endpoint' | 'status'>;
  reloginGiveups: Counter<'endpoint'>;
  pulled: Counter<'queue'>;
  graded: Counter<'queue' | 'outcome'>;
  putResultFailures: Counter<'queue' | 'reason'>;
  jobLatency: Histogram<string>;
  loginTimeouts: Counter<'queue'>;
  loginSeconds: Histogram<'queue'>;
  connectionDeaths: Counter<'queue'>;
  connectionsAlive: Gauge<'queue'>;
}

/**
 * Creates a private registry (never prom-client's global one) with every metric labelled by
 * replica, so several replicas in one test process do not collide.
 *
 * @example
 * const metrics = createMetrics('r-1');
 * metrics.logins.inc({ queue: 'a' });
 */
export function createMetrics(replicaId: string): WatcherMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ replica: replicaId });
  const registers = [registry];
  return {
    registry,
    logins: new Counter({
      name: 'watcher_logins_total',
      help: 'Successful logins to the LMS, by queue.',
      labelNames: ['queue'],
      registers,
    }),
    authFailures: new Counter({
      name: 'watcher_auth_failures_total',
      help: 'Answers (301/302/401/403) that made a client log in again.',
      labelNames: ['endpoint', 'status'],
      registers,
    }),
    reloginGiveups: new Counter({
      name: 'watcher_relogin_giveups_total',
      help: 'Requests given up because they failed again after a re-login (or the login failed).',
      labelNames: ['endpoint'],
      registers,
    }),
    pulled: new Counter({
      name: 'watcher_pulled_total',
      help: 'Submissions received from get_submission.',
      labelNames: ['queue'],
      registers,
    }),
    graded: new Counter({
      name: 'watcher_graded_total',
      help: 'Results the LMS accepted, by outcome (correct, incorrect, malformed).',
      labelNames: ['queue', 'outcome'],
      registers,
    }),
    putResultFailures: new Counter({
      name: 'watcher_put_result_failures_total',
      help: 'put_result attempts that were not accepted, by reason.',
      labelNames: ['queue', 'reason'],
      registers,
    }),
    jobLatency: new Histogram({
      name: 'watcher_job_latency_seconds',
      help: 'From pull to accepted result.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    loginTimeouts: new Counter({
      name: 'watcher_login_timeouts_total',
      help: 'Login requests (GET or POST) that got no answer within their timeout.',
      labelNames: ['queue'],
      registers,
    }),
    loginSeconds: new Histogram({
      name: 'watcher_login_seconds',
      help: 'Duration of successful logins (the GET for the CSRF cookie and the POST).',
      labelNames: ['queue'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 30],
      registers,
    }),
    connectionDeaths: new Counter({
      name: 'watcher_connection_deaths_total',
      help: 'Connections whose loop ended on an error (upstream: the client thread died).',
      labelNames: ['queue'],
      registers,
    }),
    connectionsAlive: new Gauge({
      name: 'watcher_connections_alive',
      help: 'Connections whose loop is running.',
      labelNames: ['queue'],
      registers,
    }),
  };
}

/** A running metrics endpoint. */
export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves the registry in Prometheus text format at `/metrics`. Port 0 picks a free one.
 *
 * @example
 * const server = await serveMetrics(metrics.registry, { host: '127.0.0.1', port: 0 });
 * server.url; // 'http://127.0.0.1:40123/metrics'
 */
export async function serveMetrics(
  registry: Registry,
  options: { host: string; port: number },
): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    if (request.url !== '/metrics' && request.url !== '/') {
      response.writeHead(404).end('not found; try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: Error) => response.writeHead(500).end(`${error.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}/metrics`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
