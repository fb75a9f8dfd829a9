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
 * MIT's incident (mitodl/ol-infrastructure PR #4849): 2 pods x 2 conf.d entries of one queue x
 * CONNECTIONS 5 = 20 sessions of one account, in production for an hour with a deadline surge
 * (1,200 submissions in 10 minutes on top of 2 a minute; one grading 1 s: twice what one serial
 * loop grades, a tenth of what 20 do). Side by side: the storm, their stop-gap (one pod, one
 * entry, CONNECTIONS 1: one serial loop, flag still on) and the cure (exempt by username).
 */
export const MIT_SETTINGS: SimSettings = {
  ...PRODUCTION_SETTINGS,
  replicas: 2,
  queues: 2,
  connections: 5,
  sameQueue: true,
  students: 300,
  load: {
    kind: 'steady',
    perMinute: 2,
    surge: { submissions: 1200, startSeconds: 900, seconds: 600 },
  },
  durationSeconds: 3600,
  drainSeconds: 1800,
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
          "MIT's stop-gap: one pod, one conf.d entry, CONNECTIONS 1, flag still on: one session, so no storm, and grading is one serial loop",
      },
      settings: stopGapSettings,
    },
    { scenario: await scenarioFor('exempt-username', settings), settings },
  ];
}

export const DEFAULT_SCENARIOS = DEFAULT_COMPARISON;
