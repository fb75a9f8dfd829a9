import type { TopLevelSpec } from 'vega-lite';

/** One point of one named series. */
export interface Point {
  series: string;
  x: number;
  y: number;
}

/** What {@link lineChart} draws. */
export interface LineChartOptions {
  title: string;
  /** One line under the title, in grey. */
  subtitle?: string;
  points: readonly Point[];
  xTitle: string;
  yTitle: string;
  /** Every series in this order, in the legend and the colours, even one without points. */
  series?: readonly string[];
  /** Colour per series name; others take the default palette. */
  colors?: Readonly<Record<string, string>>;
  /** A second x axis on top, on the same scale, whose labels are the bottom's times `factor`. */
  topAxis?: { title: string; factor: number };
  /** Logarithmic axes (values must then be > 0). */
  log?: { x?: boolean; y?: boolean };
  /** 'step-after' for counts that hold between samples; 'linear' (default) otherwise. */
  interpolate?: 'linear' | 'step-after' | 'monotone';
  /** Whole-number values (counts): whole-number ticks, and a 0..1 scale when every value is 0. */
  integer?: boolean;
  /** Draw a dot at each point (for a few points, such as a curve of runs). */
  dots?: boolean;
  width?: number;
  height?: number;
}

const scaleOf = (log: boolean | undefined) => (log ? { type: 'log' as const } : { zero: true });

/**
 * A Vega-Lite spec for one multi-series line chart: every series on shared axes, a legend at the
 * right, optionally a second time axis on top (run seconds below, production seconds above).
 *
 * @example
 * lineChart({ title: 'Logins per second', points, xTitle: 'run seconds', yTitle: 'logins/s' });
 */
export function lineChart(options: LineChartOptions): TopLevelSpec {
  const names = options.series ?? [...new Set(options.points.map((point) => point.series))];
  const colors = options.colors ?? {};
  const palette = ['#1f77b4', '#d62728', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2'];
  const range = names.map(
    (name, index) => colors[name] ?? palette[index % palette.length] ?? '#333',
  );
  const allZero = options.integer && options.points.every((point) => point.y === 0);
  const x = {
    field: 'x',
    type: 'quantitative' as const,
    title: options.xTitle,
    scale: { ...scaleOf(options.log?.x), nice: false },
  };
  const line = {
    mark: {
      type: 'line' as const,
      interpolate: options.interpolate ?? 'linear',
      strokeWidth: 2,
      point: options.dots ?? false,
    },
    encoding: {
      x: { ...x, axis: { orient: 'bottom' as const, grid: true, tickCount: 10 } },
      y: {
        field: 'y',
        type: 'quantitative' as const,
        title: options.yTitle,
        scale: allZero ? { domain: [0, 1] } : scaleOf(options.log?.y),
        axis: options.integer ? { tickMinStep: 1, format: 'd' } : {},
      },
      color: {
        field: 'series',
        type: 'nominal' as const,
        title: null,
        scale: { domain: [...names], range },
        legend: { orient: 'right' as const, labelLimit: 260 },
      },
    },
  };
  const top = options.topAxis;
  const layers = top
    ? [
        line,
        {
          // Invisible points that only carry the top axis on the shared x scale.
          mark: { type: 'point' as const, opacity: 0 },
          encoding: {
            x: {
              ...x,
              axis: {
                orient: 'top' as const,
                title: top.title,
                tickCount: 10,
                grid: false,
                labelExpr: `format(datum.value * ${top.factor}, ',')`,
              },
            },
          },
        },
      ]
    : [line];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    // The SVG's aria-label, for screen readers.
    description: options.subtitle ? `${options.title}: ${options.subtitle}` : options.title,
    title: options.subtitle
      ? { text: options.title, subtitle: options.subtitle, anchor: 'start' }
      : { text: options.title, anchor: 'start' },
    width: options.width ?? 560,
    height: options.height ?? 220,
    background: 'white',
    data: { values: options.points.map((point) => ({ ...point })) },
    layer: layers,
    resolve: { axis: { x: 'independent' } },
    config: { font: 'sans-serif', view: { stroke: '#ccc' } },
  } as TopLevelSpec;
}
