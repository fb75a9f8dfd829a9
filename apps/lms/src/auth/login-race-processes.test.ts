import { type LocalLms, startLms } from '@storm-lab/harness';
import Database from 'better-sqlite3';
import { afterEach, describe, it } from 'vitest';
import { urlFetcher } from '../testing/client.ts';
import { TEST_ITERATIONS } from '../testing/fixtures.ts';
import { expectLive, PARALLEL, storm } from '../testing/login-race.ts';

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

// Two processes make two connections that really run at the same time: what in-process tests
// (one thread, synchronous SQLite) cannot show.
describe('parallel logins across two LMS processes sharing one database', {
  timeout: 120_000,
}, () => {
  it(`leaves exactly one live session after ${PARALLEL} parallel logins over real sockets, 25 rounds`, async () => {
    const env = { PASSWORD_HASH_ITERATIONS: String(TEST_ITERATIONS), LOG_LEVEL: 'warn' };
    const first: LocalLms = await startLms({ env });
    cleanups.push(() => first.stop());
    const second: LocalLms = await startLms({ env, databasePath: first.databasePath });
    cleanups.push(() => second.stop());
    const reader = new Database(first.databasePath, { readonly: true });
    cleanups.push(() => {
      reader.close();
    });
    const fetchers = [urlFetcher(first.url), urlFetcher(second.url)];
    for (let round = 0; round < 25; round++) {
      const tokens = await storm(fetchers);
      expectLive(reader, Date.now(), tokens, 1);
    }
  });
});
