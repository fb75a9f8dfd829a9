import { sharedConfig } from '../../vitest.shared.ts';

// The browser test starts Redis, the LMS and a watcher in beforeAll: the shared 60 s hooks.
export default sharedConfig();
