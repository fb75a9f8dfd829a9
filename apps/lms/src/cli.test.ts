import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type LocalLms,
  type RedisHandle,
  spawnManaged,
  startLms,
  useRedis,
} from '@storm-lab/harness';
import { POLICY_ENV } from '@storm-lab/session-policy';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifyPassword } from './auth/password.ts';
import { runCli } from './cli.ts';
import { openDatabase } from './db/client.ts';
import { ENV_VARIABLES } from './env.ts';
import { browserSessions, captureIo, expectEnded, FAST, LMS_DIR, lmsCli } from './testing/cli.ts';
import { TestClient, urlFetcher } from './testing/client.ts';
import { currentShortId } from './testing/sessions.ts';
import { findCredentials } from './users.ts';

let lms: LocalLms | undefined;
let redis: RedisHandle | undefined;
beforeAll(async () => {
  redis = await useRedis(process.env.REDIS_URL);
});
afterAll(() => redis?.stop());
afterEach(async () => {
  await lms?.stop();
  lms = undefined;
});

/** Runs `pnpm lms ARGS` as a real process on DATABASE_PATH; its exit code and all its output. */
function spawnCli(args: string[], env: Record<string, string>) {
  const child = spawnManaged(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: LMS_DIR,
    env: { ...FAST, ...env },
  });
  return child.exited.then(({ code }) => ({ code, output: child.output() }));
}

/** Whether USERNAME's stored hash accepts PASSWORD, read straight from the database file. */
async function passwordWorks(databasePath: string, username: string, password: string) {
  const database = openDatabase({ path: databasePath });
  try {
    const row = findCredentials(database.db, username);
    if (!row) throw new Error(`no user ${username} in ${databasePath}`);
    return await verifyPassword(password, row.password);
  } finally {
    database.close();
  }
}

describe('lms CLI', { timeout: 90_000 }, () => {
  it('adds a user with repeated --group and --staff, and prints help', async () => {
    lms = await startLms({ env: FAST });
    const databasePath = lms.databasePath;
    const cli = (args: string[]) => spawnCli(args, { DATABASE_PATH: databasePath });
    const added = await cli([
      'user',
      'add',
      'grader2',
      '--password',
      'pw',
      '--group',
      'xqueue',
      '--group',
      'ta',
      '--staff',
    ]);
    expect(added).toEqual({ code: 0, output: 'User grader2 saved (groups: xqueue, ta) [staff]\n' });
    const client = new TestClient(urlFetcher(lms.url));
    await client.webLogin('grader2', 'pw');
    expect(await (await client.get('/me')).json()).toEqual({
      username: 'grader2',
      groups: ['ta', 'xqueue'],
      is_staff: true,
    });
    expect(await cli(['user', '--help'])).toMatchObject({
      code: 0,
      output: expect.stringContaining('--group G'),
    });
    expect(await cli(['user', 'add'])).toMatchObject({
      code: 2,
      output: expect.stringContaining('expected: user add NAME'),
    });
    expect(await cli(['sessions', 'end', 'nobody', '--all'])).toEqual({
      code: 2,
      output: 'sessions end: no user named "nobody" (see pnpm lms sessions --help)\n',
    });
  });
});

