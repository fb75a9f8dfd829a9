import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A file the dashboard loads, served by the LMS itself (no CDN, no build step). */
export interface Asset {
  body: string;
  contentType: string;
}

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';
const require = createRequire(import.meta.url);
const own = (name: string) => fileURLToPath(new URL(`./public/${name}`, import.meta.url));

// The URL name of each asset and where it lives; nothing else under /dashboard/assets/ exists,
// so no request path ever reaches the file system.
const FILES: Record<string, { path: () => string; contentType: string }> = {
  'uplot.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), contentType: JS },
  'uplot.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), contentType: CSS },
  'dashboard.js': { path: () => own('dashboard.js'), contentType: JS },
  'dashboard-view.js': { path: () => own('dashboard-view.js'), contentType: JS },
  'dashboard-sessions.js': { path: () => own('dashboard-sessions.js'), contentType: JS },
  'dashboard-login.js': { path: () => own('dashboard-login.js'), contentType: JS },
  'dashboard.css': { path: () => own('dashboard.css'), contentType: CSS },
};

/** The asset names the dashboard may request. */
export const ASSET_NAMES: readonly string[] = Object.keys(FILES);

/**
 * Returns a reader of the dashboard's assets that reads each file once, on first use.
 *
 * @example
 * const assets = createAssetReader();
 * assets('uplot.js')?.contentType; // 'text/javascript; charset=utf-8'
 */
export function createAssetReader(): (name: string) => Asset | null {
  const cache = new Map<string, Asset>();
  return (name) => {
    const file = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
    if (!file) return null;
    let asset = cache.get(name);
    if (!asset) {
      asset = { body: readFileSync(file.path(), 'utf8'), contentType: file.contentType };
      cache.set(name, asset);
    }
    return asset;
  };
}
