import {
  index,
  integer,
  primaryKey,
  sqliteTable,
  text,
  uniqueIndex,
} from 'drizzle-orm/sqlite-core';

// Times are integer milliseconds since the epoch: one unit everywhere, and the clock is injected.

/** Accounts. `password` is Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`. */
export const users = sqliteTable(
  'users',
  {
    id: text('id').primaryKey(),
    username: text('username').notNull(),
    password: text('password').notNull(),
    isStaff: integer('is_staff', { mode: 'boolean' }).notNull().default(false),
    isActive: integer('is_active', { mode: 'boolean' }).notNull().default(true),
    dateJoined: integer('date_joined').notNull(),
    lastLogin: integer('last_login'),
    /**
     * Whether the password is one of the seed's published lab defaults, written with it, so
     * `serve` off loopback can warn without hashing. Null: set before 0011, not known yet.
     */
    labPassword: integer('lab_password', { mode: 'boolean' }),
  },
  (table) => [uniqueIndex('users_username_unique').on(table.username)],
);

export const groups = sqliteTable(
  'groups',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    name: text('name').notNull(),
  },
  (table) => [uniqueIndex('groups_name_unique').on(table.name)],
);

export const userGroups = sqliteTable(
  'user_groups',
  {
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    groupId: integer('group_id')
      .notNull()
      .references(() => groups.id, { onDelete: 'cascade' }),
  },
  (table) => [primaryKey({ columns: [table.userId, table.groupId] })],
);

/** As upstream's UserProfile: `meta` is JSON text; `meta.session_id` is the single-login slot. */
export const profiles = sqliteTable('profiles', {
  userId: text('user_id')
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  meta: text('meta').notNull().default('{}'),
});

/** `id` is the SHA-256 (hex) of the cookie token, so a copy of the database holds no cookies. */
export const sessions = sqliteTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    lastSeenAt: integer('last_seen_at').notNull(),
    instanceId: text('instance_id'),
    /** False for exempt or unrestricted logins: they never count toward a limit. */
    tracked: integer('tracked', { mode: 'boolean' }).notNull(),
    /** The login's `User-Agent`, at most 256 characters; null when it sent none (or before 0007). */
    userAgent: text('user_agent'),
    /** The login's client address, as the login throttle reads it (see clientAddress). */
    address: text('address'),
    /**
     * The pool the login was admitted in: `default`, or `path:<text>` under a rule with a
     * `path` (session-policy's EffectiveRule.pool); only sessions of one pool compete.
     */
    pool: text('pool').notNull().default('default'),
    /**
     * The session auth hash of the password hash the login was checked against (see
     * sessions/auth-hash.ts): a request whose user's password changed since is refused.
     * Null before 0009: such a session is refused.
     */
    authHash: text('auth_hash'),
  },
  (table) => [index('sessions_user_idx').on(table.userId, table.tracked, table.expiresAt)],
);

/** Where sessions live: `SESSION_STORE`. */
export const SESSION_STORE_KINDS = ['sqlite', 'redis'] as const;

/**
 * Where the LMS keeps its sessions, as the last server started on this file recorded it (one
 * row, `id` 1), so that `pnpm lms` acts on those sessions whatever its own shell says.
 * `redisUrl` is kept without credentials: a shell reaches a Redis that has a password only
 * with its own SESSION_REDIS_URL.
 */
export const sessionStoreRecord = sqliteTable('session_store', {
  id: integer('id').primaryKey(),
  kind: text('kind', { enum: SESSION_STORE_KINDS }).notNull(),
  redisUrl: text('redis_url'),
  redisPrefix: text('redis_prefix'),
  /** When the server started, milliseconds since the epoch. */
  recordedAt: integer('recorded_at').notNull(),
});

/**
 * Why a stored session ended: another login evicted it, its user logged out, its password
 * changed, staff ended it (`staff`), or its user ended it from another session (`user`).
 */
export const SESSION_END_REASONS = [
  'evicted',
  'logged-out',
  'password-change',
  'staff',
  'user',
] as const;

/** Why a session ended, kept for a day so the next request with its cookie can be told. */
export const sessionEnds = sqliteTable(
  'session_ends',
  {
    sessionId: text('session_id').primaryKey(),
    userId: text('user_id').notNull(),
    reason: text('reason', { enum: SESSION_END_REASONS }).notNull(),
    at: integer('at').notNull(),
    /**
     * The username that ended it: the user (a logout, or one of their own sessions), a staff
     * member, or `(cli)`. Null when the system did (eviction, password change).
     */
    endedBy: text('ended_by'),
    /** For an eviction: the evicting login's client instance, its session id, the quota. */
    byInstance: text('by_instance'),
    bySession: text('by_session'),
    quotaUsed: integer('quota_used'),
    quotaMax: integer('quota_max'),
    quotaScope: text('quota_scope', { enum: ['account', 'instance'] }),
    /** The pool the evicting login's quota counts (see `sessions.pool`). */
    quotaPool: text('quota_pool'),
  },
  (table) => [index('session_ends_at_idx').on(table.at)],
);

export const queues = sqliteTable('queues', {
  name: text('name').primaryKey(),
  createdAt: integer('created_at').notNull(),
});

