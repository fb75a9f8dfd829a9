import { openDatabase, parseEnv, SEED_DEFAULTS, seed } from '@storm-lab/lms';
import { XQueueClient } from '@storm-lab/lms-client';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { freeHash, SimLms } from './lms-host.ts';
import { seededRandom } from './random.ts';
import { withVirtualClock } from './virtual-clock.ts';

const logger = pino({ level: 'silent' });

describe('SimLms', () => {
  it('leaves no timer behind once a client has read its answers', async () => {
    const database = openDatabase({ path: ':memory:', synchronous: 'normal' });
    const config = parseEnv(
      { LOG_LEVEL: 'silent', PASSWORD_HASH_ITERATIONS: '1000' },
      process.cwd(),
    );
    await seed(
      database.db,
      { ...SEED_DEFAULTS, queues: ['q'], servicePassword: 'xqueue-pass' },
      { iterations: 1000, now: Date.now(), hash: freeHash },
    );
    await withVirtualClock(async (clock) => {
      const lms = new SimLms({
        database,
        config,
        costs: { model: 'workers', workers: 1, iterationNs: 250, requestMs: 10, latencyMs: 1 },
        faults: { dropResponseRate: 0, hashSlowdown: 1 },
        random: seededRandom(1),
        logger,
      });
      const client = new XQueueClient({
        serverUrl: lms.baseUrl,
        queue: 'q',
        username: SEED_DEFAULTS.serviceUsername,
        password: 'xqueue-pass',
        mode: 'current',
        instanceId: null,
        requestsTimeoutMs: 1000,
        logger,
        now: Date.now,
        fetch: lms.fetchFor({ address: '10.0.0.1' }),
      });
      let pulled: unknown = null;
      const pulling = client.getSubmission().then((outcome) => {
        pulled = outcome;
      });
      while (pulled === null) await clock.next();
      await pulling;
      // The login's two requests and the pull: each timeout ends with its answer.
      expect(pulled).toEqual({ kind: 'empty' });
      expect(clock.pendingTimers()).toBe(0);
    });
    database.close();
  });
});
