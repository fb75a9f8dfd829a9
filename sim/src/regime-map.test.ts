import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  REGIME_MAP_SETTINGS,
  type RegimeCell,
  type RegimeMapProgress,
  runRegimeMap,
} from './regime-map.ts';
import { cureStallPredicted, regimeOf, stallPredicted } from './regime-rule.ts';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

// 2 x 2 cells of 150 s each at xqueue-watcher's default 1 s timeout: 4 connections against
// 8 workers (Q = 0.135 s) is clearly under the LMS's capacity; 20 against 1 (Q = 5.4 s) far over.
// Why 150 s and not one minute: over capacity the storm and the cure both crash-loop from their
// cold start (each replica's 10 first logins queue 2.7 s for one worker, past the 1 s timeout),
// and Manager.wait, as upstream's, looks at one connection per 10 s POLL_TIME, so a replica of 10
// sees its dead ones only within its first 100 s. The first minute is that cold start, the same
// in both runs (60 s: the storm grades 55 of 60, the cure 52); the storm's re-logins holding the
// one worker show after it (120 s: 102 and 105 of 120; 150 s: 103 and 114; 180 s: 136 and 157).
const SMALL = { replicas: 2, queues: 1, connections: 2 };
const LARGE = { replicas: 2, queues: 2, connections: 5 };
const DURATION_SECONDS = 150;
const TINY = {
  fleets: [SMALL, LARGE],
  workers: [1, 8],
  timeoutsSeconds: [1],
  settings: { ...REGIME_MAP_SETTINGS, durationSeconds: DURATION_SECONDS },
};

const cellAt = (cells: readonly RegimeCell[], connections: number, workers: number) => {
  const cell = cells.find((c) => c.totalConnections === connections && c.workers === workers);
  if (!cell) throw new Error(`no cell with ${connections} connections and ${workers} workers`);
  return cell;
};

describe('runRegimeMap', () => {
  it('runs every cell as storm and cure, and grades less where the LMS is overloaded', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regime-map-'));
    dirs.push(dir);
    const progress: RegimeMapProgress[] = [];
    const map = await runRegimeMap({
      ...TINY,
      outDir: dir,
      onProgress: (step) => progress.push(step),
    });

    expect(map.cells.map((cell) => [cell.totalConnections, cell.workers])).toEqual([
      [4, 1],
      [4, 8],
      [20, 1],
      [20, 8],
    ]);
    expect(progress.map((step) => `${step.done}/${step.total}`)).toEqual([
      '1/4',
      '2/4',
      '3/4',
      '4/4',
    ]);
    for (const cell of map.cells) {
      expect(cell.timeoutSeconds).toBe(1);
      expect(cell.loginSeconds).toBe(0.27);
      expect(cell.cure.logins).toBeGreaterThanOrEqual(cell.totalConnections);
      expect(cell.storm.submitted).toBe(DURATION_SECONDS); // 60 a minute
    }

    const under = cellAt(map.cells, 4, 8);
    const over = cellAt(map.cells, 20, 1);
    expect(under.loginQueueSeconds).toBe(0.135);
    expect(over.loginQueueSeconds).toBe(5.4);
    // Under capacity the storm costs logins, not grading; over it, connections die, and past the
    // cold start the storm grades less than the cure.
    expect(under.loginsPerHour).toBeGreaterThan(1000);
    expect(under.ratio).toBeGreaterThan(0.9);
    expect(under.verdict).toBe('limps');
    expect(over.ratio ?? 0).toBeLessThan(under.ratio ?? 0);
    expect(over.deathsPerHour).toBeGreaterThan(0);
    expect(over.verdict).toBe('stalls');
    expect(over.stallPredicted).toBe(true);
    // The cure crash-loops there too: one replica's own first logins wait past the timeout.
    expect(over.cureStalls).toBe(true);
    expect(over.cureStallPredicted).toBe(true);
    expect(map.rule.cells).toBe(4);

    const json = JSON.parse(await readFile(join(dir, 'regime-map.json'), 'utf8'));
    expect(json).toEqual(JSON.parse(JSON.stringify(map)));
    const markdown = await readFile(join(dir, 'regime-map.md'), 'utf8');
    expect(markdown).toContain('## REQUESTS_TIMEOUT 1 s');
    expect(markdown).toContain('| 20 (2x2x5) | 1 | 5.4 |');
    expect(markdown).toContain(`in ${map.rule.stormAgrees} of 4 cells`);
    const svg = await readFile(join(dir, 'regime-map.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('REQUESTS_TIMEOUT 1 s');
    for (const cell of map.cells) {
      const connections = `${cell.totalConnections} (${cell.replicas}x${cell.queues}x${cell.connections})`;
      expect(svg).toContain(
        `aria-label="LMS workers: ${cell.workers}; connections (replicas x queues x CONNECTIONS): ${connections};`,
      );
      expect(svg).toContain(`<tspan x="0" dy="13">${cell.deathsPerHour} deaths/h</tspan>`);
    }

    // The same seed gives the same cell again.
    const again = await runRegimeMap({ ...TINY, fleets: [LARGE], workers: [1] });
    expect(again.cells[0]).toEqual(over);
  });
});

describe('the regime rule', () => {
  const at = (loginQueueSeconds: number, replicaLoginQueueSeconds: number, timeout: number) => ({
    loginQueueSeconds,
    replicaLoginQueueSeconds,
    timeoutSeconds: timeout,
  });

  it('says the storm stalls once connections x login time / workers passes twice the timeout', () => {
    expect(stallPredicted(at(2, 1, 1))).toBe(false);
    expect(stallPredicted(at(2.16, 1, 1))).toBe(true);
    expect(stallPredicted(at(5.4, 2.7, 5))).toBe(false);
    expect(stallPredicted(at(10.8, 2.7, 5))).toBe(true);
  });

  it("says the cure stalls once one replica's own logins wait past the timeout", () => {
    expect(cureStallPredicted(at(10.8, 2.7, 5))).toBe(false);
    expect(cureStallPredicted(at(2.16, 1.08, 1))).toBe(true);
  });

  it('calls a storm a stall when it still restarts replicas late, ends with dead connections, or its grading collapses', () => {
    const figures = { aliveAtEnd: 20, lateRestarts: 0 } as RegimeCell['storm'];
    const cell = { totalConnections: 20, storm: figures, ratio: 0.96, lateRatio: 0.97 };
    expect(regimeOf(cell)).toBe('limps');
    expect(regimeOf({ ...cell, ratio: 0.94 })).toBe('slows');
    expect(regimeOf({ ...cell, ratio: null })).toBe('slows');
    expect(regimeOf({ ...cell, storm: { ...figures, aliveAtEnd: 19 } })).toBe('stalls');
    expect(regimeOf({ ...cell, storm: { ...figures, lateRestarts: 1 } })).toBe('stalls');
    // Every connection alive, and nothing graded once the cold start is over: a livelock.
    expect(regimeOf({ ...cell, ratio: 0.3, lateRatio: 0.05 })).toBe('stalls');
    expect(regimeOf({ ...cell, ratio: 0.3, lateRatio: 0.3 })).toBe('slows');
  });
});
