import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SimLms } from './lms-host.ts';
import { seededRandom } from './random.ts';
import { serviceClient, testLmsDatabase } from './testing.ts';
import { withVirtualClock } from './virtual-clock.ts';

const logger = pino({ level: 'silent' });

describe('SimLms', () => {
  it('leaves no timer behind once a client has read its answers', async () => {
    const { database, config } = await testLmsDatabase(1000);
    await withVirtualClock(async (clock) => {
      const lms = new SimLms({
        database,
        config,
        costs: { model: 'workers', workers: 1, iterationNs: 250, requestMs: 10, latencyMs: 1 },
        faults: { dropResponseRate: 0, hashSlowdown: 1 },
        random: seededRandom(1),
        logger,
      });
      const client = serviceClient(lms, 1000);
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
