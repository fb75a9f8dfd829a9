import { describe, expect, it } from 'vitest';
import { renderCharts } from './charts.ts';
import type { ScenarioFigures } from './figures.ts';
import { renderHtml } from './html.ts';
import { buildReport, renderMarkdown, tableOf } from './report.ts';
import { perSecond, type Sample } from './samples.ts';

function samplesOf(loginsPerSample: number, alive: number): Sample[] {
  return Array.from({ length: 25 }, (_, i) => ({
    t: i / 4,
    logins: 8 + i * loginsPerSample,
    forbidden: i * loginsPerSample,
    graded: i,
    evictions: i * loginsPerSample,
    stormAlerts: 0,
    alive,
    restarts: 0,
    waiting: i % 3,
  }));
}

function figuresOf(name: string, verdict: ScenarioFigures['verdict'], samples: Sample[]) {
  const last = samples.at(-1) as Sample;
  return {
    name,
    description: `${name}: <b>not markup</b>`,
    lms: { PREVENT_CONCURRENT_LOGINS: 'true' },
    watcher: {},
    replicas: 2,
    queues: 2,
    connections: 2,
    totalConnections: 8,
    durationSeconds: 6,
    logins: last.logins,
    loginsPerHour: 0,
    forbidden: last.forbidden,
    forbiddenPerLogin: 0,
    graded: 24,
    submitted: 24,
    waitingAtEnd: 0,
    gradedPerMinute: 120,
    wrongScores: 0,
    evictions: last.evictions,
    stormAlerts: 0,
    connectionDeaths: 0,
    replicaRestarts: 0,
    loginTimeouts: 0,
    connectionDeathReasons: [],
    latencyP50Ms: 100,
    latencyP95Ms: 200,
    personSingleSession: true,
    verdict,
    series: perSecond(samples),
    samples,
  } satisfies ScenarioFigures;
}

const scenarios = [
  figuresOf('storm', 'STORM', samplesOf(3, 8)),
  figuresOf('storm-legacy-watcher', 'STALL', samplesOf(0, 8)),
  figuresOf('exempt-username', 'HEALTHY', samplesOf(0, 8)),
];
const report = buildReport(scenarios, {
  compression: 2,
  compressionNote: '2x: every production time is divided by 2.',
  cpus: 2,
  run: {
    replicas: 2,
    queues: 2,
    connections: 2,
    loadSeconds: 6,
    submissions: 24,
    students: 4,
    drainSeconds: 3,
    gradingSeconds: 1,
  },
});

describe('the HTML storm report', () => {
  it('names every scenario in the table and in the legend of every chart', async () => {
    const charts = await renderCharts(scenarios, 2);
    expect(charts.map((chart) => chart.file)).toEqual([
      'logins.svg',
      'forbidden.svg',
      'graded.svg',
      'alive.svg',
      'restarts.svg',
      'waiting.svg',
    ]);
    for (const chart of charts) {
      const legend = [...chart.svg.matchAll(/role-legend-label[\s\S]*?<\/g>/g)].join('');
      for (const figures of scenarios) expect(legend, chart.file).toContain(`>${figures.name}<`);
      expect(chart.svg, chart.file).toContain('seconds of production time (2x)');
    }
    const html = renderHtml(report, scenarios, charts);
    for (const figures of scenarios) expect(html).toContain(`</span>${figures.name}</th>`);
    expect(html).toContain('<td class="STORM">STORM</td>');
    expect(html).toContain('<td class="HEALTHY">HEALTHY</td>');
    expect(html.match(/<figure>/g)?.length).toBe(charts.length);
  });

  it('is self-contained: no script, nothing fetched, text escaped', async () => {
    const html = renderHtml(report, scenarios, await renderCharts(scenarios, 2));
    expect(html).not.toMatch(/<script|<link|<img|src=|@import|url\(/i);
    // The only URLs are SVG namespaces.
    const urls = [...html.matchAll(/https?:\/\/[^"' )]+/g)].map((match) => match[0]);
    expect(new Set(urls)).toEqual(
      new Set(['http://www.w3.org/2000/svg', 'http://www.w3.org/1999/xlink']),
    );
    expect(html).toContain('storm: &#60;b&#62;not markup&#60;/b&#62;');
    expect(html).not.toContain('<b>not markup');
  });

  it('links each chart from report.md, and leaves samples out of the figures', async () => {
    const charts = await renderCharts(scenarios, 2);
    const markdown = renderMarkdown(report, scenarios, charts);
    for (const chart of charts) expect(markdown).toContain(`(${chart.file})`);
    expect(markdown).toContain('[index.html](index.html)');
    expect(report.scenarios[0]).not.toHaveProperty('samples');
    expect(report.scenarios[0]).not.toHaveProperty('series');
  });

  it("shows the lab's graded-twice row when a run counted it, and the simulator's rows only for a simulation", () => {
    const rows = (figures: ScenarioFigures[]) => tableOf(figures).body.map(([label]) => label);
    expect(rows(scenarios)).not.toContain('graded twice');
    const lab = scenarios.map((figures, i) => ({ ...figures, gradedTwice: i }));
    expect(tableOf(lab).body).toContainEqual(['graded twice', '0', '1', '2']);
    expect(rows(lab)).not.toContain('LMS worker utilisation');
    const simulated = scenarios.map((figures) => ({ ...figures, lmsWorkerUtilisation: 0.5 }));
    expect(rows(simulated)).toContain('LMS worker utilisation');
    expect(rows(simulated)).not.toContain('graded twice');
  });
});
