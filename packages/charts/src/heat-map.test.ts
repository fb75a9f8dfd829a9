import { describe, expect, it } from 'vitest';
import { type HeatCell, heatMap, renderSvg } from './index.ts';

/** The text of every <text> element of an SVG, in document order (line breaks become tspans). */
const textsOf = (svg: string) =>
  [...svg.matchAll(/<(?:text|tspan)[^>]*>([^<]*)<\/(?:text|tspan)>/g)].map(
    (match) => match[1] ?? '',
  );

const cells: HeatCell[] = ['1 s', '5 s'].flatMap((panel) =>
  ['8', '4'].flatMap((y) =>
    ['1', '2'].map((x) => {
      const value = panel === '5 s' && x === '2' && y === '8' ? null : Number(x) / Number(y);
      return {
        panel,
        x,
        y,
        value,
        label: value === null ? 'no cure' : `${value.toFixed(2)}\n${x}${y}/h`,
        outlined: value !== null && value < 0.2,
      };
    }),
  ),
);

const options = {
  title: 'Regime map',
  subtitle: ['graded per minute, storm / cure', 'outlined: predicted stall'],
  cells,
  xTitle: 'LMS workers',
  yTitle: 'connections',
  valueTitle: 'storm / cure',
  panels: ['1 s', '5 s'],
  xOrder: ['1', '2'],
  yOrder: ['8', '4'],
  domain: [0, 1] as const,
};

describe('heatMap + renderSvg', () => {
  it('draws one rectangle and one text per cell in two panels, grey where a cell has no value', async () => {
    const svg = await renderSvg(heatMap(options));
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).not.toMatch(/<script|<image|url\(http/i);
    const texts = textsOf(svg);
    expect(texts).toEqual(
      expect.arrayContaining(['Regime map', '1 s', '5 s', 'LMS workers', 'connections']),
    );
    // Both lines of a two-line label, and the label of the cell without a value.
    expect(texts).toEqual(expect.arrayContaining(['0.13', '18/h', '0.50', '24/h', 'no cure']));
    const rects = [
      ...svg.matchAll(/aria-roledescription="rect mark" d="[^"]*" fill="([^"]+)" stroke="white"/g),
    ];
    expect(rects).toHaveLength(8);
    expect(rects.filter((match) => match[1] === '#bdbdbd')).toHaveLength(1);
  });

  it('outlines only the cells marked outlined', async () => {
    const svg = await renderSvg(heatMap(options));
    const outlined = cells.filter((cell) => cell.outlined).length;
    expect(outlined).toBe(2);
    expect(svg.match(/stroke="#111" stroke-width="3"/g)).toHaveLength(outlined);
  });

  it('colours low values red and high values green on the given domain', async () => {
    const svg = await renderSvg(
      heatMap({
        ...options,
        cells: [
          { panel: '1 s', x: '1', y: '8', value: 0.05, label: 'low' },
          { panel: '1 s', x: '1', y: '4', value: 3, label: 'beyond the domain' },
        ],
      }),
    );
    const fillOf = (x: string, y: string) => {
      const fill = new RegExp(
        `aria-label="LMS workers: ${x}; connections: ${y};[^"]*"[^>]*fill="rgb\\((\\d+), (\\d+), (\\d+)\\)"`,
      ).exec(svg);
      return { red: Number(fill?.[1]), green: Number(fill?.[2]) };
    };
    const low = fillOf('1', '8');
    expect(low.red).toBeGreaterThan(low.green + 100);
    const high = fillOf('1', '4');
    expect(high.green).toBeGreaterThan(high.red + 100);
    expect(textsOf(svg)).toEqual(expect.arrayContaining(['0', '0.25', '0.5', '1']));
  });

  it('renders the same input to the same bytes', async () => {
    expect(await renderSvg(heatMap(options))).toBe(await renderSvg(heatMap(options)));
  });
});
