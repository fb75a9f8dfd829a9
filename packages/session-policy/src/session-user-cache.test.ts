import { describe, expect, it } from 'vitest';
import { SessionUserCache } from './session-user-cache.ts';

describe('SessionUserCache', () => {
  it('forgets the least recently used session first once full', () => {
    const cache = new SessionUserCache(2);
    cache.set('a', 'alice');
    cache.set('b', 'bob');
    expect(cache.get('a')).toBe('alice');
    cache.set('c', 'carol');
    expect([cache.get('a'), cache.get('b'), cache.get('c')]).toEqual(['alice', undefined, 'carol']);
  });

  it('takes the latest user of a session and forgets a deleted one', () => {
    const cache = new SessionUserCache(2);
    cache.set('a', 'alice');
    cache.set('a', 'bob');
    expect(cache.get('a')).toBe('bob');
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
  });

  it('remembers nothing with a limit of 0, and refuses a limit that is no count', () => {
    const cache = new SessionUserCache(0);
    cache.set('a', 'alice');
    expect(cache.get('a')).toBeUndefined();
    for (const limit of [-1, 0.5, Number.NaN]) {
      expect(() => new SessionUserCache(limit)).toThrow(/non-negative integer/);
    }
  });
});
