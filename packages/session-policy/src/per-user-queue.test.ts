import { describe, expect, it } from 'vitest';
import { PerUserQueue } from './per-user-queue.ts';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('PerUserQueue', () => {
  it("runs one key's steps one after another, in order, and other keys' beside them", async () => {
    const queue = new PerUserQueue();
    const events: string[] = [];
    const step = (name: string) => async () => {
      events.push(`${name} start`);
      await tick();
      events.push(`${name} end`);
      return name;
    };
    const results = await Promise.all([
      queue.run('alice', step('a1')),
      queue.run('alice', step('a2')),
      queue.run('bob', step('b1')),
    ]);
    expect(results).toEqual(['a1', 'a2', 'b1']);
    expect(events.indexOf('a1 end')).toBeLessThan(events.indexOf('a2 start'));
    // bob's step did not wait for alice's.
    expect(events.indexOf('b1 start')).toBeLessThan(events.indexOf('a1 end'));
  });

  it('goes on after a failed step, gives the failure to its caller, and forgets idle keys', async () => {
    const queue = new PerUserQueue();
    const failed = queue.run('alice', () => Promise.reject(new Error('boom')));
    const next = queue.run('alice', () => 'after');
    expect(queue.size).toBe(1);
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe('after');
    await tick();
    expect(queue.size).toBe(0);
  });

  it('counts the steps waiting behind the running one, per key', async () => {
    const queue = new PerUserQueue();
    const seen: number[] = [];
    const step = () => async () => {
      seen.push(queue.waiting('alice'));
      await tick();
    };
    const all = Promise.all([
      queue.run('alice', step()),
      queue.run('alice', step()),
      queue.run('alice', () => Promise.reject(new Error('boom'))).catch(() => undefined),
      queue.run('alice', step()),
    ]);
    expect(queue.waiting('bob')).toBe(0);
    await all;
    // The failed step still counted until it settled.
    expect(seen).toEqual([3, 2, 0]);
    expect(queue.waiting('alice')).toBe(0);
  });
});
