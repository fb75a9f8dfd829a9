import { existsSync } from 'node:fs';

/** What a test gives playwright-core's `chromium.launch` to drive Debian's Chromium. */
export interface ChromiumLaunch {
  executablePath: string;
  args: string[];
}

/**
 * Debian's Chromium (`apt-get install chromium`, or `CHROMIUM_PATH`), headless and quiet on a
 * closed network: playwright never downloads a browser here. Throws, saying how to install it,
 * when it is missing.
 *
 * @example
 * const browser = await chromium.launch(chromiumLaunch());
 */
export function chromiumLaunch(): ChromiumLaunch {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(
      `Chromium not found at ${executablePath}: apt-get install chromium, or set CHROMIUM_PATH`,
    );
  }
  return {
    executablePath,
    // Without the background-networking flags Chromium keeps dialling out on a closed network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  };
}
