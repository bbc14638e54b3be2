// Bundles the dashboard's browser app (src/web/) into dist/web/: index.html, assets/app.js and
// assets/app.css (the CSS its modules import, uPlot's included). Everything is local: the
// dashboard's Content-Security-Policy allows nothing from another origin, and no inline script
// or style. Type-checking is tsc's (tsconfig.web.json); esbuild only bundles and minifies.
import { build } from 'esbuild';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

await build({
  entryPoints: { app: join(root, 'src', 'web', 'main.ts') },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome110', 'firefox110', 'safari16'],
  outdir: join(out, 'assets'),
  legalComments: 'none',
  logLevel: 'warning',
});

// the page declares an empty icon: a browser would otherwise ask for /favicon.ico, which the
// dashboard does not serve (a 404 on every first load)
writeFileSync(join(out, 'index.html'), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qosd</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script></head>
<body><div id="app"><p>Loading…</p></div></body></html>
`);
