/**
 * STORM: the account's connections keep evicting each other. HEALTHY: they do not.
 * INCONCLUSIVE: fewer than two connections got to poll (the others died on a login timeout,
 * as upstream's threads do), so nothing could evict anything.
 */
export type Verdict = 'STORM' | 'HEALTHY' | 'INCONCLUSIVE';

/** What the verdict rests on: client-side counts over the probe's run. */
export interface VerdictInput {
  connections: number;
  /** Connections that did not die (a login timeout at the start ends one). */
  connectionsAlive: number;
  logins: number;
  forbidden: number;
}

/**
 * The storm runner's rule, from the client's side: more than two logins per connection, or at
 * least one 403 per connection, means sessions keep being ended under the connections' feet.
 * A healthy account logs in once per connection and is never refused.
 *
 * @example
 * verdictOf({ connections: 4, connectionsAlive: 4, logins: 4, forbidden: 0 }); // 'HEALTHY'
 * verdictOf({ connections: 4, connectionsAlive: 4, logins: 57, forbidden: 53 }); // 'STORM'
 */
export function verdictOf(run: VerdictInput): Verdict {
  const storming = run.logins > 2 * run.connections || run.forbidden >= run.connections;
  if (storming) return 'STORM';
  return run.connectionsAlive >= 2 && run.logins >= 2 ? 'HEALTHY' : 'INCONCLUSIVE';
}

/** The p-th percentile (0..100) by nearest rank, or null for no values. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? null;
}
