import { parsePrometheus, sumOf } from '@storm-lab/harness';

/** Cumulative counters read from the LMS's /metrics at one moment. */
export interface Counters {
  logins: number;
  forbidden: number;
  graded: number;
  evictions: number;
  stormAlerts: number;
}

const XQUEUE_ROUTES = ['/xqueue/get_submission/', '/xqueue/put_result/'];

/**
 * Reads the LMS's counters for the service account; `metricsToken` when it sets METRICS_TOKEN;
 * `send` default the global fetch (the simulator reads its LMS in process).
 */
export async function readCounters(
  lmsUrl: string,
  serviceUsername: string,
  metricsToken?: string,
  send: (url: string, init: RequestInit) => Promise<Response> = fetch,
): Promise<Counters> {
  const headers: Record<string, string> = metricsToken
    ? { authorization: `Bearer ${metricsToken}` }
    : {};
  const response = await send(new URL('/metrics', lmsUrl).href, { headers });
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  const samples = parsePrometheus(await response.text());
  return {
    logins: sumOf(samples, 'lms_logins_total', { account: serviceUsername, path: 'xqueue' }),
    forbidden: XQUEUE_ROUTES.reduce(
      (total, route) =>
        total + sumOf(samples, 'lms_http_responses_total', { route, status: '403' }),
      0,
    ),
    graded: sumOf(samples, 'lms_submissions_graded_total'),
    evictions: sumOf(samples, 'lms_sessions_evicted_total', { account: serviceUsername }),
    stormAlerts: sumOf(samples, 'lms_storm_alerts_total'),
  };
}

/** Counters minus a baseline taken before the load started. */
export function since(now: Counters, base: Counters): Counters {
  return {
    logins: now.logins - base.logins,
    forbidden: now.forbidden - base.forbidden,
    graded: now.graded - base.graded,
    evictions: now.evictions - base.evictions,
    stormAlerts: now.stormAlerts - base.stormAlerts,
  };
}

/**
 * Watcher connections whose loop runs, summed over every replica's metrics; a replica that is
 * down or does not answer within a second counts none.
 */
export async function readConnectionsAlive(metricsUrls: readonly string[]): Promise<number> {
  const counts = await Promise.all(
    metricsUrls.map(async (url) => {
      if (!url) return 0;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
        if (!response.ok) return 0;
        return sumOf(parsePrometheus(await response.text()), 'watcher_connections_alive');
      } catch {
        return 0;
      }
    }),
  );
  return counts.reduce((total, count) => total + count, 0);
}
