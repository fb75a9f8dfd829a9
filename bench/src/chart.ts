import type { FleetRun } from './storm-cost.ts';

const W = 640;
const H = 300;
const PAD = { left: 64, right: 20, top: 36, bottom: 40 };

/** Logins per hour against connections (log-log), storm and cure, as a standalone SVG. */
export function renderCurveChart(runs: readonly FleetRun[]): string {
  const xs = [...new Set(runs.map((run) => run.connections))].sort((a, b) => a - b);
  const maxX = Math.max(2, ...xs);
  const maxY = Math.max(10, ...runs.map((run) => run.loginsPerHour));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (value: number) => PAD.left + (Math.log10(value) / Math.log10(maxX)) * plotW;
  const y = (value: number) =>
    PAD.top + plotH - (Math.log10(Math.max(1, value)) / Math.log10(maxY)) * plotH;
  const line = (exempt: boolean, color: string) => {
    const points = runs
      .filter((run) => run.exempt === exempt)
      .sort((a, b) => a.connections - b.connections)
      .map((run) => `${x(run.connections).toFixed(1)},${y(run.loginsPerHour).toFixed(1)}`);
    return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(' ')}"/>`;
  };
  const ticks = xs.map(
    (value) =>
      `<text x="${x(value).toFixed(1)}" y="${H - 22}" text-anchor="middle">${value}</text>`,
  );
  return `${[
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    '<title>Logins per hour against connections, storm and exempt</title>',
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${PAD.left}" y="18" font-size="13" font-weight="bold">Logins per hour vs connections (log-log)</text>`,
    `<line x1="${PAD.left}" y1="${PAD.top + plotH}" x2="${PAD.left + plotW}" y2="${PAD.top + plotH}" stroke="#333"/>`,
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${PAD.top + plotH}" stroke="#333"/>`,
    `<text x="${PAD.left - 6}" y="${PAD.top + 4}" text-anchor="end">${maxY}</text>`,
    `<text x="${PAD.left - 6}" y="${PAD.top + plotH}" text-anchor="end">1</text>`,
    `<text x="${PAD.left + plotW}" y="${H - 6}" text-anchor="end">connections</text>`,
    ...ticks,
    line(false, '#d62728'),
    line(true, '#2ca02c'),
    `<rect x="${PAD.left + 330}" y="9" width="10" height="10" fill="#d62728"/><text x="${PAD.left + 344}" y="18">storm</text>`,
    `<rect x="${PAD.left + 400}" y="9" width="10" height="10" fill="#2ca02c"/><text x="${PAD.left + 414}" y="18">exempt</text>`,
    '</svg>',
  ].join('\n')}\n`;
}
