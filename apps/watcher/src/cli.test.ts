import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnManaged, waitFor } from '@storm-lab/harness';
import { afterAll, describe, expect, it } from 'vitest';
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

describe('watcher CLI', () => {
  it('prints usage with the command, options and environment for --help', async () => {
    const cli = runCli(['start', '--help']);
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toContain('Usage: pnpm watcher start [--config-dir DIR] [--replicas N]');
    expect(cli.output()).toMatch(/WATCHER_RELOGIN\s+once-per-request \(default\) \| unbounded/);
  });

  it('reports a config error once, naming the file and the field, and exits 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'watcher-cli-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, 'conf.d'));
    await writeFile(
      join(dir, 'conf.d', 'a.json'),
      JSON.stringify({ a: { SERVER: 'x', AUTH: ['u', 'p'] } }),
    );
    const cli = runCli(['start', '--config-dir', dir]);
    expect((await cli.exited).code).toBe(2);
    expect(cli.output().trim()).toBe(
      `watcher: ${dir}/conf.d/a.json: queue "a": SERVER: must be a URL such as http://lms:8000`,
    );
  });

  it('rejects an unknown command with the usage text', async () => {
    const cli = runCli(['stat']);
    expect((await cli.exited).code).toBe(2);
    expect(cli.output()).toMatch(/unknown command "stat"[\s\S]*Usage:/);
  });

  it('starts N replicas with their own ids and stops them all on SIGTERM', async () => {
    const redis = await testRedis();
    cleanups.push(() => redis.stop());
    const cli = runCli(['start', '--replicas', '2'], {
      REDIS_URL: redis.url,
      // Nothing listens on port 9: the replicas keep retrying their logins, which is enough here.
      LMS_URL: 'http://127.0.0.1:9',
      XQUEUE_USERNAME: 'xqueue_svc',
      XQUEUE_PASSWORD: 'pw',
      WATCHER_QUEUES: 'a',
      WATCHER_REPLICA_ID: 'cli-test',
      WATCHER_METRICS_PORT: '0',
      WATCHER_QUEUE_PREFIX: `cli-test-${process.pid}`,
      WATCHER_LOGIN_POLL_INTERVAL: '0.2',
    });
    cleanups.push(() => cli.stop('SIGKILL'));
    await waitFor(
      () => (cli.output().match(/"msg":"metrics listening"/g)?.length === 2 ? true : undefined),
      { timeoutMs: 20_000, what: 'two replicas' },
    );
    expect(cli.output()).toContain('"replica":"cli-test-1"');
    expect(cli.output()).toContain('"replica":"cli-test-2"');
    cli.child.kill('SIGTERM');
    expect((await cli.exited).code).toBe(0);
    expect(cli.output().match(/"msg":"stopped"/g)).toHaveLength(2);
  });
});
