import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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
    expect(store.stderr).toContain('--session-store must be one of sqlite, redis');
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

const REPO = join(APP_DIR, '../..');

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
}

/** Workspace packages by name, with their folder. */
function workspacePackages(): Map<string, { dir: string; manifest: Manifest }> {
  const packages = new Map<string, { dir: string; manifest: Manifest }>();
  for (const parent of ['apps', 'packages']) {
    for (const entry of readdirSync(join(REPO, parent))) {
      const file = join(REPO, parent, entry, 'package.json');
      if (!existsSync(file)) continue;
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
      packages.set(manifest.name, { dir: `${parent}/${entry}`, manifest });
    }
  }
  return packages;
}

/** The folders of an app's workspace dependencies, transitively (production ones only). */
function workspaceDependencyDirs(appName: string): string[] {
  const packages = workspacePackages();
  const seen = new Set<string>();
  const visit = (name: string) => {
    for (const [dependency, range] of Object.entries(
      packages.get(name)?.manifest.dependencies ?? {},
    )) {
      if (!range.startsWith('workspace:') || seen.has(dependency)) continue;
      seen.add(dependency);
      visit(dependency);
    }
  };
  visit(appName);
  return [...seen].map((name) => packages.get(name)?.dir ?? name).sort();
}

// docker-compose.yml builds each app from the repository root; an image that leaves out one of
// its app's workspace packages fails at `pnpm deploy` (the watcher's did, once lms-client existed).
describe('the Dockerfiles', () => {
  it.each([
    ['apps/lms/Dockerfile', '@storm-lab/lms'],
    ['apps/watcher/Dockerfile', '@storm-lab/watcher'],
  ])('%s copies every workspace package its app depends on, manifest and sources', (file, app) => {
    const text = readFileSync(join(REPO, file), 'utf8');
    const dirs = workspaceDependencyDirs(app);
    expect(dirs.length).toBeGreaterThan(0);
    for (const dir of dirs) {
      expect(text, `${file}: ${dir}/package.json`).toContain(`COPY ${dir}/package.json ${dir}/`);
      expect(text, `${file}: ${dir}`).toContain(`COPY ${dir} ${dir}\n`);
    }
  });
});
