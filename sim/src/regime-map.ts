// The regime map (issue 28): what `pnpm sim --map` runs (the flag is wired in cli.ts). It calls
// runRegimeMap({ outDir, onProgress }) with the default axes below and writes regime-map.json,
// regime-map.md and regime-map.svg to outDir; docs/regime-map.* are its output.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { perHour, perMinute, type ScenarioFigures } from '@storm-lab/storm';
import { scenarioFor } from './presets.ts';
import { regimeMapMarkdown, regimeMapSvg } from './regime-map-report.ts';
import {
  checkRule,
  crashLoops,
  cureStallPredicted,
  type FleetShape,
  type RegimeCell,
  type RegimeMap,
  type RunFigures,
  regimeOf,
  stallPredicted,
} from './regime-rule.ts';
import { simulateScenario } from './run.ts';
import { PRODUCTION_SETTINGS, type SimSettings } from './settings.ts';

export type {
  FleetShape,
  Regime,
  RegimeCell,
  RegimeMap,
  RuleCheck,
  RunFigures,
} from './regime-rule.ts';
export { LIMP_RATIO, REGIME_RULE } from './regime-rule.ts';

/**
 * 4: xqueue-watcher's Kubernetes example (2 replicas x CONNECTIONS 2); 8: `pnpm storm`'s 2x2x2;
 * 20: MIT's incident (2 pods x 2 entries x 5); 40: MIT's doubled to 4 pods.
 */
export const DEFAULT_FLEETS: readonly FleetShape[] = [
  { replicas: 2, queues: 1, connections: 2 },
  { replicas: 2, queues: 2, connections: 2 },
  { replicas: 2, queues: 2, connections: 5 },
  { replicas: 4, queues: 2, connections: 5 },
];
export const DEFAULT_WORKERS: readonly number[] = [1, 2, 4, 8];
/** xqueue-watcher's default REQUESTS_TIMEOUT, and its own Kubernetes example's. */
export const DEFAULT_TIMEOUTS_SECONDS: readonly number[] = [1, 5];

/**
 * Every cell's world but for its fleet, workers and timeout: production's 250 ms login, one queue
 * (every conf.d entry names it, as MIT's config), a steady 60 submissions a minute graded in 1 s
 * each (a quarter of what even the smallest fleet grades, so the cure is not overloaded), and no
 * drain: graded per minute is over the load's minutes alone, for the storm and the cure alike.
 */
export const REGIME_MAP_SETTINGS: SimSettings = {
  ...PRODUCTION_SETTINGS,
  sameQueue: true,
  students: 40,
  load: { kind: 'steady', perMinute: 60, surge: null },
  gradingSeconds: 1,
  // Eight minutes: the cold start's deaths and restarts are over well before the end, and the
  // whole map (64 runs) takes under 10 minutes of wall time on a 2-core machine.
  durationSeconds: 480,
  drainSeconds: 0,
};

export interface RegimeMapProgress {
  done: number;
  total: number;
  cell: RegimeCell;
  /** Wall-clock seconds this cell's two runs took. */
  wallSeconds: number;
}

export interface RegimeMapOptions {
  fleets?: readonly FleetShape[];
  workers?: readonly number[];
  timeoutsSeconds?: readonly number[];
  /** Every cell's world besides its fleet, workers and timeout (default: REGIME_MAP_SETTINGS). */
  settings?: SimSettings;
  /** Where to write regime-map.json, .md and .svg; nothing is written without it. */
  outDir?: string;
  onProgress?(progress: RegimeMapProgress): void;
}

function figuresOf(figures: ScenarioFigures, settings: SimSettings): RunFigures {
  const half = settings.durationSeconds / settings.compression / 2;
  const last = figures.samples.at(-1);
  const atHalf = figures.samples.findLast((sample) => sample.t <= half);
  return {
    gradedPerMinute: figures.gradedPerMinute,
    graded: figures.graded,
    submitted: figures.submitted,
    logins: figures.logins,
    loginsPerHour: figures.loginsPerHour,
    connectionDeaths: figures.connectionDeaths,
    deathsPerHour: perHour(figures.connectionDeaths, figures.durationSeconds, settings.compression),
    replicaRestarts: figures.replicaRestarts,
    aliveAtEnd: last?.alive ?? 0,
    lateRestarts: (last?.restarts ?? 0) - (atHalf?.restarts ?? 0),
    lateGradedPerMinute: perMinute(
      (last?.graded ?? 0) - (atHalf?.graded ?? 0),
      (last?.t ?? 0) - (atHalf?.t ?? 0),
      settings.compression,
    ),
    lmsWorkerUtilisation: Math.round((figures.lmsWorkerUtilisation ?? 0) * 1000) / 1000,
  };
}

