import { describe, expect, it } from 'vitest';
import { labSettings } from './cli.ts';
import { type LabRuns, readLabRuns } from './lab-record.ts';
import { scenarioFor } from './presets.ts';
import { simulateScenario } from './run.ts';

const FIGURES = ['logins', 'forbiddenPerLogin', 'gradedPerMinute'] as const;

/** The smallest and largest value of one figure of one scenario over the real runs. */
function spread(lab: LabRuns, name: string, figure: (typeof FIGURES)[number]) {
  const values = lab.runs.flatMap((run) =>
    run.scenarios.filter((s) => s.name === name).map((s) => Number(s[figure])),
  );
  return { min: Math.min(...values), max: Math.max(...values), runs: values.length };
}

describe('pnpm sim --lab against the real lab', () => {
  // The figures whose replay falls within the real runs' spread; docs/lab-runs.md gives every
  // figure of every scenario, and says where the replay falls outside and what is known of why.
  it.each([
    ['storm', FIGURES],
    ['storm-legacy-watcher', FIGURES],
    ['storm-hardened-watcher', ['logins', 'gradedPerMinute']],
    ['exempt-username', FIGURES],
    ['exempt-group', FIGURES],
  ] as const)('%s: %s within the spread of the real runs', async (name, figures) => {
    const lab = await readLabRuns();
    const settings = await labSettings(lab.costs);
    const replay = await simulateScenario(await scenarioFor(name, settings), settings);
    for (const figure of figures) {
      const { min, max, runs } = spread(lab, name, figure);
      expect(runs, `${name}: real runs recorded`).toBeGreaterThanOrEqual(5);
      const what = `${name} ${figure} ${replay[figure]} in [${min}, ${max}]`;
      expect(replay[figure], what).toBeGreaterThanOrEqual(min);
      expect(replay[figure], what).toBeLessThanOrEqual(max);
    }
  });
});