describe('lms seed on an existing database', { timeout: 90_000 }, () => {
  let dir: string;
  let databasePath: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lms-seed-'));
    databasePath = join(dir, 'lms.db');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const seedWith = (args: string[], env: Record<string, string> = {}) =>
    lmsCli(['seed', '--students', '1', ...args], databasePath, env);

  it('keeps the password an existing account has when seeded again with another one', async () => {
    expect(await seedWith(['--staff-password', 'first-pass'])).toMatchObject({ code: 0 });
    expect(await seedWith(['--staff-password', 'second-pass'])).toMatchObject({ code: 0 });
    expect(await passwordWorks(databasePath, 'staff', 'first-pass')).toBe(true);
    expect(await passwordWorks(databasePath, 'staff', 'second-pass')).toBe(false);
  });

  it('sets existing accounts passwords again with --reset-passwords', async () => {
    expect(await seedWith(['--staff-password', 'first-pass'])).toMatchObject({ code: 0 });
    const reset = await seedWith(['--staff-password', 'second-pass', '--reset-passwords']);
    expect(reset).toMatchObject({ code: 0 });
    expect(await passwordWorks(databasePath, 'staff', 'second-pass')).toBe(true);
    expect(await passwordWorks(databasePath, 'staff', 'first-pass')).toBe(false);
  });

  it('generates the passwords not given when HOST is not loopback, prints each once, and they work', async () => {
    const first = await seedWith(['--service-password', 'svc-pass'], { HOST: '0.0.0.0' });
    expect(first.code).toBe(0);
    const staffPassword = /^ {2}staff +(\S+)$/m.exec(first.output)?.[1];
    const studentPassword = /^ {2}student1 +(\S+)$/m.exec(first.output)?.[1];
    expect({ staffPassword, studentPassword }).toEqual({
      staffPassword: expect.stringMatching(/^[\w-]{20,}$/),
      studentPassword: expect.stringMatching(/^[\w-]{20,}$/),
    });
    expect(first.output).not.toContain('staff-pass');
    expect(first.output).not.toContain('svc-pass');
    const second = await seedWith([], { HOST: '0.0.0.0' });
    expect(second.code).toBe(0);
    expect(second.output).not.toContain(staffPassword);
    expect(second.output).not.toContain(studentPassword);

    lms = await startLms({ env: FAST, databasePath, seed: ['--students', '1'] });
    const staff = new TestClient(urlFetcher(lms.url));
    expect((await staff.webLogin('staff', 'staff-pass')).status).toBe(401);
    expect((await staff.webLogin('staff', staffPassword!)).status).toBe(200);
    expect(await (await staff.get('/me')).json()).toMatchObject({ is_staff: true });
    const student = new TestClient(urlFetcher(lms.url));
    expect((await student.webLogin('student1', studentPassword!)).status).toBe(200);
  });

  it('shares the service password through --service-password-file, written once with mode 0600', async () => {
    const file = join(dir, 'secrets', 'xqueue-password');
    const first = await seedWith(['--random-passwords', '--service-password-file', file]);
    expect(first).toMatchObject({ code: 0, output: expect.stringContaining(`written to ${file}`) });
    const password = await readFile(file, 'utf8');
    expect(password).toMatch(/^[\w-]{20,}$/);
    expect(first.output).not.toContain(password);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await passwordWorks(databasePath, 'xqueue_svc', password)).toBe(true);

    const again = await seedWith(['--random-passwords', '--service-password-file', file]);
    expect(again.code).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(password);
    expect(await passwordWorks(databasePath, 'xqueue_svc', password)).toBe(true);

    await rm(file);
    const lost = await seedWith(['--random-passwords', '--service-password-file', file]);
    expect(lost).toMatchObject({
      code: 0,
      output: expect.stringContaining(`${file} does not hold`),
    });
    const reset = await seedWith([
      ...['--random-passwords', '--service-password-file', file, '--reset-passwords'],
    ]);
    expect(reset.code).toBe(0);
    expect(await passwordWorks(databasePath, 'xqueue_svc', await readFile(file, 'utf8'))).toBe(
      true,
    );
  });

  it('reads the passwords not given from --passwords-from DIR, none on the command line', async () => {
    const given = join(dir, 'given');
    await mkdir(given);
    await writeFile(join(given, 'service'), 'svc-from-file\n');
    await writeFile(join(given, 'staff'), 'staff-from-file');
    const file = join(dir, 'secrets', 'xqueue-password');
    const seeded = await seedWith(
      ['--passwords-from', given, '--service-password-file', file, '--random-passwords'],
      { HOST: '0.0.0.0' },
    );
    expect(seeded.code).toBe(0);
    expect(await passwordWorks(databasePath, 'xqueue_svc', 'svc-from-file')).toBe(true);
    expect(await passwordWorks(databasePath, 'staff', 'staff-from-file')).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('svc-from-file');
    // No student file: generated, as when --student-password is not given.
    expect(seeded.output).toMatch(/^ {2}student1 +[\w-]{20,}$/m);
    expect(seeded.output).not.toContain('from-file');
    // A flag given wins over the file.
    const flagged = await seedWith([
      ...['--passwords-from', given, '--staff-password', 'staff-flag', '--reset-passwords'],
    ]);
    expect(flagged.code).toBe(0);
    expect(await passwordWorks(databasePath, 'staff', 'staff-flag')).toBe(true);
    expect(await seedWith(['--passwords-from', join(dir, 'missing')])).toMatchObject({
      code: 2,
      output: expect.stringContaining(
        `--passwords-from: ${join(dir, 'missing')} is not a directory`,
      ),
    });
  });

  it('refuses an empty password rather than setting one', async () => {
    expect(await seedWith(['--staff-password', ''])).toMatchObject({
      code: 2,
      output: expect.stringContaining('--staff-password must not be empty'),
    });
  });
});

