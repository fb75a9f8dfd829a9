import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdmitResult, SessionRegistry } from '../registry.ts';
import type { PolicySettingsInput } from '../settings.ts';
import { nextSessionId } from './fixtures.ts';
import { API_LOGIN_PATH, BROWSER_LOGIN_PATH } from './pool-conformance.ts';

/**
 * Logins from several OS processes at once, for registries shared between processes.
 *
 * `module` is the absolute path of a module each child process imports (through tsx, so it may
 * be TypeScript). It must export `createRegistry(config: unknown): Promise<SessionRegistry>`
 * and may export `destroyRegistry(registry): Promise<void>` to close what it opened. `config`
 * tells a child how to reach the store of the parent's fresh registry (each test has its own);
 * it travels as JSON, so the module reads no environment.
 *
 * @example
 * processes: {
 *   module: fileURLToPath(new URL('./testing/redis-process-registry.ts', import.meta.url)),
 *   config: (registry) => ({ url, prefix: prefixOf.get(registry) }),
 * }
 */
export interface CrossProcessOptions {
  module: string;
  config: (registry: SessionRegistry) => unknown;
  /** Processes logging the same user in at once. Default 4. */
  count?: number;
  /** Logins each process starts at once, on its own registry. Default 16. */
  parallel?: number;
  /** How many times each scenario repeats. Default 3. */
  rounds?: number;
}

/** One of the logins a child performs when the parent says "go". */
export interface WorkerLogin {
  settings: PolicySettingsInput;
  sessionId: string;
  instanceId: string | null;
  path?: string;
}

export type WorkerRequest =
  | { type: 'prepare'; config: unknown; logins: WorkerLogin[] }
  | { type: 'go' };

export type WorkerReply =
  | { type: 'loaded' }
  | { type: 'prepared' }
  | { type: 'results'; results: AdmitResult[] }
  | { type: 'error'; message: string };

const WORKER = fileURLToPath(new URL('./login-worker.ts', import.meta.url));
const REPLY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

