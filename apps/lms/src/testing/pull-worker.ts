// A worker thread that pulls from one queue on its own connection to a database file, in rounds
// started by the test thread at the same moment for every worker (see
// queue/pull-threads.test.ts): through the tick batcher, as the server pulls, or straight
// through the queue's own pull. Threads really pull at the same time; Promise.all on one
// synchronous connection never does.
import { randomUUID } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from '../db/client.ts';
import { createTickBatcher } from '../db/tick-batch.ts';
import { createSubmissionQueue } from '../queue/submission-queue.ts';

/** What the test thread gives each worker. */
export interface PullWorkerData {
  path: string;
  queue: string;
  rounds: number;
  through: 'batcher' | 'queue';
  /** [round started, workers ready or done with the round]. */
  control: SharedArrayBuffer;
}

const data = workerData as PullWorkerData;
const control = new Int32Array(data.control);
const database = openDatabase({ path: data.path, migrate: false });
const queue = createSubmissionQueue(database.db, { lockMs: 3_600_000, maxFailures: 0 });
const batch = createTickBatcher(database.sqlite);
const ids: number[] = [];
const pullNow = () => queue.pull(data.queue, Date.now(), randomUUID());

Atomics.add(control, 1, 1);
Atomics.notify(control, 1);
for (let round = 1; round <= data.rounds; round++) {
  while (Atomics.load(control, 0) < round) Atomics.wait(control, 0, round - 1, 1_000);
  for (;;) {
    const pulled = data.through === 'batcher' ? await batch.write(pullNow) : pullNow();
    if (pulled.kind === 'empty') break;
    ids.push(pulled.id);
  }
  Atomics.add(control, 1, 1);
  Atomics.notify(control, 1);
}
database.close();
parentPort?.postMessage(ids);