describe('accounts the CLI creates or changes', { timeout: 90_000 }, () => {
  let dir: string;
  let databasePath: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lms-users-'));
    databasePath = join(dir, 'lms.db');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** The stored row of USERNAME (is_staff as 0/1), or undefined. */
  function row(username: string) {
    const database = openDatabase({ path: databasePath });
    try {
      return database.sqlite
        .prepare('SELECT username, is_staff AS isStaff FROM users WHERE username = ?')
        .get(username);
    } finally {
      database.close();
    }
  }

  it('refuses the usernames Django refuses, as the metrics labels rely on: (cli), (people), markup', async () => {
    const rule = "may contain only letters, digits and @ . + - _ (Django's username rule)";
    for (const username of ['(cli)', '(people)', '<img src=x onerror=alert(1)>', 'a b', 'é']) {
      const added = await lmsCli(['user', 'add', username, '--password', 'pw'], databasePath);
      expect(added, username).toEqual({
        code: 2,
        output: `user add: username ${JSON.stringify(username)} ${rule} (see pnpm lms user --help)\n`,
      });
      expect(row(username), username).toBeUndefined();
    }
    const long = 'a'.repeat(151);
    expect(await lmsCli(['user', 'add', long, '--password', 'pw'], databasePath)).toMatchObject({
      code: 2,
      output: expect.stringContaining('must be at most 150 characters (got 151)'),
    });
    for (const flag of ['--service-username', '--staff-username']) {
      const seeded = await lmsCli(['seed', '--students', '0', flag, '(people)'], databasePath);
      expect(seeded, flag).toEqual({
        code: 2,
        output: `${flag}: username "(people)" ${rule} (see pnpm lms seed --help)\n`,
      });
      expect(row('(people)'), flag).toBeUndefined();
    }
    expect(await lmsCli(['user', 'add', 'a.b+c@d-e_f', '--password', 'pw'], databasePath)).toEqual({
      code: 0,
      output: 'User a.b+c@d-e_f saved\n',
    });
  });

  it('keeps the staff flag of an account `user add` changes unless told --no-staff', async () => {
    expect((await lmsCli(['seed', '--students', '1'], databasePath)).code).toBe(0);
    expect(await lmsCli(['user', 'add', 'staff', '--password', 'new'], databasePath)).toEqual({
      code: 0,
      output: 'User staff saved\n',
    });
    expect(row('staff')).toEqual({ username: 'staff', isStaff: 1 });
    expect(
      await lmsCli(['user', 'add', 'staff', '--password', 'new', '--no-staff'], databasePath),
    ).toEqual({
      code: 0,
      output: 'User staff saved [not staff]\n',
    });
    expect(row('staff')).toEqual({ username: 'staff', isStaff: 0 });
    expect(
      await lmsCli(['user', 'add', 'student1', '--password', 'pw', '--staff'], databasePath),
    ).toEqual({
      code: 0,
      output: 'User student1 saved [staff]\n',
    });
    // seed --reset-passwords leaves a promoted student staff, too.
    expect(
      (await lmsCli(['seed', '--students', '1', '--reset-passwords'], databasePath)).code,
    ).toBe(0);
    expect(row('student1')).toEqual({ username: 'student1', isStaff: 1 });
    expect(
      await lmsCli(
        ['user', 'add', 'student1', '--password', 'pw', '--staff', '--no-staff'],
        databasePath,
      ),
    ).toMatchObject({ code: 2, output: expect.stringContaining('--staff and --no-staff') });
  });
});

