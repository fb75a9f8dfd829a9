import { describe, expect, it } from 'vitest';
import { percentile, perHour, verdictOf } from './figures.ts';

describe('verdictOf', () => {
  it('calls a fleet that logs in once per connection with no 403 healthy', () => {
    expect(verdictOf(8, 0, 8)).toBe('HEALTHY');
  });

  it('calls logins far above the connections a storm', () => {
    expect(verdictOf(17, 0, 8)).toBe('STORM');
  });

  it('calls 403s on the xqueue endpoints a storm even at few logins', () => {
    expect(verdictOf(8, 8, 8)).toBe('STORM');
  });
});

describe('percentile', () => {
  it('uses the nearest rank', () => {
    const values = [5, 1, 4, 2, 3, 6, 7, 8, 9, 10];
    expect(percentile(values, 50)).toBe(5);
    expect(percentile(values, 95)).toBe(10);
    expect(percentile([], 50)).toBeNull();
  });
});

describe('perHour', () => {
  it('normalises a compressed run to production time', () => {
    // 10 s at 20x stands for 200 s of production: 100 logins are 1800 per hour.
    expect(perHour(100, 10, 20)).toBe(1800);
    expect(perHour(5, 0, 20)).toBe(0);
  });
});