/** A child process that logs in on request; replies arrive in the order of requests. */
function startWorker(module: string) {
  // Resolved from here, not from the cwd, so any consumer of this package can spawn it.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const child = spawn(process.execPath, ['--import', tsx, WORKER, module], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const waiting: { resolve(reply: WorkerReply): void; reject(error: Error): void }[] = [];
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      const error = new Error(`login worker ${child.pid} exited (${code ?? signal})\n${output}`);
      for (const waiter of waiting.splice(0)) waiter.reject(error);
      resolve();
    });
  });
  child.on('message', (reply: WorkerReply) => {
    const waiter = waiting.shift();
    if (reply.type === 'error')
      waiter?.reject(new Error(`login worker ${child.pid}: ${reply.message}`));
    else waiter?.resolve(reply);
  });

  function nextReply(): Promise<WorkerReply> {
    if (!running) return Promise.reject(new Error(`login worker exited\n${output}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`login worker ${child.pid} gave no answer\n${output}`)),
        REPLY_TIMEOUT_MS,
      );
      waiting.push({
        resolve(reply) {
          clearTimeout(timer);
          resolve(reply);
        },
        reject(error) {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  return {
    loaded: nextReply(),
    request(message: WorkerRequest): Promise<WorkerReply> {
      const reply = nextReply();
      child.send(message);
      return reply;
    },
    async stop(): Promise<void> {
      if (child.connected) child.disconnect();
      const timer = setTimeout(() => running && child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

type LoginWorker = ReturnType<typeof startWorker>;

function resultsOf(reply: WorkerReply): AdmitResult[] {
  if (reply.type !== 'results') throw new Error(`expected login results, got "${reply.type}"`);
  return reply.results;
}

/** Declares the cross-process tests of the conformance suite; call inside its describe block. */
export function declareCrossProcessTests(
  options: CrossProcessOptions,
  fresh: () => Promise<SessionRegistry>,
  { pools }: { pools: boolean },
): void {
  const count = options.count ?? 4;
  const parallel = options.parallel ?? 16;
  const logins = count * parallel;
  const rounds = options.rounds ?? 3;
  let workers: LoginWorker[] = [];

  /**
   * `parallel` logins from each process at once; `instanceOf` and `pathOf` get each login's
   * number over all processes (so every process logs in on every instance and path).
   */
  async function loginAtOnce(
    settings: PolicySettingsInput,
    instanceOf: (login: number) => string | null = () => null,
    pathOf: (login: number) => string | undefined = () => undefined,
  ) {
    const registry = await fresh();
    const config = options.config(registry);
    await Promise.all(
      workers.map((worker, index) =>
        worker.request({
          type: 'prepare',
          config,
          logins: Array.from({ length: parallel }, (_, login) => ({
            settings,
            sessionId: nextSessionId('p'),
            instanceId: instanceOf(index * parallel + login),
            path: pathOf(index * parallel + login),
          })),
        }),
      ),
    );
    // The barrier: every child has its registry open and waits for this one message.
    const replies = await Promise.all(workers.map((worker) => worker.request({ type: 'go' })));
    const results = replies.flatMap(resultsOf);
    const evicted = results.flatMap((result) => (result.admitted ? result.evicted : []));
    return { results, evicted, live: await registry.list('alice') };
  }

  describe(`across ${count} processes x ${parallel} parallel logins`, () => {
    beforeAll(async () => {
      workers = Array.from({ length: count }, () => startWorker(options.module));
      try {
        await Promise.all(workers.map((worker) => worker.loaded));
      } catch (error) {
        await Promise.all(workers.map((worker) => worker.stop()));
        throw error;
      }
    });

    afterAll(async () => {
      await Promise.all(workers.map((worker) => worker.stop()));
    });

    it(`leaves exactly one live session after ${logins} logins at once (x${rounds})`, async () => {
      for (let round = 0; round < rounds; round++) {
        const { live, evicted } = await loginAtOnce({});
        expect(live).toHaveLength(1);
        expect(evicted).toHaveLength(logins - 1);
      }
    });

    it(`leaves exactly maxSessions live sessions across processes (x${rounds})`, async () => {
      const kept = Math.min(logins, 3);
      for (let round = 0; round < rounds; round++) {
        const { live, evicted } = await loginAtOnce({ maxSessions: 3 });
        expect(live).toHaveLength(kept);
        expect(evicted).toHaveLength(logins - kept);
      }
    });

    it(`admits exactly one login across processes under deny-new (x${rounds})`, async () => {
      for (let round = 0; round < rounds; round++) {
        const { live, results } = await loginAtOnce({ onLimit: 'deny-new' });
        expect(results.filter((result) => result.admitted)).toHaveLength(1);
        expect(results.filter((result) => !result.admitted)).toHaveLength(logins - 1);
        expect(live).toHaveLength(1);
      }
    });

    it(`keeps exactly one live session per instance across processes (x${rounds})`, async () => {
      const instanceOf = (index: number) => (index % 2 === 0 ? 'worker-a' : 'worker-b');
      const instances = logins >= 2 ? ['worker-a', 'worker-b'] : ['worker-a'];
      for (let round = 0; round < rounds; round++) {
        const { live, evicted } = await loginAtOnce({ scope: 'instance' }, instanceOf);
        expect(live.map((session) => session.instanceId).sort()).toEqual(instances);
        // Every session but the survivors ended once: a second eviction means a lost write.
        expect(evicted).toHaveLength(logins - instances.length);
      }
    });

    if (pools && logins >= 2) {
      it(`keeps exactly one live session per login-path pool across processes (x${rounds})`, async () => {
        const settings = { rules: [{ match: { path: 'xqueue' } }] };
        const pathOf = (index: number) => (index % 2 === 0 ? API_LOGIN_PATH : BROWSER_LOGIN_PATH);
        for (let round = 0; round < rounds; round++) {
          const { live, evicted } = await loginAtOnce(settings, () => null, pathOf);
          expect(live.map((session) => session.pool).sort()).toEqual(['default', 'path:xqueue']);
          expect(evicted).toHaveLength(logins - 2);
        }
      });
    }
  });
}
