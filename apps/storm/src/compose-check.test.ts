import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirrorIn } from './compose/base-images.ts';

// The full check builds images and runs containers (`pnpm compose:check`, minutes, root); these
// tests cover what it does before it touches an engine.

const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

function check(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/compose-check.ts', ...args], {
    cwd: APP_DIR,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('pnpm compose:check before any engine', () => {
  let bare: string;
  beforeAll(async () => {
    // A PATH with only sh and node: no docker, no docker-compose, no debootstrap.
    bare = await mkdtemp(join(tmpdir(), 'compose-check-path-'));
    await symlink('/bin/sh', join(bare, 'sh'));
    await symlink(process.execPath, join(bare, 'node'));
  });
  afterAll(() => rm(bare, { recursive: true, force: true }));

  it('prints its usage with --help', () => {
    const run = check(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('--local-base-images');
    expect(run.stdout).toContain('--install');
  });

  it('refuses a cure that does not scale up, before it starts anything', () => {
    const run = check(['--replicas', '3', '--scale-to', '3']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--scale-to (3) must be more than --replicas (3)');
    expect(run.stdout).toBe('');
  });

  it('refuses more than one LMS worker without Redis sessions, and an unknown store', () => {
    const workers = check(['--lms-workers', '2']);
    expect(workers.code).toBe(2);
    expect(workers.stderr).toContain('--lms-workers above 1 shares sessions through Redis');
    const store = check(['--session-store', 'memcached']);
    expect(store.code).toBe(2);
    expect(store.stderr).toContain('--session-store must be sqlite or redis');
  });

  it('names the Debian packages to install, or --install, when the tools are missing', () => {
    const run = check(['--local-base-images'], { ...process.env, PATH: bare });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      "Missing: docker-compose, docker.io, debootstrap. Install Debian's packages " +
        '(apt-get install -y docker-compose docker.io debootstrap) or re-run with --install.',
    );
  });
});

describe('mirrorIn', () => {
  it('reads the mirror of a deb822 sources file', () => {
    const sources = 'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n';
    expect(mirrorIn(sources)).toBe('http://mirror.example/debian');
  });

  it('reads the mirror of a one-line sources.list entry, options included', () => {
    const sources = '# local\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n';
    expect(mirrorIn(sources)).toBe('http://mirror.example/debian');
  });

  it('finds none in a file without a bookworm Debian entry', () => {
    expect(mirrorIn('deb http://mirror.example/ubuntu jammy main\n')).toBeNull();
  });
});
