/* Headless Chromium (Debian's `chromium`), spawned with an argument vector: screenshots of
 * pages and images, and a page's DOM after its scripts ran. Optional: callers say what they
 * skip when it is not installed. */

import { pathToFileURL } from 'node:url';
import { QosError } from '../errors.js';
import { installed, runSync } from '../exec.js';

const CANDIDATES = ['chromium', 'chromium-browser', 'google-chrome'];

/** The browser's command, or null if none is installed. */
export function findChromium(): string | null {
  return CANDIDATES.find(installed) ?? null;
}

function headless(browser: string, extra: string[], file: string): string {
  // --no-sandbox: the sandbox refuses to run as root, which the demo needs to be.
  const argv = ['--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run', '--disable-dev-shm-usage', ...extra, pathToFileURL(file).href];
  return runSync([browser, ...argv], { timeoutMs: 60_000, pkg: 'chromium' }).stdout;
}

/** Renders file (HTML or SVG) into a PNG of width × height pixels. */
export function screenshot(browser: string, file: string, png: string, width: number, height: number): void {
  headless(browser, [`--screenshot=${png}`, `--window-size=${width},${height}`, '--virtual-time-budget=5000'], file);
}

/** The page's DOM as serialised after its scripts ran, laid out `width` pixels wide if given. */
export function dumpDom(browser: string, file: string, width?: number): string {
  return headless(browser, ['--dump-dom', ...(width ? [`--window-size=${width},1000`] : []), '--virtual-time-budget=5000'], file);
}

/** Renders a whole page into a PNG, however long: headless Chromium shoots the window only,
 * so a first load reads the size the page's script gives once drawn (body's data-page-width
 * and data-page-height: its scroll size at this width), and the second shoots a window that
 * size. Returns the PNG's size. */
export function screenshotPage(browser: string, file: string, png: string, width: number): { width: number; height: number } {
  const body = /<body([^>]*)>/.exec(dumpDom(browser, file, width))?.[1] ?? '';
  const size = (k: string) => Number(new RegExp(`data-page-${k}="(\\d+)"`).exec(body)?.[1] ?? NaN);
  const height = size('height');
  if (!(height > 0)) throw new QosError('QOS_ERR_INTERNAL', `${file} did not give its size (body data-page-height) after its scripts ran`);
  const w = Math.max(width, size('width') || 0);
  screenshot(browser, file, png, w, height);
  return { width: w, height };
}
