export type { ConformanceOptions } from './conformance.ts';
export { CONFORMANCE_USERNAMES, runSessionRegistryConformance } from './conformance.ts';
export type { CrossProcessOptions } from './cross-process.ts';
export type { LoginOptions } from './fixtures.ts';
export { createTestUser, loginThrough, nextSessionId, parallelLogins } from './fixtures.ts';
export { createRacySessionRegistry } from './racy-registry.ts';
export type { ResolvingConformanceOptions } from './resolving-conformance.ts';
export { runResolvingRegistryConformance } from './resolving-conformance.ts';
