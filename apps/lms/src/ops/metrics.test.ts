import { parseSettings } from '@storm-lab/session-policy';
import { describe, expect, it } from 'vitest';
import { createTestClock } from '../testing/fixtures.ts';
import { createLiveStats } from './live-stats.ts';
import { createMetrics } from './metrics.ts';

describe('createMetrics', () => {
  it('counts its own process as one worker serving (LMS_WORKERS sums them)', async () => {
    const live = createLiveStats({ now: createTestClock(0).now });
    const metrics = createMetrics(
      () => [],
      live,
      () => parseSettings({}),
    );
    expect(await metrics.registry.metrics()).toMatch(/^lms_workers_serving 1$/m);
  });
});