/** `graderPayload` is the string handed to graders verbatim (usually JSON). */
export const problems = sqliteTable('problems', {
  id: text('id').primaryKey(),
  queueName: text('queue_name')
    .notNull()
    .references(() => queues.name, { onDelete: 'cascade' }),
  graderPayload: text('grader_payload').notNull(),
});

/**
 * edx-submissions' statuses under our names: `graded` is upstream's `retired`; `retry` is a
 * submission whose result had no usable score, back in the queue at once.
 */
export const SUBMISSION_STATES = ['pending', 'pulled', 'retry', 'graded', 'failed'] as const;
export type SubmissionState = (typeof SUBMISSION_STATES)[number];

export const submissions = sqliteTable(
  'submissions',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    queueName: text('queue_name')
      .notNull()
      .references(() => queues.name),
    studentId: text('student_id')
      .notNull()
      .references(() => users.id),
    problemId: text('problem_id')
      .notNull()
      .references(() => problems.id),
    /** The `xqueue_body` JSON string served to graders. */
    body: text('body').notNull(),
    state: text('state', { enum: SUBMISSION_STATES }).notNull().default('pending'),
    pullKey: text('pull_key'),
    pulledAt: integer('pulled_at'),
    firstPulledAt: integer('first_pulled_at'),
    pullCount: integer('pull_count').notNull().default(0),
    /** Serves of an expired lock (pulls that brought no result in time). */
    failureCount: integer('failure_count').notNull().default(0),
    /** Results without a usable score (upstream's `num_failures`); the 5th fails the submission. */
    scoreFailures: integer('score_failures').notNull().default(0),
    /**
     * Upstream's `status_time`: when the state last changed (creation, pull, result). Servable
     * submissions are served oldest first by it; an expired lock's re-serve leaves it alone.
     * The default only fills rows that existed before the column (the migration backfills them).
     */
    statusAt: integer('status_at').notNull().default(0),
    /** The accepted `xqueue_body` of put_result, as JSON text. */
    result: text('result'),
    /** Accepted result posts that changed state: proves "graded once". */
    resultPosts: integer('result_posts').notNull().default(0),
    createdAt: integer('created_at').notNull(),
    gradedAt: integer('graded_at'),
  },
  (table) => [
    // As upstream's (queue_name, status, status_time): the oldest pending, retry or expired
    // pulled submission of a queue is one seek each.
    index('submissions_queue_status_idx').on(table.queueName, table.state, table.statusAt),
    index('submissions_student_idx').on(table.studentId),
  ],
);

/**
 * Every put_result the LMS answered with success for a submission's result, a repeat with the
 * right key included (the submission row stays unchanged by a repeat): `accepted` above 1 shows
 * a submission graded or posted twice from the LMS's side.
 */
export const resultAcceptances = sqliteTable('result_acceptances', {
  submissionId: integer('submission_id')
    .primaryKey()
    .references(() => submissions.id),
  accepted: integer('accepted').notNull(),
  lastAcceptedAt: integer('last_accepted_at').notNull(),
});

/**
 * Run-time overrides of the session policy, set by staff on the dashboard: one row (`id` 1).
 * `settings` is a JSON object of the fields that replace the environment's defaults.
 */
export const policyOverrides = sqliteTable('policy_overrides', {
  id: integer('id').primaryKey(),
  settings: text('settings').notNull(),
  updatedAt: integer('updated_at').notNull(),
  updatedBy: text('updated_by').notNull(),
  /**
   * +1 on every change (a reset too, which keeps the row with `{}`): every LMS process on the
   * file compares it at each login and reloads when it moved; a write checks the one it read.
   */
  version: integer('version').notNull().default(1),
});

/** Every policy change: who, when, why, and the effective settings before and after (JSON). */
export const policyAudit = sqliteTable(
  'policy_audit',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: integer('at').notNull(),
    /** Kept as text (no foreign key) so the trail outlives the account. */
    actor: text('actor').notNull(),
    action: text('action', { enum: ['update', 'reset'] }).notNull(),
    reason: text('reason').notNull(),
    before: text('before').notNull(),
    after: text('after').notNull(),
  },
  (table) => [index('policy_audit_at_idx').on(table.at)],
);

/**
 * Password checks of the login throttle, by hashed key (account or address): `pending` while a
 * check runs (so parallel attempts count when they start), `failed` once it said no. Shared by
 * every LMS process on the file and kept across restarts.
 */
export const loginAttempts = sqliteTable(
  'login_attempts',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    key: text('key').notNull(),
    /** Both rows (account and address) of one attempt share it. */
    attempt: text('attempt').notNull(),
    state: text('state', { enum: ['pending', 'failed'] }).notNull(),
    /** Milliseconds since the epoch. */
    at: integer('at').notNull(),
  },
  (table) => [
    index('login_attempts_key_idx').on(table.key, table.state, table.at),
    index('login_attempts_at_idx').on(table.at),
    index('login_attempts_attempt_idx').on(table.attempt),
  ],
);

/** Account and address pairs that logged in successfully, by hashed pair, with when. */
export const loginTrust = sqliteTable('login_trust', {
  pair: text('pair').primaryKey(),
  /** Milliseconds since the epoch. */
  at: integer('at').notNull(),
});
