import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderCharts } from './charts.ts';
import type { ScenarioFigures } from './figures.ts';
import { renderHtml } from './html.ts';
import { renderMarkdown, type StormReport } from './report.ts';

/**
 * Writes the report into `dir`: index.html (the page, charts inlined), report.md (the table,
 * charts as image links), report.json (figures, per-second series and samples) and one SVG per
 * chart. Returns the path of index.html.
 */
export async function writeReport(
  dir: string,
  report: StormReport,
  scenarios: readonly ScenarioFigures[],
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const charts = await renderCharts(scenarios, report.compression);
  const withSeries = {
    ...report,
    series: Object.fromEntries(scenarios.map((f) => [f.name, f.series])),
    samples: Object.fromEntries(scenarios.map((f) => [f.name, f.samples])),
  };
  await writeFile(join(dir, 'report.json'), `${JSON.stringify(withSeries, null, 2)}\n`);
  await writeFile(join(dir, 'report.md'), renderMarkdown(report, scenarios, charts));
  await Promise.all(charts.map((chart) => writeFile(join(dir, chart.file), chart.svg)));
  const page = join(dir, 'index.html');
  await writeFile(page, renderHtml(report, scenarios, charts));
  return page;
}
