import { describe, expect, it } from 'vitest';
import { studentAddress } from './settings.ts';

describe('studentAddress', () => {
  it('gives every person an address of their own, none of them loopback', () => {
    const addresses = Array.from({ length: 70_000 }, (_, index) => studentAddress(index + 1));
    expect(new Set(addresses).size).toBe(addresses.length);
    expect(
      addresses.every((address) => /^10\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./.test(address)),
    ).toBe(true);
    expect(addresses.slice(0, 2)).toEqual(['10.64.0.1', '10.64.0.2']);
    expect(studentAddress(300)).toBe('10.64.1.44');
  });
});
