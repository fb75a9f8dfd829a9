import { lineChart, type Point, renderSvg } from '@storm-lab/charts';
import type { ScenarioFigures, Verdict } from './figures.ts';
import { rateOf, type Sample } from './samples.ts';

/** One chart of the report: every scenario on shared axes. */
export interface StormChart {
  /** File name of its SVG in the report folder. */
  file: string;
  title: string;
  /** A few sentences: what the line counts and how storm and cure differ on it. */
  howToRead: string;
  svg: string;
}

/** Storms in warm colours, stalls in purple and grey, healthy runs in cool colours. */
const COLORS: Record<Verdict, readonly string[]> = {
  STORM: ['#d62728', '#ff7f0e', '#8c564b', '#e377c2', '#bcbd22'],
  STALL: ['#9467bd', '#7f7f7f', '#c5b0d5'],
  HEALTHY: ['#2ca02c', '#1f77b4', '#17becf', '#98df8a', '#aec7e8'],
};

/** A colour per scenario, chosen by its verdict so that a storm and its cure stand apart. */
export function colorsOf(scenarios: readonly ScenarioFigures[]): Record<string, string> {
  const used: Record<Verdict, number> = { STORM: 0, STALL: 0, HEALTHY: 0 };
  return Object.fromEntries(
    scenarios.map((figures) => {
      const palette = COLORS[figures.verdict];
      const color = palette[used[figures.verdict]++ % palette.length] ?? '#333';
      return [figures.name, color];
    }),
  );
}

/** How each chart turns one scenario's samples into points. */
interface ChartDefinition {
  file: string;
  title: string;
  yTitle: string;
  howToRead: string;
  /** Counts that hold between samples: drawn as steps, with whole-number ticks. */
  step?: boolean;
  points: (samples: readonly Sample[], compression: number) => { t: number; y: number }[];
}

/** Logins and 403s are averaged over the last second of run. */
const RATE_WINDOW_SECONDS = 1;
/** Grading comes a few submissions a second: two seconds smooth it into a rate. */
const GRADED_WINDOW_SECONDS = 2;

const rate =
  (key: 'logins' | 'forbidden', scale = 1) =>
  (samples: readonly Sample[]) =>
    rateOf(samples, key, RATE_WINDOW_SECONDS).map(({ t, rate }) => ({ t, y: rate * scale }));

const level = (key: 'alive' | 'restarts' | 'waiting') => (samples: readonly Sample[]) =>
  samples.map((sample) => ({ t: sample.t, y: sample[key] }));

const DEFINITIONS: readonly ChartDefinition[] = [
  {
    file: 'logins.svg',
    title: 'Service-account logins per second',
    yTitle: 'logins per run second',
    howToRead:
      'Logins of the shared grader account on /xqueue/login/, per second of run, averaged over the last second. A healthy fleet logs in once per connection as it starts, then the line lies at 0. In a storm every login evicts a sibling, whose re-login evicts another: the line stays up for the whole run.',
    points: rate('logins'),
  },
  {
    file: 'forbidden.svg',
    title: '403s per second on get_submission and put_result',
    yTitle: '403s per run second',
    howToRead:
      'Each 403 is a connection that found its session deleted by a sibling\u2019s login. In a storm it tracks the logins line (about one 403 per login); under the cure it stays at 0.',
    points: rate('forbidden'),
  },
  {
    file: 'graded.svg',
    title: 'Submissions graded per minute of production time',
    yTitle: 'graded per production minute',
    howToRead:
      'Results the LMS accepted, per minute of production time (the rate over the last two run seconds, times 60, divided by the compression). A fleet that keeps up follows the student load; a storm grades in bursts between evictions, and a stalled fleet falls to 0.',
    points: (samples, compression) =>
      rateOf(samples, 'graded', GRADED_WINDOW_SECONDS).map(({ t, rate }) => ({
        t,
        y: (rate * 60) / compression,
      })),
  },
  {
    file: 'alive.svg',
    title: 'Watcher connections alive',
    yTitle: 'connections',
    howToRead:
      'Connections whose loop runs, summed over the replicas. Upstream\u2019s client ends a connection whose first login times out, and its Manager then exits the whole replica: the line drops by a replica\u2019s connections and comes back when the replica is restarted.',
    step: true,
    points: level('alive'),
  },
  {
    file: 'restarts.svg',
    title: 'Replica restarts',
    yTitle: 'restarts so far',
    howToRead:
      'Replicas restarted after they exited on their own, counted from the start of the load, as Kubernetes would restart a pod (with its back-off, compressed). 0 throughout for a healthy fleet.',
    step: true,
    points: level('restarts'),
  },
  {
    file: 'waiting.svg',
    title: 'Submissions waiting',
    yTitle: 'submitted, not graded',
    howToRead:
      'Submitted so far and not graded yet. It rises and falls with the load when grading keeps up, and ends at 0; when it climbs and stays up, students are waiting for their grades.',
    step: true,
    points: level('waiting'),
  },
];

/**
 * Renders the report's charts: each puts every scenario on one y scale and one time scale
 * (run seconds below, production seconds above).
 */
export async function renderCharts(
  scenarios: readonly ScenarioFigures[],
  compression: number,
): Promise<StormChart[]> {
  const names = scenarios.map((figures) => figures.name);
  const colors = colorsOf(scenarios);
  return Promise.all(
    DEFINITIONS.map(async (definition) => {
      const points: Point[] = scenarios.flatMap((figures) =>
        definition.points(figures.samples, compression).map(({ t, y }) => ({
          series: figures.name,
          x: t,
          y: Math.round(y * 100) / 100,
        })),
      );
      const svg = await renderSvg(
        lineChart({
          title: definition.title,
          points,
          series: names,
          colors,
          xTitle: 'seconds of run',
          yTitle: definition.yTitle,
          topAxis:
            compression === 1
              ? undefined
              : { title: `seconds of production time (${compression}x)`, factor: compression },
          interpolate: definition.step ? 'step-after' : 'linear',
          integer: definition.step,
          width: 420,
          height: 200,
        }),
      );
      return {
        file: definition.file,
        title: definition.title,
        howToRead: definition.howToRead,
        svg,
      };
    }),
  );
}
