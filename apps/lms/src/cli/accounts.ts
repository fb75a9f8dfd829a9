import { UsageError } from '@storm-lab/cli-kit';
import { hashPassword } from '../auth/password.ts';
import { openDatabase } from '../db/client.ts';
import { isLabPassword } from '../seed.ts';
import { saveAccount, serverSessions } from '../sessions/accounts.ts';
import { ensureGroup } from '../users.ts';
import { bindCommand, checkUsername, type LmsCliIo, say } from './command.ts';
import { endedText } from './password-change.ts';

/** What `user add` did to the staff flag, as its line says it. */
function staffText(isStaff: boolean | undefined): string {
  if (isStaff === undefined) return '';
  return isStaff ? ' [staff]' : ' [not staff]';
}

/** `pnpm lms user add NAME`: creates a user or changes one. */
export const userCommand = (io: LmsCliIo) =>
  bindCommand(io, {
    summary: "user add NAME: create or update a user (a new password ends the user's sessions)",
    help: `Usage: pnpm lms user add NAME --password P [--group G]... [--staff | --no-staff]

Creates the user, or updates the password and adds the groups. NAME follows Django's username
rule (1-150 letters, digits and @ . + - _). --staff makes the user staff, --no-staff removes
it; without either a new user is not staff and an existing one keeps its flag. Setting the
password of an existing user ends all of that user's sessions (their next request is told
session_end.reason "password-change"), as Django does when a password changes: in the store the
LMS uses, whatever SESSION_STORE this shell has; when that is a Redis this shell cannot reach,
each session ends on its next request (each keeps a hash of the password it logged in with).`,
    flags: {
      password: { type: 'string' },
      group: { type: 'string', multiple: true },
      staff: { type: 'boolean' },
      'no-staff': { type: 'boolean' },
    },
    positionals: true,
    async run({ values, positionals }, config) {
      const [action, username, ...extra] = positionals;
      if (action !== 'add' || !username || extra.length > 0) {
        throw new UsageError('expected: user add NAME');
      }
      checkUsername('user add', username);
      if (values.staff === true && values['no-staff'] === true) {
        throw new UsageError('user add: give one of --staff and --no-staff, not both');
      }
      // Neither: the flag stays as it is (a new user is not staff).
      const isStaff =
        values.staff === true ? true : values['no-staff'] === true ? false : undefined;
      if (typeof values.password !== 'string' || values.password === '') {
        throw new UsageError('--password is required');
      }
      const groups = values.group ?? [];
      const passwordHash = await hashPassword(values.password, config.passwordHashIterations);
      const database = openDatabase({ path: config.databasePath });
      try {
        const sessions = serverSessions(database.db, config.sessionStore);
        const saved = await saveAccount(database.db, sessions, {
          username,
          passwordHash,
          labPassword: isLabPassword(values.password),
          groups,
          ...(isStaff !== undefined && { isStaff }),
          now: Date.now(),
        });
        const ended = endedText(saved.sessions);
        say(
          io.out,
          `User ${username} saved${groups.length ? ` (groups: ${groups.join(', ')})` : ''}${staffText(isStaff)}${ended}`,
        );
      } finally {
        database.close();
      }
    },
  });

/** `pnpm lms group add NAME`. */
export const groupCommand = (io: LmsCliIo) =>
  bindCommand(io, {
    summary: 'group add NAME: create a group',
    help: 'Usage: pnpm lms group add NAME',
    flags: {},
    positionals: true,
    run({ positionals }, config) {
      const [action, name, ...extra] = positionals;
      if (action !== 'add' || !name || extra.length > 0) {
        throw new UsageError('expected: group add NAME');
      }
      const database = openDatabase({ path: config.databasePath });
      try {
        ensureGroup(database.db, name);
        say(io.out, `Group ${name} exists`);
      } finally {
        database.close();
      }
    },
  });
