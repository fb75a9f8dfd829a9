import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_COMPARISON, listScenarios, loadScenario } from './scenarios.ts';

const variables = { serviceUsername: 'xqueue_svc', totalConnections: 8 };

describe('loadScenario', () => {
  it('ships every scenario the comparison and the docs name', async () => {
    const names = await listScenarios();
    for (const name of [...DEFAULT_COMPARISON, 'max-sessions']) expect(names).toContain(name);
  });

  it('fills in the service account and the connection count', async () => {
    expect(
      (await loadScenario('exempt-username', variables)).lms.SINGLE_LOGIN_EXEMPT_USERNAMES,
    ).toBe('xqueue_svc');
    const rules = JSON.parse(
      (await loadScenario('max-sessions', variables)).lms.SINGLE_LOGIN_RULES ?? '',
    );
    expect(rules).toEqual([{ match: { group: 'xqueue' }, maxSessions: 8 }]);
  });

  it('names the unknown scenario and lists the known ones', async () => {
    await expect(loadScenario('strom', variables)).rejects.toThrow(
      /unknown scenario "strom" \(built-in: .*storm/,
    );
  });

  it('loads a user copy from a path and rejects a bad one clearly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scenario-test-'));
    try {
      await writeFile(
        join(dir, 'mine.json'),
        '{"description":"copy","lms":{"PREVENT_CONCURRENT_LOGINS":"false"}}',
      );
      expect(await loadScenario(join(dir, 'mine.json'), variables)).toMatchObject({
        name: 'mine',
        watcher: {},
      });
      await writeFile(join(dir, 'bad.json'), '{"description":"x","lms":{"lower":"1"}}');
      await expect(loadScenario(join(dir, 'bad.json'), variables)).rejects.toThrow(
        /lms\.lower must be an UPPER_SNAKE/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
