/* The Policy page's line diff: it gives back both texts, keeps as many lines as the longest
 * common subsequence (a shortest edit), and collapses long unchanged runs around the changes. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collapse, diffLines, splitLines, type DiffLine } from './line-diff.js';

/** The longest common subsequence's length, by the textbook table. */
function lcs(a: string[], b: string[]): number {
  const t = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) t[i]![j] = a[i - 1] === b[j - 1] ? t[i - 1]![j - 1]! + 1 : Math.max(t[i - 1]![j]!, t[i]![j - 1]!);
  return t[a.length]![b.length]!;
}

const olds = (d: DiffLine[]) => d.filter((l) => l.kind !== 'add').map((l) => l.text);
const news = (d: DiffLine[]) => d.filter((l) => l.kind !== 'del').map((l) => l.text);

test('one changed line: removed then added, with the line numbers of each side', () => {
  const d = diffLines(splitLines('rules:\n  - a\n  - b: AF21\n  - c\n'), splitLines('rules:\n  - a\n  - b: EF\n  - c\n'));
  assert.deepEqual(d.filter((l) => l.kind !== 'same'), [{ kind: 'del', text: '  - b: AF21', old: 3 }, { kind: 'add', text: '  - b: EF', new: 3 }]);
  assert.deepEqual(d.at(-1), { kind: 'same', text: '  - c', old: 4, new: 4 });
});

test('random texts: both sides come back, and the kept lines are a longest common subsequence', () => {
  let seed = 7;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  for (let t = 0; t < 3000; t++) {
    const a = Array.from({ length: rnd(14) }, () => 'xyzw'[rnd(4)]!);
    const b = Array.from({ length: rnd(14) }, () => 'xyzw'[rnd(4)]!);
    const d = diffLines(a, b);
    assert.deepEqual([olds(d), news(d)], [a, b]);
    assert.equal(d.filter((l) => l.kind === 'same').length, lcs(a, b), `${a.join('')} → ${b.join('')}`);
  }
});

test('empty sides, and splitLines: a final newline ends the last line', () => {
  assert.deepEqual(splitLines(''), []);
  assert.deepEqual(splitLines('a\nb'), ['a', 'b']);
  assert.deepEqual(splitLines('a\nb\n'), ['a', 'b']);
  assert.deepEqual(diffLines([], ['a']), [{ kind: 'add', text: 'a', new: 1 }]);
  assert.deepEqual(diffLines(['a'], []), [{ kind: 'del', text: 'a', old: 1 }]);
});

test('collapse: context lines around each change, a skip row for the rest of an unchanged run', () => {
  const a = Array.from({ length: 30 }, (_, i) => `line ${i + 1}`);
  const b = [...a];
  b[14] = 'changed';
  const rows = collapse(diffLines(a, b), 3);
  assert.deepEqual(rows.map((r) => (r.kind === 'skip' ? `skip ${r.lines}` : r.kind === 'same' ? String(r.old) : r.kind)),
    ['skip 11', '12', '13', '14', 'del', 'add', '16', '17', '18', 'skip 12']);
  assert.deepEqual(collapse(diffLines(['a', 'b'], ['a', 'b'])), [{ kind: 'skip', lines: 2 }]);
});
