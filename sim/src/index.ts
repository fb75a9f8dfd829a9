export {
  comparisonOf,
  MIT_AT_CODE_DEFAULTS,
  MIT_SETTINGS,
  mitPlan,
  type PlannedRun,
  scenarioFor,
} from './presets.ts';
export { simulateScenario } from './run.ts';
export { PRODUCTION_SETTINGS, type SimSettings } from './settings.ts';