describe('serve off loopback with lab passwords', { timeout: 90_000 }, () => {
  let dir: string;
  let databasePath: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lms-serve-'));
    databasePath = join(dir, 'lms.db');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  // 192.0.2.1 (TEST-NET-1) is not loopback and not an address of this machine: `serve` says
  // what it says at start, then cannot bind, so nothing is ever exposed.
  const OFF_LOOPBACK = { HOST: '192.0.2.1', PORT: '0' };

  /** `pnpm lms serve` in this process until it fails to bind; all it printed before. */
  async function serveOutput(): Promise<string> {
    const io = captureIo({ ...OFF_LOOPBACK, DATABASE_PATH: databasePath });
    await expect(runCli(['serve'], io)).rejects.toThrow(/EADDRNOTAVAIL/);
    return io.output();
  }

  it('warns loudly at start when an account still has a lab default password', async () => {
    expect(
      (await lmsCli(['seed', '--students', '2', '--staff-password', 'own-pass'], databasePath))
        .code,
    ).toBe(0);
    const output = await serveOutput();
    expect(output).toContain(
      'WARNING: HOST=192.0.2.1 is not a loopback address, and 3 accounts still have a lab ' +
        "default password (the seed's published xqueue-pass, staff-pass, student-pass): " +
        'xqueue_svc, student1, student2.',
    );
    expect(output).not.toMatch(/WARNING.*\bstaff\b,/);
  });

  it('checks an account whose password predates the record once, and says nothing for own passwords', async () => {
    expect(
      (await lmsCli(['seed', '--students', '1', '--random-passwords'], databasePath)).code,
    ).toBe(0);
    expect(await serveOutput()).not.toContain('WARNING');
    expect(
      (await lmsCli(['user', 'add', 'student1', '--password', 'student-pass'], databasePath)).code,
    ).toBe(0);
    // As a password set before the LMS recorded whether it is a lab default.
    const database = openDatabase({ path: databasePath });
    database.sqlite
      .prepare("UPDATE users SET lab_password = NULL WHERE username = 'student1'")
      .run();
    database.close();
    expect(await serveOutput()).toMatch(/lab default password \(.*\): student1\. /);
    // Checked once: the answer is recorded, the next start only reads it.
    const recorded = openDatabase({ path: databasePath });
    const row = recorded.sqlite
      .prepare("SELECT lab_password AS lab FROM users WHERE username = 'student1'")
      .get();
    recorded.close();
    expect(row).toEqual({ lab: 1 });
  });
});