/** One login's time in a worker: GET login/ and POST login/ each, and the POST's PBKDF2. */
export function loginSecondsOf(settings: SimSettings): number {
  return (settings.iterations * settings.iterationNs) / 1e9 + (2 * settings.requestMs) / 1000;
}

const seconds = (value: number) => Math.round(value * 1000) / 1000;

async function runCell(
  fleet: FleetShape,
  workers: number,
  timeoutSeconds: number,
  base: SimSettings,
): Promise<RegimeCell> {
  const settings: SimSettings = {
    ...base,
    ...fleet,
    lmsWorkers: workers,
    requestsTimeoutSeconds: timeoutSeconds,
  };
  const storm = figuresOf(
    await simulateScenario(await scenarioFor('storm', settings), settings),
    settings,
  );
  const cure = figuresOf(
    await simulateScenario(await scenarioFor('exempt-username', settings), settings),
    settings,
  );
  const totalConnections = fleet.replicas * fleet.queues * fleet.connections;
  const loginSeconds = loginSecondsOf(settings);
  const ratioOf = (stormRate: number, cureRate: number) =>
    cureRate > 0 ? Math.round((stormRate / cureRate) * 1000) / 1000 : null;
  const ratio = ratioOf(storm.gradedPerMinute, cure.gradedPerMinute);
  const cell = {
    ...fleet,
    totalConnections,
    workers,
    timeoutSeconds,
    loginSeconds: seconds(loginSeconds),
    loginQueueSeconds: seconds((totalConnections * loginSeconds) / workers),
    replicaLoginQueueSeconds: seconds((totalConnections * loginSeconds) / fleet.replicas / workers),
    storm,
    cure,
    ratio,
    lateRatio: ratioOf(storm.lateGradedPerMinute, cure.lateGradedPerMinute),
    deathsPerHour: storm.deathsPerHour,
    loginsPerHour: storm.loginsPerHour,
  };
  return {
    ...cell,
    verdict: regimeOf(cell),
    cureStalls: crashLoops(cure, totalConnections),
    stallPredicted: stallPredicted(cell),
    cureStallPredicted: cureStallPredicted(cell),
  };
}

/**
 * Runs the regime map: for every timeout, fleet and worker count (in that order, one after
 * another), the storm and its cure on the same world; then writes the map to `outDir` if given.
 * The same settings (seed included) give the same map, byte for byte.
 *
 * @example
 * const map = await runRegimeMap({ outDir: 'docs', onProgress: ({ done, total }) => log(done, total) });
 */
export async function runRegimeMap(options: RegimeMapOptions = {}): Promise<RegimeMap> {
  const fleets = [...(options.fleets ?? DEFAULT_FLEETS)];
  const workers = [...(options.workers ?? DEFAULT_WORKERS)];
  const timeoutsSeconds = [...(options.timeoutsSeconds ?? DEFAULT_TIMEOUTS_SECONDS)];
  const settings = options.settings ?? REGIME_MAP_SETTINGS;
  const total = timeoutsSeconds.length * fleets.length * workers.length;
  const cells: RegimeCell[] = [];
  for (const timeoutSeconds of timeoutsSeconds) {
    for (const fleet of fleets) {
      for (const workerCount of workers) {
        const started = performance.now();
        const cell = await runCell(fleet, workerCount, timeoutSeconds, settings);
        cells.push(cell);
        options.onProgress?.({
          done: cells.length,
          total,
          cell,
          wallSeconds: (performance.now() - started) / 1000,
        });
      }
    }
  }
  const map: RegimeMap = {
    fleets,
    workers,
    timeoutsSeconds,
    settings,
    cells,
    rule: checkRule(cells),
  };
  if (options.outDir) await writeRegimeMap(map, options.outDir);
  return map;
}

/** Writes regime-map.json, regime-map.md and regime-map.svg into `dir`; returns their paths. */
export async function writeRegimeMap(map: RegimeMap, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ['regime-map.json', `${JSON.stringify(map, null, 2)}\n`],
    ['regime-map.md', regimeMapMarkdown(map)],
    ['regime-map.svg', await regimeMapSvg(map)],
  ];
  await Promise.all(files.map(([name, text]) => writeFile(join(dir, name), text)));
  return files.map(([name]) => join(dir, name));
}
