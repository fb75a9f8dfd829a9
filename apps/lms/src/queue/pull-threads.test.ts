import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../db/client.ts';
import { SEED_DEFAULTS, seed } from '../seed.ts';
import type { PullWorkerData } from '../testing/pull-worker.ts';
import { tsWorker } from '../testing/ts-worker.ts';
import { findCredentials } from '../users.ts';
import { createSubmission } from './submissions.ts';

const WORKERS = 4;
const ROUNDS = 50;
/** Per round: fewer than the threads, so that they all reach for the same rows at once. */
const PER_ROUND = 3;
const SUBMISSIONS = ROUNDS * PER_ROUND;
const WORKER_FILE = new URL('../testing/pull-worker.ts', import.meta.url);

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
  cleanups = [];
});

/** Runs `WORKERS` threads pulling one queue until it is empty; every id each one got. */
async function pullInThreads(through: PullWorkerData['through']): Promise<number[][]> {
  const dir = mkdtempSync(join(tmpdir(), 'lms-pull-threads-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'lms.db');
  const database = openDatabase({ path });
  cleanups.push(() => database.close());
  const now = Date.now();
  await seed(database.db, { ...SEED_DEFAULTS, students: 1 }, { iterations: 1, now });
  const studentId = findCredentials(database.db, 'student1')!.id;
  const submit = (count: number) => {
    for (let index = 0; index < count; index++) {
      const created = createSubmission(database.db, {
        studentId,
        queueName: 'test-queue',
        problemId: 'test-queue-p1',
        studentResponse: String(index),
        now: now + index,
      });
      if (!created.ok) throw new Error(created.message);
    }
  };
  const control = new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT);
  const flags = new Int32Array(control);
  const workerData: PullWorkerData = {
    path,
    queue: 'test-queue',
    rounds: ROUNDS,
    through,
    control,
  };
  let failure: unknown = null;
  const results = Array.from({ length: WORKERS }, () => {
    const worker = tsWorker(WORKER_FILE, workerData);
    cleanups.push(() => void worker.terminate());
    return new Promise<number[]>((resolve, reject) => {
      worker.once('message', (ids: number[]) => resolve(ids));
      worker.once('error', (error) => {
        failure = error;
        reject(error);
      });
    });
  });
  for (const result of results) result.catch(() => undefined);
  /** Polls until `count` workers have checked in (ready, or done with the round). */
  const checkedIn = async (count: number) => {
    const deadline = Date.now() + 30_000;
    while (Atomics.load(flags, 1) < count) {
      if (failure) throw failure;
      if (Date.now() > deadline) throw new Error('pull workers did not check in within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };
  await checkedIn(WORKERS);
  for (let round = 1; round <= ROUNDS; round++) {
    submit(PER_ROUND);
    Atomics.store(flags, 1, 0);
    Atomics.store(flags, 0, round);
    Atomics.notify(flags, 0);
    await checkedIn(WORKERS);
  }
  return Promise.all(results);
}

// Threads on one file really pull at the same time: take the transaction out of the pull and
// the `queue` case fails; take the batcher's out too and the `batcher` case (the server's way).
describe('pulls from several threads on one database file', { timeout: 120_000 }, () => {
  it.each(['batcher', 'queue'] as const)(
    `hands each of ${SUBMISSIONS} submissions to exactly one of ${WORKERS} threads, through the %s`,
    async (through) => {
      const perWorker = await pullInThreads(through);
      const ids = perWorker.flat();
      expect(ids).toHaveLength(SUBMISSIONS);
      expect(new Set(ids).size).toBe(SUBMISSIONS);
      // They did overlap: every thread got some.
      for (const got of perWorker) expect(got.length).toBeGreaterThan(0);
    },
  );
});
