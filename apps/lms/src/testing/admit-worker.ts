// A worker thread that admits sessions of one user on its own connection to a database file,
// in rounds started by the test thread at the same moment for every worker (see
// sessions/sqlite-store-threads.test.ts). Threads, unlike `Promise.all` on one connection, really
// run the read-decide-write of admission at the same time.

import { randomUUID } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { decideLogin, type PolicySettingsInput, parseSettings } from '@storm-lab/session-policy';
import { openDatabase } from '../db/client.ts';
import { createSqliteSessionStore } from '../sessions/sqlite-store.ts';

/** What the test thread gives each worker. */
export interface AdmitWorkerData {
  path: string;
  userId: string;
  username: string;
  rounds: number;
  /** Admissions per round, one after another on this worker's connection. */
  perRound: number;
  policy: PolicySettingsInput;
  /** The client instance this worker logs in as (`X-Client-Instance`); null for none. */
  instanceId: string | null;
  /** [round started, workers done with it, admitted this round]. */
  control: SharedArrayBuffer;
}

const data = workerData as AdmitWorkerData;
const control = new Int32Array(data.control);
const database = openDatabase({ path: data.path, migrate: false });
const store = createSqliteSessionStore({ db: database.db, ttlMs: 3_600_000, now: Date.now });
const policy = parseSettings(data.policy);
const user = { id: data.userId, username: data.username, groups: [], isStaff: false };

for (let round = 1; round <= data.rounds; round++) {
  // Sleep until the test thread starts this round, so every worker starts it together.
  while (Atomics.load(control, 0) < round) Atomics.wait(control, 0, round - 1, 1_000);
  for (let index = 0; index < data.perRound; index++) {
    const sessionId = randomUUID();
    const at = Date.now();
    const result = await store.admit({
      userId: user.id,
      session: { id: sessionId, instanceId: data.instanceId, createdAt: at },
      // These sessions are counted, never used: no request checks the hash.
      authHash: '',
      decide: (live) =>
        decideLogin(policy, user, { sessionId, instanceId: data.instanceId, now: at }, live),
    });
    if (result.admitted) Atomics.add(control, 2, 1);
  }
  Atomics.add(control, 1, 1);
  Atomics.notify(control, 1);
}
database.close();
parentPort?.postMessage('done');
