// The regime map's rule and verdicts (issue 28): pure functions of a cell's settings and figures.
import type { SimSettings } from './settings.ts';

/** One fleet size: replicas x conf.d entries of one queue x CONNECTIONS. */
export interface FleetShape {
  replicas: number;
  queues: number;
  connections: number;
}

/** What one run of a cell (the storm or the cure) did, in production units. */
export interface RunFigures {
  gradedPerMinute: number;
  graded: number;
  submitted: number;
  logins: number;
  /** Logins beyond each connection's first, per hour (the storm report's figure). */
  loginsPerHour: number;
  connectionDeaths: number;
  deathsPerHour: number;
  replicaRestarts: number;
  /** Connections whose loop still ran when the load ended (the rest wait in CrashLoopBackOff). */
  aliveAtEnd: number;
  /** Replicas restarted in the load's second half, long after any cold start's deaths. */
  lateRestarts: number;
  /** Graded per minute in the load's second half alone (the steady state, past any cold start). */
  lateGradedPerMinute: number;
  lmsWorkerUtilisation: number;
}

/**
 * What the storm does to grading: `stalls` (the fleet crash-loops, or its grading collapses),
 * otherwise `limps` (grades as the cure does, at a cost in logins, 403s and CPU) or `slows`
 * (grades below the cure's, every connection alive).
 */
export type Regime = 'limps' | 'slows' | 'stalls';

/** One cell of the map: a fleet, a worker count and a timeout, the storm and its cure. */
export interface RegimeCell extends FleetShape {
  /** replicas x queues x connections: the service account's sessions. */
  totalConnections: number;
  workers: number;
  timeoutSeconds: number;
  /** One login's time in a worker: its PBKDF2 and the two login requests' own service. */
  loginSeconds: number;
  /** totalConnections x loginSeconds / workers: the wait for the last of every connection's login at once. */
  loginQueueSeconds: number;
  /** The same for one replica's connections, which log in at once when it (re)starts. */
  replicaLoginQueueSeconds: number;
  storm: RunFigures;
  /** The same fleet, workers and timeout with the account exempt (`exempt-username`). */
  cure: RunFigures;
  /** Storm's graded per minute over the cure's; null when the cure graded nothing. */
  ratio: number | null;
  /** The same in the load's second half alone; null when the cure graded nothing there. */
  lateRatio: number | null;
  /** The storm's connection deaths and logins per hour (as in `storm`), for the map's text. */
  deathsPerHour: number;
  loginsPerHour: number;
  verdict: Regime;
  /** The cure crash-loops too, on the same test (a replica's own first logins time out). */
  cureStalls: boolean;
  /** Whether {@link REGIME_RULE} says the storm stalls, from the cell's settings alone. */
  stallPredicted: boolean;
  /** Whether it says the cure stalls too. */
  cureStallPredicted: boolean;
}

/** How many cells the rule puts on the right side of its boundaries, and the cells it does not. */
export interface RuleCheck {
  statement: readonly string[];
  /** Cells whose storm stalls exactly when the rule says so. */
  stormAgrees: number;
  /** Cells whose cure stalls exactly when the rule says so. */
  cureAgrees: number;
  cells: number;
  /** One line per cell the rule gets wrong, with its figures. */
  exceptions: string[];
  /**
   * Where the data put the boundaries, as multiples of the timeout: the largest Q / T (and one
   * replica's (C / R) x L / W over T for the cure) among cells that did not stall, and the
   * smallest among cells that did (null where no cell is on that side).
   */
  bounds: {
    storm: { highestWithout: number | null; lowestWith: number | null };
    cure: { highestWithout: number | null; lowestWith: number | null };
  };
  /** Below the stall boundary: each cell's Q and storm / cure, by Q (how grading slows). */
  belowBoundary: {
    loginQueueSeconds: number;
    timeoutSeconds: number;
    ratio: number | null;
    verdict: Regime;
  }[];
}

/** The map: its axes, the world every cell shares, its cells, and the rule checked on them. */
export interface RegimeMap {
  fleets: FleetShape[];
  workers: number[];
  timeoutsSeconds: number[];
  settings: SimSettings;
  cells: RegimeCell[];
  rule: RuleCheck;
}

/** The share of the cure's graded per minute from which a storm (every connection alive) only limps. */
export const LIMP_RATIO = 0.95;

/** Below this share of the cure's grading in the load's second half, a storm's grading has collapsed. */
export const COLLAPSE_RATIO = 0.1;

/**
 * The boundary rule the map checks, in one login's time L (in a worker), C connections of R
 * replicas, W LMS workers, POLL_INTERVAL P and REQUESTS_TIMEOUT T; Q = C x L / W is the time
 * the LMS's workers need to hash one login for every connection.
 */
export const REGIME_RULE: readonly string[] = [
  "The storm stalls when Q > 2T. The wait for a worker then passes the timeout: first logins time out, their connections die, Manager exits and the replicas crash-loop; or, with every connection alive, each request is given up and sent again at once and nothing is graded. Q is the wait with every connection's login queued at once; in a storm some connections sleep out their poll or grade, so the wait is a fraction of Q: the factor 2 is what the map shows, not derived.",
  "Below that the fleet survives the storm. A storming connection logs in about once per poll, C / P logins a second against the LMS's W / L, so the workers fill with logins once Q passes about P, at a cost in CPU and 403s; while they still serve the graders' own requests in time the storm limps, grading as the cure does, and where they do not it slows: every connection alive, grading below the offered load (a backlog that grows), the less the larger Q.",
  "The cure stalls too when one replica's connections, which log in at once when it starts, already wait past the timeout: (C / R) x L / W > T.",
];

