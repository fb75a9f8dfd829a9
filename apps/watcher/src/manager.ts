import type { ConnectionEnd } from './connection.ts';
import type { Sleep } from './puller.ts';

export interface ManagerWaitOptions {
  /**
   * How each connection ended, by its index in the order the replica started them (a running
   * connection has no entry).
   */
  ends: readonly (ConnectionEnd | undefined)[];
  /** How many connections the replica started. */
  connections: number;
  /** POLL_TIME: the manager's sleep after each connection it looks at. */
  pollTimeMs: number;
  sleep: Sleep;
  /** Aborted when the replica stops on purpose: the wait then never resolves. */
  signal: AbortSignal;
}

/**
 * As upstream's `Manager.wait` (xqueue_watcher/manager.py): look at one client thread, sleep
 * POLL_TIME, look at the next, round and round in start order; resolve with a dead one's reason
 * when it is looked at, so the process shuts every client down and exits for its supervisor to
 * restart. With N connections a death is seen up to N x POLL_TIME later. Never resolves once
 * `signal` aborts, nor for a replica without connections.
 *
 * @example
 * const reason = await managerWait({ ends, connections: 10, pollTimeMs: 10_000, sleep, signal });
 */
export async function managerWait(options: ManagerWaitOptions): Promise<string> {
  const { ends, connections, signal } = options;
  for (let turn = 0; connections > 0 && !signal.aborted; turn++) {
    const end = ends[turn % connections];
    if (end?.kind === 'died') return end.reason;
    await options.sleep(options.pollTimeMs, signal);
  }
  return new Promise<string>(() => undefined);
}
