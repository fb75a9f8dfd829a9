export { type HeatCell, type HeatMapOptions, heatMap } from './heat-map.ts';
export { type LineChartOptions, lineChart, type Point } from './line-chart.ts';
export { renderSvg, type TopLevelSpec } from './render.ts';
