import { colorsOf, type StormChart } from './charts.ts';
import type { ScenarioFigures } from './figures.ts';
import { type StormReport, tableOf } from './report.ts';

const escapeHtml = (text: string) => text.replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`);

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
p.meta, p.note { color: #555; margin: 4px 0; max-width: 1100px; }
table { border-collapse: collapse; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
table.verdicts td:not(:first-child), table.verdicts th:not(:first-child) { text-align: right; }
table.verdicts th { max-width: 110px; vertical-align: bottom; }
table.verdicts td, table.verdicts th { padding: 1px 7px; }
.glance { display: grid; grid-template-columns: minmax(0, 1.15fr) minmax(0, 1fr); gap: 0 24px; align-items: start; }
.glance table { font-size: 13px; }
.glance .side { display: grid; gap: 6px; }
.glance figcaption { display: none; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
.STORM { color: #fff; background: #c62828; font-weight: bold; }
.STALL { color: #fff; background: #6a1b9a; font-weight: bold; }
.HEALTHY { color: #fff; background: #2e7d32; font-weight: bold; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(620px, 1fr)); gap: 12px 24px; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; }
.side svg { width: 100%; max-width: 720px; height: auto; }
.glance .note { width: 0; min-width: 100%; }
figcaption { color: #444; font-size: 13px; max-width: 600px; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; font-size: 12px; }
`;

function verdictTable(scenarios: readonly ScenarioFigures[]) {
  const colors = colorsOf(scenarios);
  const { header, body } = tableOf(scenarios);
  const head = header
    .map((name, column) => {
      const figures = scenarios[column - 1];
      if (!figures) return '<th></th>';
      return `<th><span class="swatch" style="background:${colors[figures.name]}"></span>${escapeHtml(name)}</th>`;
    })
    .join('');
  const rows = body.map((row) => {
    const isVerdict = row[0] === 'verdict';
    const cells = row.map((text, column) =>
      column === 0
        ? `<td>${escapeHtml(text)}</td>`
        : `<td${isVerdict ? ` class="${escapeHtml(text)}"` : ''}>${escapeHtml(text)}</td>`,
    );
    return `<tr>${cells.join('')}</tr>`;
  });
  return `<table class="verdicts"><thead><tr>${head}</tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

const envList = (env: Record<string, string>) => {
  const entries = Object.entries(env);
  if (entries.length === 0) return '<span class="note">run defaults</span>';
  return entries
    .map(([key, value]) => `<code>${escapeHtml(key)}=${escapeHtml(value)}</code>`)
    .join('<br>');
};

function settingsTable(scenarios: readonly ScenarioFigures[]) {
  const rows = scenarios.map(
    (figures) =>
      `<tr><td>${escapeHtml(figures.name)}</td><td class="${figures.verdict}">${figures.verdict}</td>` +
      `<td>${escapeHtml(figures.description)}</td><td>${envList(figures.lms)}</td><td>${envList(figures.watcher)}</td></tr>`,
  );
  return `<table><thead><tr><th>scenario</th><th>verdict</th><th>what it runs</th><th>LMS</th><th>watcher fleet</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

/** The charts shown again beside the verdict table, so that the first screen compares. */
const GLANCE = ['logins.svg', 'graded.svg'];

/**
 * The report as one self-contained page: no script, no network, the charts inlined as SVG, so
 * it opens by a double click and prints as it shows.
 */
export function renderHtml(
  report: StormReport,
  scenarios: readonly ScenarioFigures[],
  charts: readonly StormChart[],
): string {
  const { run } = report;
  const total = run.replicas * run.queues * run.connections;
  const title = `Storm report: ${scenarios.map((f) => `${f.name} ${f.verdict}`).join(', ')}`;
  const figureOf = (chart: StormChart) =>
    `<figure>${chart.svg}<figcaption><strong>How to read this.</strong> ${escapeHtml(chart.howToRead)}</figcaption></figure>`;
  // Beside the table, the two that tell storm from cure at once (drawn again below with their
  // captions): the logins, and what they do to grading.
  const glance = charts.filter((chart) => GLANCE.includes(chart.file));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Storm report</h1>
<p class="meta">Generated ${escapeHtml(report.generatedAt)} on ${report.machine.cpus} cores, Node ${escapeHtml(report.machine.node)}.
Each scenario: ${run.replicas} watcher replicas x ${run.queues} queues x ${run.connections} connections = ${total} connections of one service account;
${run.submissions} submissions by ${run.students} students over ${run.loadSeconds} s of run, then up to ${run.drainSeconds} s to finish grading; one grading takes ${run.gradingSeconds} s of production.
Time is compressed ${report.compression}x (see the end of the page).</p>

<div class="glance">
<div>
<h2>Verdicts</h2>
${verdictTable(scenarios)}
<p class="note">Verdict rule: ${escapeHtml(report.verdictRule)}.</p>
</div>
<div class="side" aria-hidden="true">
${glance.map((chart) => chart.svg).join('\n')}
</div>
</div>

<h2>Over time</h2>
<p class="note">Every scenario on the same axes: seconds of run along the bottom, seconds of production time along the top. Storms are drawn in warm colours, healthy runs in cool ones. Sampled four times a second from the LMS's and the replicas' metrics.</p>
<div class="charts">
${charts.map(figureOf).join('\n')}
</div>

<h2>Scenarios</h2>
${settingsTable(scenarios)}

<h2>Time compression</h2>
<p class="note">${escapeHtml(report.compressionNote)}</p>
</body>
</html>
`;
}
