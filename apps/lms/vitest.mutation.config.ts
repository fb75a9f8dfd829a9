import { sharedConfig } from '../../vitest.shared.ts';

// `pnpm mutation` (StrykerJS) switches a mutant on inside the test process only: tests that run
// the LMS in other processes or worker threads, or drive a browser, cannot see it and only cost
// time there. `pnpm test` runs them all.
export default sharedConfig({
  exclude: [
    'src/**/*-processes.test.ts',
    'src/**/*-threads.test.ts',
    'src/server.test.ts',
    'src/cli.test.ts',
    'src/db/database-busy.test.ts',
    'src/**/*.browser.test.ts',
  ],
});
