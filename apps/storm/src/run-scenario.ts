import type { ScenarioFigures } from './figures.ts';
import { gradingsOf } from './graded-twice.ts';
import type { Counters } from './sampler.ts';
import { figuresOf } from './scenario/collect-figures.ts';
import { drain, gradedOf } from './scenario/drain.ts';
import { driveLoad } from './scenario/drive-load.ts';
import { NO_COUNTS, Sampling } from './scenario/sampling.ts';
import { type Cleanup, type Stack, startStack } from './scenario/start-stack.ts';
import type { Scenario } from './scenarios.ts';
import type { RunSettings } from './settings.ts';

/** Live numbers, reported at every sample (about four times a second). */
export interface Progress {
  scenario: string;
  elapsedSeconds: number;
  phase: 'starting' | 'load' | 'drain' | 'done';
  counters: Counters;
  submitted: number;
  graded: number;
  /** Replicas restarted by the supervisor so far. */
  restarts: number;
  connectionDeaths: number;
}

/**
 * Runs one scenario end to end with real processes, in four steps: start the stack (Redis, a
 * freshly seeded LMS, its students, the supervised watcher fleet), drive the student load while
 * sampling the LMS's and the replicas' metrics four times a second, drain (wait for grading),
 * and collect the figures. Whatever it started is stopped through `cleanup`.
 */
export async function runScenario(
  scenario: Scenario,
  settings: RunSettings,
  cleanup: Cleanup,
  onProgress: (progress: Progress) => void,
): Promise<ScenarioFigures> {
  const report = reporter(scenario.name, onProgress);
  report('starting', { elapsedSeconds: 0, counters: NO_COUNTS, submitted: 0, graded: 0 });
  const stack = await startStack(scenario, settings, cleanup);
  let phase: Progress['phase'] = 'load';
  const startedAt = Date.now();
  const sampling = Sampling.start({
    lmsUrl: stack.lms.url,
    serviceUsername: settings.serviceUsername,
    base: stack.base,
    fleet: stack.fleet,
    submitted: () => stack.load.submitted.length,
    startedAt,
    onSample: (sample, counters) =>
      report(phase, {
        elapsedSeconds: sample.t,
        counters,
        submitted: stack.load.submitted.length,
        graded: sample.graded,
        fleet: stack.fleet,
      }),
  });
  try {
    const person = await driveLoad(stack, scenario, settings, startedAt);
    phase = 'drain';
    const outcomes = await drain(stack.load, settings.drainSeconds);
    const counters = await sampling.finish();
    const durationSeconds = (Date.now() - startedAt) / 1000;
    const submitted = stack.load.submitted.length;
    const graded = gradedOf(outcomes);
    report('done', {
      elapsedSeconds: durationSeconds,
      counters,
      submitted,
      graded,
      fleet: stack.fleet,
    });
    return figuresOf(scenario, settings, {
      counters,
      outcomes,
      load: stack.load,
      durationSeconds,
      person,
      fleet: stack.fleet,
      deaths: stack.deaths,
      samples: sampling.samples,
      gradings: gradingsOf(stack.gradingLines),
    });
  } finally {
    await sampling.stop();
  }
}

type Reported = Pick<Progress, 'elapsedSeconds' | 'counters' | 'submitted' | 'graded'> &
  Partial<Pick<Stack, 'fleet'>>;

/** Turns a step's numbers into a `Progress` for the live display. */
function reporter(scenario: string, onProgress: (progress: Progress) => void) {
  return (phase: Progress['phase'], { fleet, ...numbers }: Reported) =>
    onProgress({
      scenario,
      phase,
      restarts: fleet?.restarts ?? 0,
      connectionDeaths: fleet?.events['connection-died'] ?? 0,
      ...numbers,
    });
}
