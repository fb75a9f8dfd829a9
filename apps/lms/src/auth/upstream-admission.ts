import {
  type AdmitResult,
  admitResult,
  type LiveSession,
  planAdmission,
} from '@storm-lab/session-policy';
import { eq } from 'drizzle-orm';
import { whenNotBusy } from '../db/busy-retry.ts';
import type { ClientDb, Db } from '../db/client.ts';
import { profiles, sessions } from '../db/schema.ts';
import { evictionEnds, loginRows } from './session-rows.ts';
import type { LoginAdmitRequest } from './session-store.ts';

/**
 * One database round trip of a Django request: each ORM call of `set_login_session` is its own
 * query, so other logins run between them (in other gunicorn workers; here, other requests of
 * this process).
 */
const roundTrip = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * One step: its own transaction (so a retry after another process's lock repeats all of it or
 * none), waiting out that lock as the other writes do. Nothing holds across steps.
 */
const step = <T>(db: ClientDb, run: (tx: Db) => T) =>
  whenNotBusy(() => db.transaction((tx) => run(tx), { behavior: 'immediate' }));

/** A profile's `meta` JSON as an object; anything else reads as empty, as upstream's get_meta. */
export function metaOf(text: string | undefined): Record<string, unknown> {
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
export async function setLoginSession(
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
  await step(db, (tx) =>
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
 * lock and no transaction around the steps, so that its race can be watched. Django's `login()`
 * first saves the new session (dropping this client's old one) and `last_login`; then, unless
 * the user is exempt or the flag is off, the `user_logged_in` receiver runs
 * `UserProfile.set_login_session`: read the profile's `meta`, delete the one session its
 * `session_id` names, write `meta` back with the new id. Logins that overlap read the same id,
 * so every one of them survives, and all but the last are never tracked again.
 *
 * Only the flag and the exemptions apply, as upstream has only those: `decide` sees no live
 * sessions, so limits, deny-new, instance scope and dry run change nothing here.
 *
 * @example
 * const admit = createUpstreamAdmission({ db, ttlMs });
 * const result = await admit({ userId, session, decide }); // evicted: the slot's old session
 */
export function createUpstreamAdmission(options: { db: ClientDb; ttlMs: number }) {
  const { db, ttlMs } = options;
  const rows = loginRows(db);
  return async function admitUpstream(request: LoginAdmitRequest): Promise<AdmitResult> {
    const { userId, session } = request;
    const at = session.createdAt;
    const decision = request.decide([]);
    const plan = planAdmission(decision);
    if (!plan.admit) return admitResult(decision, plan);
    // django.contrib.auth.login: cycle_key() saves the new session and deletes the old one of
    // this client; update_last_login saves last_login.
    await step(db, (tx) => {
      tx.insert(sessions)
        .values({
          id: session.id,
          userId,
          createdAt: at,
          expiresAt: at + ttlMs,
          lastSeenAt: at,
          instanceId: session.instanceId,
          tracked: plan.track,
          authHash: request.authHash ?? null,
        })
        .run();
      if (request.replacing) tx.delete(sessions).where(eq(sessions.id, request.replacing)).run();
      if (request.lastLoginAt !== undefined) rows.lastLogin(userId, request.lastLoginAt);
    });
    // The receiver returns early for an exempt user or with the flag off.
    if (!plan.track) return admitResult(decision, plan);
    const evicted = await setLoginSession(db, request, async (old) => {
      const row = await step(db, (tx) => {
        const deleted = tx.delete(sessions).where(eq(sessions.id, old)).returning().get();
        if (deleted) rows.ends(evictionEnds([old], request, at, null));
        return deleted;
      });
      return row ? { id: row.id, createdAt: row.createdAt, instanceId: row.instanceId } : null;
    });
    return admitResult(decision, { ...plan, evicted, dryRun: false });
  };
}
