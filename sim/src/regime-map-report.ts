import { type HeatCell, heatMap, renderSvg } from '@storm-lab/charts';
import {
  COLLAPSE_RATIO,
  type FleetShape,
  LIMP_RATIO,
  type RegimeCell,
  type RegimeMap,
} from './regime-rule.ts';

const fleetLabel = (fleet: FleetShape) =>
  `${fleet.replicas * fleet.queues * fleet.connections} (${fleet.replicas}x${fleet.queues}x${fleet.connections})`;

const panelLabel = (timeoutSeconds: number) => `REQUESTS_TIMEOUT ${timeoutSeconds} s`;

const ratioText = (ratio: number | null) => (ratio === null ? 'cure 0' : ratio.toFixed(2));

/** What every cell of a map shares, in one line. */
function worldLine(map: RegimeMap): string {
  const s = map.settings;
  const load = s.load.kind === 'steady' ? `${s.load.perMinute} submissions/min` : 'even load';
  const loginMs = Math.round((s.iterations * s.iterationNs) / 1e6);
  return `${s.durationSeconds / 60} min of ${load}, ${s.gradingSeconds} s grading, ${loginMs} ms PBKDF2 login, seed ${s.seed}`;
}

/**
 * The map as an SVG heat map: one panel per timeout, LMS workers across, connections up, the
 * colour the storm's graded per minute over the cure's, each cell's text that ratio and the
 * storm's connection deaths per hour, the cells the rule says stall outlined.
 */
export async function regimeMapSvg(map: RegimeMap): Promise<string> {
  const cells: HeatCell[] = map.cells.map((cell) => ({
    panel: panelLabel(cell.timeoutSeconds),
    x: String(cell.workers),
    y: fleetLabel(cell),
    value: cell.ratio,
    label: [
      ratioText(cell.ratio),
      `${cell.deathsPerHour} deaths/h`,
      ...(cell.cureStalls ? ['cure stalls'] : []),
    ].join('\n'),
    outlined: cell.stallPredicted,
  }));
  return renderSvg(
    heatMap({
      title: 'Regime map: the login storm over fleet size and LMS workers',
      subtitle: [
        "Colour and first line: the storm's graded per minute over the cure's (same cell, account exempt).",
        "Second line: the storm's connection deaths per hour; 'cure stalls': the exempt fleet's own first logins time out.",
        'Outlined: connections x login time / workers > 2 x REQUESTS_TIMEOUT (where the rule says the storm stalls).',
        `Each cell: ${worldLine(map)}.`,
      ],
      cells,
      xTitle: 'LMS workers',
      yTitle: 'connections (replicas x queues x CONNECTIONS)',
      valueTitle: 'storm / cure',
      panels: map.timeoutsSeconds.map(panelLabel),
      xOrder: map.workers.map(String),
      yOrder: [...map.fleets].reverse().map(fleetLabel),
      domain: [0, 1],
      cellSize: 92,
    }),
  );
}

/** The rule's call on a cell ("stalls" or "no stall"), in bold where the cell says otherwise. */
const mark = (right: boolean, stalls: boolean) => {
  const call = stalls ? 'stalls' : 'no stall';
  return right ? call : `**${call}**`;
};

function tableOf(cells: readonly RegimeCell[]): string[] {
  const rows = cells.map((cell) =>
    [
      fleetLabel(cell),
      cell.workers,
      cell.loginQueueSeconds,
      cell.replicaLoginQueueSeconds,
      cell.storm.gradedPerMinute,
      cell.cure.gradedPerMinute,
      ratioText(cell.ratio),
      ratioText(cell.lateRatio),
      cell.deathsPerHour,
      cell.loginsPerHour,
      cell.storm.lateRestarts,
      `${cell.storm.aliveAtEnd}/${cell.totalConnections}`,
      cell.storm.lmsWorkerUtilisation,
      cell.verdict,
      mark(cell.stallPredicted === (cell.verdict === 'stalls'), cell.stallPredicted),
      cell.cureStalls ? 'stalls' : 'no stall',
      mark(cell.cureStallPredicted === cell.cureStalls, cell.cureStallPredicted),
    ].join(' | '),
  );
  return [
    '| connections | workers | Q = C x L / W (s) | one replica (s) | storm graded/min | cure graded/min | storm / cure | same, 2nd half | deaths/h | logins/h | late restarts | alive at end | LMS busy | storm | rule: storm | cure | rule: cure |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|---|',
    ...rows.map((row) => `| ${row} |`),
  ];
}

