/* The app's files: only regular files under the web root, whatever the path says. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOGIN_HTML, NOT_BUILT_HTML } from './login-page.js';
import { DEFAULT_WEB_ROOT } from './server.js';
import { staticFile } from './static-files.js';

function webRoot(): { dir: string; root: string } {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-web-'));
  const root = join(dir, 'web');
  mkdirSync(join(root, 'assets/sub'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html>');
  writeFileSync(join(root, 'assets/app.js'), 'x');
  writeFileSync(join(root, 'assets/app.css'), 'x');
  writeFileSync(join(root, 'assets/blob.bin'), 'x');
  writeFileSync(join(dir, 'secret'), 'outside');
  symlinkSync(join(dir, 'secret'), join(root, 'assets/link.js'));
  return { dir, root };
}

test('files under the root come with the content type of their extension; / is index.html', () => {
  const { dir, root } = webRoot();
  try {
    assert.equal(staticFile(root, '/')?.type, 'text/html; charset=utf-8');
    assert.equal(staticFile(root, '/assets/app.js')?.type, 'text/javascript; charset=utf-8');
    assert.equal(staticFile(root, '/assets/app.css')?.type, 'text/css; charset=utf-8');
    assert.equal(staticFile(root, '/assets/blob.bin')?.type, 'application/octet-stream');
    assert.equal(staticFile(root, '/assets/%61pp.js')?.type, 'text/javascript; charset=utf-8', 'a name is percent-decoded');
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('no way out of the root: .., encoded or doubly, a link, a NUL; no directory; nothing missing', () => {
  const { dir, root } = webRoot();
  try {
    for (const p of ['/assets/../../secret', '/assets/%2e%2e/%2e%2e/secret', '/assets/..%2f..%2fsecret', '/assets/%252e%252e/secret', '/assets/../../etc/passwd',
      '/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd', '/assets/..%5c..%5csecret', '/assets/link.js', '/assets/app.js%00.png', '/assets/%E0%A4%A', '/assets', '/assets/', '/assets/sub', '/assets/none.js']) {
      assert.equal(staticFile(root, p), null, p);
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a web root that is not there has no files', () => {
  assert.equal(staticFile('/nonexistent/qosd-web', '/'), null);
});

test('every page the dashboard serves declares its icon, so a browser never asks for /favicon.ico (which would be a 404 on each first load)', () => {
  const built = readFileSync(join(DEFAULT_WEB_ROOT, 'index.html'), 'utf8');
  for (const [name, html] of [['dist/web/index.html', built], ['the login page', LOGIN_HTML], ['the not-built page', NOT_BUILT_HTML]] as const) {
    assert.match(html, /<link rel="icon" href="data:,">/, name);
  }
});
