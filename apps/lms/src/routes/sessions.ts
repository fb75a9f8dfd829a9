import { type Context, Hono } from 'hono';
import { shortId } from '../auth/tokens.ts';
import type { LmsEnv, Services } from '../http/context.ts';
import { clearSessionCookie, requireUser } from '../http/session.ts';
import { requireStaff } from '../http/staff.ts';
import type { EndingReason, SessionDetails } from '../sessions/store.ts';
import { findCredentials } from '../users.ts';

/** The account whose sessions a request lists or ends. */
interface Owner {
  id: string;
  username: string;
}

/** One session as the lists show it: the short id only, never the id a cookie hashes to. */
function view(session: SessionDetails, currentSessionId: string) {
  return {
    id: shortId(session.id),
    created: new Date(session.createdAt).toISOString(),
    last_seen: new Date(session.lastSeenAt).toISOString(),
    client_instance: session.instanceId,
    user_agent: session.userAgent,
    address: session.address,
    pool: session.pool,
    current: session.id === currentSessionId,
  };
}

/** One log line per request that ends sessions: whose, which (or how many), why, by whom. */
function logEnded(
  services: Services,
  owner: Owner,
  ended: { reason: EndingReason; by: string } & ({ session: string } | { count: number }),
) {
  const what = 'session' in ended ? `session ${ended.session}` : `${ended.count} sessions`;
  services.logger.info(
    { event: 'session-end', account: owner.username, ...ended },
    `${what} of ${owner.username} ended by ${ended.by} (${ended.reason})`,
  );
}

/**
 * Ends the owner's live session named by the `:id` short id: 204, 404 when none of the owner's
 * live sessions has it, 409 when two do. Ending the caller's own current session is a logout:
 * its cookie is cleared too.
 */
async function endByShortId(
  c: Context<LmsEnv>,
  services: Services,
  owner: Owner,
  reason: EndingReason,
) {
  const auth = c.get('auth')!;
  const short = c.req.param('id') ?? '';
  const match = await services.store.findShort(owner.id, short);
  if (match.kind === 'ambiguous') {
    return c.json({ detail: `Short id ${short} names more than one session` }, 409);
  }
  const current = match.kind === 'found' && match.sessionId === auth.sessionId;
  // Ending the session that makes the request is logging out, whoever's list it came from.
  const why = current && reason === 'user' ? 'logged-out' : reason;
  const by = auth.user.username;
  // Found, then gone before the delete (ended elsewhere, or expired): not found either.
  const ended =
    match.kind === 'found' &&
    (await services.store.endOne(owner.id, match.sessionId, why, { endedBy: by }));
  if (!ended) return c.json({ detail: 'Session not found' }, 404);
  logEnded(services, owner, { session: short, reason: why, by });
  if (current) clearSessionCookie(c);
  return c.body(null, 204);
}

/**
 * The caller's own sessions (student API rules: a live session, and the CSRF token on unsafe
 * methods): list them, end one, or end all but the current one.
 *
 * @example
 * app.route('/api/sessions', sessionRoutes(services));
 */
export function sessionRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  app.use('*', requireUser());

  app.get('/', async (c) => {
    const auth = c.get('auth')!;
    const sessions = await services.store.details(auth.user.id);
    return c.json({ sessions: sessions.map((session) => view(session, auth.sessionId)) });
  });

  app.post('/end-others', async (c) => {
    const { user, sessionId } = c.get('auth')!;
    const ended = await services.store.endAll(user.id, 'user', {
      endedBy: user.username,
      except: sessionId,
    });
    logEnded(services, user, { count: ended, reason: 'user', by: user.username });
    return c.json({ ended });
  });

  app.delete('/:id', (c) => endByShortId(c, services, c.get('auth')!.user, 'user'));
  return app;
}

/**
 * Staff's view of any account's sessions, under the admin API (its staff check and CSRF): list
 * them (with `tracked`), end one, or end all; the tombstones say `staff` and who.
 *
 * @example
 * admin.route('/users', staffSessionRoutes(services));
 */
export function staffSessionRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  // Also where adminRoutes mounts it: these routes must never be reachable without it.
  app.use('*', requireStaff);

  function ownerOf(c: Context<LmsEnv>): Owner | null {
    const row = findCredentials(services.db, c.req.param('username') ?? '');
    return row ? { id: row.id, username: row.username } : null;
  }
  const unknownUser = (c: Context<LmsEnv>) => c.json({ detail: 'User not found' }, 404);

  app.get('/:username/sessions', async (c) => {
    const owner = ownerOf(c);
    if (!owner) return unknownUser(c);
    const { sessionId } = c.get('auth')!;
    const sessions = (await services.store.details(owner.id)).map((session) => ({
      ...view(session, sessionId),
      tracked: session.tracked,
    }));
    return c.json({ sessions });
  });

  app.post('/:username/sessions/end-all', async (c) => {
    const owner = ownerOf(c);
    if (!owner) return unknownUser(c);
    const by = c.get('auth')!.user;
    const ended = await services.store.endAll(owner.id, 'staff', {
      endedBy: by.username,
    });
    logEnded(services, owner, { count: ended, reason: 'staff', by: by.username });
    // A staff member who ends all of their own sessions ends this one too.
    if (owner.id === by.id) clearSessionCookie(c);
    return c.json({ ended });
  });

  app.delete('/:username/sessions/:id', (c) => {
    const owner = ownerOf(c);
    if (!owner) return unknownUser(c);
    return endByShortId(c, services, owner, 'staff');
  });
  return app;
}
