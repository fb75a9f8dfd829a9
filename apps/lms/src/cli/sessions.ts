import { UsageError } from '@storm-lab/cli-kit';
import { shortId } from '../auth/tokens.ts';
import { openDatabase } from '../db/client.ts';
import { type OpenedSessionStore, openServerSessionStore } from '../sessions/factory.ts';
import type { SessionDetails, SessionStore } from '../sessions/store.ts';
import { findCredentials } from '../users.ts';
import { bindCommand, type LmsCliIo, say } from './command.ts';

/**
 * Who ended a session from the command line, in `session_ends.ended_by`: parentheses cannot
 * occur in a Django username, so it never names an account.
 */
const CLI_ACTOR = '(cli)';

/** One line of `sessions list`: free text (instance, address, user agent) as JSON. */
function sessionLine(session: SessionDetails): string {
  return [
    shortId(session.id),
    `created=${new Date(session.createdAt).toISOString()}`,
    `last_seen=${new Date(session.lastSeenAt).toISOString()}`,
    `instance=${JSON.stringify(session.instanceId)}`,
    `address=${JSON.stringify(session.address)}`,
    `user_agent=${JSON.stringify(session.userAgent)}`,
    `tracked=${session.tracked ? 'yes' : 'no'}`,
  ].join(' ');
}

async function endOneSession(
  store: SessionStore,
  user: { id: string; username: string },
  short: string,
): Promise<string> {
  const match = await store.findShort(user.id, short);
  if (match.kind === 'ambiguous') {
    throw new UsageError(`sessions end: ${short} names more than one session; use --all`);
  }
  const ended =
    match.kind === 'found' &&
    (await store.endOne(user.id, match.sessionId, 'staff', { endedBy: CLI_ACTOR }));
  if (!ended) {
    throw new UsageError(`sessions end: ${user.username} has no live session ${short}`);
  }
  return `Ended session ${short} of ${user.username}`;
}

/** `pnpm lms sessions list USER` and `sessions end USER ID|--all`. */
export const sessionsCommand = (io: LmsCliIo) =>
  bindCommand(io, {
    summary: "sessions list USER, sessions end USER ID|--all: a user's live sessions",
    help: `Usage: pnpm lms sessions list USER
       pnpm lms sessions end USER ID
       pnpm lms sessions end USER --all

list: one line per live session of USER, oldest first: its short id (8 hex digits, as the logs
  name it), created, last seen (refreshed at most once a minute), the client instance, the
  address, the user agent (those three as JSON: null when unknown) and whether it counts toward
  the session limit (tracked).
end: ends the session whose short id is ID, or with --all every live session of USER (a stolen
  cookie, a departing account), and prints how many ended. Each one's next request gets 401/403
  with session_end.reason "staff"; the record names "(cli)" as who ended it. USER can log in
  again: change the password too (pnpm lms user add USER --password P).

Both act on the session store the LMS uses, as its last start recorded it in the database,
whatever SESSION_STORE this shell has (a Redis with a password needs SESSION_STORE=redis and
SESSION_REDIS_URL here). When that Redis cannot be reached: an error, exit 1.`,
    flags: { all: { type: 'boolean' } },
    positionals: true,
    async run({ values, positionals }, config) {
      const [action, username, id, ...extra] = positionals;
      const all = values.all === true;
      const valid =
        username !== undefined &&
        extra.length === 0 &&
        ((action === 'list' && id === undefined && !all) ||
          // end: a short id or --all, not both.
          (action === 'end' && (id === undefined) === all));
      if (!valid) {
        throw new UsageError(
          'expected: sessions list USER, sessions end USER ID or sessions end USER --all',
        );
      }
      const database = openDatabase({ path: config.databasePath });
      let sessions: OpenedSessionStore | null = null;
      try {
        const user = findCredentials(database.db, username);
        if (!user) {
          throw new UsageError(`sessions ${action}: no user named ${JSON.stringify(username)}`);
        }
        // The store the LMS uses (recorded at its start), not the one this shell names; rejects
        // when that is a Redis this shell cannot reach, rather than report no sessions.
        sessions = await openServerSessionStore(config, database.db);
        const { store } = sessions;
        if (action === 'list') {
          const live = await store.details(user.id);
          if (live.length === 0) return say(io.out, `${username} has no live sessions`);
          for (const session of live) say(io.out, sessionLine(session));
          return;
        }
        if (id !== undefined) return say(io.out, await endOneSession(store, user, id));
        const ended = await store.endAll(user.id, 'staff', { endedBy: CLI_ACTOR });
        say(io.out, `Ended ${ended} session${ended === 1 ? '' : 's'} of ${username}`);
      } finally {
        sessions?.close();
        database.close();
      }
    },
  });
