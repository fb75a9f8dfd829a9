import { pbkdf2Sync } from 'node:crypto';
import { createApp, openDatabase, parseEnv } from '@storm-lab/lms';
import { pino } from 'pino';

/** This machine's costs, as the simulator charges them when it replays the lab. */
export interface LabCosts {
  /** Nanoseconds per PBKDF2-SHA256 iteration (Node's, OpenSSL's). */
  iterationNs: number;
  /** Milliseconds of the LMS's own work for one xqueue request (an unauthenticated poll). */
  requestMs: number;
}

const ITERATIONS = 200_000;
const REQUESTS = 400;

/** The middle value (the upper one of an even count); 0 for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/**
 * Measures, on real time, what one PBKDF2 iteration and one LMS request cost here: the hash on
 * Node's own pbkdf2, the request through the app `createApp` builds (the median of five rounds,
 * after a warm-up), so a replay of `pnpm storm` charges what the real lab pays.
 */
export async function measureLabCosts(): Promise<LabCosts> {
  // A first hash in a fresh process runs slower (seen: 318 ns an iteration, then 205 and 223).
  pbkdf2Sync('warm-up', 'salt', ITERATIONS, 32, 'sha256');
  const hashes: number[] = [];
  for (let round = 0; round < 5; round++) {
    const started = performance.now();
    pbkdf2Sync('password', 'salt', ITERATIONS, 32, 'sha256');
    hashes.push(((performance.now() - started) * 1e6) / ITERATIONS);
  }
  const database = openDatabase({ path: ':memory:', synchronous: 'normal' });
  try {
    const app = createApp({
      db: database.db,
      config: parseEnv({ LOG_LEVEL: 'silent' }, process.cwd()),
      logger: pino({ level: 'silent' }),
    });
    const rounds: number[] = [];
    for (let round = 0; round < 8; round++) {
      const started = performance.now();
      for (let index = 0; index < REQUESTS; index++) {
        await (await app.request('/xqueue/get_submission/?queue_name=q')).arrayBuffer();
      }
      // The first rounds warm the JIT up.
      if (round > 2) rounds.push((performance.now() - started) / REQUESTS);
    }
    return { iterationNs: median(hashes), requestMs: median(rounds) };
  } finally {
    database.close();
  }
}
