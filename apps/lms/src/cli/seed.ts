import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { numberFlag, UsageError } from '@storm-lab/cli-kit';
import { openDatabase } from '../db/client.ts';
import { SEED_DEFAULTS, type SeedSummary, seed } from '../seed.ts';
import { serverSessions } from '../sessions/accounts.ts';
import { bindCommand, checkUsername, isLoopback, type LmsCliIo, say } from './command.ts';
import { endedText } from './password-change.ts';

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** 144 random bits, URL-safe: a password nobody published. */
function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/** The secret in FILE (one trailing newline dropped), or null when the file is missing or empty. */
async function readSecret(path: string): Promise<string | null> {
  try {
    const text = (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
    return text === '' ? null : text;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Writes a secret readable only by this user, atomically (a reader never sees half of it). */
async function writeSecret(path: string, secret: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  await rm(temporary, { force: true });
  await writeFile(temporary, secret, { mode: 0o600 });
  await rename(temporary, path);
}

/** `student1`, or `student6..student50`: the students a generated password was set for. */
function studentRange(students: readonly string[]): string {
  return students.length > 1 ? `${students[0]}..${students.at(-1)}` : (students[0] ?? '');
}

/** The passwords one seed run uses, and which of them it made up. */
interface SeedPasswords {
  service: string;
  staff: string;
  student: string;
  generated: Set<'service' | 'staff' | 'student'>;
}

async function seedPasswords(
  values: Values,
  random: boolean,
  serviceFile: string | null,
): Promise<SeedPasswords> {
  const generated = new Set<'service' | 'staff' | 'student'>();
  const pick = (role: 'service' | 'staff' | 'student', fallback: string) => {
    const given = values[`${role}-password`];
    if (typeof given === 'string') return given;
    if (!random) return fallback;
    generated.add(role);
    return generatePassword();
  };
  const fromFile = serviceFile && typeof values['service-password'] !== 'string';
  const stored = fromFile ? await readSecret(serviceFile) : null;
  return {
    service: stored ?? pick('service', SEED_DEFAULTS.servicePassword),
    staff: pick('staff', SEED_DEFAULTS.staffPassword),
    student: pick('student', SEED_DEFAULTS.studentPassword),
    generated,
  };
}

/** Fills each `--ROLE-password` not given from DIR/ROLE: no password on a command line. */
async function passwordsFrom(dir: string, values: Values): Promise<void> {
  if (
    !(await stat(dir).then(
      (info) => info.isDirectory(),
      () => false,
    ))
  )
    throw new UsageError(`--passwords-from: ${dir} is not a directory`);
  for (const role of ['service', 'staff', 'student']) {
    const key = `${role}-password`;
    const secret = values[key] === undefined ? await readSecret(join(dir, role)) : null;
    if (secret !== null) values[key] = secret;
  }
}

/** Keeps the service password file in step with the account; warns when it cannot. */
async function shareServicePassword(
  file: string,
  password: string,
  summary: SeedSummary,
  io: LmsCliIo,
): Promise<void> {
  const account = summary.serviceAccount;
  const stored = await readSecret(file);
  if (summary.passwordsSet.includes(account)) {
    if (stored !== password) await writeSecret(file, password);
    say(io.out, `Service password written to ${file} (for the watchers)`);
  } else if (stored === null) {
    say(
      io.err,
      `warning: ${account} exists and keeps its password, which ${file} does not hold (it is missing): ` +
        'watchers reading it cannot log in. Run seed with --reset-passwords to set a new one.',
    );
  } else if (stored !== password) {
    say(
      io.err,
      `warning: ${account} exists and keeps its password; --service-password was not applied and ` +
        `${file} keeps the old one. Run seed with --reset-passwords to change it.`,
    );
  }
}

function printSeedSummary(
  summary: SeedSummary,
  passwords: SeedPasswords,
  databasePath: string,
  serviceFile: string | null,
  io: LmsCliIo,
): void {
  const ended = endedText(summary.sessionsEnded);
  say(
    io.out,
    `Seeded ${databasePath}
  queues:          ${summary.queues.join(', ')}
  problems:        ${summary.problems.join(', ')}
  service account: ${summary.serviceAccount} (group xqueue)
  staff:           ${summary.staff}
  students:        ${summary.students.join(', ') || '(none)'}
  passwords:       ${summary.passwordsSet.length} set, ${summary.passwordsKept.length} kept (an account that exists keeps its password unless --reset-passwords)${ended}`,
  );
  // A generated password is shown when it was set, i.e. once: the next run keeps the account's.
  const isSet = (username: string) => summary.passwordsSet.includes(username);
  const shown: string[] = [];
  const show = (label: string, password: string) => shown.push(`  ${label.padEnd(16)} ${password}`);
  if (passwords.generated.has('service') && !serviceFile && isSet(summary.serviceAccount)) {
    show(summary.serviceAccount, passwords.service);
  }
  if (passwords.generated.has('staff') && isSet(summary.staff)) {
    show(summary.staff, passwords.staff);
  }
  const studentsSet = summary.students.filter(isSet);
  if (passwords.generated.has('student') && studentsSet.length > 0) {
    show(studentRange(studentsSet), passwords.student);
  }
  if (shown.length > 0) {
    say(io.out, `Generated passwords, shown this once (stored nowhere else):\n${shown.join('\n')}`);
  }
}

const SEED_HELP = `Usage: pnpm lms seed [options]   (idempotent)

Creates what is missing. An account that exists keeps its password (a restart never undoes an
operator's change) unless --reset-passwords is given.

  --queues a,b              queues to create (default ${SEED_DEFAULTS.queues.join(',')}); 3 problems each: <queue>-p1..p3
  --students N              students student1..N (default ${SEED_DEFAULTS.students})
  --service-username NAME   xqueue service account, in group xqueue (default ${SEED_DEFAULTS.serviceUsername})
  --service-password P      (default ${SEED_DEFAULTS.servicePassword}, or the --service-password-file's)
  --staff-username NAME     (default ${SEED_DEFAULTS.staffUsername})
  --staff-password P        (default ${SEED_DEFAULTS.staffPassword})
  --student-password P      one password for every student (default ${SEED_DEFAULTS.studentPassword})
  --random-passwords        generate the passwords not given instead of the lab defaults, and
                            print them once; implied when HOST is not a loopback address
  --service-password-file F read the service password from F when not given; write it there
                            (mode 0600) when set, for the watchers to read
  --passwords-from DIR      read the passwords not given above from DIR/service, DIR/staff and
                            DIR/student (each optional), so that none is on a command line
  --reset-passwords         also set the passwords of accounts that exist; their sessions end`;

/** `pnpm lms seed`: queues, problems and the lab's accounts, created when missing. */
export const seedCommand = (io: LmsCliIo) =>
  bindCommand(io, {
    summary: 'create queues, problems, the xqueue service account, staff and students',
    help: SEED_HELP,
    flags: {
      queues: { type: 'string' },
      students: { type: 'string' },
      'service-username': { type: 'string' },
      'service-password': { type: 'string' },
      'staff-username': { type: 'string' },
      'staff-password': { type: 'string' },
      'student-password': { type: 'string' },
      'random-passwords': { type: 'boolean' },
      'service-password-file': { type: 'string' },
      'reset-passwords': { type: 'boolean' },
      'passwords-from': { type: 'string' },
    },
    async run(parsed, config) {
      const values: Values = { ...parsed.values };
      if (typeof values['passwords-from'] === 'string') {
        await passwordsFrom(values['passwords-from'], values);
      }
      const queues =
        typeof values.queues === 'string'
          ? values.queues
              .split(',')
              .map((queue) => queue.trim())
              .filter(Boolean)
          : undefined;
      if (queues && queues.length === 0) throw new UsageError('--queues needs at least one name');
      for (const flag of [
        'service-username',
        'service-password',
        'staff-username',
        'staff-password',
        'student-password',
        'service-password-file',
      ]) {
        if (values[flag] === '') throw new UsageError(`--${flag} must not be empty`);
      }
      const text = (key: string, fallback: string) =>
        typeof values[key] === 'string' ? (values[key] as string) : fallback;
      for (const flag of ['service-username', 'staff-username']) {
        if (typeof values[flag] === 'string') checkUsername(`--${flag}`, values[flag] as string);
      }
      const students = numberFlag('students', parsed.values.students, SEED_DEFAULTS.students, {
        min: 0,
        max: 10_000,
        integer: true,
      });
      const serviceFile = text('service-password-file', '') || null;
      // The lab defaults are published: only a server that nobody else can reach may use them.
      const loopback = isLoopback(config.host);
      if (!loopback && values['random-passwords'] !== true) {
        say(io.out, `HOST=${config.host} is not loopback: passwords not given are generated`);
      }
      const passwords = await seedPasswords(
        values,
        values['random-passwords'] === true || !loopback,
        serviceFile,
      );
      const database = openDatabase({ path: config.databasePath });
      try {
        const summary = await seed(
          database.db,
          {
            queues: queues ?? SEED_DEFAULTS.queues,
            students,
            serviceUsername: text('service-username', SEED_DEFAULTS.serviceUsername),
            servicePassword: passwords.service,
            staffUsername: text('staff-username', SEED_DEFAULTS.staffUsername),
            staffPassword: passwords.staff,
            studentPassword: passwords.student,
            resetPasswords: values['reset-passwords'] === true,
          },
          {
            iterations: config.passwordHashIterations,
            now: Date.now(),
            sessions: serverSessions(database.db, config.sessionStore),
          },
        );
        printSeedSummary(summary, passwords, config.databasePath, serviceFile, io);
        if (serviceFile) await shareServicePassword(serviceFile, passwords.service, summary, io);
      } finally {
        database.close();
      }
    },
  });
