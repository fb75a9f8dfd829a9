import { type LocalLms, spawnManaged, startLms } from '@storm-lab/harness';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient, urlFetcher } from './testing/client.ts';

const FAST = { PASSWORD_HASH_ITERATIONS: '1000', LOG_LEVEL: 'warn' };
let lms: LocalLms | undefined;
afterEach(async () => {
  await lms?.stop();
  lms = undefined;
});

describe('lms CLI', { timeout: 90_000 }, () => {
  it('adds a user with repeated --group and --staff, and prints help', async () => {
    lms = await startLms({ env: FAST });
    const databasePath = lms.databasePath;
    const cli = (args: string[]) => {
      const child = spawnManaged(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
        cwd: new URL('..', import.meta.url).pathname,
        env: { ...FAST, DATABASE_PATH: databasePath },
      });
      return child.exited.then(({ code }) => ({ code, output: child.output() }));
    };
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
  });
});
