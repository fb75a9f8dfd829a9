import { describe, expect, it } from 'vitest';
import { verdictOf } from './verdict.ts';

describe('verdictOf', () => {
  it.each([
    // connections, alive, logins, forbidden, verdict
    [4, 4, 4, 0, 'HEALTHY'],
    [4, 4, 8, 3, 'HEALTHY'], // two logins each at most and fewer 403s than connections
    [4, 4, 9, 0, 'STORM'], // more than two logins per connection
    [4, 4, 5, 4, 'STORM'], // a 403 per connection
    [8, 1, 1, 0, 'INCONCLUSIVE'], // seven died on a login timeout: nobody left to evict
    [8, 0, 0, 0, 'INCONCLUSIVE'],
    [8, 2, 40, 38, 'STORM'], // deaths do not hide a storm
    [1, 1, 1, 0, 'INCONCLUSIVE'], // one connection cannot evict another
  ] as const)(
    '%i connections, %i alive, %i logins, %i 403s: %s',
    (connections, connectionsAlive, logins, forbidden, verdict) => {
      expect(verdictOf({ connections, connectionsAlive, logins, forbidden })).toBe(verdict);
    },
  );
});
