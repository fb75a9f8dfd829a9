import {
  MIT_AT_CODE_DEFAULTS,
  MIT_SETTINGS,
  mitPlan,
  type PlannedRun,
  type SimSettings,
  simulateScenario,
} from '@storm-lab/sim';

/** How fast the simulator ran one scenario of MIT's incident. */
export interface SimSpeedFigures {
  scenario: string;
  /** Production seconds simulated: the load, plus the drain until all was graded (or its end). */
  simulatedSeconds: number;
  wallSeconds: number;
  /** CPU of this process (user + system) while the scenario ran. */
  cpuSeconds: number;
  /** Simulated seconds per wall second. */
  speedup: number;
  logins: number;
  graded: number;
  submitted: number;
  verdict: string;
}

/** The name the storm at xqueue-watcher's code defaults is reported under. */
export const STORM_AT_CODE_DEFAULTS = 'storm, 1 s polls and timeout';

/**
 * The first ten minutes of MIT's incident, its surge moved into them at the same rate (2
 * submissions a second): for `--quick`.
 */
function quickOf(settings: SimSettings): SimSettings {
  return {
    ...settings,
    load: {
      kind: 'steady',
      perMinute: 2,
      surge: { submissions: 200, startSeconds: 150, seconds: 100 },
    },
    durationSeconds: 600,
    drainSeconds: 120,
  };
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * 6. The simulator's speed: MIT's incident (`pnpm sim --preset mit`: an hour of load, then a
 * drain) for the storm and the cure, and the storm again at xqueue-watcher's code defaults (1 s
 * polls and timeout: ten times the requests, the heaviest hour), each timed in this process:
 * wall time, CPU time, and simulated seconds per wall second. The run is the simulator's own
 * (`@storm-lab/sim`), the same figures `pnpm sim` prints, without writing a report.
 */
export async function simSpeed(quick: boolean): Promise<SimSpeedFigures[]> {
  const of = (settings: SimSettings) => (quick ? quickOf(settings) : settings);
  const mit = await mitPlan(of(MIT_SETTINGS));
  const atDefaults = await mitPlan(of(MIT_AT_CODE_DEFAULTS));
  const find = (plan: PlannedRun[], name: string) =>
    plan.find((planned) => planned.scenario.name === name);
  const timed = [
    { name: 'storm', run: find(mit, 'storm') },
    { name: STORM_AT_CODE_DEFAULTS, run: find(atDefaults, 'storm') },
    { name: 'exempt-username', run: find(mit, 'exempt-username') },
  ];
  const figures: SimSpeedFigures[] = [];
  for (const { name, run } of timed) {
    if (!run) throw new Error(`mitPlan has no run for ${name}`);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const result = await simulateScenario(run.scenario, run.settings);
    const wallSeconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const simulatedSeconds = result.durationSeconds * run.settings.compression;
    figures.push({
      scenario: name,
      simulatedSeconds: round(simulatedSeconds, 1),
      wallSeconds: round(wallSeconds, 2),
      cpuSeconds: round((cpu.user + cpu.system) / 1e6, 2),
      speedup: round(simulatedSeconds / wallSeconds, 1),
      logins: result.logins,
      graded: result.graded,
      submitted: result.submitted,
      verdict: result.verdict,
    });
  }
  return figures;
}
