import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { waitFor } from './process.ts';
import { useRedis } from './redis.ts';
import { CrashLoopBackoff, type SupervisorTimers } from './supervisor.ts';
import { startWatchers } from './watcher.ts';

const STAND_IN = fileURLToPath(new URL('./testing/stand-in-replica.ts', import.meta.url));

/** Real timers that remember every restart the supervisor schedules and cancels. */
function recordingTimers() {
  const delaysMs: number[] = [];
  const handles: unknown[] = [];
  const cleared: unknown[] = [];
  const timers: SupervisorTimers = {
    now: () => Date.now(),
    setTimeout: (run, ms) => {
      delaysMs.push(ms);
      const handle = setTimeout(run, ms);
      handles.push(handle);
      return handle;
    },
    clearTimeout: (handle) => {
      cleared.push(handle);
      clearTimeout(handle as NodeJS.Timeout);
    },
  };
  return { timers, delaysMs, handles, cleared };
}

async function metricsText(url: string) {
  const response = await fetch(url);
  return response.text();
}

/** Makes the stand-in behind `metricsUrl` die as a watcher does when a connection died. */
async function makeDie(metricsUrl: string) {
  const response = await fetch(new URL('/die', metricsUrl), { method: 'POST' });
  await response.text();
}

function newUrlOf(fleet: { metricsUrls: string[] }, index: number, old: string) {
  return waitFor(
    () => {
      const url = fleet.metricsUrls[index];
      return url && url !== old ? url : undefined;
    },
    { timeoutMs: 15_000, what: `replica ${index + 1} to serve metrics again` },
  );
}

describe('CrashLoopBackoff', () => {
  const kubernetes = { backoffBaseMs: 10_000, backoffMaxMs: 300_000 };

  it('waits the base, doubles at each exit in a row and stops at the cap', () => {
    const backoff = new CrashLoopBackoff(kubernetes);
    const delays = Array.from({ length: 7 }, () => backoff.nextDelayMs(1_000));
    expect(delays).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
  });

  it('starts again at the base after a clean run of twice the cap (10 minutes, as the kubelet)', () => {
    const backoff = new CrashLoopBackoff(kubernetes);
    backoff.nextDelayMs(0);
    backoff.nextDelayMs(0);
    expect(backoff.nextDelayMs(599_999)).toBe(40_000);
    expect(backoff.nextDelayMs(600_000)).toBe(10_000);
    expect(new CrashLoopBackoff({ ...kubernetes, resetAfterMs: 5 }).nextDelayMs(5)).toBe(10_000);
  });

  it('refuses a cap below the base', () => {
    expect(() => new CrashLoopBackoff({ backoffBaseMs: 10, backoffMaxMs: 5 })).toThrow(RangeError);
  });
});

