/**
 * A child process of the cross-process conformance tests: `node --import tsx login-worker.ts
 * <module>`. It imports the registry module, then over IPC opens a registry ("prepare"), waits
 * at the barrier, starts all its logins at once on "go", and exits when the parent disconnects.
 */
import { pathToFileURL } from 'node:url';
import type { SessionRegistry } from '../registry.ts';
import type { WorkerLogin, WorkerReply, WorkerRequest } from './cross-process.ts';
import { loginThrough } from './fixtures.ts';

/** What the module named by `processes.module` exports. */
interface RegistryModule {
  createRegistry(config: unknown): Promise<SessionRegistry>;
  destroyRegistry?(registry: SessionRegistry): Promise<void> | void;
}

function reply(message: WorkerReply, then: () => void = () => undefined): void {
  if (!process.send) throw new Error('login-worker must be spawned with an IPC channel');
  process.send(message, then);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

async function main(modulePath: string): Promise<void> {
  const module = (await import(pathToFileURL(modulePath).href)) as Partial<RegistryModule>;
  if (typeof module.createRegistry !== 'function') {
    throw new Error(`${modulePath} does not export createRegistry(config)`);
  }
  const { createRegistry, destroyRegistry } = module as RegistryModule;
  let prepared: { registry: SessionRegistry; logins: WorkerLogin[] } | null = null;

  async function handle(request: WorkerRequest): Promise<WorkerReply> {
    if (request.type === 'prepare') {
      prepared = { registry: await createRegistry(request.config), logins: request.logins };
      return { type: 'prepared' };
    }
    if (prepared === null) throw new Error('"go" before "prepare"');
    const { registry, logins } = prepared;
    prepared = null;
    try {
      const results = await Promise.all(logins.map((login) => loginThrough(registry, login)));
      return { type: 'results', results };
    } finally {
      await destroyRegistry?.(registry);
    }
  }

  let queue = Promise.resolve();
  process.on('message', (request: WorkerRequest) => {
    queue = queue
      .then(() => handle(request))
      .then(
        (message) => reply(message),
        (error: unknown) => reply({ type: 'error', message: messageOf(error) }),
      );
  });
  process.on('disconnect', () => void queue.finally(() => process.exit(0)));
  reply({ type: 'loaded' });
}

main(process.argv[2] ?? '').catch((error: unknown) => {
  reply({ type: 'error', message: messageOf(error) }, () => process.exit(1));
});
