import { sharedConfig } from '../../vitest.shared.ts';

// `pnpm mutation` (StrykerJS) switches a mutant on inside the test process only. It runs the
// tests of the mutated modules and the route tests that drive them in-process; tests that run
// the LMS in other processes or worker threads cannot see a mutant, and the 1,000-case fuzz
// suites, the browser test and the in-process login race (200 rounds of 32 logins, which
// better-sqlite3's synchronous calls serialize anyway) only cost time there. `pnpm test` runs
// them all.
export default sharedConfig({
  include: [
    'src/auth/*.test.ts',
    'src/db/tick-batch.test.ts',
    'src/policy/*.test.ts',
    'src/queue/*.test.ts',
    'src/routes/*.test.ts',
    'src/sessions/*.test.ts',
  ],
  exclude: [
    'src/**/*-processes.test.ts',
    'src/**/*-threads.test.ts',
    'src/**/*.fuzz.test.ts',
    'src/auth/login-race.test.ts',
  ],
});
