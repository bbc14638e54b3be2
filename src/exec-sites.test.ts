/* Programs are run one way (exec.ts): no other file outside the tests spawns one itself. Types
 * from node:child_process may be named (a handle's process); nothing may be called from it. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { SRC, sources } from './source-files.js';

/** the files allowed to use node:child_process, each with why */
const ALLOWED: Record<string, string> = {
  'exec.ts': 'the one way to run programs',
};

/** The node:child_process imports of a source text that bring in more than types. */
export function spawningImports(text: string): string[] {
  const found = text.match(/^\s*import\s+(?!type\s)[^;]*?from\s+['"](node:)?child_process['"]/gms) ?? [];
  const dynamic = text.match(/import\(\s*['"](node:)?child_process['"]\s*\)|require\(\s*['"](node:)?child_process['"]\s*\)/g) ?? [];
  // `import { type A, type B }` names types only
  return [...found.filter((i) => !/^\s*import\s*\{\s*(type\s+\w+\s*,?\s*)+\}/.test(i)), ...dynamic];
}

test('the scan tells an import that spawns from one that names types', () => {
  assert.equal(spawningImports("import { spawn } from 'node:child_process';").length, 1);
  assert.equal(spawningImports("import { spawn, type ChildProcess } from 'node:child_process';").length, 1);
  assert.equal(spawningImports("import * as cp from 'child_process';").length, 1);
  assert.equal(spawningImports("const cp = await import('node:child_process');").length, 1);
  assert.equal(spawningImports("import type { ChildProcess } from 'node:child_process';").length, 0);
  assert.equal(spawningImports("import { type ChildProcess } from 'node:child_process';").length, 0);
});

test('no file but exec.ts runs programs itself (tests aside)', () => {
  const offenders = sources(SRC)
    .map((f) => relative(SRC, f))
    .filter((f) => !(f in ALLOWED) && spawningImports(readFileSync(join(SRC, f), 'utf8')).length > 0);
  assert.deepEqual(offenders, [], 'run programs with exec.ts (run, runSync, start)');
});
