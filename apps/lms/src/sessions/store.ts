import type { AdmitRequest, AdmitResult, SessionRegistry } from '@storm-lab/session-policy';
import type { ClientDb } from '../db/client.ts';
import type { SESSION_END_REASONS } from '../db/schema.ts';
import type { LmsUser } from '../users.ts';

// What the LMS asks of a session store, whichever backend keeps the sessions (sqlite-store.ts,
// redis-store.ts); factory.ts builds one.

/** Why a session that a cookie names is gone, as the 403 body reports it. */
export interface SessionEnd {
  reason: StoredEndReason | 'expired';
  /** Milliseconds since the epoch. */
  at: number;
  /** For an eviction: which login ended it and the quota it enforced (see EvictionDetail). */
  eviction?: {
    byInstance: string | null;
    /** The evicting session's short id (8 hex digits). */
    bySession: string;
    quota: Quota | null;
  };
}

/** The evicting login's quota: sessions of its pool after the login, and the pool's limit. */
export interface Quota {
  used: number;
  max: number;
  scope: 'account' | 'instance';
  /** `default`, or `path:<text>` under a rule with a `path`. */
  pool: string;
}

/** Why a session ended, as its tombstone keeps it (see SESSION_END_REASONS). */
export type StoredEndReason = (typeof SESSION_END_REASONS)[number];

/** Why sessions end when something other than a login ends them. */
export type EndingReason = Exclude<StoredEndReason, 'evicted'>;

/** Who ends sessions: a username (a staff member, the user, `(cli)`), or the system. */
export interface EndOptions {
  /** Null or absent when the system ends them (a password change). */
  endedBy?: string | null;
  /** A session to leave alone: the current one, when a user ends their others. */
  except?: string;
}

/**
 * What a cookie's session id resolves to: a live session (with its user), a known end, or
 * nothing. `endedNow` is set when this lookup itself ended the session (its user's password
 * changed since its login), naming the account for the log.
 */
export type SessionLookup =
  | { kind: 'live'; sessionId: string; userId: string; instanceId: string | null; user: LmsUser }
  | { kind: 'ended'; end: SessionEnd; endedNow?: { username: string } }
  | { kind: 'none' };

/** A live session as its user and staff see it. */
export interface SessionDetails {
  /** The full id (the SHA-256 of the cookie): never shown, only its short id. */
  id: string;
  createdAt: number;
  /** Refreshed at most once a minute. */
  lastSeenAt: number;
  instanceId: string | null;
  userAgent: string | null;
  address: string | null;
  /** False for an exempt or unrestricted login: it never counts toward a limit. */
  tracked: boolean;
  /** The pool it counts in: `default`, or `path:<text>` under a rule with a `path`. */
  pool: string;
}

/** A short id resolved among one user's live sessions. */
export type ShortIdMatch =
  | { kind: 'found'; sessionId: string }
  | { kind: 'none' }
  /** Two or more of the user's sessions share the short id (32 bits: rare, never guessed at). */
  | { kind: 'ambiguous' };

/**
 * A login's admission: besides the policy step, what the login writes in the same transaction,
 * so that a failure anywhere leaves the user's sessions as they were.
 */
export interface LoginAdmitRequest extends AdmitRequest {
  /** The session this client logs in from; it ends once the new one is admitted. */
  replacing?: string | null;
  /** Written to the user's `last_login` when admitted (milliseconds since the epoch). */
  lastLoginAt?: number;
  /** Recorded with the new session, for its user's and staff's session lists. */
  client?: LoginClient;
  /**
   * The session auth hash (`sessionAuthHash`) of the password hash the login was checked
   * against (not the one stored when the session is written: a password changed during the
   * check must still end it). A request whose user's password hash no longer gives it is
   * refused (`password-change`).
   */
  authHash: string;
}

/** Where a login came from, as its session records it. */
export interface LoginClient {
  /** `User-Agent`, already cut to 256 characters; null when none was sent. */
  userAgent: string | null;
  /** The client address as the login throttle reads it (see clientAddress). */
  address: string | null;
}

/**
 * Where the LMS keeps sessions: the session-policy registry (atomic admission) plus what the
 * request path, the sessions API, staff and the CLI need. Every ending is remembered with its
 * reason (and who ended it) for a day, so the cookie's next request is told.
 */
export interface SessionStore extends SessionRegistry {
  admit(request: LoginAdmitRequest): Promise<AdmitResult>;
  /**
   * Resolves a session id on every request, with its user and groups; refreshes the session's
   * last use at most once a minute. A session whose user's password changed since its login
   * (its auth hash no longer matches) is ended there, reason `password-change`, and refused.
   */
  lookup(sessionId: string): Promise<SessionLookup>;
  /**
   * Ends a session on logout and remembers that its own user ended it (`ended_by`). False when
   * it was not there.
   */
  end(sessionId: string, reason: 'logged-out'): Promise<boolean>;
  /** A user's live sessions, oldest first, as the sessions lists show them. */
  details(userId: string): Promise<SessionDetails[]>;
  /** The user's live session whose id starts with `short` (the short id of logs and lists). */
  findShort(userId: string, short: string): Promise<ShortIdMatch>;
  /** Ends one live session of the user; false when it is gone or someone else's. */
  endOne(
    userId: string,
    sessionId: string,
    reason: EndingReason,
    options?: Pick<EndOptions, 'endedBy'>,
  ): Promise<boolean>;
  /**
   * Ends every live session of the user (but `except`), tracked or not, remembering why and
   * who; an expired one is left to say `expired`. Resolves with how many ended.
   */
  endAll(userId: string, reason: EndingReason, options?: EndOptions): Promise<number>;
  /** Live sessions per user id, for users that have any (the dashboard's accounts table). */
  liveCounts(): Promise<Map<string, number>>;
  /** Deletes expired sessions and day-old tombstones; does nothing if it ran in the last minute. */
  prune(): void;
}

/** What every session store is built from, whichever backend keeps the sessions. */
export interface SessionStoreOptions {
  /**
   * The relational data: users, groups, profiles and the tombstones of ended sessions (and,
   * for the SQLite store, the sessions).
   */
  db: ClientDb;
  ttlMs: number;
  now: () => number;
  /**
   * `atomic` (default): one atomic step per admission. `upstream`: edx-platform's unlocked
   * steps (see upstream.ts), to show its race.
   */
  enforcement?: 'atomic' | 'upstream';
  /**
   * Runs the per-request lookup's SQLite read; the app passes its tick batcher, which answers
   * the lookups of one tick in one read transaction. Default: at once.
   */
  read?: <T>(op: () => T) => Promise<T>;
  /**
   * Runs the SQLite writes outside an admission's own transaction (ending a session refused for
   * a password change; in the Redis store also a login's tombstones, profile slot and
   * `last_login`), each a better-sqlite3 transaction. The app passes its tick batcher's, so the
   * writes of concurrent requests share one commit. Default: at once, waiting on timers while
   * another process holds the lock.
   */
  write?: <T>(op: () => T) => Promise<T>;
}

/** How long the reason a session ended is remembered. */
export const TOMBSTONE_TTL_MS = 24 * 60 * 60 * 1000;
