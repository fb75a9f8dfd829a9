import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { InvalidUsernameError, usernameProblem } from './auth/username.ts';
import type { Db } from './db/client.ts';
import { groups, profiles, userGroups, users } from './db/schema.ts';
import { StoredDataError } from './ops/errors.ts';

/** A user as the rest of the LMS sees it, with group names resolved. */
export interface LmsUser {
  id: string;
  username: string;
  isStaff: boolean;
  isActive: boolean;
  groups: string[];
}

/** The group whose members may use the xqueue endpoints. */
export const XQUEUE_GROUP = 'xqueue';

/** Group names of a user, sorted. */
export function groupsOf(db: Db, userId: string): string[] {
  return db
    .select({ name: groups.name })
    .from(userGroups)
    .innerJoin(groups, eq(userGroups.groupId, groups.id))
    .where(eq(userGroups.userId, userId))
    .all()
    .map((row) => row.name)
    .sort();
}

/** A user's row with its password hash, for login; null when unknown. */
export function findCredentials(db: Db, username: string) {
  return db.select().from(users).where(eq(users.username, username)).get() ?? null;
}

/**
 * Creates a group unless it exists; returns its id.
 *
 * @example
 * ensureGroup(db, 'xqueue');
 */
export function ensureGroup(db: Db, name: string): number {
  db.insert(groups).values({ name }).onConflictDoNothing().run();
  const row = db.select({ id: groups.id }).from(groups).where(eq(groups.name, name)).get();
  if (!row) throw new StoredDataError(`group ${name} vanished while being created`);
  return row.id;
}

export interface UpsertUserOptions {
  username: string;
  /** A Django-format hash (see hashPassword). */
  passwordHash: string;
  /** Whether it hashes one of the seed's published lab passwords (see isLabPassword). Default false. */
  labPassword?: boolean;
  groups?: readonly string[];
  /** Set (true) or clear (false) the staff flag; absent: a new user is not staff, an existing one keeps it. */
  isStaff?: boolean;
  now: number;
  /** Given in tests so that ids are predictable; default a random UUID. */
  id?: string;
}

/** Options of {@link saveUser}: those of {@link upsertUser}, plus whether to keep a password. */
export interface SaveUserOptions extends UpsertUserOptions {
  /**
   * Leave an existing user's password and staff flag as they are (`isStaff: true` still
   * promotes): what `seed` does, so a restart never undoes an operator's change. Default false:
   * the password is set.
   */
  keepPassword?: boolean;
}

/** What {@link saveUser} did. */
export interface SavedUser {
  id: string;
  created: boolean;
  /** Whether the password was written (always for a new user). */
  passwordSet: boolean;
}

/**
 * Creates a user, or updates an existing one: the password, the staff flag when `isStaff` is
 * given, and the groups (added, never removed); with a profile row. With `keepPassword` an
 * existing user's password and staff flag are kept (`isStaff: true` still promotes) and only
 * missing groups are added. A new username must pass Django's rule ({@link usernameProblem}),
 * else {@link InvalidUsernameError} and nothing is written.
 *
 * It writes the user's rows and nothing else. A new password refuses every session issued
 * before it on that session's next request (each keeps the session auth hash of the password it
 * logged in with), but until then those sessions stay where they are: to end them at once, in
 * the store the server uses, change passwords with `saveAccount` (sessions/accounts.ts).
 *
 * @example
 * saveUser(db, { username: 'student4', passwordHash, now: Date.now() });
 * // { id: '…', created: false, passwordSet: true }
 */
export function saveUser(db: Db, options: SaveUserOptions): SavedUser {
  return db.transaction((tx) => {
    const existing = tx
      .select({ id: users.id })
      .from(users)
      .where(eq(users.username, options.username))
      .get();
    const id = existing?.id ?? options.id ?? randomUUID();
    let passwordSet = true;
    const problem = existing ? null : usernameProblem(options.username);
    if (problem) throw new InvalidUsernameError(options.username, problem);
    if (!existing) {
      tx.insert(users)
        .values({
          id,
          username: options.username,
          password: options.passwordHash,
          labPassword: options.labPassword ?? false,
          isStaff: options.isStaff ?? false,
          dateJoined: options.now,
        })
        .run();
    } else if (options.keepPassword) {
      passwordSet = false;
      if (options.isStaff) tx.update(users).set({ isStaff: true }).where(eq(users.id, id)).run();
    } else {
      // Without an explicit isStaff the flag stays: a password change never demotes staff.
      tx.update(users)
        .set({
          password: options.passwordHash,
          labPassword: options.labPassword ?? false,
          ...(options.isStaff !== undefined && { isStaff: options.isStaff }),
        })
        .where(eq(users.id, id))
        .run();
    }
    tx.insert(profiles).values({ userId: id }).onConflictDoNothing().run();
    for (const name of options.groups ?? []) {
      const groupId = ensureGroup(tx, name);
      tx.insert(userGroups).values({ userId: id, groupId }).onConflictDoNothing().run();
    }
    return { id, created: !existing, passwordSet };
  });
}

/**
 * Creates a user, or updates the password, staff flag (when given) and groups (added, never
 * removed) of an existing one, with a profile row; the user's rows only (see {@link saveUser}).
 * Returns the user id.
 *
 * @example
 * upsertUser(db, { username: 'student1', passwordHash, groups: [], now: Date.now() });
 */
export function upsertUser(db: Db, options: UpsertUserOptions): string {
  return saveUser(db, options).id;
}

/** The parsed JSON `meta` of a user's profile (`{}` when missing or unreadable). */
export function profileMeta(db: Db, userId: string): Record<string, unknown> {
  const row = db
    .select({ meta: profiles.meta })
    .from(profiles)
    .where(eq(profiles.userId, userId))
    .get();
  if (!row) return {};
  try {
    const meta: unknown = JSON.parse(row.meta);
    return meta && typeof meta === 'object' ? (meta as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
