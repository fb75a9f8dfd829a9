import { defineConfig } from 'vitest/config';

/**
 * Shared vitest settings. Every package also writes its JSON report to test-results/ (a turbo
 * output, so cached runs restore it) and .ci/run adds them up into one "N passed, N failed" line.
 */
export function sharedConfig(
  overrides: {
    testTimeout?: number;
    hookTimeout?: number;
    include?: string[];
    exclude?: string[];
    /** false: the package's test files share one process (imports paid once). */
    isolate?: boolean;
  } = {},
) {
  return defineConfig({
    test: {
      include: overrides.include ?? ['src/**/*.test.ts'],
      exclude: ['**/node_modules/**', ...(overrides.exclude ?? [])],
      testTimeout: overrides.testTimeout ?? 20_000,
      hookTimeout: overrides.hookTimeout ?? 60_000,
      isolate: overrides.isolate ?? true,
      reporters: ['default', 'json'],
      outputFile: { json: 'test-results/vitest.json' },
    },
  });
}
