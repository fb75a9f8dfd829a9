import { DEFAULT_POOL, type LiveSession, type LoginDecision, type LoginLimit } from './decide.ts';

/** Django's SESSION_COOKIE_AGE, two weeks: how long a session lives after its admission. */
export const DEFAULT_SESSION_TTL_MS = 14 * 24 * 60 * 60 * 1000;

/** A stored session as a registry reports it. */
export interface SessionRecord extends LiveSession {
  userId: string;
  /** False for sessions of exempt or unrestricted logins: they never count toward a limit. */
  tracked: boolean;
}

/** A login to admit: the new session and the policy to apply to the user's tracked sessions. */
export interface AdmitRequest {
  userId: string;
  session: {
    id: string;
    instanceId: string | null;
    createdAt: number;
    /**
     * Small strings a server wants back with the session (user agent, client address), stored
     * with it in the same atomic step. A registry that resolves ids gives them back exactly.
     */
    attributes?: Readonly<Record<string, string>>;
  };
  /**
   * Called inside the registry's atomic step with the user's live tracked sessions; only the
   * decision of the step that commits takes effect. Usually
   * `(live) => decideLogin(settings, user, context, live)`. A registry with optimistic
   * concurrency (the Redis one) calls it again after a conflicting write, so it may run more
   * than once per admission: keep it pure, with no side effects of its own.
   */
  decide: (live: readonly LiveSession[]) => LoginDecision;
  /**
   * The same decision as data, when it is one of {@link resolveLogin}'s (give both with
   * `...loginAdmission(settings, user, context)`). A registry that can decide inside its store
   * uses it: the Redis one then admits in one script, with no read before it and no retry, and
   * calls `decide` once, on the sessions the script decided on, to check that both agree.
   * Registries that decide in JavaScript ignore it.
   */
  limit?: LoginLimit;
}

/** What an admission did. `evicted` lists sessions ended (or, in dry run, that would have been). */
export type AdmitResult =
  | {
      admitted: true;
      decision: Exclude<LoginDecision, { outcome: 'deny' }>;
      tracked: boolean;
      evicted: readonly LiveSession[];
      dryRun: boolean;
    }
  | { admitted: false; decision: Extract<LoginDecision, { outcome: 'deny' }> };

/**
 * Where sessions live. `admit` must be atomic per user: reading the tracked sessions, deciding,
 * deleting the evicted ones and recording the new one happen as one step, so N parallel logins
 * of a single-session user leave exactly one live session. A registry records each session's
 * pool (`AdmissionPlan.pool`) and gives it back as `pool` in the live sessions and in `list`. Run `runSessionRegistryConformance`
 * from `@storm-lab/session-policy/testing` against any implementation.
 */
export interface SessionRegistry {
  admit(request: AdmitRequest): Promise<AdmitResult>;
  /** Live sessions of a user, tracked or not, oldest first. */
  list(userId: string): Promise<SessionRecord[]>;
  /** Ends one session; false when it was not there. */
  remove(sessionId: string): Promise<boolean>;
}

/** A live session as a server resolves it on each request. */
export interface SessionDetails extends SessionRecord {
  pool: string;
  /** Last recorded use, in milliseconds since the epoch; `createdAt` until the first `touch`. */
  lastSeenAt: number;
  /** When the session stops being live, in milliseconds since the epoch. */
  expiresAt: number;
  /** As admitted with the session (`AdmitRequest.session.attributes`); empty when none. */
  attributes: Record<string, string>;
}

export interface RemoveAllOfOptions {
  /** A session to keep (the one that asked, e.g. after a password change). */
  except?: string;
}

/**
 * A {@link SessionRegistry} that is also where a server resolves session ids: the one source of
 * truth, so a session it evicted or removed never resolves as live. `list` and the live
 * sessions handed to `decide` carry `lastSeenAt`, so `evict-least-recent` works by real use.
 */
export interface ResolvingSessionRegistry extends SessionRegistry {
  /** Live sessions of a user, tracked or not, oldest first. */
  list(userId: string): Promise<SessionDetails[]>;
  /** The live session with this id; null when never admitted, expired, removed or evicted. */
  get(sessionId: string): Promise<SessionDetails | null>;
  /**
   * Records a use of a live session at `at` (ms since the epoch); `lastSeenAt` never moves
   * back. Changes neither the session's expiry nor what concurrent admissions see as changed.
   * False when the session is not live.
   */
  touch(sessionId: string, at: number): Promise<boolean>;
  /**
   * Ends every live session of a user, tracked or not, but `except`, in one atomic step, as a
   * logout would (no eviction record). Resolves with the ids it ended, oldest first.
   */
  removeAllOf(userId: string, options?: RemoveAllOfOptions): Promise<string[]>;
}

/** What a registry must do for a decision: the shared semantics every implementation applies. */
export interface AdmissionPlan {
  admit: boolean;
  track: boolean;
  /** Session ids to delete now (empty in dry run). */
  deleteIds: readonly string[];
  /** Sessions reported as evicted (the would-be evictions in dry run). */
  evicted: readonly LiveSession[];
  dryRun: boolean;
  /**
   * The pool to record the new session in: the rule's for an allowed login; `default` for an
   * untracked one, which counts in no pool.
   */
  pool: string;
}

/**
 * Turns a decision into the writes a registry performs.
 *
 * @example
 * const plan = planAdmission(decision);
 * if (plan.admit) {
 *   deleteAll(plan.deleteIds);
 *   insert({ ...session, tracked: plan.track, pool: plan.pool });
 * }
 */
export function planAdmission(decision: LoginDecision): AdmissionPlan {
  switch (decision.outcome) {
    case 'unrestricted':
    case 'exempt':
      return {
        admit: true,
        track: false,
        deleteIds: [],
        evicted: [],
        dryRun: false,
        pool: DEFAULT_POOL,
      };
    case 'deny':
      return {
        admit: false,
        track: false,
        deleteIds: [],
        evicted: [],
        dryRun: false,
        pool: decision.rule.pool,
      };
    case 'allow':
      return {
        admit: true,
        track: true,
        deleteIds: decision.dryRun ? [] : decision.evict.map((session) => session.id),
        evicted: decision.evict,
        dryRun: decision.dryRun,
        pool: decision.rule.pool,
      };
  }
}

/** Builds the registry's result from a decision and its plan. */
export function admitResult(decision: LoginDecision, plan: AdmissionPlan): AdmitResult {
  if (decision.outcome === 'deny') return { admitted: false, decision };
  return {
    admitted: true,
    decision,
    tracked: plan.track,
    evicted: plan.evicted,
    dryRun: plan.dryRun,
  };
}
