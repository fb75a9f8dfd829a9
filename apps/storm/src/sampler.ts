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

/** Reads the LMS's counters for the service account. */
export async function readCounters(lmsUrl: string, serviceUsername: string): Promise<Counters> {
  const response = await fetch(new URL('/metrics', lmsUrl));
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
