import type { ScenarioFigures } from './figures.ts';

const WIDTH = 640;
const HEIGHT = 280;
const PAD = { left: 48, right: 16, top: 36, bottom: 36 };
const LINES = [
  { key: 'logins', label: 'logins/s', color: '#d62728' },
  { key: 'forbidden', label: '403s/s', color: '#ff7f0e' },
  { key: 'graded', label: 'graded/s', color: '#2ca02c' },
] as const;

const escapeXml = (text: string) => text.replace(/[<>&"]/g, (char) => `&#${char.charCodeAt(0)};`);

/**
 * A self-contained SVG line chart of logins, 403s and graded submissions per second for one
 * scenario (no script, no external fonts, so it renders anywhere, including GitHub).
 */
export function renderChart(figures: ScenarioFigures): string {
  const { series } = figures;
  const count = series.seconds.length;
  const maxY = Math.max(1, ...series.logins, ...series.forbidden, ...series.graded);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (index: number) => PAD.left + (count <= 1 ? 0 : (index / (count - 1)) * plotW);
  const y = (value: number) => PAD.top + plotH - (value / maxY) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="11">`,
    `<title>${escapeXml(figures.name)}: logins, 403s and graded submissions per second</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${PAD.left}" y="16" font-size="13" font-weight="bold">${escapeXml(figures.name)}: ${figures.verdict}</text>`,
    `<line x1="${PAD.left}" y1="${PAD.top + plotH}" x2="${PAD.left + plotW}" y2="${PAD.top + plotH}" stroke="#333"/>`,
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${PAD.top + plotH}" stroke="#333"/>`,
    `<text x="${PAD.left - 6}" y="${PAD.top + 4}" text-anchor="end">${maxY}</text>`,
    `<text x="${PAD.left - 6}" y="${PAD.top + plotH}" text-anchor="end">0</text>`,
    `<text x="${PAD.left + plotW}" y="${HEIGHT - 8}" text-anchor="end">seconds (${count})</text>`,
  ];
  LINES.forEach((line, index) => {
    const values = series[line.key];
    const points = values.map((value, i) => `${x(i).toFixed(1)},${y(value).toFixed(1)}`).join(' ');
    if (values.length > 0) {
      parts.push(
        `<polyline fill="none" stroke="${line.color}" stroke-width="2" points="${points}"/>`,
      );
    }
    const legendX = PAD.left + 160 + index * 90;
    parts.push(`<rect x="${legendX}" y="8" width="10" height="10" fill="${line.color}"/>`);
    parts.push(`<text x="${legendX + 14}" y="17">${line.label}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
