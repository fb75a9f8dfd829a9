import { defineConfig } from 'vitest/config';

// As ../../vitest.shared.ts (which this tsconfig cannot import: the root package is CommonJS):
// the JSON report in test-results/ that .ci/run counts, and 60 s hooks, since the browser test
// starts Redis, the LMS and a watcher in beforeAll.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
});
