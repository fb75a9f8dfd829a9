import { isBusy } from '../ops/errors.ts';
import type { ShortIdMatch } from './store.ts';

// Helpers both session stores use the same way: pruning at most once a minute, and short ids.

// Pruning scans whole tables; a login storm must not do it thousands of times a minute.
const PRUNE_INTERVAL_MS = 60_000;

/**
 * A store's `prune`: runs `deleteOld(at)` (expired sessions, day-old tombstones) at most once a
 * minute. When another process holds the write lock it gives up until the next call, since
 * pruning is housekeeping: the next one does it.
 *
 * @example
 * const prune = createPruner(Date.now, (at) => deleteTombstonesBefore(at - TOMBSTONE_TTL_MS));
 */
export function createPruner(now: () => number, deleteOld: (at: number) => void): () => void {
  let lastPruneAt: number | null = null;
  return () => {
    const at = now();
    if (lastPruneAt !== null && at - lastPruneAt < PRUNE_INTERVAL_MS) return;
    lastPruneAt = at;
    try {
      deleteOld(at);
    } catch (error) {
      if (!isBusy(error)) throw error;
      lastPruneAt = null;
    }
  };
}

const SHORT_ID_PATTERN = /^[0-9a-f]{8}$/;

/** Whether `short` can be a short id (8 lowercase hex digits, as logs and lists show them). */
export function isShortId(short: string): boolean {
  return SHORT_ID_PATTERN.test(short);
}

/**
 * The match of a short id among the ids of a user's live sessions that start with it (two are
 * enough to say `ambiguous`).
 *
 * @example
 * shortIdMatch(['3f9c2a1b…']); // { kind: 'found', sessionId: '3f9c2a1b…' }
 */
export function shortIdMatch(ids: readonly string[]): ShortIdMatch {
  const [first] = ids;
  if (first === undefined) return { kind: 'none' };
  return ids.length > 1 ? { kind: 'ambiguous' } : { kind: 'found', sessionId: first };
}
