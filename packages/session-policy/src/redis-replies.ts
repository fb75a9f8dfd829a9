import { DEFAULT_POOL } from './decide.ts';
import { ATTRIBUTE_PREFIX } from './redis-scripts.ts';
import type { SessionDetails } from './registry.ts';

/** One session as the scripts return it: its PTTL in ms, then its hash's fields and values. */
export type SessionReply = readonly [number, ...string[]];

/** The user's live sessions and the version of their tracked set, as one read saw them. */
export interface Snapshot {
  version: string;
  sessions: SessionDetails[];
}

/**
 * Reads one session's hash. Fields written by later versions of the registry are absent in
 * older hashes: no `pool` is the default pool, no `lastSeenAt` means never touched (the
 * creation time), no `a:` field means no attributes.
 */
export function toDetails(
  userId: string,
  id: string,
  [pttlMs, ...pairs]: SessionReply,
  now: number,
): SessionDetails {
  const fields = new Map<string, string>();
  const attributes: [string, string][] = [];
  for (let at = 0; at + 1 < pairs.length; at += 2) {
    const name = String(pairs[at]);
    const value = String(pairs[at + 1]);
    if (name.startsWith(ATTRIBUTE_PREFIX)) {
      attributes.push([name.slice(ATTRIBUTE_PREFIX.length), value]);
    } else {
      fields.set(name, value);
    }
  }
  const createdAt = Number(fields.get('createdAt'));
  return {
    id,
    userId,
    createdAt,
    instanceId: fields.get('instanceId') ?? null,
    tracked: fields.get('tracked') === '1',
    pool: fields.get('pool') ?? DEFAULT_POOL,
    lastSeenAt: Number(fields.get('lastSeenAt') ?? createdAt),
    // Every session hash is written with a TTL; -1 (none) only if someone removed it by hand.
    expiresAt: pttlMs >= 0 ? now + pttlMs : Number.POSITIVE_INFINITY,
    // fromEntries defines own properties, so even an attribute named `__proto__` comes back.
    attributes: Object.fromEntries(attributes),
  };
}

/** Reads the reply of `LIVE_SESSIONS`: [version, [id, PTTL, field, value, ...], ...]. */
export function toSnapshot(userId: string, reply: unknown, now: number): Snapshot {
  const [version, ...sessions] = reply as [string, ...[string, ...SessionReply][]];
  return {
    version: String(version),
    sessions: sessions.map(([id, ...session]) => toDetails(userId, id, session, now)),
  };
}
