// The storm runner's public entry point, for composition roots beside apps/ (the simulator):
// the scenarios, the settings a default run uses, the student load and the one report writer.

export { scenarioNamesOf } from './cli/run-flags.ts';
export type { CompressedTimes } from './compression.ts';
export { burstShare, compress, compressionNote, duration, PRODUCTION } from './compression.ts';
export type { ScenarioFigures, Verdict } from './figures.ts';
export { percentile, perHour, perMinute, VERDICT_RULE, verdictOf } from './figures.ts';
export type { RunShape, StormReport } from './report.ts';
export { buildReport, renderTable } from './report.ts';
export type { Counters } from './sampler.ts';
export { readCounters, since } from './sampler.ts';
export type { Sample, Series } from './samples.ts';
export { perSecond } from './samples.ts';
export type { RunOutcome } from './scenario/collect-figures.ts';
export { figuresOf } from './scenario/collect-figures.ts';
export type { DrainOptions } from './scenario/drain.ts';
export { drain } from './scenario/drain.ts';
export { checkPersonSingleSession } from './scenario/drive-load.ts';
export type { Scenario, ScenarioVariables } from './scenarios.ts';
export { DEFAULT_COMPARISON, listScenarios, loadScenario, ScenarioError } from './scenarios.ts';
export type { RunSettings } from './settings.ts';
export {
  answerFor,
  hashShare,
  lmsEnv,
  queueNames,
  studentAddress,
  watcherEnv,
} from './settings.ts';
export type { Outcome, StudentLoadOptions, Submitted } from './student-load.ts';
export { StudentLoad } from './student-load.ts';
export { writeReport } from './write-report.ts';
