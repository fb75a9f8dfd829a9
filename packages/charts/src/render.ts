import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec } from 'vega-lite';

/**
 * Renders a Vega-Lite spec to a standalone SVG string in Node: no browser, no canvas, no network
 * (the data must be inline). Text widths are estimated, so labels may sit a few pixels off.
 *
 * @example
 * const svg = await renderSvg(lineChart({ title: 'Logins', points, xTitle: 's', yTitle: 'per s' }));
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
