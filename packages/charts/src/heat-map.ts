import type { TopLevelSpec } from 'vega-lite';

/** One cell of a {@link heatMap}: where it sits, its colour's value, and its text. */
export interface HeatCell {
  /** The panel (one per value, side by side, in `panels` order). */
  panel: string;
  x: string;
  y: string;
  /** The value the colour shows; null for a cell without one (drawn grey). */
  value: number | null;
  /** The text written in the cell; `\n` breaks lines. */
  label: string;
  /** Drawn with a heavy outline (e.g. the cells a rule puts on one side of a boundary). */
  outlined?: boolean;
}

/** What {@link heatMap} draws. */
export interface HeatMapOptions {
  title: string;
  /** Lines under the title, in grey. */
  subtitle?: string | readonly string[];
  cells: readonly HeatCell[];
  xTitle: string;
  yTitle: string;
  /** The colour legend's title. */
  valueTitle: string;
  /** Panels, x and y categories in this order (x left to right, y top to bottom). */
  panels: readonly string[];
  xOrder: readonly string[];
  yOrder: readonly string[];
  /** The values the colour scale spans, low to high; values beyond it take the end colours. */
  domain: readonly [number, number];
  /** A d3-format for the legend's values (default `.2~f`: 0, 0.25, 0.5). */
  valueFormat?: string;
  /** Colours from low to high (default: red, yellow, green). */
  range?: readonly string[];
  /** The side of one cell, in pixels. */
  cellSize?: number;
}

const RED_YELLOW_GREEN = ['#d73027', '#fc8d59', '#fee08b', '#d9ef8b', '#91cf60', '#1a9850'];

/** Five evenly spaced legend entries from `low` to `high`. */
const legendValues = (low: number, high: number) =>
  [0, 1, 2, 3, 4].map((step) => low + ((high - low) * step) / 4);

/**
 * A Vega-Lite spec for a heat map in side-by-side panels: categorical x and y, a colour per cell
 * on a continuous scale (grey where a cell has no value), a text in each cell, and an optional
 * heavy outline on some cells.
 *
 * @example
 * heatMap({ title: 'Regime map', cells, xTitle: 'LMS workers', yTitle: 'connections',
 *   valueTitle: 'storm / cure', panels: ['1 s', '5 s'], xOrder: ['1', '2'], yOrder: ['8', '4'],
 *   domain: [0, 1] });
 */
export function heatMap(options: HeatMapOptions): TopLevelSpec {
  const size = options.cellSize ?? 64;
  const subtitle =
    options.subtitle === undefined
      ? undefined
      : typeof options.subtitle === 'string'
        ? options.subtitle
        : [...options.subtitle];
  const [low, high] = options.domain;
  const x = { field: 'x', type: 'ordinal' as const, sort: [...options.xOrder] };
  const y = { field: 'y', type: 'ordinal' as const, sort: [...options.yOrder] };
  const rect = {
    // invalid: null keeps a cell without a value (drawn by the colour's condition).
    mark: { type: 'rect' as const, stroke: 'white', strokeWidth: 1, invalid: null },
    encoding: {
      x: { ...x, title: options.xTitle, axis: { labelAngle: 0 } },
      y: { ...y, title: options.yTitle },
      color: {
        condition: { test: 'datum.value === null', value: '#bdbdbd' },
        field: 'value',
        type: 'quantitative' as const,
        title: options.valueTitle,
        scale: {
          domain: [low, high],
          range: [...(options.range ?? RED_YELLOW_GREEN)],
          clamp: true,
        },
        // A symbol legend, not a gradient: vega numbers gradients per process, so a gradient's
        // id would differ from one render to the next and the same map would not give the same bytes.
        legend: {
          orient: 'right' as const,
          type: 'symbol' as const,
          symbolType: 'square',
          symbolSize: 200,
          values: legendValues(low, high),
          format: options.valueFormat ?? '.2~f',
        },
      },
    },
  };
  const outline = {
    transform: [{ filter: 'datum.outlined' }],
    mark: { type: 'rect' as const, fill: null, stroke: '#111', strokeWidth: 3 },
    encoding: { x, y },
  };
  const text = {
    mark: { type: 'text' as const, lineBreak: '\n', fontSize: 11, color: '#111' },
    encoding: { x, y, text: { field: 'label', type: 'nominal' as const } },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    description: `${options.title}: ${options.valueTitle} by ${options.xTitle} and ${options.yTitle}`,
    title:
      subtitle === undefined
        ? { text: options.title, anchor: 'start' }
        : { text: options.title, subtitle, anchor: 'start' },
    background: 'white',
    data: {
      values: options.cells.map((cell) => ({ ...cell, outlined: cell.outlined ?? false })),
    },
    facet: {
      column: {
        field: 'panel',
        type: 'nominal',
        sort: [...options.panels],
        title: null,
        header: { labelFontSize: 13, labelFontWeight: 'bold' },
      },
    },
    spec: {
      width: size * options.xOrder.length,
      height: size * options.yOrder.length,
      layer: [rect, outline, text],
    },
    config: { font: 'sans-serif', view: { stroke: null } },
  } as TopLevelSpec;
}