type RuleInput = Pick<
  RegimeCell,
  'loginQueueSeconds' | 'replicaLoginQueueSeconds' | 'timeoutSeconds'
>;

/** Whether {@link REGIME_RULE} says the storm stalls. */
export function stallPredicted(cell: RuleInput): boolean {
  return cell.loginQueueSeconds > 2 * cell.timeoutSeconds;
}

/** Whether {@link REGIME_RULE} says the cure stalls too. */
export function cureStallPredicted(cell: RuleInput): boolean {
  return cell.replicaLoginQueueSeconds > cell.timeoutSeconds;
}

/** Whether a fleet crash-looped: restarts in the load's second half, or connections dead at its end. */
export function crashLoops(run: RunFigures, totalConnections: number): boolean {
  return run.lateRestarts > 0 || run.aliveAtEnd < totalConnections;
}

/**
 * The regime a cell's storm showed: see {@link Regime}. A storm can stall with every connection
 * alive: requests waiting past the timeout are given up and sent again at once, and nothing gets
 * graded (a livelock rather than a crash loop).
 */
export function regimeOf(
  cell: Pick<RegimeCell, 'ratio' | 'lateRatio' | 'storm' | 'totalConnections'>,
): Regime {
  if (crashLoops(cell.storm, cell.totalConnections)) return 'stalls';
  if (cell.lateRatio !== null && cell.lateRatio < COLLAPSE_RATIO) return 'stalls';
  return cell.ratio !== null && cell.ratio >= LIMP_RATIO ? 'limps' : 'slows';
}

function describe(cell: RegimeCell): string {
  return `${cell.totalConnections} connections, ${cell.workers} workers, T ${cell.timeoutSeconds} s (Q ${cell.loginQueueSeconds} s)`;
}

function exceptionsOf(cell: RegimeCell): string[] {
  const found: string[] = [];
  if (cell.stallPredicted !== (cell.verdict === 'stalls')) {
    found.push(
      `${describe(cell)}: the rule says the storm ${cell.stallPredicted ? 'stalls' : 'does not stall'}, it ${cell.verdict} (storm / cure ${cell.ratio ?? 'none'}, ${cell.lateRatio ?? 'none'} in the second half, ${cell.deathsPerHour} deaths/h, ${cell.storm.lateRestarts} restarts in the second half, ${cell.storm.aliveAtEnd}/${cell.totalConnections} connections alive at the end)`,
    );
  }
  if (cell.cureStallPredicted !== cell.cureStalls) {
    found.push(
      `${describe(cell)}: the rule says the cure ${cell.cureStallPredicted ? 'stalls' : 'keeps up'} (one replica's logins ${cell.replicaLoginQueueSeconds} s), it grades ${cell.cure.gradedPerMinute}/min with ${cell.cure.lateRestarts} restarts in the second half and ${cell.cure.aliveAtEnd}/${cell.totalConnections} connections alive at the end`,
    );
  }
  return found;
}

/** The largest `measure` among cells that did not stall and the smallest among those that did. */
function boundsOf(
  cells: readonly RegimeCell[],
  measure: (cell: RegimeCell) => number,
  stalled: (cell: RegimeCell) => boolean,
) {
  const round = (value: number) => Math.round(value * 100) / 100;
  const without = cells.filter((cell) => !stalled(cell)).map(measure);
  const withStall = cells.filter(stalled).map(measure);
  return {
    highestWithout: without.length > 0 ? round(Math.max(...without)) : null,
    lowestWith: withStall.length > 0 ? round(Math.min(...withStall)) : null,
  };
}

/** Checks {@link REGIME_RULE} against every cell. */
export function checkRule(cells: readonly RegimeCell[]): RuleCheck {
  return {
    statement: REGIME_RULE,
    stormAgrees: cells.filter((cell) => cell.stallPredicted === (cell.verdict === 'stalls')).length,
    cureAgrees: cells.filter((cell) => cell.cureStallPredicted === cell.cureStalls).length,
    cells: cells.length,
    exceptions: cells.flatMap(exceptionsOf),
    bounds: {
      storm: boundsOf(
        cells,
        (cell) => cell.loginQueueSeconds / cell.timeoutSeconds,
        (cell) => cell.verdict === 'stalls',
      ),
      cure: boundsOf(
        cells,
        (cell) => cell.replicaLoginQueueSeconds / cell.timeoutSeconds,
        (cell) => cell.cureStalls,
      ),
    },
    belowBoundary: cells
      .filter((cell) => !cell.stallPredicted)
      .map(({ loginQueueSeconds, timeoutSeconds, ratio, verdict }) => ({
        loginQueueSeconds,
        timeoutSeconds,
        ratio,
        verdict,
      }))
      .sort((a, b) => a.loginQueueSeconds - b.loginQueueSeconds),
  };
}
