import {
  type AdmissionPlan,
  type AdmitResult,
  admitResult,
  type LiveSession,
  type LoginDecision,
  planAdmission,
} from '@storm-lab/session-policy';
import { eq } from 'drizzle-orm';
import { whenNotBusy } from '../db/busy-retry.ts';
import type { ClientDb, Db } from '../db/client.ts';
import { profiles } from '../db/schema.ts';
import type { LoginAdmitRequest } from './store.ts';

/**
 * What upstream enforcement needs of the store that keeps the sessions: Django's session
 * backend, step by step, each step its own atomic write and nothing held across them.
 */
export interface UpstreamSessions {
  /**
   * django.contrib.auth.login: `cycle_key()` saves the new session (tracked as `plan` says,
   * with its client and auth hash) and deletes the one this client logged in from;
   * `update_last_login` saves `last_login`.
   */
  save(request: LoginAdmitRequest, decision: LoginDecision, plan: AdmissionPlan): Promise<void>;
  /**
   * `SessionStore(session_key=id).delete()`, leaving the eviction's tombstone (no quota: upstream
   * has none). Resolves with the session it ended, or null when it was gone.
   */
  evict(sessionId: string, request: LoginAdmitRequest): Promise<LiveSession | null>;
}

/**
 * One database round trip of a Django request: each ORM call of `set_login_session` is its own
 * query, so other logins run between them (in other gunicorn workers; here, other requests of
 * this process).
 */
const roundTrip = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * One step: its own transaction (so a retry after another process's lock repeats all of it or
 * none), waiting out that lock as the other writes do. Nothing holds across steps.
 *
 * @example
 * await upstreamStep(db, (tx) => tx.delete(sessions).where(eq(sessions.id, old)).run());
 */
export const upstreamStep = <T>(db: ClientDb, run: (tx: Db) => T) =>
  whenNotBusy(() => db.transaction((tx) => run(tx), { behavior: 'immediate' }));

/** A profile's `meta` JSON as an object; anything else reads as empty, as upstream's get_meta. */
function metaOf(text: string | undefined): Record<string, unknown> {
  if (!text) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

/**
 * edx-platform's `UserProfile.set_login_session` after the new session is saved, each step its
 * own query with other logins running between them: read the profile's `meta`, end the one
 * session its `session_id` names (`endOld`, in whichever store holds sessions; it resolves with
 * the session it ended, or null), write `meta` back as read with the new id. Resolves with the
 * sessions it ended.
 */
async function setLoginSession(
  db: ClientDb,
  request: LoginAdmitRequest,
  endOld: (sessionId: string) => Promise<LiveSession | null>,
): Promise<LiveSession[]> {
  const { userId, session } = request;
  await roundTrip();
  // meta = self.get_meta(); old_login = meta.get('session_id'). A plain read, as Django's:
  // under WAL it waits for no one.
  const meta = metaOf(
    db.select({ meta: profiles.meta }).from(profiles).where(eq(profiles.userId, userId)).get()
      ?.meta,
  );
  const old = typeof meta.session_id === 'string' ? meta.session_id : null;
  await roundTrip();
  // if old_login: SessionStore(session_key=old_login).delete()
  const ended = old !== null && old !== session.id ? await endOld(old) : null;
  await roundTrip();
  // meta['session_id'] = session_id; self.set_meta(meta); self.save(): the whole meta as read.
  const written = JSON.stringify({ ...meta, session_id: session.id });
  await upstreamStep(db, (tx) =>
    tx
      .insert(profiles)
      .values({ userId, meta: written })
      .onConflictDoUpdate({ target: profiles.userId, set: { meta: written } })
      .run(),
  );
  return ended ? [ended] : [];
}

/**
 * `SINGLE_LOGIN_ENFORCEMENT=upstream`: a login as edx-platform admits it, step by step, with no
 * lock and no transaction around the steps, so that its race can be watched, whichever store
 * keeps the sessions (`sessions`; the profile slot is in SQLite either way, as edx-platform
 * keeps it in its database). Django's `login()` first saves the new session (dropping this
 * client's old one) and `last_login`; then, unless the user is exempt or the flag is off, the
 * `user_logged_in` receiver runs `UserProfile.set_login_session`: read the profile's `meta`,
 * delete the one session its `session_id` names, write `meta` back with the new id. Logins that
 * overlap read the same id, so every one of them survives, and all but the last are never
 * tracked again.
 *
 * Only the flag and the exemptions apply, as upstream has only those: `decide` sees no live
 * sessions, so limits, deny-new, instance scope and dry run change nothing here.
 *
 * @example
 * const admit = createUpstreamAdmission(db, sessions);
 * const result = await admit({ userId, session, decide }); // evicted: the slot's old session
 */
export function createUpstreamAdmission(db: ClientDb, sessions: UpstreamSessions) {
  return async function admitUpstream(request: LoginAdmitRequest): Promise<AdmitResult> {
    const decision = request.decide([]);
    const plan = planAdmission(decision);
    if (!plan.admit) return admitResult(decision, plan);
    await sessions.save(request, decision, plan);
    // The receiver returns early for an exempt user or with the flag off.
    if (!plan.track) return admitResult(decision, plan);
    const evicted = await setLoginSession(db, request, (old) => sessions.evict(old, request));
    return admitResult(decision, { ...plan, evicted, dryRun: false });
  };
}
