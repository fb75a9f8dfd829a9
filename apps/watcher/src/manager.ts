import type { ConnectionEnd } from './connection.ts';
import type { Sleep } from './puller.ts';

export interface ManagerWaitOptions {
  /** How the replica's connections ended so far (a running one has no entry). */
  ends: readonly ConnectionEnd[];
  /** POLL_TIME: how often the manager looks. */
  pollTimeMs: number;
  sleep: Sleep;
  /** Aborted when the replica stops on purpose: the wait then never resolves. */
  signal: AbortSignal;
}

/**
 * As upstream's `Manager.wait` (xqueue_watcher/manager.py): every POLL_TIME, look for a dead
 * client thread; resolve with its reason when there is one, so the process shuts every client
 * down and exits for its supervisor to restart. Never resolves once `signal` aborts.
 *
 * @example
 * const reason = await managerWait({ ends, pollTimeMs: 10_000, sleep, signal });
 */
export async function managerWait(options: ManagerWaitOptions): Promise<string> {
  const { ends, signal } = options;
  while (!signal.aborted) {
    await options.sleep(options.pollTimeMs, signal);
    const dead = ends.find((end) => end.kind === 'died');
    if (dead && dead.kind === 'died' && !signal.aborted) return dead.reason;
  }
  return new Promise<string>(() => undefined);
}
