import { lineChart, type TopLevelSpec } from '@storm-lab/charts';
import type { FleetRun } from './storm-cost.ts';

/**
 * The storm cost curve: logins per hour of production against the connections of one account,
 * storm and exempt, on log-log axes (an hour with no re-login is drawn at 1).
 */
export function curveChart(runs: readonly FleetRun[]): TopLevelSpec {
  return lineChart({
    title: 'Logins per hour against connections of one account',
    subtitle: 'one replica, one queue, rates scaled to production; log-log, 0 drawn at 1',
    points: runs.map((run) => ({
      series: run.exempt ? 'exempt' : 'storm',
      x: run.connections,
      y: Math.max(1, run.loginsPerHour),
    })),
    series: ['storm', 'exempt'],
    colors: { storm: '#d62728', exempt: '#2ca02c' },
    xTitle: 'connections',
    yTitle: 'logins per hour (production)',
    log: { x: true, y: true },
    dots: true,
  });
}
