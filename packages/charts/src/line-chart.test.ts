import { describe, expect, it } from 'vitest';
import { lineChart, type Point, renderSvg } from './index.ts';

/** The text of every <text> element of an SVG, in document order. */
const textsOf = (svg: string) =>
  [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((match) => match[1] ?? '');

const points: Point[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].flatMap((x) => [
  { series: 'storm', x, y: x === 0 ? 0 : 12 },
  { series: 'cure', x, y: x === 0 ? 8 : 0 },
]);

describe('lineChart + renderSvg', () => {
  it('renders a standalone SVG with a legend entry for every series, even one without points', async () => {
    const svg = await renderSvg(
      lineChart({
        title: 'Logins per second',
        points,
        series: ['storm', 'cure', 'flag-off'],
        xTitle: 'seconds of run',
        yTitle: 'logins/s',
      }),
    );
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).not.toMatch(/<script|<image|url\(http/i);
    const texts = textsOf(svg);
    expect(texts).toEqual(expect.arrayContaining(['Logins per second', 'seconds of run']));
    expect(texts).toEqual(expect.arrayContaining(['storm', 'cure', 'flag-off']));
    // Two series with points: two line paths.
    expect(svg.match(/class="mark-line role-mark/g)?.length).toBe(2);
  });

  it('puts a second time axis on top whose labels are the bottom ones times the factor', async () => {
    const svg = await renderSvg(
      lineChart({
        title: 't',
        points,
        xTitle: 'seconds of run',
        yTitle: 'y',
        topAxis: { title: 'seconds of production time', factor: 5 },
      }),
    );
    const texts = textsOf(svg);
    expect(texts).toContain('seconds of production time');
    // Bottom ticks 0..10, top ticks the same positions labelled 0..50.
    expect(texts).toEqual(expect.arrayContaining(['10', '50']));
    expect(texts).not.toContain('60');
  });

  it('uses the given colours and whole-number ticks, with a 0..1 scale for a flat 0', async () => {
    const zeros = points.map((point) => ({ ...point, y: 0 }));
    const svg = await renderSvg(
      lineChart({
        title: 'Restarts',
        points: zeros,
        xTitle: 'x',
        yTitle: 'restarts',
        integer: true,
        colors: { storm: '#d62728', cure: '#2ca02c' },
      }),
    );
    expect(svg).toContain('stroke="#d62728"');
    expect(svg).toContain('stroke="#2ca02c"');
    const texts = textsOf(svg);
    expect(texts).toEqual(expect.arrayContaining(['0', '1']));
    expect(texts).not.toContain('0.5');
  });

  it('draws log scales for a cost curve', async () => {
    const curve: Point[] = [1, 2, 4, 8, 16].flatMap((x) => [
      { series: 'storm', x, y: 100 * x * x },
      { series: 'exempt', x, y: 1 },
    ]);
    const svg = await renderSvg(
      lineChart({
        title: 'c',
        points: curve,
        xTitle: 'k',
        yTitle: 'h',
        log: { x: true, y: true },
        dots: true,
      }),
    );
    expect(textsOf(svg)).toEqual(expect.arrayContaining(['1', '10']));
    expect(svg.match(/class="mark-line role-mark/g)?.length).toBe(2);
  });

  it('renders the same input to the same bytes', async () => {
    const spec = () => lineChart({ title: 'same', points, xTitle: 'x', yTitle: 'y' });
    expect(await renderSvg(spec())).toBe(await renderSvg(spec()));
  });
});
