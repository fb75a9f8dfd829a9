import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { capturedIo } from '@storm-lab/cli-kit';
import { freePort, spawnManaged, startLms, sumMetric, waitFor } from '@storm-lab/harness';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from './cli.ts';
import { loginStudent, SERVICE_PASSWORD, SERVICE_USERNAME, scrape } from './testing/lab.ts';
import { testRedis } from './testing/redis.ts';

const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

function runCli(args: string[], env: Record<string, string> = {}) {
  return spawnManaged(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: APP_DIR,
    env: { LOG_LEVEL: 'info', ...env },
  });
}

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A config directory in xqueue-watcher's layout, removed after the suite. */
async function createTestDir(files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'watcher-cli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'conf.d'));
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), JSON.stringify(content));
  }
  return dir;
}

describe('watcher CLI', () => {
  it('prints usage with the command, options and environment for --help', async () => {
    const cli = runCli(['start', '--help']);
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toContain('Usage: pnpm watcher start [--config-dir DIR] [--replicas N]');
    expect(cli.output()).toContain('pnpm watcher config [--config-dir DIR]');
    expect(cli.output()).toMatch(/WATCHER_MODE\s+current \(default\) \| legacy \| hardened/);
    expect(cli.output()).toMatch(/WATCHER_PYTHON_HANDLER\s+mock grader/);
    expect(cli.output()).toMatch(/XQWATCHER_VERIFY_TLS\s+true \(default\) \| false/);
  });

  // as xqueue-watcher's Manager.configure_from_directory, printed resolved instead of started
  it('prints a config directory resolved as JSON, every password redacted', async () => {
    const dir = await createTestDir({
      'xqwatcher.json': { HTTP_BASIC_AUTH: ['proxy', 'basic-secret'], POLL_TIME: 5 },
      'xqueue_servers.json': {
        prod: { SERVER: 'http://lms.test:18040/', AUTH: ['lms_user', 'ref-secret'] },
      },
      'conf.d/10-ml.json': {
        'ml-101': {
          SERVER_REF: 'prod',
          CONNECTIONS: 2,
          CLASS: 'XQueueClientProcess',
          NAME_OVERRIDE: 'ml-101-v2',
          HANDLERS: [
            {
              HANDLER: 'xqueue_watcher.containergrader.ContainerGrader',
              KWARGS: { image: 'grader:1', registry_password: 'kwarg-secret' },
              CODEJAIL: { name: 'python', bin_path: '/usr/bin/python3' },
            },
          ],
        },
      },
      'conf.d/20-more.json': { 'ml-101': { SERVER_REF: 'prod' } },
    });
    const cli = runCli(['config', '--config-dir', dir], {
      XQWATCHER_POLL_INTERVAL: '0.25',
      XQUEUE_PASSWORD: 'env-secret',
    });
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).not.toMatch(/-secret/);
    const printed = JSON.parse(cli.output());
    expect(printed.configDir).toBe(dir);
    expect(printed.totalConnections).toBe(3);
    expect(printed.clientGroups).toEqual([
      {
        queueName: 'ml-101-v2',
        confKey: 'ml-101',
        serverUrl: 'http://lms.test:18040',
        username: 'lms_user',
        password: '<redacted>',
        connections: 2,
        clientClass: 'XQueueClientProcess',
        handlers: [
          {
            name: 'exact-answer',
            kwargs: { trim: true, case_sensitive: true },
            standInFor: 'xqueue_watcher.containergrader.ContainerGrader',
            pythonKwargs: { image: 'grader:1', registry_password: '<redacted>' },
            codejail: { name: 'python', bin_path: '/usr/bin/python3' },
          },
        ],
        source: join(dir, 'conf.d', '10-ml.json'),
      },
      expect.objectContaining({
        queueName: 'ml-101',
        connections: 1,
        clientClass: 'XQueueClientThread',
        source: join(dir, 'conf.d', '20-more.json'),
      }),
    ]);
    expect(printed.manager).toEqual({
      pollIntervalMs: 250,
      loginPollIntervalMs: 5000,
      requestsTimeoutMs: 1000,
      pollTimeMs: 5000,
      httpBasicAuth: { username: 'proxy', password: '<redacted>' },
      followClientRedirects: false,
      verifyTls: true,
    });
    expect(printed.warnings).toEqual([
      expect.stringContaining('is a Python grader; the exact-answer mock stands in'),
      expect.stringContaining('CODEJAIL is recorded but not applied'),
    ]);
  });

  it('prints the error of an unusable config directory and exits 2', async () => {
    const dir = await createTestDir({
      'xqueue_servers.json': { prod: { SERVER: 'http://lms.test:18040', AUTH: ['u', 'p'] } },
      'conf.d/a.json': { a: { SERVER_REF: 'staging' } },
    });
    const cli = runCli(['config', '--config-dir', dir]);
    expect((await cli.exited).code).toBe(2);
    expect(cli.output().trim()).toBe(
      `watcher: ${dir}/conf.d/a.json: queue "a": unknown SERVER_REF "staging"; known servers in ` +
        `${dir}/xqueue_servers.json: "prod"`,
    );
  });

  it('reports a config error once, naming the file and the field, and exits 2', async () => {
    const dir = await createTestDir({ 'conf.d/a.json': { a: { SERVER: 'x', AUTH: ['u', 'p'] } } });
    const cli = runCli(['start', '--config-dir', dir]);
    expect((await cli.exited).code).toBe(2);
    expect(cli.output().trim()).toBe(
      `watcher: ${dir}/conf.d/a.json: queue "a": SERVER: must be a URL such as http://lms:8000`,
    );
  });

  // as xqueue-watcher's Manager.client_from_config, which adds no handler for "HANDLERS": []
  it('accepts a conf.d entry with "HANDLERS": [] and says in its warnings what it will do', async () => {
    const dir = await createTestDir({
      'conf.d/10-main.json': {
        a: { SERVER: 'http://lms.test:18040', AUTH: ['u', 'p'], HANDLERS: [{ HANDLER: 'x.Y' }] },
      },
      'conf.d/20-more.json': {
        a: { SERVER: 'http://lms.test:18040', AUTH: ['u', 'p'], CONNECTIONS: 2, HANDLERS: [] },
      },
    });
    const cli = runCli(['config', '--config-dir', dir]);
    expect((await cli.exited).code).toBe(0);
    const printed = JSON.parse(cli.output());
    expect(printed.totalConnections).toBe(3);
    expect(printed.clientGroups[1]).toMatchObject({ confKey: 'a', connections: 2, handlers: [] });
    expect(printed.warnings).toContain(
      `${join(dir, 'conf.d', '20-more.json')}: queue "a" has "HANDLERS": [], as upstream ` +
        'allows: its 2 connections pull submissions and never answer them (each waits out the ' +
        "LMS's lock before another client gets it); list its HANDLERS, or raise CONNECTIONS of " +
        'the entry that has them',
    );
  });

  // as xqueue-watcher's XQueueClient._handle_submission with no handler: pulled, never answered
  it.each(['current', 'hardened'])(
    '%s: starts handler-less clients that pull and never answer, warning at start',
    async (mode) => {
      const redis = await testRedis();
      cleanups.push(() => redis.stop());
      const lms = await startLms({
        env: { PASSWORD_HASH_ITERATIONS: '1000', XQUEUE_LOCK_SECONDS: '0.3' },
        seed: [
          ...['--queues', 'none-q,graded-q', '--students', '1'],
          ...['--service-password', SERVICE_PASSWORD, '--student-password', 'student-test-pass'],
        ],
      });
      cleanups.push(() => lms.stop());
      const server = { SERVER: lms.url, AUTH: [SERVICE_USERNAME, SERVICE_PASSWORD] };
      const dir = await createTestDir({
        'conf.d/a.json': { 'none-q': { ...server, HANDLERS: [] } },
        'conf.d/b.json': { 'graded-q': { ...server, HANDLERS: [{ HANDLER: 'exact-answer' }] } },
      });
      const cli = runCli(['start', '--config-dir', dir], {
        REDIS_URL: redis.url,
        WATCHER_METRICS_PORT: '0',
        WATCHER_MODE: mode,
        WATCHER_QUEUE_PREFIX: `cli-none-${process.pid}-${mode}`,
        XQWATCHER_POLL_INTERVAL: '0.05',
      });
      cleanups.push(() => cli.stop('SIGKILL'));
      const metricsUrl = await waitFor(
        () => /"url":"(http:[^"]+)","msg":"metrics listening"/.exec(cli.output())?.[1],
        { timeoutMs: 20_000, what: 'the replica' },
      );
      // Logged right after the replica's start line, at warn level.
      const warning = await waitFor(
        () =>
          cli
            .output()
            .split('\n')
            .filter((line) => line.includes('"level":40'))
            .map((line) => (JSON.parse(line) as { msg: string }).msg)
            .find((msg) => msg.includes('queue "none-q" has "HANDLERS": []')),
        { timeoutMs: 10_000, what: 'the warning about none-q' },
      );
      expect(warning).toContain('pull submissions and never answer them');

      const student = await loginStudent(lms.url, 'student1');
      const unanswered = await student.submit('none-q', 'none-q-p1', 'answer-none-q-p1');
      const graded = await student.submit('graded-q', 'graded-q-p1', 'answer-graded-q-p1');
      await waitFor(
        async () => ((await student.get(graded)).state === 'graded' ? true : undefined),
        {
          timeoutMs: 20_000,
          what: 'the submission of the queue with a handler graded',
        },
      );
      // Served again after each 0.3 s lock, and pulled again: at least three pulls of it.
      await waitFor(
        async () => {
          const pulled = sumMetric(await scrape(metricsUrl), 'watcher_pulled_total', {
            queue: 'none-q',
          });
          return pulled >= 3 ? true : undefined;
        },
        { timeoutMs: 20_000, what: 'three pulls on the handler-less queue' },
      );
      expect((await student.get(unanswered)).state).not.toBe('graded');
      const lmsMetrics = await scrape(`${lms.url}/metrics`);
      expect(sumMetric(lmsMetrics, 'lms_submissions_graded_total')).toBe(1);
      cli.child.kill('SIGTERM');
      expect((await cli.exited).code).toBe(0);
    },
    60_000,
  );

  it('rejects an unknown command with the usage text', async () => {
    const cli = runCli(['stat']);
    expect((await cli.exited).code).toBe(2);
    expect(cli.output()).toMatch(/unknown command "stat"; the commands are start, config, help/);
    expect(cli.output()).toContain('Usage:');
  });

  it('starts N replicas with their own ids and stops them all on SIGTERM', async () => {
    const redis = await testRedis();
    cleanups.push(() => redis.stop());
    const cli = runCli(['start', '--replicas', '2'], {
      REDIS_URL: redis.url,
      // Nothing listens there: a refused first login kills a connection as upstream's `run`
      // does, so hardened mode, whose connections retry instead, keeps the replicas up.
      LMS_URL: `http://127.0.0.1:${await freePort()}`,
      WATCHER_MODE: 'hardened',
      XQUEUE_USERNAME: 'xqueue_svc',
      XQUEUE_PASSWORD: 'pw',
      WATCHER_QUEUES: 'a',
      WATCHER_REPLICA_ID: 'cli-test',
      WATCHER_METRICS_PORT: '0',
      WATCHER_QUEUE_PREFIX: `cli-test-${process.pid}`,
      XQWATCHER_LOGIN_POLL_INTERVAL: '0.2',
    });
    cleanups.push(() => cli.stop('SIGKILL'));
    await waitFor(
      () => (cli.output().match(/"msg":"metrics listening"/g)?.length === 2 ? true : undefined),
      { timeoutMs: 20_000, what: 'two replicas' },
    );
    expect(cli.output()).toContain('"replica":"cli-test-1"');
    expect(cli.output()).toContain('"replica":"cli-test-2"');
    cli.child.kill('SIGTERM');
    expect((await cli.exited).code, cli.output()).toBe(0);
    expect(cli.output().match(/"msg":"stopped"/g)).toHaveLength(2);
  });
});

describe('watcher CLI in process', () => {
  /** Runs `main` with its own output and environment; resolves with its status and stderr. */
  async function run(argv: string[]) {
    const io = capturedIo();
    const status = await main(argv, { ...io, env: {} });
    return { status, text: io.stderr };
  }

  it('returns 2 for a mistake in the command line, with where to read the help, without exiting', async () => {
    expect(await run(['config', '--replicas', '2'])).toEqual({
      status: 2,
      text: '--replicas applies to "start" only (see pnpm watcher config --help)\n',
    });
    const none = await run([]);
    expect(none.status).toBe(2);
    expect(none.text).toContain('Usage: pnpm watcher start');
  });
});
