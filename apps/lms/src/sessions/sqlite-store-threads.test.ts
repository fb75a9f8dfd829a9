import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PolicySettingsInput } from '@storm-lab/session-policy';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../db/client.ts';
import type { AdmitWorkerData } from '../testing/admit-worker.ts';
import { tsWorker } from '../testing/ts-worker.ts';
import { upsertUser } from '../users.ts';

const WORKERS = 4;
const PER_ROUND = 4;
const ROUNDS = 40;
const WORKER_FILE = new URL('../testing/admit-worker.ts', import.meta.url);

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
  cleanups = [];
});

/** Live tracked sessions of the user after each round, `WORKERS` threads admitting at once. */
async function race(
  policy: PolicySettingsInput,
  instanceOf: (worker: number) => string | null = () => null,
  /** Ends every session before each round, so that each round races for free slots. */
  fresh = false,
) {
  const dir = mkdtempSync(join(tmpdir(), 'lms-threads-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'lms.db');
  const database = openDatabase({ path });
  cleanups.push(() => database.close());
  const userId = upsertUser(database.db, {
    username: 'racer',
    passwordHash: 'pbkdf2_sha256$1$s$x',
    now: Date.now(),
  });
  const control = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
  const counters = new Int32Array(control);
  const workerData = (worker: number): AdmitWorkerData => ({
    path,
    userId,
    username: 'racer',
    rounds: ROUNDS,
    perRound: PER_ROUND,
    policy,
    instanceId: instanceOf(worker),
    control,
  });
  let failure: unknown = null;
  const workers = Array.from({ length: WORKERS }, (_, worker) =>
    tsWorker(WORKER_FILE, workerData(worker)),
  );
  const exited = workers.map(
    (worker) =>
      new Promise<void>((resolve) => {
        worker.once('error', (error) => {
          failure = error;
          resolve();
        });
        worker.once('exit', () => resolve());
      }),
  );
  cleanups.push(() => {
    for (const worker of workers) void worker.terminate();
  });
  const live = database.sqlite.prepare<[string], { n: number }>(
    'SELECT count(*) AS n FROM sessions WHERE user_id = ? AND tracked = 1',
  );
  const instances = database.sqlite.prepare<[string], { n: number }>(
    'SELECT count(DISTINCT instance_id) AS n FROM sessions WHERE user_id = ? AND tracked = 1',
  );
  const perRound: { live: number; admitted: number; instances: number }[] = [];
  const clear = database.sqlite.prepare<[string]>('DELETE FROM sessions WHERE user_id = ?');
  for (let round = 1; round <= ROUNDS; round++) {
    if (fresh) clear.run(userId);
    Atomics.store(counters, 1, 0);
    Atomics.store(counters, 2, 0);
    Atomics.store(counters, 0, round);
    Atomics.notify(counters, 0);
    // Poll (a few ms at a time) until every worker finished the round; a worker that failed
    // fails the test at once.
    const deadline = Date.now() + 30_000;
    while (Atomics.load(counters, 1) < WORKERS) {
      if (failure) throw failure;
      if (Date.now() > deadline) throw new Error(`round ${round} did not finish in 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    perRound.push({
      live: live.get(userId)?.n ?? 0,
      admitted: Atomics.load(counters, 2),
      instances: instances.get(userId)?.n ?? 0,
    });
  }
  await Promise.all(exited);
  return perRound;
}

// Threads on one file really run the read-decide-write of admission at the same time, which
// Promise.all on one synchronous connection never does: take the transaction out of `admit`
// and these fail.
describe('admission from several threads on one database file', { timeout: 120_000 }, () => {
  it(`keeps exactly one session of a single-session user, ${ROUNDS} rounds of ${WORKERS} threads`, async () => {
    const rounds = await race({});
    expect(rounds.map((round) => round.live)).toEqual(Array(ROUNDS).fill(1));
  });

  it('keeps exactly N sessions under maxSessions = N', async () => {
    const rounds = await race({ maxSessions: 3 });
    expect(rounds.map((round) => round.live)).toEqual(Array(ROUNDS).fill(3));
  });

  it('admits exactly one login per free slot under deny-new', async () => {
    // Every round starts with no session: 16 logins race for the 2 slots, the rest are denied.
    const rounds = await race({ maxSessions: 2, onLimit: 'deny-new' }, () => null, true);
    expect(rounds.map((round) => [round.live, round.admitted])).toEqual(Array(ROUNDS).fill([2, 2]));
  });

  it('keeps exactly one session per client instance under instance scope', async () => {
    // Two threads per instance: each pair races for its instance's one slot, and neither pair
    // may evict the other's session.
    const rounds = await race({ scope: 'instance' }, (worker) => `replica-${worker % 2}`);
    expect(rounds.map((round) => [round.live, round.instances])).toEqual(
      Array(ROUNDS).fill([2, 2]),
    );
  });
});
