import { describe, expect, it } from 'vitest';
import { createMemorySessionRegistry } from './memory-registry.ts';
import {
  createRacySessionRegistry,
  parallelLogins,
  runSessionRegistryConformance,
} from './testing/index.ts';

runSessionRegistryConformance({
  name: 'in-memory reference registry',
  create: createMemorySessionRegistry,
  parallelLogins: 64,
  rounds: 20,
});

describe('the conformance concurrency check', () => {
  it('catches an upstream-style read-modify-write registry', async () => {
    const { live } = await parallelLogins(createRacySessionRegistry(), 50);
    expect(live.length).toBeGreaterThan(1);
  });
});