describe('startWatchers with supervise', () => {
  it('restarts a replica that exits on its own, with the same id, and counts its events', async () => {
    const { timers, delaysMs } = recordingTimers();
    const fleet = await startWatchers({
      replicas: 2,
      env: { WATCHER_REPLICA_ID: 'sup' },
      entry: STAND_IN,
      supervise: { backoffBaseMs: 50, backoffMaxMs: 1_000, timers },
    });
    try {
      const [first = '', second = ''] = fleet.metricsUrls;
      const firstPid = fleet.replicas[0]?.pid;
      expect(fleet.restarts).toBe(0);
      await makeDie(first);
      const url = await newUrlOf(fleet, 0, first);
      expect(await metricsText(url)).toContain('replica="sup-1"');
      expect(fleet.replicas[0]?.pid).not.toBe(firstPid);
      expect(fleet.restarts).toBe(1);
      expect(delaysMs).toEqual([50]);
      await waitFor(() => (fleet.events['replica-exit'] === 1 ? true : undefined));
      expect(fleet.events).toEqual({ 'login-timeout': 1, 'connection-died': 1, 'replica-exit': 1 });
      expect(fleet.metricsUrls[1]).toBe(second);
      expect(await metricsText(second)).toContain('replica="sup-2"');
    } finally {
      await fleet.stopAll();
    }
  });

  it('doubles the wait for exits in a row, up to the cap, and waits at least that long', async () => {
    const { timers, delaysMs } = recordingTimers();
    const fleet = await startWatchers({
      replicas: 1,
      env: {},
      entry: STAND_IN,
      // Each incarnation runs a few hundred ms: too short to count as a clean run.
      supervise: { backoffBaseMs: 150, backoffMaxMs: 250, resetAfterMs: 60_000, timers },
    });
    try {
      let url = fleet.metricsUrls[0] ?? '';
      const diedAt = Date.now();
      await makeDie(url);
      url = await newUrlOf(fleet, 0, url);
      expect(Date.now() - diedAt).toBeGreaterThanOrEqual(150);
      for (let exit = 2; exit <= 3; exit++) {
        await makeDie(url);
        url = await newUrlOf(fleet, 0, url);
      }
      expect(delaysMs).toEqual([150, 250, 250]);
      expect(fleet.restarts).toBe(3);
      await waitFor(() => (fleet.events['connection-died'] === 3 ? true : undefined));
    } finally {
      await fleet.stopAll();
    }
  });

  it('leaves a replica the caller killed down, and restart() brings it back uncounted', async () => {
    const { timers, delaysMs } = recordingTimers();
    const fleet = await startWatchers({
      replicas: 1,
      env: {},
      entry: STAND_IN,
      supervise: { backoffBaseMs: 10, backoffMaxMs: 10, timers },
    });
    try {
      const first = fleet.metricsUrls[0] ?? '';
      await fleet.kill(0, 'SIGKILL');
      expect(delaysMs).toEqual([]);
      await fleet.restart(0);
      expect(fleet.metricsUrls[0]).not.toBe(first);
      expect(await metricsText(fleet.metricsUrls[0] ?? '')).toContain('stand_in_up');
      expect(fleet.restarts).toBe(0);
      expect(fleet.events).toEqual({});
    } finally {
      await fleet.stopAll();
    }
  });

  it('cancels a restart that waits out its backoff when the fleet stops', async () => {
    const { timers, handles, cleared } = recordingTimers();
    const fleet = await startWatchers({
      replicas: 1,
      env: {},
      entry: STAND_IN,
      supervise: { backoffBaseMs: 60_000, backoffMaxMs: 60_000, timers },
    });
    await makeDie(fleet.metricsUrls[0] ?? '');
    const pending = await waitFor(() => handles[0], { what: 'the restart to be scheduled' });
    await fleet.stopAll();
    expect(cleared).toEqual([pending]);
    expect(fleet.restarts).toBe(0);
  });

  it('restarts a replica that dies at run time before it is ready, its URL empty meanwhile', async () => {
    const { timers, delaysMs } = recordingTimers();
    const fleet = await startWatchers({
      replicas: 1,
      env: { STAND_IN_DIE_AT_START: 'true' },
      entry: STAND_IN,
      supervise: { backoffBaseMs: 20, backoffMaxMs: 40, resetAfterMs: 60_000, timers },
    });
    try {
      expect(fleet.metricsUrls).toEqual(['']);
      // Each restart was scheduled with one delay: three restarts, three delays.
      await waitFor(() => (fleet.restarts >= 3 ? true : undefined), {
        timeoutMs: 15_000,
        what: 'three restarts',
      });
      expect(delaysMs.slice(0, 3)).toEqual([20, 40, 40]);
      expect(fleet.metricsUrls).toEqual(['']);
    } finally {
      await fleet.stopAll();
    }
    expect(fleet.events['replica-exit']).toBeGreaterThanOrEqual(3);
  });

  it('fails fast, restarting nothing, when a real watcher cannot start (bad environment, exit 2)', async () => {
    const redis = await useRedis(process.env.REDIS_URL);
    try {
      const { timers, delaysMs } = recordingTimers();
      const starting = startWatchers({
        replicas: 2,
        env: {
          REDIS_URL: redis.url,
          LMS_URL: 'http://127.0.0.1:9',
          XQUEUE_USERNAME: 'xqueue_svc',
          XQUEUE_PASSWORD: 'secret',
          WATCHER_QUEUES: 'q',
          WATCHER_CONNECTIONS: '0',
          LOG_LEVEL: 'warn',
        },
        supervise: { backoffBaseMs: 10, backoffMaxMs: 10, timers },
      });
      await expect(starting).rejects.toThrow(/exited early \(code 2[\s\S]*WATCHER_CONNECTIONS/);
      expect(delaysMs).toEqual([]);
    } finally {
      await redis.stop();
    }
  });
});
