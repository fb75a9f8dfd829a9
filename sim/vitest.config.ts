import { sharedConfig } from '../vitest.shared.ts';

// A simulated run takes seconds of CPU; on a loaded 2-core machine, more of wall time.
export default sharedConfig({ testTimeout: 120_000 });
