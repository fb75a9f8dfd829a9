import { Worker } from 'node:worker_threads';

/**
 * Starts a worker thread on a TypeScript file. Workers get no module hooks from the test
 * process's `--import tsx`, so each registers tsx itself, then loads the file.
 *
 * @example
 * const worker = tsWorker(new URL('./pull-worker.ts', import.meta.url), { path });
 */
export function tsWorker(file: URL, workerData: unknown): Worker {
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(file.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
