import { and, eq } from 'drizzle-orm';
import { hashPassword, verifyPassword } from './auth/password.ts';
import type { ClientDb, Db } from './db/client.ts';
import { problems, queues, users } from './db/schema.ts';
import {
  type PasswordChangeSessions,
  type SessionsEnded,
  saveAccounts,
  serverSessions,
} from './sessions/accounts.ts';
import { groupsOf, type SaveUserOptions, XQUEUE_GROUP } from './users.ts';

/** What `pnpm lms seed` creates; every field has a lab default. */
export interface SeedOptions {
  queues: readonly string[];
  students: number;
  serviceUsername: string;
  servicePassword: string;
  staffUsername: string;
  staffPassword: string;
  studentPassword: string;
  /**
   * Also set the passwords of accounts that exist (ending their sessions). Default false: an
   * existing account keeps its password, so a restart never undoes an operator's change.
   */
  resetPasswords?: boolean;
}

/**
 * Lab defaults (documented in the README; override them with the seed flags). Published, so
 * `pnpm lms seed` uses them only while HOST is loopback; otherwise it generates passwords.
 */
export const SEED_DEFAULTS: SeedOptions = {
  queues: ['test-queue'],
  students: 5,
  serviceUsername: 'xqueue_svc',
  servicePassword: 'xqueue-pass',
  staffUsername: 'staff',
  staffPassword: 'staff-pass',
  studentPassword: 'student-pass',
};

/** The lab default passwords: published, so never to be served off loopback. */
export const LAB_PASSWORDS: readonly string[] = [
  SEED_DEFAULTS.servicePassword,
  SEED_DEFAULTS.staffPassword,
  SEED_DEFAULTS.studentPassword,
];

/** Whether a password is one of {@link LAB_PASSWORDS}. */
export function isLabPassword(password: string): boolean {
  return LAB_PASSWORDS.includes(password);
}

/** What a seed run wrote, for printing. */
export interface SeedSummary {
  queues: string[];
  problems: string[];
  serviceAccount: string;
  staff: string;
  students: string[];
  /** Accounts whose password this run wrote: the new ones, or every one with resetPasswords. */
  passwordsSet: string[];
  /** Accounts that existed and kept their password. */
  passwordsKept: string[];
  /**
   * The sessions ended because resetPasswords set the password of an account that had them, in
   * the store the server uses (see `saveAccounts`).
   */
  sessionsEnded: SessionsEnded;
}

/** What sets the seeded accounts apart: the service account's group, the staff flag. */
type AccountExtras = Pick<SaveUserOptions, 'groups' | 'isStaff'>;

/** The three problems of a queue, with deterministic grader payloads. */
export function problemsOf(queue: string): { id: string; graderPayload: string }[] {
  return [1, 2, 3].map((index) => {
    const id = `${queue}-p${index}`;
    return { id, graderPayload: JSON.stringify({ answer: `answer-${id}` }) };
  });
}

/**
 * Creates queues, problems, the xqueue service account, a staff user and students. Idempotent:
 * a second run adds what is missing (accounts, groups, problems) and leaves the password of an
 * existing account alone unless `resetPasswords` is set (which ends that account's sessions in
 * the store the server uses).
 *
 * @example
 * await seed(db, { ...SEED_DEFAULTS, students: 2 }, { iterations: 1000, now: Date.now() });
 */