/** What the cells say about where a boundary lies, as a multiple of the timeout. */
function boundsLine(
  what: string,
  measure: string,
  factor: number,
  bounds: { highestWithout: number | null; lowestWith: number | null },
): string {
  const { highestWithout: below, lowestWith: above } = bounds;
  if (below === null || above === null) {
    return `${what}: every cell is on one side, so the map does not place this boundary.`;
  }
  if (below >= above) {
    return `${what}: no single factor separates the cells: one did not stall at ${measure} = ${below} T, another stalled at ${above} T.`;
  }
  const inside = below < factor && factor <= above;
  return `${what}: the cells put the boundary between ${measure} = ${below} T (the highest that did not stall) and ${above} T (the lowest that did); the rule's ${factor} T ${inside ? 'lies in that interval, as a round figure: the map does not pin it closer' : 'lies outside it'}.`;
}

/** Below the stall boundary: up to which Q the storm limps, and every cell where it slows. */
function trendOf(map: RegimeMap): string {
  const below = map.rule.belowBoundary;
  const limps = below.filter((cell) => cell.verdict === 'limps');
  const slows = below.filter((cell) => cell.verdict !== 'limps');
  const cellText = (cell: (typeof below)[number]) =>
    `Q ${cell.loginQueueSeconds} s at T ${cell.timeoutSeconds} s: ${ratioText(cell.ratio)}`;
  const limpText =
    limps.length > 0
      ? `the storm limps (at least ${Math.round(LIMP_RATIO * 100)}% of the cure) in ${limps.length} cells, up to Q = ${Math.max(...limps.map((cell) => cell.loginQueueSeconds))} s`
      : 'the storm limps in no cell';
  const slowText =
    slows.length > 0
      ? `it slows in ${slows.length}: ${slows.map(cellText).join('; ')}`
      : 'it slows in none';
  return `${limpText}; ${slowText}`;
}

/**
 * The map as Markdown: how to read it, the rule and how many cells it puts on the right side
 * (with every exception and its figures), one table per timeout, and how the map was made.
 */
export function regimeMapMarkdown(map: RegimeMap): string {
  const { rule } = map;
  const loginMs = Math.round((map.cells[0]?.loginSeconds ?? 0) * 1000);
  const pollSeconds = map.settings.pollIntervalSeconds;
  const lines = [
    '# Regime map: the login storm over fleet size and LMS workers',
    '',
    'Each cell is one fleet (connections, rows) against one LMS (synchronous workers, columns), one panel per xqueue-watcher `REQUESTS_TIMEOUT`, each run twice on the same seed: as the storm (flag on, no exemption) and as the cure (`exempt-username`).',
    "The colour and the first number are the storm's graded submissions per minute over the cure's (1: the storm costs grading nothing; 0: nothing graded); the second number is the storm's connection deaths per hour (first logins that timed out).",
    `Outlined cells are those the rule below says stall; the tables give every figure, with the rule's call in **bold** where the cell says otherwise. Every cell: ${worldLine(map)}.`,
    '',
    '![regime map](regime-map.svg)',
    '',
    '## The boundary rule',
    '',
    `L = ${loginMs} ms (one login in a worker: the PBKDF2 and the two login requests), C connections of R replicas, W LMS workers, P = POLL_INTERVAL ${pollSeconds} s, T = REQUESTS_TIMEOUT, Q = C x L / W.`,
    '',
    ...rule.statement.map((line) => `- ${line}`),
    '',
    `A storm "stalls" when its fleet crash-loops (replicas still restarting in the load's second half, or connections still dead at its end) or its grading collapses (under ${Math.round(COLLAPSE_RATIO * 100)}% of the cure's in the second half); otherwise it "limps" when it grades at least ${Math.round(LIMP_RATIO * 100)}% of the cure's rate and "slows" below that (a backlog that grows). The cure "stalls" when it crash-loops. Checked against the cells: the storm stalls exactly where the rule says in ${rule.stormAgrees} of ${rule.cells} cells, the cure in ${rule.cureAgrees} of ${rule.cells}.`,
    '',
    ...(rule.exceptions.length === 0
      ? ['No cell contradicts the rule.']
      : ['Cells that contradict the rule:', '', ...rule.exceptions.map((line) => `- ${line}`)]),
    '',
    `- ${boundsLine('The storm', 'Q', 2, rule.bounds.storm)}`,
    `- ${boundsLine('The cure', '(C / R) x L / W', 1, rule.bounds.cure)}`,
    '',
    `Below the stall boundary ${trendOf(map)}.`,
    '',
  ];
  for (const timeoutSeconds of map.timeoutsSeconds) {
    lines.push(`## ${panelLabel(timeoutSeconds)}`, '');
    lines.push(...tableOf(map.cells.filter((cell) => cell.timeoutSeconds === timeoutSeconds)));
    lines.push('');
  }
  lines.push(
    '## How it was made',
    '',
    `\`pnpm sim --map\` (sim/src/regime-map.ts): ${map.cells.length} cells one after another, each the storm and the cure for ${map.settings.durationSeconds} s of production with no drain (graded per minute is over the load alone), ${map.settings.students} students, one queue that every conf.d entry names, seed ${map.settings.seed}. The same seed gives the same map, byte for byte; regime-map.json holds every figure.`,
    '',
  );
  return lines.join('\n');
}
