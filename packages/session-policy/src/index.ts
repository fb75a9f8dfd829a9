export type {
  EffectiveRule,
  ExemptionMatch,
  LiveSession,
  LoginContext,
  LoginDecision,
  LoginLimit,
  PolicyUser,
  RuleSource,
} from './decide.ts';
export {
  applyLimit,
  DEFAULT_POOL,
  decideLogin,
  findExemption,
  loginAdmission,
  resolveLogin,
  resolveRule,
  suggestExemption,
} from './decide.ts';
export type { MemorySessionRegistryOptions } from './memory-registry.ts';
export { createMemorySessionRegistry } from './memory-registry.ts';
export type {
  AdmissionPlan,
  AdmitRequest,
  AdmitResult,
  RemoveAllOfOptions,
  ResolvingSessionRegistry,
  SessionDetails,
  SessionRecord,
  SessionRegistry,
} from './registry.ts';
export { admitResult, DEFAULT_SESSION_TTL_MS, planAdmission } from './registry.ts';
export type {
  AccountMatch,
  AccountRule,
  OnLimit,
  PolicySettings,
  PolicySettingsInput,
  SessionScope,
} from './settings.ts';
export {
  MAX_NAME_LENGTH,
  MAX_NAMES,
  MAX_RULES,
  POLICY_ENV,
  POLICY_SETTINGS_SCHEMA,
  PolicySettingsError,
  parseSettings,
  settingsFromEnv,
} from './settings.ts';
export type {
  AccountRates,
  StormAlert,
  StormDetector,
  StormDetectorOptions,
} from './storm-detector.ts';
export { createStormDetector } from './storm-detector.ts';
