/* The browser app's files, from dist/web/ (bundled by esbuild): `/` is index.html, `/assets/...`
 * the rest. A name is decoded once, resolved under the root and kept only if it is still under
 * it (no `..`, encoded or not, leads out), is a regular file (no directory listing), and its
 * real path is under the root's real path too (no link leads out). */

import { realpathSync, statSync } from 'node:fs';
import { extname, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

export interface StaticFile { path: string; type: string; size: number }

/** The file `urlPath` (the URL's path, still percent-encoded) names under `root`, or null: not
 * there, not a regular file, or outside the root. */
export function staticFile(root: string, urlPath: string): StaticFile | null {
  let name: string;
  try { name = decodeURIComponent(urlPath === '/' ? '/index.html' : urlPath); } catch { return null; }
  if (name.includes('\0') || name.includes('\\')) return null;
  const base = resolve(root);
  const path = resolve(base, `.${name}`);
  if (!path.startsWith(base + sep)) return null;
  let real: string;
  try {
    real = realpathSync(path);
    if (!real.startsWith(realpathSync(base) + sep)) return null;
    const st = statSync(real);
    if (!st.isFile()) return null;
    return { path: real, type: TYPES[extname(real).toLowerCase()] ?? 'application/octet-stream', size: st.size };
  } catch {
    return null;
  }
}
