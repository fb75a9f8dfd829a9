import { DEFAULT_COMPARISON, loadScenario, type Scenario } from '@storm-lab/storm';
import { PRODUCTION_SETTINGS, type SimSettings } from './settings.ts';

/** One column of a simulated comparison: a scenario, and the settings it runs with. */
export interface PlannedRun {
  scenario: Scenario;
  settings: SimSettings;
}

const SERVICE = { serviceUsername: 'xqueue_svc' };

/** Loads a built-in scenario (or a file) for a fleet of the given shape. */
export async function scenarioFor(name: string, settings: SimSettings): Promise<Scenario> {
  const totalConnections = settings.replicas * settings.queues * settings.connections;
  return loadScenario(name, { ...SERVICE, totalConnections });
}

/** The scenarios `pnpm storm` compares, each on `settings`. */
export async function comparisonOf(
  names: readonly string[],
  settings: SimSettings,
): Promise<PlannedRun[]> {
  return Promise.all(
    names.map(async (name) => ({ scenario: await scenarioFor(name, settings), settings })),
  );
}

/**
 * MIT's incident, as mitodl/ol-infrastructure deployed it when PR #4849 (41542832b) drew it
 * down: 2 pods, each with two conf.d queues (Watcher-MITx-6.00x and mitx-686xgrader, the
 * second with no course using it) of CONNECTIONS 5 = 20 sessions of one account, and the
 * manager's `xqwatcher.json` of that deployment: REQUESTS_TIMEOUT 10, POLL_INTERVAL 10,
 * POLL_TIME 10 (LOGIN_POLL_INTERVAL left at 5). An hour of production with a deadline surge
 * (1,200 submissions in 10 minutes on top of 2 a minute; one grading 1 s: twice what one serial
 * loop grades, a tenth of what 20 do). Side by side: the storm, their stop-gap (one pod, one
 * queue, CONNECTIONS 1: one serial loop, flag still on) and the cure (exempt by username).
 */
export const MIT_SETTINGS: SimSettings = {
  ...PRODUCTION_SETTINGS,
  replicas: 2,
  queues: 2,
  connections: 5,
  studentQueues: 'first',
  requestsTimeoutSeconds: 10,
  pollIntervalSeconds: 10,
  pollTimeSeconds: 10,
  students: 300,
  load: {
    kind: 'steady',
    perMinute: 2,
    surge: { submissions: 1200, startSeconds: 900, seconds: 600 },
  },
  durationSeconds: 3600,
  drainSeconds: 1800,
};

/**
 * MIT's fleet and load at xqueue-watcher's code defaults instead of MIT's `xqwatcher.json`
 * (1 s polls, 1 s timeout; `pnpm sim --preset mit --requests-timeout 1 --poll-interval 1`):
 * ten times the polls, so the storm's heaviest hour, the one `pnpm bench` times.
 */
export const MIT_AT_CODE_DEFAULTS: SimSettings = {
  ...MIT_SETTINGS,
  requestsTimeoutSeconds: PRODUCTION_SETTINGS.requestsTimeoutSeconds,
  pollIntervalSeconds: PRODUCTION_SETTINGS.pollIntervalSeconds,
  pollTimeSeconds: PRODUCTION_SETTINGS.pollTimeSeconds,
};

export async function mitPlan(settings: SimSettings = MIT_SETTINGS): Promise<PlannedRun[]> {
  const stopGapSettings = { ...settings, replicas: 1, queues: 1, connections: 1 };
  const storm = await scenarioFor('storm', settings);
  const stopGap = await scenarioFor('storm', stopGapSettings);
  return [
    { scenario: storm, settings },
    {
      scenario: {
        ...stopGap,
        name: 'stop-gap',
        description:
          "MIT's stop-gap: one pod, one queue, CONNECTIONS 1, flag still on: one session, so no storm, and grading is one serial loop",
      },
      settings: stopGapSettings,
    },
    { scenario: await scenarioFor('exempt-username', settings), settings },
  ];
}

export const DEFAULT_SCENARIOS = DEFAULT_COMPARISON;