for (const store of ['sqlite', 'redis'] as const) {
  describe(`ending sessions from the CLI, sessions in ${store}`, { timeout: 90_000 }, () => {
    let prefix = '';
    beforeEach(() => {
      prefix = `lms-cli-${randomBytes(6).toString('hex')}:`;
    });
    /** SESSION_STORE for the LMS process and the CLI alike; one Redis prefix per test. */
    const storeEnv = (): Record<string, string> =>
      store === 'redis'
        ? { SESSION_STORE: 'redis', SESSION_REDIS_URL: redis!.url, SESSION_REDIS_PREFIX: prefix }
        : {};

    const EXEMPT = { SINGLE_LOGIN_EXEMPT_USERNAMES: 'student3,student4' };

    /** Two live browser sessions of USERNAME (exempt from single login, so both stay). */
    const twoSessions = (url: string, username: string) => browserSessions(url, username);

    it('ends every session of a user whose password `user add` changes, and says why', async () => {
      lms = await startLms({ env: { ...FAST, ...EXEMPT, ...storeEnv() } });
      const [phone, laptop] = await twoSessions(lms.url, 'student4');
      const bystander = new TestClient(urlFetcher(lms.url));
      expect((await bystander.webLogin('student3', 'student-pass')).status).toBe(200);

      const changed = await lmsCli(
        ['user', 'add', 'student4', '--password', 'new'],
        lms.databasePath,
        storeEnv(),
      );
      await expectEnded(phone!, 'password-change');
      await expectEnded(laptop!, 'password-change');
      expect(changed).toEqual({
        code: 0,
        output: 'User student4 saved; 2 sessions ended (password-change)\n',
      });
      expect((await bystander.get('/me')).status).toBe(200);
      const fresh = new TestClient(urlFetcher(lms.url));
      expect((await fresh.webLogin('student4', 'student-pass')).status).toBe(401);
      expect((await fresh.webLogin('student4', 'new')).status).toBe(200);
    });

    /** The reason and who, of the tombstone of the session with this short id. */
    function tombstoneOf(databasePath: string, short: string) {
      const database = openDatabase({ path: databasePath });
      try {
        return database.sqlite
          .prepare(
            'SELECT reason, ended_by AS endedBy FROM session_ends WHERE substr(session_id, 1, 8) = ?',
          )
          .get(short);
      } finally {
        database.close();
      }
    }

    it('lists the live sessions of a user with `sessions list USER`, one line each', async () => {
      lms = await startLms({ env: { ...FAST, ...EXEMPT, ...storeEnv() } });
      const databasePath = lms.databasePath;
      const [phone, laptop] = await twoSessions(lms.url, 'student3');
      const ids = [await currentShortId(phone!), await currentShortId(laptop!)];
      const { code, output } = await lmsCli(
        ['sessions', 'list', 'student3'],
        databasePath,
        storeEnv(),
      );
      expect(code).toBe(0);
      const time = '\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z';
      const line = (id: string, device: number) =>
        new RegExp(
          `^${id} created=${time} last_seen=${time} instance=null address="127.0.0.1" ` +
            `user_agent="device ${device}" tracked=no$`,
        );
      // Oldest first: the phone logged in first.
      expect(output.trimEnd().split('\n')).toEqual([
        expect.stringMatching(line(ids[0]!, 1)),
        expect.stringMatching(line(ids[1]!, 2)),
      ]);
      expect(await lmsCli(['sessions', 'list', 'student1'], databasePath, storeEnv())).toEqual({
        code: 0,
        output: 'student1 has no live sessions\n',
      });
      expect(await lmsCli(['sessions', 'list', 'nobody'], databasePath, storeEnv())).toMatchObject({
        code: 2,
        output: expect.stringContaining('sessions list: no user named "nobody"'),
      });
    });

    it('ends one session by its short id, or all with --all, as staff "(cli)"', async () => {
      lms = await startLms({ env: { ...FAST, ...EXEMPT, ...storeEnv() } });
      const databasePath = lms.databasePath;
      const [phone, laptop] = await twoSessions(lms.url, 'student3');
      const [phoneId, laptopId] = [await currentShortId(phone!), await currentShortId(laptop!)];
      expect(
        await lmsCli(['sessions', 'end', 'student3', phoneId], databasePath, storeEnv()),
      ).toEqual({
        code: 0,
        output: `Ended session ${phoneId} of student3\n`,
      });
      await expectEnded(phone!, 'staff');
      expect((await laptop!.get('/me')).status).toBe(200);
      expect(tombstoneOf(databasePath, phoneId)).toEqual({ reason: 'staff', endedBy: '(cli)' });
      expect(
        await lmsCli(['sessions', 'end', 'student3', phoneId], databasePath, storeEnv()),
      ).toMatchObject({
        code: 2,
        output: expect.stringContaining(`student3 has no live session ${phoneId}`),
      });

      expect(
        await lmsCli(['sessions', 'end', 'student3', '--all'], databasePath, storeEnv()),
      ).toEqual({
        code: 0,
        output: 'Ended 1 session of student3\n',
      });
      await expectEnded(laptop!, 'staff');
      expect(tombstoneOf(databasePath, laptopId)).toEqual({ reason: 'staff', endedBy: '(cli)' });
      expect(
        await lmsCli(['sessions', 'end', 'student3', '--all'], databasePath, storeEnv()),
      ).toEqual({
        code: 0,
        output: 'Ended 0 sessions of student3\n',
      });
    });

    it('requires a short id or --all to end sessions, and names the commands in its help', async () => {
      const databasePath = ':memory:';
      for (const args of [
        ['sessions', 'end', 'student3'],
        ['sessions', 'end', 'student3', 'abcdef01', '--all'],
        ['sessions', 'end'],
        ['sessions', 'list', 'student3', '--all'],
        ['sessions', 'list'],
      ]) {
        expect(await lmsCli(args, databasePath), args.join(' ')).toEqual({
          code: 2,
          output:
            'expected: sessions list USER, sessions end USER ID or sessions end USER --all' +
            ' (see pnpm lms sessions --help)\n',
        });
      }
      const help = await lmsCli(['sessions', '--help'], databasePath, storeEnv());
      expect(help.code).toBe(0);
      for (const usage of [
        'sessions list USER',
        'sessions end USER ID',
        'sessions end USER --all',
      ]) {
        expect(help.output).toContain(`pnpm lms ${usage}\n`);
      }
      expect((await lmsCli(['--help'], databasePath, storeEnv())).output).toContain(
        'sessions list USER',
      );
    });
  });
}

describe('lms --help', () => {
  it('names every environment variable the LMS reads', async () => {
    const { code, output } = await lmsCli(['--help'], ':memory:');
    expect(code).toBe(0);
    for (const name of [...ENV_VARIABLES, ...Object.keys(POLICY_ENV)]) {
      expect(output, name).toContain(name);
    }
  });
});
