import { describe, expect, it } from 'vitest';
import { percentile, perHour, perMinute, verdictOf } from './figures.ts';

describe('verdictOf', () => {
  const healthy = { logins: 8, forbidden: 0, totalConnections: 8, graded: 24, submitted: 24 };

  it('calls a fleet that logs in once per connection, with no 403 and everything graded, healthy', () => {
    expect(verdictOf(healthy)).toBe('HEALTHY');
  });

  it('calls logins far above the connections a storm', () => {
    expect(verdictOf({ ...healthy, logins: 17 })).toBe('STORM');
  });

  it('calls 403s at one login per connection a stall: evicted connections that never recover', () => {
    expect(verdictOf({ ...healthy, forbidden: 8 })).toBe('STALL');
    expect(verdictOf({ ...healthy, forbidden: 7 })).toBe('HEALTHY');
  });

  it('calls a storm a storm even when grading also fell behind', () => {
    expect(verdictOf({ ...healthy, logins: 40, graded: 2 })).toBe('STORM');
  });

  it('calls few logins and 403s but less than 90% graded a stall', () => {
    expect(verdictOf({ ...healthy, forbidden: 7, graded: 21 })).toBe('STALL');
    expect(verdictOf({ ...healthy, graded: 0 })).toBe('STALL');
  });

  it('calls exactly 90% graded healthy, and a run with nothing submitted healthy', () => {
    expect(verdictOf({ ...healthy, graded: 9, submitted: 10 })).toBe('HEALTHY');
    expect(verdictOf({ ...healthy, graded: 0, submitted: 0 })).toBe('HEALTHY');
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

describe('perMinute', () => {
  it('normalises a compressed run to production minutes, one decimal below 100', () => {
    // 9 s at 5x stands for 45 s of production: 24 graded are 32 per minute.
    expect(perMinute(24, 9, 5)).toBe(32);
    expect(perMinute(7, 9, 5)).toBe(9.3);
    expect(perMinute(1000, 6, 5)).toBe(2000);
    expect(perMinute(3, 0, 5)).toBe(0);
  });
});
