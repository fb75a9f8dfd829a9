import type { WatcherFleet } from '@storm-lab/harness';
import { percentile, perHour, perMinute, type ScenarioFigures, verdictOf } from '../figures.ts';
import { countGradings, type Grading } from '../graded-twice.ts';
import type { Counters } from '../sampler.ts';
import { perSecond, type Sample } from '../samples.ts';
import type { Scenario } from '../scenarios.ts';
import type { RunSettings } from '../settings.ts';
import type { Outcome, StudentLoad } from '../student-load.ts';

/** What a finished run saw, from the LMS, the students and the fleet. */
export interface RunOutcome {
  counters: Counters;
  outcomes: Map<number, Outcome>;
  load: StudentLoad;
  durationSeconds: number;
  person: boolean | null;
  fleet: Pick<WatcherFleet, 'restarts'> & { events: Record<string, number> };
  /** Why each connection died, as its replica said, with when. */
  deaths: string[];
  samples: Sample[];
  /** The lab's runs: every grading the replicas logged (the simulator counts at the LMS). */
  gradings?: readonly Grading[];
}

/** The report's figures of one finished run (the lab's and the simulator's alike). */
export function figuresOf(
  scenario: Scenario,
  settings: Pick<RunSettings, 'replicas' | 'queues' | 'connections' | 'compression'>,
  run: RunOutcome,
): ScenarioFigures {
  const { counters, outcomes, load, durationSeconds } = run;
  const totalConnections = settings.replicas * settings.queues * settings.connections;
  const graded = [...outcomes.values()].filter((outcome) => outcome.graded);
  const latencies = graded.flatMap((outcome) =>
    outcome.latencyMs === null ? [] : [outcome.latencyMs],
  );
  const wrongScores = load.submitted.filter((submission) => {
    const outcome = outcomes.get(submission.id);
    return outcome?.graded && outcome.correct !== submission.expectCorrect;
  }).length;
  const submitted = load.submitted.length;
  return {
    name: scenario.name,
    description: scenario.description,
    lms: scenario.lms,
    watcher: scenario.watcher,
    replicas: settings.replicas,
    queues: settings.queues,
    connections: settings.connections,
    totalConnections,
    durationSeconds: Math.round(durationSeconds * 10) / 10,
    logins: counters.logins,
    // Each connection's first login is the fleet starting, not a rate: only re-logins count.
    loginsPerHour: perHour(
      Math.max(0, counters.logins - totalConnections),
      durationSeconds,
      settings.compression,
    ),
    forbidden: counters.forbidden,
    forbiddenPerLogin: counters.logins > 0 ? counters.forbidden / counters.logins : 0,
    graded: graded.length,
    submitted,
    waitingAtEnd: submitted - graded.length,
    gradedPerMinute: perMinute(graded.length, durationSeconds, settings.compression),
    wrongScores,
    ...(run.gradings && { gradedTwice: countGradings(run.gradings, []).gradedTwice.length }),
    evictions: counters.evictions,
    stormAlerts: counters.stormAlerts,
    connectionDeaths: run.fleet.events['connection-died'] ?? 0,
    connectionDeathReasons: run.deaths,
    replicaRestarts: run.fleet.restarts,
    loginTimeouts: run.fleet.events['login-timeout'] ?? 0,
    latencyP50Ms: percentile(latencies, 50),
    latencyP95Ms: percentile(latencies, 95),
    personSingleSession: run.person,
    verdict: verdictOf({
      logins: counters.logins,
      forbidden: counters.forbidden,
      totalConnections,
      graded: graded.length,
      submitted,
    }),
    series: perSecond(run.samples),
    samples: run.samples,
  };
}
