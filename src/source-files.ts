/* The project's TypeScript sources, for the tests that hold every file to a rule (how programs
 * are run, which errors are thrown). */

import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** src/, seen from dist/ where the tests run. */
export const SRC = join(dirname(fileURLToPath(import.meta.url)), '../src');

/** Every .ts file under dir, tests aside. */
export function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}
