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

async function loadDir(dir: string, env: Record<string, string> = {}) {
  return loadConfig(parseEnv({ WATCHER_CONFIG_DIR: dir, ...env }));
}

const queueA = {
  SERVER: 'http://lms:8000/',
  AUTH: ['xqueue_svc', 'pw'],
  CONNECTIONS: 2,
  HANDLERS: [{ HANDLER: 'slow-flaky', KWARGS: { latency_ms: 10 } }],
};

/** A queue in upstream's SERVER_REF form, with a Python grader as a course team writes it. */
const refQueue = {
  SERVER_REF: 'default',
  CONNECTIONS: 3,
  HANDLERS: [
    {
      HANDLER: 'xqueue_watcher.containergrader.ContainerGrader',
      KWARGS: { grader_root: '/graders/ml-101/', image: 'registry.test/ml-101:1', timeout: 30 },
    },
  ],
};

const servers = {
  default: { SERVER: 'http://lms.test:18040', AUTH: ['lms_user', 'ref-secret'] },
  staging: { SERVER: 'http://staging.test:18040', AUTH: ['lms_user', 'staging-secret'] },
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
    const config = await loadDir(dir);
    expect(config.manager).toEqual({
      pollIntervalMs: 50,
      loginPollIntervalMs: 5000,
      requestsTimeoutMs: 2000,
      pollTimeMs: 10_000,
      httpBasicAuth: null,
      followClientRedirects: false,
      verifyTls: true,
    });
    expect(
      config.queues.map((q) => [q.name, q.serverUrl, q.connections, q.handlers[0]?.name]),
    ).toEqual([
      ['a', 'http://lms:8000', 2, 'slow-flaky'],
      ['b', 'http://lms:8000', 1, 'exact-answer'],
    ]);
    expect(config.queues[0]).toMatchObject({
      sentName: 'a',
      clientClass: 'XQueueClientThread',
      source: join(dir, 'conf.d', 'a.json'),
    });
    expect(config.warnings).toEqual([]);
  });

  it('lets the environment override server, account and connections', async () => {
    const dir = await createTestConfigDir({ 'conf.d/a.json': { a: queueA } });
    const config = await loadDir(dir, {
      LMS_URL: 'http://other:9000',
      XQUEUE_USERNAME: 'u2',
      XQUEUE_PASSWORD: 'p2',
      WATCHER_CONNECTIONS: '5',
    });
    expect(config.queues[0]).toMatchObject({
      serverUrl: 'http://other:9000',
      username: 'u2',
      password: 'p2',
      connections: 5,
    });
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
    expect(
      config.queues.map((q) => [q.name, q.sentName, q.connections, q.handlers[0]?.name, q.source]),
    ).toEqual([
      ['a', 'a', 2, 'exact-answer', 'WATCHER_QUEUES'],
      ['b', 'b', 2, 'exact-answer', 'WATCHER_QUEUES'],
    ]);
  });

  it('gives queues that name no handler WATCHER_DEFAULT_HANDLER, and keeps a named one', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': { a: queueA, b: { ...queueA, HANDLERS: undefined } },
    });
    const handler = '{"HANDLER": "slow-flaky", "KWARGS": {"latency_ms": 500}}';
    const config = await loadDir(dir, { WATCHER_DEFAULT_HANDLER: handler });
    expect(config.queues.map((q) => [q.name, q.handlers])).toEqual([
      [
        'a',
        [
          expect.objectContaining({
            name: 'slow-flaky',
            kwargs: expect.objectContaining({ latency_ms: 10 }),
          }),
        ],
      ],
      [
        'b',
        [
          expect.objectContaining({
            name: 'slow-flaky',
            kwargs: expect.objectContaining({ latency_ms: 500 }),
          }),
        ],
      ],
    ]);
  });

  it('refuses a WATCHER_DEFAULT_HANDLER that is not a valid HANDLERS entry, saying why', () => {
    for (const [value, why] of [
      ['slow-flaky', /WATCHER_DEFAULT_HANDLER=.*: expected JSON/],
      [
        '{"HANDLER": "x.Grader"}',
        /WATCHER_DEFAULT_HANDLER=.*: unknown HANDLER "x.Grader"; accepted: exact-answer/,
      ],
      [
        '{"HANDLER": "slow-flaky", "KWARGS": {"latency_ms": -1}}',
        /WATCHER_DEFAULT_HANDLER=.*: HANDLER "slow-flaky": KWARGS.latency_ms/,
      ],
      [
        '{"HANDLER": "slow-flaky", "KWARG": {}}',
        /WATCHER_DEFAULT_HANDLER=.*: expected an object with HANDLER/,
      ],
    ] as const) {
      expect(() => parseEnv({ WATCHER_DEFAULT_HANDLER: value }), value).toThrow(why);
    }
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
    await expect(loadDir(dir)).rejects.toThrow(/conf\.d\/a\.json: queue "a": .*CONECTIONS/);
  });

  it('names a HANDLER that is neither a mock nor a Python path, and the accepted ones', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': { a: { ...queueA, HANDLERS: [{ HANDLER: 'exact_answer' }] } },
    });
    await expect(loadDir(dir)).rejects.toThrow(
      /queue "a": HANDLERS\[0\]: unknown HANDLER "exact_answer"; accepted: exact-answer/,
    );
  });

  it('keeps strict KWARGS for our own mock handlers', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': {
        a: { ...queueA, HANDLERS: [{ HANDLER: 'slow-flaky', KWARGS: { grader_root: '/g' } }] },
      },
    });
    await expect(loadDir(dir)).rejects.toThrow(/HANDLERS\[0\]: HANDLER "slow-flaky": KWARGS/);
  });

  it('reports invalid JSON and a missing directory as ConfigError', async () => {
    const dir = await createTestConfigDir({ 'conf.d/a.json': '{"a": ' });
    await expect(loadDir(dir)).rejects.toThrow(/a\.json: not valid JSON/);
    await expect(loadDir(join(dir, 'nope'))).rejects.toThrow(ConfigError);
  });

  it('requires credentials for a queue that only WATCHER_QUEUES names', async () => {
    const dir = await createTestConfigDir({ 'conf.d/a.json': { a: queueA } });
    await expect(loadDir(dir, { WATCHER_QUEUES: 'a,c' })).rejects.toThrow(
      /queue "c" has no SERVER \(or LMS_URL\), AUTH\[0\]/,
    );
  });

  it('resolves a relative config dir against INIT_CWD, where the user ran pnpm', async () => {
    const dir = await createTestConfigDir({ 'conf.d/a.json': { a: queueA } });
    const config = await loadConfig(parseEnv({ WATCHER_CONFIG_DIR: '.', INIT_CWD: dir }));
    expect(config.configDir).toBe(dir);
  });
});

