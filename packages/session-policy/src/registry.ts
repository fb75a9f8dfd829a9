import { DEFAULT_POOL, type LiveSession, type LoginDecision } from './decide.ts';

/** A stored session as a registry reports it. */
export interface SessionRecord extends LiveSession {
  userId: string;
  /** False for sessions of exempt or unrestricted logins: they never count toward a limit. */
  tracked: boolean;
}

/** A login to admit: the new session and the policy to apply to the user's tracked sessions. */
export interface AdmitRequest {
  userId: string;
  session: { id: string; instanceId: string | null; createdAt: number };
  /**
   * Called inside the registry's atomic step with the user's live tracked sessions; only the
   * decision of the step that commits takes effect. Usually
   * `(live) => decideLogin(settings, user, context, live)`. A registry with optimistic
   * concurrency (the Redis one) calls it again after a conflicting write, so it may run more
   * than once per admission: keep it pure, with no side effects of its own.
   */
  decide: (live: readonly LiveSession[]) => LoginDecision;
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
