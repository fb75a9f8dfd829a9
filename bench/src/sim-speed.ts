import { MIT_SETTINGS, mitPlan, type SimSettings, simulateScenario } from '@storm-lab/sim';

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

/** The scenarios of `pnpm sim --preset mit` this section times: the storm and the cure. */
const TIMED = ['storm', 'exempt-username'];

/**
 * The first ten minutes of MIT's incident, its surge moved into them at the same rate (2
 * submissions a second): for `--quick`.
 */
const QUICK_SETTINGS: SimSettings = {
  ...MIT_SETTINGS,
  load: {
    kind: 'steady',
    perMinute: 2,
    surge: { submissions: 200, startSeconds: 150, seconds: 100 },
  },
  durationSeconds: 600,
  drainSeconds: 120,
};

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * 6. The simulator's speed: MIT's incident (`pnpm sim --preset mit`: an hour of load, then a
 * drain) for the storm and the cure, each timed in this process: wall time, CPU time, and
 * simulated seconds per wall second. The run is the simulator's own (`@storm-lab/sim`), the
 * same figures `pnpm sim` prints, without writing a report.
 */
export async function simSpeed(quick: boolean): Promise<SimSpeedFigures[]> {
  const plan = await mitPlan(quick ? QUICK_SETTINGS : MIT_SETTINGS);
  const figures: SimSpeedFigures[] = [];
  for (const run of plan.filter((planned) => TIMED.includes(planned.scenario.name))) {
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const result = await simulateScenario(run.scenario, run.settings);
    const wallSeconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const simulatedSeconds = result.durationSeconds * run.settings.compression;
    figures.push({
      scenario: run.scenario.name,
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
