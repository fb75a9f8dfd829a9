import { type ChildProcess, spawn } from 'node:child_process';
import { processExists, waitFor } from '@storm-lab/harness';
import { afterEach, describe, expect, it } from 'vitest';
import { descendantsOf, isLmsServer, RunQueueSampler, runnableOf } from './run-queue.ts';

const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.pid !== undefined && processExists(child.pid)) child.kill('SIGKILL');
  }
});

/** A process that keeps `hashes` PBKDF2s running on libuv's threads, named as `argv` says. */
function hashing(hashes: number, argv: string[]): ChildProcess {
  const script = `const { pbkdf2 } = require('node:crypto');
    const hash = () => pbkdf2('password', 'salt', 100000, 32, 'sha256', hash);
    for (let i = 0; i < ${hashes}; i++) hash();
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script, ...argv], { stdio: 'ignore' });
  children.push(child);
  return child;
}

describe('the run queue, read from /proc', () => {
  it("tells a process's hashing threads from its main thread", async () => {
    const child = hashing(2, []);
    // Two threads hash without a pause; the main thread sleeps in its timer, but runs a moment
    // at the end of each hash (the callback that starts the next): on a loaded machine a sample
    // may find it runnable too, so wait for one that finds it asleep.
    const seen = await waitFor(
      () => {
        const threads = runnableOf(child.pid as number);
        return threads.others === 2 && threads.main === 0 ? threads : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 5, what: 'two runnable hashing threads' },
    );
    expect(seen).toEqual({ main: 0, others: 2 });
    expect(runnableOf(2 ** 22 + 1)).toEqual({ main: 0, others: 0 }); // no such process
  });

  it("finds the LMS's server among a process's descendants, by its command line", () => {
    const lms = hashing(0, ['src/cli.ts', 'serve']);
    const seed = hashing(0, ['src/cli.ts', 'seed']);
    const found = descendantsOf(process.pid);
    expect(found).toContain(lms.pid);
    expect(found).not.toContain(seed.pid);
    expect(descendantsOf(lms.pid as number)).toEqual([]);
    expect(isLmsServer(['node', '--import', 'tsx', 'src/cli.ts', 'serve'])).toBe(true);
    expect(isLmsServer(['node', 'src/cli.ts'])).toBe(false);
  });

  it('counts the samples taken while the LMS hashes apart from the others', async () => {
    hashing(1, ['src/cli.ts', 'serve']);
    const sampler = new RunQueueSampler({ root: process.pid, intervalMs: 5 });
    sampler.start();
    try {
      await waitFor(
        () => {
          sampler.sample();
          return sampler.counts.whileHashing.length > 0 ? true : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 5, what: 'a sample while the stand-in LMS hashes' },
      );
    } finally {
      sampler.stop();
    }
    const total = (histogram: number[]) => histogram.reduce((sum, count) => sum + count, 0);
    expect(total(sampler.counts.whileHashing)).toBeGreaterThan(0);
    // Each sample went to exactly one of the two histograms.
    expect(total(sampler.counts.whileHashing) + total(sampler.counts.otherwise)).toBe(
      sampler.samples,
    );
  });
});