export async function seed(
  db: ClientDb,
  options: SeedOptions,
  context: {
    iterations: number;
    now: number;
    /** How passwords are hashed; default Django's pbkdf2_sha256 (a simulation passes its own). */
    hash?: (password: string, iterations: number) => Promise<string>;
    /**
     * Where the sessions of a reset password end. Default: the store the server on `db`
     * recorded (`serverSessions(db)`), SQLite before any server did.
     */
    sessions?: PasswordChangeSessions;
  },
): Promise<SeedSummary> {
  const students = Array.from({ length: options.students }, (_, index) => `student${index + 1}`);
  const hash = (password: string) => (context.hash ?? hashPassword)(password, context.iterations);
  // Hashing runs on the thread pool, so all accounts hash in parallel. Existing accounts are
  // hashed too: whether one exists is decided inside the transaction, not before it.
  const [serviceHash, staffHash, ...studentHashes] = await Promise.all([
    hash(options.servicePassword),
    hash(options.staffPassword),
    ...students.map(() => hash(options.studentPassword)),
  ]);
  const allProblems = options.queues.flatMap((queue) =>
    problemsOf(queue).map((problem) => ({ ...problem, queue })),
  );
  db.transaction((tx) => {
    for (const name of options.queues) {
      tx.insert(queues).values({ name, createdAt: context.now }).onConflictDoNothing().run();
    }
    for (const problem of allProblems) {
      tx.insert(problems)
        .values({ id: problem.id, queueName: problem.queue, graderPayload: problem.graderPayload })
        .onConflictDoUpdate({ target: problems.id, set: { graderPayload: problem.graderPayload } })
        .run();
    }
  });
  const keepPassword = options.resetPasswords !== true;
  const account = (
    username: string,
    password: string,
    passwordHash: string,
    extra: AccountExtras = {},
  ): SaveUserOptions => ({
    username,
    passwordHash,
    labPassword: isLabPassword(password),
    now: context.now,
    keepPassword,
    ...extra,
  });
  const accounts = [
    account(options.serviceUsername, options.servicePassword, serviceHash!, {
      groups: [XQUEUE_GROUP],
    }),
    account(options.staffUsername, options.staffPassword, staffHash!, { isStaff: true }),
    ...students.map((username, index) =>
      account(username, options.studentPassword, studentHashes[index]!),
    ),
  ];
  const saved = await saveAccounts(db, context.sessions ?? serverSessions(db), accounts);
  const named = (passwordSet: boolean) =>
    accounts
      .filter((_, index) => saved.users[index]?.passwordSet === passwordSet)
      .map((entry) => entry.username);
  return {
    queues: [...options.queues],
    problems: allProblems.map((problem) => problem.id),
    serviceAccount: options.serviceUsername,
    staff: options.staffUsername,
    students,
    passwordsSet: named(true),
    passwordsKept: named(false),
    sessionsEnded: saved.sessions,
  };
}

/** Accounts with a password from before the record (migration 0011) checked per call at most. */
const UNRECORDED_CHECKS = 20;

/** Which active accounts {@link labPasswordAccounts} found with a lab default password. */
export interface LabPasswordAccounts {
  /** Their usernames, in table order. */
  usernames: string[];
  /** Accounts whose password predates the record and were left unchecked (beyond the cap). */
  unchecked: number;
}

/**
 * The active accounts whose password is a lab default ({@link LAB_PASSWORDS}), for `serve` to
 * warn off loopback. Each password written since migration 0011 records whether it is one, so
 * this is a query; an older one is checked against the default of its account's role (one
 * password hash each, for at most 20 accounts a call) and the answer recorded, so each is
 * hashed once.
 *
 * @example
 * const { usernames } = await labPasswordAccounts(db); // ['xqueue_svc', 'student1']
 */
export async function labPasswordAccounts(db: Db): Promise<LabPasswordAccounts> {
  const rows = db
    .select({
      id: users.id,
      username: users.username,
      password: users.password,
      isStaff: users.isStaff,
      labPassword: users.labPassword,
    })
    .from(users)
    .where(eq(users.isActive, true))
    .all();
  const unrecorded = rows.filter((row) => row.labPassword === null);
  const checked = unrecorded.slice(0, UNRECORDED_CHECKS);
  const found = await Promise.all(
    checked.map(async (row) => {
      const groups = groupsOf(db, row.id);
      const candidate = groups.includes(XQUEUE_GROUP)
        ? SEED_DEFAULTS.servicePassword
        : row.isStaff
          ? SEED_DEFAULTS.staffPassword
          : SEED_DEFAULTS.studentPassword;
      return verifyPassword(candidate, row.password);
    }),
  );
  checked.forEach((row, index) => {
    // Only if the password is still the one checked.
    db.update(users)
      .set({ labPassword: found[index] ?? false })
      .where(and(eq(users.id, row.id), eq(users.password, row.password)))
      .run();
    row.labPassword = found[index] ?? false;
  });
  return {
    usernames: rows.filter((row) => row.labPassword === true).map((row) => row.username),
    unchecked: unrecorded.length - checked.length,
  };
}
