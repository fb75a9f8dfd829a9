import { hashPassword } from './auth/password.ts';
import type { Db } from './db/client.ts';
import { problems, queues } from './db/schema.ts';
import { upsertUser, XQUEUE_GROUP } from './users.ts';

/** What `pnpm lms seed` creates; every field has a lab default. */
export interface SeedOptions {
  queues: readonly string[];
  students: number;
  serviceUsername: string;
  servicePassword: string;
  staffUsername: string;
  staffPassword: string;
  studentPassword: string;
}

/** Lab defaults (documented in the README; override them with the seed flags). */
export const SEED_DEFAULTS: SeedOptions = {
  queues: ['test-queue'],
  students: 5,
  serviceUsername: 'xqueue_svc',
  servicePassword: 'xqueue-pass',
  staffUsername: 'staff',
  staffPassword: 'staff-pass',
  studentPassword: 'student-pass',
};

/** What a seed run wrote, for printing. */
export interface SeedSummary {
  queues: string[];
  problems: string[];
  serviceAccount: string;
  staff: string;
  students: string[];
}

/** The three problems of a queue, with deterministic grader payloads. */
export function problemsOf(queue: string): { id: string; graderPayload: string }[] {
  return [1, 2, 3].map((index) => {
    const id = `${queue}-p${index}`;
    return { id, graderPayload: JSON.stringify({ answer: `answer-${id}` }) };
  });
}

/**
 * Creates queues, problems, the xqueue service account, a staff user and students. Idempotent:
 * a second run updates passwords and adds what is missing.
 *
 * @example
 * await seed(db, { ...SEED_DEFAULTS, students: 2 }, { iterations: 1000, now: Date.now() });
 */
export async function seed(
  db: Db,
  options: SeedOptions,
  context: { iterations: number; now: number },
): Promise<SeedSummary> {
  const students = Array.from({ length: options.students }, (_, index) => `student${index + 1}`);
  const hash = (password: string) => hashPassword(password, context.iterations);
  // Hashing runs on the thread pool, so all accounts hash in parallel.
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
    const now = context.now;
    upsertUser(tx, {
      username: options.serviceUsername,
      passwordHash: serviceHash!,
      groups: [XQUEUE_GROUP],
      now,
    });
    upsertUser(tx, {
      username: options.staffUsername,
      passwordHash: staffHash!,
      isStaff: true,
      now,
    });
    students.forEach((username, index) => {
      upsertUser(tx, { username, passwordHash: studentHashes[index]!, now });
    });
  });
  return {
    queues: [...options.queues],
    problems: allProblems.map((problem) => problem.id),
    serviceAccount: options.serviceUsername,
    staff: options.staffUsername,
    students,
  };
}
