import { readFile } from 'node:fs/promises';
import { capturedIo } from '@storm-lab/cli-kit';
import { describe, expect, it } from 'vitest';
import { main, parseBenchArgs } from './bench.ts';
import { type Results, renderMarkdown } from './markdown.ts';

describe('pnpm bench command line', () => {
  it('runs every section by default and some with --only', () => {
    expect(parseBenchArgs([])).toMatchObject({
      quick: false,
      only: ['throughput', 'login', 'fleet', 'curve', 'topology', 'sim'],
    });
    expect(parseBenchArgs(['--quick', '--only', 'sim, login', '--out', '/tmp/b'])).toEqual({
      quick: true,
      only: ['sim', 'login'],
      outDir: '/tmp/b',
    });
    expect(parseBenchArgs(['-h'])).toBe('help');
  });

  it('says what is wrong with an unknown section or flag and returns 2, without exiting', async () => {
    const io = capturedIo();
    expect(await main(['--only', 'fleet,speed'], io)).toBe(2);
    expect(await main(['--fast'], io)).toBe(2);
    expect(io.stderr).toContain(
      '--only: unknown section speed (choose from throughput, login, fleet, curve, topology, sim) (see pnpm bench --help)',
    );
    expect(io.stderr).toContain("Unknown option '--fast'");
  });
});

describe('the results as markdown', () => {
  it("names the storm curve's chart it is written beside: a partial run's is its own", async () => {
    const latest = JSON.parse(
      await readFile(new URL('../results/latest.json', import.meta.url), 'utf8'),
    ) as Results;
    expect(latest.stormCurve?.length).toBeGreaterThan(0);
    expect(renderMarkdown(latest)).toContain('chart: storm-curve.svg)');
    const partial = renderMarkdown(latest, 'partial-storm-curve.svg');
    expect(partial).toContain('chart: partial-storm-curve.svg)');
    expect(partial).not.toContain('chart: storm-curve.svg');
  });
});
