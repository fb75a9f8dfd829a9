import { sharedConfig } from '../vitest.shared.ts';

// A simulated run takes seconds of CPU; on a loaded 2-core machine, more of wall time.
// The test files share one process: each imports the LMS app, the watcher's loops and the storm
// runner (seconds of imports per file), and a simulated run leaves no global behind (it uninstalls
// its virtual clock, as a regime map running many cells in one process needs).
export default sharedConfig({ testTimeout: 120_000, isolate: false });
