import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnManaged, waitFor } from '@storm-lab/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StormReport } from './report.ts';

const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
const TSX = join(APP_DIR, 'node_modules', '.bin', 'tsx');

function runCli(args: string[], env: Record<string, string> = {}) {
  return spawnManaged(TSX, ['src/cli.ts', ...args], {
    cwd: APP_DIR,
    env: { INIT_CWD: APP_DIR, ...env },
  });
}

/** Processes whose environment carries the marker: everything this run started. */
async function processesWithMarker(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = await readFile(`/proc/${entry}/environ`, 'utf8');
      if (environ.includes(`STORM_TEST_MARKER=${marker}`)) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

describe('pnpm storm (the CLI as a real process)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'storm-cli-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints usage for --help and a clear error for a bad option', async () => {
    const help = runCli(['--help']);
    expect((await help.exited).code).toBe(0);
    expect(help.output()).toContain('pnpm storm --scenario NAME');
    const bad = runCli(['--replicas', 'many']);
    expect((await bad.exited).code).toBe(2);
    expect(bad.output()).toContain('--replicas must be an integer from 1 to 64 (got "many")');
    const unknown = runCli(['--scenario', 'strom']);
    expect((await unknown.exited).code).toBe(2);
    expect(unknown.output()).toContain('unknown scenario "strom"');
  });

  it('shows the storm and the cure side by side', async () => {
    const out = join(dir, 'report');
    const run = runCli([
      '--compare',
      'storm,storm-unbounded-relogin,flag-off,exempt-username,exempt-group,instance-scope',
      '--replicas',
      '2',
      '--queues',
      '1',
      '--connections',
      '2',
      '--duration',
      '3',
      '--submissions',
      '8',
      '--drain',
      '4',
      '--json',
      '--out',
      out,
    ]);
    const { code } = await run.exited;
    expect(code, run.output()).toBe(0);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as StormReport;
    const byName = Object.fromEntries(report.scenarios.map((figures) => [figures.name, figures]));
    for (const name of ['storm', 'storm-unbounded-relogin']) {
      const figures = byName[name]!;
      expect(figures.verdict, name).toBe('STORM');
      expect(figures.logins, name).toBeGreaterThan(3 * figures.totalConnections);
      expect(figures.forbiddenPerLogin, name).toBeGreaterThan(0.5);
      expect(figures.personSingleSession, name).toBe(true);
    }
    for (const name of ['flag-off', 'exempt-username', 'exempt-group', 'instance-scope']) {
      const figures = byName[name]!;
      expect(figures.verdict, name).toBe('HEALTHY');
      expect(figures.logins, name).toBe(figures.totalConnections);
      expect(figures.forbidden, name).toBe(0);
      expect(figures.graded, name).toBe(figures.submitted);
      expect(figures.wrongScores, name).toBe(0);
    }
    expect(byName['exempt-group']!.personSingleSession).toBe(true);
    expect(byName['flag-off']!.personSingleSession).toBeNull();
    const files = await readdir(out);
    expect(files).toEqual(
      expect.arrayContaining(['report.json', 'report.md', 'storm.svg', 'exempt-username.svg']),
    );
    expect(await readFile(join(out, 'storm.svg'), 'utf8')).toMatch(/^<svg[^>]*>[\s\S]*<polyline/);
  });

  it('loses nothing and grades nothing twice while replicas, Redis and the LMS are killed', async () => {
    const out = join(dir, 'chaos');
    const run = runCli([
      '--scenario',
      'chaos',
      '--submissions',
      '300',
      '--duration',
      '20',
      '--seed',
      '7',
      '--json',
      '--out',
      out,
    ]);
    const { code } = await run.exited;
    expect(code, run.output()).toBe(0);
    const report = JSON.parse(await readFile(join(out, 'chaos.json'), 'utf8')) as {
      submitted: number;
      lost: number;
      gradedTwice: number;
      wrongScores: number;
      faults: string[];
    };
    expect(report).toMatchObject({ submitted: 300, lost: 0, gradedTwice: 0, wrongScores: 0 });
    const faults = report.faults.join('\n');
    expect(faults).toMatch(/watcher \d killed \(SIGKILL\)/);
    expect(faults).toContain('redis restarted');
    expect(faults).toContain('lms restarted (SIGTERM)');
    expect(faults).toContain('lms restarted (SIGKILL)');
  });

  it('leaves no process and no temporary directory behind on Ctrl-C', async () => {
    const marker = `m${process.pid}${Date.now()}`;
    const scratch = await mkdtemp(join(tmpdir(), 'storm-sigint-'));
    let run: ReturnType<typeof runCli> | undefined;
    try {
      const current = runCli(
        ['--scenario', 'storm', '--duration', '60', '--replicas', '2', '--queues', '1'],
        {
          STORM_TEST_MARKER: marker,
          TMPDIR: scratch,
        },
      );
      run = current;
      const loading = waitFor(() => (/storm\s+load/.test(current.output()) ? true : undefined), {
        timeoutMs: 60_000,
        what: 'the load phase',
      });
      const endedEarly = current.exited.then(() => {
        throw new Error(`the run ended before the load phase:\n${current.output()}`);
      });
      endedEarly.catch(() => undefined);
      loading.catch(() => undefined);
      await Promise.race([loading, endedEarly]);
      expect((await processesWithMarker(marker)).length).toBeGreaterThan(3);
      current.child.kill('SIGINT');
      const { code } = await current.exited;
      expect(code, current.output()).toBe(130);
      await waitFor(
        async () => ((await processesWithMarker(marker)).length === 0 ? true : undefined),
        {
          timeoutMs: 10_000,
          what: 'every process of the run to exit',
        },
      );
      // tsx keeps its compile cache in TMPDIR on purpose; everything else must be gone.
      expect((await readdir(scratch)).filter((name) => !name.startsWith('tsx-'))).toEqual([]);
    } finally {
      await run?.stop('SIGINT', 20_000); // a no-op when it already exited
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
