import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';
import { parseEnv } from './env.ts';

const dirs: string[] = [];

async function createTestConfigDir(files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'watcher-config-'));
  dirs.push(dir);
  await mkdir(join(dir, 'conf.d'));
  for (const [name, content] of Object.entries(files)) {
    const text = typeof content === 'string' ? content : JSON.stringify(content);
    await writeFile(join(dir, name), text);
  }
  return dir;
}

const queueA = {
  SERVER: 'http://lms:8000/',
  AUTH: ['xqueue_svc', 'pw'],
  CONNECTIONS: 2,
  HANDLERS: [{ HANDLER: 'slow-flaky', KWARGS: { latency_ms: 10 } }],
};

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('loadConfig', () => {
  it('reads conf.d queues and xqwatcher.json manager settings in seconds', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': { a: queueA },
      'conf.d/b.json': { b: { ...queueA, HANDLERS: undefined, CONNECTIONS: 1 } },
      'xqwatcher.json': { POLL_INTERVAL: 0.05, REQUESTS_TIMEOUT: 2, HTTP_BASIC_AUTH: null },
    });
    const config = await loadConfig(parseEnv({ WATCHER_CONFIG_DIR: dir }));
    expect(config.manager).toEqual({
      pollIntervalMs: 50,
      loginPollIntervalMs: 5000,
      requestsTimeoutMs: 2000,
    });
    expect(
      config.queues.map((q) => [q.name, q.serverUrl, q.connections, q.handlers[0]?.name]),
    ).toEqual([
      ['a', 'http://lms:8000', 2, 'slow-flaky'],
      ['b', 'http://lms:8000', 1, 'exact-answer'],
    ]);
  });

  it('lets the environment override server, account, connections and intervals', async () => {
    const dir = await createTestConfigDir({ 'conf.d/a.json': { a: queueA } });
    const env = parseEnv({
      WATCHER_CONFIG_DIR: dir,
      LMS_URL: 'http://other:9000',
      XQUEUE_USERNAME: 'u2',
      XQUEUE_PASSWORD: 'p2',
      WATCHER_CONNECTIONS: '5',
      WATCHER_POLL_INTERVAL: '0.2',
    });
    const [queue] = (await loadConfig(env)).queues;
    expect(queue).toMatchObject({
      serverUrl: 'http://other:9000',
      username: 'u2',
      password: 'p2',
      connections: 5,
    });
    expect((await loadConfig(env)).manager.pollIntervalMs).toBe(200);
  });

  it('builds queues from the environment alone, with the exact-answer handler', async () => {
    const env = parseEnv({
      LMS_URL: 'http://lms:8000',
      XQUEUE_USERNAME: 'xqueue_svc',
      XQUEUE_PASSWORD: 'pw',
      WATCHER_QUEUES: 'a,b',
      WATCHER_CONNECTIONS: '2',
    });
    const config = await loadConfig(env);
    expect(config.configDir).toBeNull();
    expect(config.queues.map((q) => [q.name, q.connections, q.handlers[0]?.name])).toEqual([
      ['a', 2, 'exact-answer'],
      ['b', 2, 'exact-answer'],
    ]);
  });

  it('says what to set when there are no queues at all', async () => {
    await expect(loadConfig(parseEnv({}))).rejects.toThrow(
      /pass --config-dir DIR .*or set WATCHER_QUEUES/,
    );
  });

  it('names the file, queue and field of a bad entry', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': { a: { ...queueA, CONECTIONS: 2 } },
    });
    await expect(loadConfig(parseEnv({ WATCHER_CONFIG_DIR: dir }))).rejects.toThrow(
      /conf\.d\/a\.json: queue "a": .*CONECTIONS/,
    );
  });

  it('names the unknown handler and the accepted ones', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': {
        a: { ...queueA, HANDLERS: [{ HANDLER: 'xqueue_watcher.grader.Grader' }] },
      },
    });
    await expect(loadConfig(parseEnv({ WATCHER_CONFIG_DIR: dir }))).rejects.toThrow(
      /queue "a": HANDLERS\[0\]: unknown HANDLER "xqueue_watcher.grader.Grader"; accepted: exact-answer/,
    );
  });

  it('reports invalid JSON and a missing directory as ConfigError', async () => {
    const dir = await createTestConfigDir({ 'conf.d/a.json': '{"a": ' });
    await expect(loadConfig(parseEnv({ WATCHER_CONFIG_DIR: dir }))).rejects.toThrow(
      /a\.json: not valid JSON/,
    );
    await expect(loadConfig(parseEnv({ WATCHER_CONFIG_DIR: join(dir, 'nope') }))).rejects.toThrow(
      ConfigError,
    );
  });

  it('requires credentials for a queue that only WATCHER_QUEUES names', async () => {
    const dir = await createTestConfigDir({ 'conf.d/a.json': { a: queueA } });
    const env = parseEnv({ WATCHER_CONFIG_DIR: dir, WATCHER_QUEUES: 'a,c' });
    await expect(loadConfig(env)).rejects.toThrow(
      /queue "c" has no SERVER \(or LMS_URL\), AUTH\[0\]/,
    );
  });

  it('resolves a relative config dir against INIT_CWD, where the user ran pnpm', async () => {
    const dir = await createTestConfigDir({ 'conf.d/a.json': { a: queueA } });
    const config = await loadConfig(parseEnv({ WATCHER_CONFIG_DIR: '.', INIT_CWD: dir }));
    expect(config.configDir).toBe(dir);
  });
});