describe('loadConfig with upstream config directories', () => {
  // as xqueue-watcher's Manager.client_from_config (SERVER_REF) and settings.get_xqueue_servers
  it('takes SERVER and AUTH from the xqueue_servers.json entry that SERVER_REF names', async () => {
    const dir = await createTestConfigDir({
      'xqueue_servers.json': servers,
      'conf.d/ml.json': { 'ml-101': refQueue },
    });
    const [queue] = (await loadDir(dir)).queues;
    expect(queue).toMatchObject({
      name: 'ml-101',
      serverUrl: 'http://lms.test:18040',
      username: 'lms_user',
      password: 'ref-secret',
      connections: 3,
    });
  });

  // as xqueue-watcher's Manager.client_from_config: SERVER_REF excludes SERVER and AUTH
  it('refuses SERVER_REF together with SERVER or AUTH, naming file and queue', async () => {
    for (const extra of [{ SERVER: 'http://lms.test:18040' }, { AUTH: ['u', 'p'] }]) {
      const dir = await createTestConfigDir({
        'xqueue_servers.json': servers,
        'conf.d/ml.json': { 'ml-101': { ...refQueue, ...extra } },
      });
      await expect(loadDir(dir)).rejects.toThrow(
        /conf\.d\/ml\.json: queue "ml-101": SERVER_REF cannot be used with SERVER or AUTH/,
      );
    }
  });

  // as xqueue-watcher's Manager.client_from_config: an unknown SERVER_REF lists the known names
  it('names an unknown SERVER_REF and lists the known servers', async () => {
    const dir = await createTestConfigDir({
      'xqueue_servers.json': servers,
      'conf.d/ml.json': { 'ml-101': { ...refQueue, SERVER_REF: 'prod' } },
    });
    await expect(loadDir(dir)).rejects.toThrow(
      /queue "ml-101": unknown SERVER_REF "prod"; known servers in .*xqueue_servers\.json: "default", "staging"/,
    );
  });

  // as xqueue-watcher's settings.get_xqueue_servers: SERVER and AUTH are required per server
  it('names a server of xqueue_servers.json that lacks AUTH', async () => {
    const dir = await createTestConfigDir({
      'xqueue_servers.json': { default: { SERVER: 'http://lms.test:18040' } },
      'conf.d/ml.json': { 'ml-101': refQueue },
    });
    await expect(loadDir(dir)).rejects.toThrow(
      /xqueue_servers\.json: server "default": AUTH: is required/,
    );
  });

  // as xqueue-watcher's Manager.configure: each occurrence adds CONNECTIONS clients
  it('keeps a queue defined in two files as two entries, in sorted file order', async () => {
    const dir = await createTestConfigDir({
      'xqueue_servers.json': servers,
      'conf.d/20-extra.json': { 'ml-101': { ...refQueue, CONNECTIONS: 1 } },
      'conf.d/10-main.json': { 'ml-101': refQueue, other: queueA },
    });
    const config = await loadDir(dir);
    expect(config.queues.map((q) => [q.name, q.connections, q.source])).toEqual([
      ['ml-101', 3, join(dir, 'conf.d', '10-main.json')],
      ['other', 2, join(dir, 'conf.d', '10-main.json')],
      ['ml-101', 1, join(dir, 'conf.d', '20-extra.json')],
    ]);
    const selected = await loadDir(dir, { WATCHER_QUEUES: 'ml-101' });
    expect(selected.queues.map((q) => q.connections)).toEqual([3, 1]);
  });

  // as xqueue-watcher's Manager.client_from_config: `for handler_config in HANDLERS` adds none
  it('accepts "HANDLERS": [] as upstream does, a client group with no handler, and warns', async () => {
    const dir = await createTestConfigDir({
      'xqueue_servers.json': servers,
      'conf.d/10-main.json': { 'ml-101': refQueue },
      'conf.d/20-more.json': { 'ml-101': { SERVER_REF: 'default', CONNECTIONS: 4, HANDLERS: [] } },
    });
    const config = await loadDir(dir);
    expect(config.queues.map((q) => [q.name, q.connections, q.handlers.length])).toEqual([
      ['ml-101', 3, 1],
      ['ml-101', 4, 0],
    ]);
    expect(config.warnings).toContainEqual(
      `${join(dir, 'conf.d', '20-more.json')}: queue "ml-101" has "HANDLERS": [], as upstream ` +
        'allows: its 4 connections pull submissions and never answer them (each waits out the ' +
        "LMS's lock before another client gets it); list its HANDLERS, or raise CONNECTIONS of " +
        'the entry that has them',
    );
    // An entry left without HANDLERS keeps the default handler, and no such warning.
    const plain = await loadDir(
      await createTestConfigDir({ 'conf.d/a.json': { a: { ...queueA, HANDLERS: undefined } } }),
    );
    expect(plain.queues[0]?.handlers).toEqual([
      { name: 'exact-answer', kwargs: { trim: true, case_sensitive: true } },
    ]);
    expect(plain.warnings).toEqual([]);
  });

  // as xqueue-watcher's Manager.client_from_config: NAME_OVERRIDE or the key is the queue_name
  it('sends NAME_OVERRIDE as the queue name, and the key when the override is empty', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': {
        a: { ...queueA, NAME_OVERRIDE: 'course-a-v2' },
        b: { ...queueA, NAME_OVERRIDE: '' },
      },
    });
    const config = await loadDir(dir);
    expect(config.queues.map((q) => [q.name, q.sentName])).toEqual([
      ['a', 'course-a-v2'],
      ['b', 'b'],
    ]);
  });

  // as xqueue-watcher's Manager.client_from_config: CLASS names a class of xqueue_watcher.client
  it('accepts both upstream client classes and refuses any other CLASS', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': { a: { ...queueA, CLASS: 'XQueueClientProcess' } },
    });
    expect((await loadDir(dir)).queues[0]?.clientClass).toBe('XQueueClientProcess');
    const bad = await createTestConfigDir({
      'conf.d/a.json': { a: { ...queueA, CLASS: 'XQueueClient' } },
    });
    await expect(loadDir(bad)).rejects.toThrow(
      /queue "a": CLASS: must be XQueueClientThread or XQueueClientProcess/,
    );
  });

  // as xqueue-watcher's Manager.client_from_config: CODEJAIL configures a sandbox per handler
  it('records CODEJAIL on the handler and warns that it is not applied', async () => {
    const codejail = { name: 'python', bin_path: '/usr/bin/python3', user: 'sandbox' };
    const dir = await createTestConfigDir({
      'conf.d/a.json': {
        a: { ...queueA, HANDLERS: [{ HANDLER: 'exact-answer', CODEJAIL: codejail }] },
      },
    });
    const config = await loadDir(dir);
    expect(config.queues[0]?.handlers[0]).toMatchObject({ name: 'exact-answer', codejail });
    expect(config.warnings).toEqual([
      expect.stringMatching(
        /a\.json: queue "a": HANDLERS\[0\]: CODEJAIL is recorded but not applied/,
      ),
    ]);
  });

  // as xqueue-watcher's Manager.client_from_config imports HANDLER; we stand a mock in for it
  it('stands a mock in for a Python HANDLER, with one warning per distinct path', async () => {
    const dir = await createTestConfigDir({
      'xqueue_servers.json': servers,
      'conf.d/a.json': { 'ml-101': refQueue, 'ml-102': refQueue },
      'conf.d/b.json': { b: { ...queueA, HANDLERS: [{ HANDLER: 'my_graders.Grader' }] } },
    });
    const config = await loadDir(dir);
    expect(config.queues[0]?.handlers).toEqual([
      {
        name: 'exact-answer',
        kwargs: { trim: true, case_sensitive: true },
        standInFor: 'xqueue_watcher.containergrader.ContainerGrader',
        pythonKwargs: refQueue.HANDLERS[0]?.KWARGS,
      },
    ]);
    expect(config.warnings).toHaveLength(2);
    expect(config.warnings[0]).toMatch(
      /queue "ml-101": HANDLER "xqueue_watcher\.containergrader\.ContainerGrader" is a Python grader; the exact-answer mock stands in/,
    );
    expect(config.warnings[1]).toMatch(/HANDLER "my_graders\.Grader" is a Python grader/);
    const slow = await loadDir(dir, { WATCHER_PYTHON_HANDLER: 'slow-flaky' });
    expect(slow.queues[2]?.handlers[0]).toMatchObject({
      name: 'slow-flaky',
      standInFor: 'my_graders.Grader',
    });
  });

  // as the XQWATCHER_* variables of xqueue-watcher's docs/operators.md over xqwatcher.json
  it('lets XQWATCHER_* variables override xqwatcher.json, in fractional seconds', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': { a: queueA },
      'xqwatcher.json': {
        HTTP_BASIC_AUTH: ['file-user', 'file-pass'],
        POLL_TIME: 20,
        REQUESTS_TIMEOUT: 3,
        POLL_INTERVAL: 2,
        LOGIN_POLL_INTERVAL: 7,
        FOLLOW_CLIENT_REDIRECTS: false,
      },
    });
    expect((await loadDir(dir)).manager).toMatchObject({
      pollTimeMs: 20_000,
      requestsTimeoutMs: 3000,
      pollIntervalMs: 2000,
      loginPollIntervalMs: 7000,
      httpBasicAuth: { username: 'file-user', password: 'file-pass' },
    });
    const config = await loadDir(dir, {
      XQWATCHER_HTTP_BASIC_AUTH: 'env-user:env:pass',
      XQWATCHER_POLL_TIME: '0.5',
      XQWATCHER_REQUESTS_TIMEOUT: '0.25',
      XQWATCHER_POLL_INTERVAL: '0.05',
      XQWATCHER_LOGIN_POLL_INTERVAL: '0.2',
      XQWATCHER_FOLLOW_CLIENT_REDIRECTS: 'yes',
      XQWATCHER_VERIFY_TLS: 'false',
    });
    expect(config.manager).toEqual({
      pollTimeMs: 500,
      requestsTimeoutMs: 250,
      pollIntervalMs: 50,
      loginPollIntervalMs: 200,
      httpBasicAuth: { username: 'env-user', password: 'env:pass' },
      followClientRedirects: true,
      verifyTls: false,
    });
    expect(config.warnings).toEqual([expect.stringMatching(/XQWATCHER_VERIFY_TLS=false/)]);
  });

  // as xqueue-watcher's settings.get_manager_config_values: only the known keys are read
  it('names the file and key of a bad xqwatcher.json value, and ignores unknown keys', async () => {
    const bad = await createTestConfigDir({
      'conf.d/a.json': { a: queueA },
      'xqwatcher.json': { HTTP_BASIC_AUTH: 'user:pass' },
    });
    await expect(loadDir(bad)).rejects.toThrow(
      /xqwatcher\.json: HTTP_BASIC_AUTH: must be \["username", "password"\]/,
    );
    const slow = await createTestConfigDir({
      'conf.d/a.json': { a: queueA },
      'xqwatcher.json': { POLL_TIME: '10' },
    });
    await expect(loadDir(slow)).rejects.toThrow(/xqwatcher\.json: POLL_TIME: must be a number/);
    const extra = await createTestConfigDir({
      'conf.d/a.json': { a: queueA },
      'xqwatcher.json': { POLL_INTERVAL: 1, METRICS: true },
    });
    expect((await loadDir(extra)).warnings).toEqual([
      expect.stringMatching(/xqwatcher\.json: ignored unknown key\(s\) METRICS/),
    ]);
  });

  // as xqueue-watcher's Manager.configure_from_directory, which loads logging.json
  it('ignores logging.json with one warning', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': { a: queueA },
      'logging.json': { version: 1, root: { level: 'DEBUG' } },
    });
    expect((await loadDir(dir)).warnings).toEqual([
      expect.stringMatching(/logging\.json is ignored: this watcher logs JSON lines/),
    ]);
  });

  // as xqueue-watcher's Manager.configure: range(CONNECTIONS) with 0 starts no client
  it('drops an entry with CONNECTIONS 0 with a warning, and refuses a config of only those', async () => {
    const dir = await createTestConfigDir({
      'conf.d/a.json': { a: queueA, off: { ...queueA, CONNECTIONS: 0 } },
    });
    const config = await loadDir(dir);
    expect(config.queues.map((q) => q.name)).toEqual(['a']);
    expect(config.warnings).toEqual([expect.stringMatching(/queue "off" has CONNECTIONS 0/)]);
    await expect(loadDir(dir, { WATCHER_QUEUES: 'off' })).rejects.toThrow(/CONNECTIONS 0/);
  });
});
