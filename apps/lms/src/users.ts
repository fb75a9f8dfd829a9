import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
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
  groups?: readonly string[];
  isStaff?: boolean;
  now: number;
  /** Given in tests so that ids are predictable; default a random UUID. */
  id?: string;
}

/**
 * Creates a user, or updates the password, staff flag and groups (added, never removed) of an
 * existing one, with a profile row. Returns the user id.
 *
 * @example
 * upsertUser(db, { username: 'student1', passwordHash, groups: [], now: Date.now() });
 */
export function upsertUser(db: Db, options: UpsertUserOptions): string {
  return db.transaction((tx) => {
    const existing = tx
      .select({ id: users.id })
      .from(users)
      .where(eq(users.username, options.username))
      .get();
    const id = existing?.id ?? options.id ?? randomUUID();
    if (existing) {
      tx.update(users)
        .set({ password: options.passwordHash, isStaff: options.isStaff ?? false })
        .where(eq(users.id, id))
        .run();
    } else {
      tx.insert(users)
        .values({
          id,
          username: options.username,
          password: options.passwordHash,
          isStaff: options.isStaff ?? false,
          dateJoined: options.now,
        })
        .run();
    }
    tx.insert(profiles).values({ userId: id }).onConflictDoNothing().run();
    for (const name of options.groups ?? []) {
      const groupId = ensureGroup(tx, name);
      tx.insert(userGroups).values({ userId: id, groupId }).onConflictDoNothing().run();
    }
    return id;
  });
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
