import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ManagedProcess, spawnManaged } from './process.ts';

/** The LMS app directory; its node_modules holds tsx. */
const LMS_DIR = fileURLToPath(new URL('../../../apps/lms/', import.meta.url));

export interface StartLmsOptions {
  /** Extra environment for both `seed` and `serve` (e.g. SINGLE_LOGIN_EXEMPT_GROUPS). */
  env?: Record<string, string>;
  /** Use this database file (kept on stop); default a new temp directory removed on stop. */
  databasePath?: string;
  /** Extra `seed` arguments, e.g. ['--queues', 'a,b', '--students', '20']. */
  seed?: string[];
  /** How long to wait for the seed and the `listening` line. Default 60 s. */
  timeoutMs?: number;
}

export interface LocalLms {
  url: string;
  databasePath: string;
  process: ManagedProcess;
  /** Stops the server (graceful on SIGTERM) and removes the temp database directory. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Raised when the LMS exits or stays silent before it is ready; carries its output. */
export class LmsStartError extends Error {
  override readonly name = 'LmsStartError';
}

function cli(args: string[], env: Record<string, string>, onLine?: (line: string) => void) {
  // `node --import tsx` (not the tsx wrapper) so signals reach the server process itself.
  return spawnManaged(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: LMS_DIR,
    env,
    onLine,
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LmsStartError(what())), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function listeningUrl(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
    return entry.msg === 'listening' && typeof entry.url === 'string' ? entry.url : undefined;
  } catch {
    return undefined;
  }
}

async function runSeed(args: string[], env: Record<string, string>, timeoutMs: number) {
  const seeding = cli(['seed', ...args], env);
  const result = await withTimeout(
    seeding.exited,
    timeoutMs,
    () => `lms seed timed out\n${seeding.output()}`,
  ).catch(async (error: unknown) => {
    await seeding.stop('SIGKILL');
    throw error;
  });
  if (result.code !== 0) {
    throw new LmsStartError(`lms seed failed (code ${result.code})\n${seeding.output()}`);
  }
}

async function serve(
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ server: ManagedProcess; url: string }> {
  let announce: (url: string) => void = () => undefined;
  const listening = new Promise<string>((resolve) => {
    announce = resolve;
  });
  const server = cli(['serve'], env, (line) => {
    const url = listeningUrl(line);
    if (url) announce(url);
  });
  const exited = server.exited.then(({ code, signal }) => {
    throw new LmsStartError(
      `lms serve exited before listening (code ${code}, signal ${signal})\n${server.output()}`,
    );
  });
  try {
    const url = await withTimeout(
      Promise.race([listening, exited]),
      timeoutMs,
      () => `lms serve did not start\n${server.output()}`,
    );
    exited.catch(() => undefined);
    return { server, url };
  } catch (error) {
    exited.catch(() => undefined);
    await server.stop('SIGKILL');
    throw error;
  }
}

/**
 * Seeds and serves the LMS as real child processes on a free port with its own database, and
 * resolves once it logs `listening`.
 *
 * @example
 * const lms = await startLms({ env: { SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue' } });
 * try { await fetch(`${lms.url}/healthz`); } finally { await lms.stop(); }
 */
export async function startLms(options: StartLmsOptions = {}): Promise<LocalLms> {
  const tempDir = options.databasePath ? null : await mkdtemp(join(tmpdir(), 'storm-lms-'));
  const databasePath = options.databasePath ?? join(tempDir as string, 'lms.db');
  // A METRICS_TOKEN exported in the caller's shell would lock the lab's own scrapers (the
  // storm sampler, the bench) out of this LMS: it takes one only when `env` gives it.
  const env = {
    PORT: '0',
    HOST: '127.0.0.1',
    METRICS_TOKEN: '',
    ...options.env,
    DATABASE_PATH: databasePath,
  };
  const timeoutMs = options.timeoutMs ?? 60_000;
  const cleanup = async () => {
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  };
  let started: { server: ManagedProcess; url: string };
  try {
    await runSeed(options.seed ?? [], env, timeoutMs);
    started = await serve(env, timeoutMs);
  } catch (error) {
    await cleanup();
    throw error;
  }
  return {
    url: started.url,
    databasePath,
    process: started.server,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      await started.server.stop(signal, 10_000);
      await cleanup();
    },
  };
}
