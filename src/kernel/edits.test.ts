/* Edits of the rule set as data: each operation, references by position and name, and the
 * errors a request gets; the set given is never changed. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyEdit, type Edit } from './edits.js';
import type { KernelRuleDoc, RuleSetDoc } from './rules.js';

const rule = (name: string): KernelRuleDoc => ({ name, match: { remote_port: 443 }, action: { dscp: 'AF21' } });
const set: RuleSetDoc = { qosd_rules: 1, enabled: true, rules: [rule('a'), rule('b'), rule('c')] };
const ids = [1, 2, 3];
const freeze = <T>(o: T): T => { Object.freeze(o); for (const v of Object.values(o as object)) if (v && typeof v === 'object') freeze(v); return o; };
freeze(set); freeze(ids);

const names = (s: RuleSetDoc) => s.rules.map((r) => r.name);
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

test('add: at the end, or at a position 1..n+1, with the next id', () => {
  let r = applyEdit(set, ids, { op: 'add', rule: rule('d') }, 10);
  assert.deepEqual([names(r.set), r.ids, r.nextId], [['a', 'b', 'c', 'd'], [1, 2, 3, 10], 11]);
  r = applyEdit(set, ids, { op: 'add', rule: rule('d'), position: 1 }, 10);
  assert.deepEqual([names(r.set), r.ids], [['d', 'a', 'b', 'c'], [10, 1, 2, 3]]);
  r = applyEdit(set, ids, { op: 'add', rule: rule('d'), position: 4 }, 10);
  assert.deepEqual(names(r.set), ['a', 'b', 'c', 'd']);
  for (const position of [0, 5, 1.5, '2']) assert.throws(() => applyEdit(set, ids, { op: 'add', rule: rule('d'), position }, 10), code('QOS_ERR_USAGE'), `position ${String(position)}`);
});

test('replace by position or name: a new rule, a new id (its counters start again)', () => {
  const r = applyEdit(set, ids, { op: 'replace', ref: 'b', rule: rule('x') }, 10);
  assert.deepEqual([names(r.set), r.ids, r.nextId], [['a', 'x', 'c'], [1, 10, 3], 11]);
  assert.deepEqual(applyEdit(set, ids, { op: 'replace', ref: '3', rule: rule('x') }, 10).ids, [1, 2, 10]);
});

test('delete and move keep the other rules and their ids (counters follow a moved rule)', () => {
  let r = applyEdit(set, ids, { op: 'delete', ref: 2 }, 10);
  assert.deepEqual([names(r.set), r.ids, r.nextId], [['a', 'c'], [1, 3], 10]);
  r = applyEdit(set, ids, { op: 'move', from: 'a', to: 3 }, 10);
  assert.deepEqual([names(r.set), r.ids], [['b', 'c', 'a'], [2, 3, 1]]);
  r = applyEdit(set, ids, { op: 'move', from: 3, to: 1 }, 10);
  assert.deepEqual([names(r.set), r.ids], [['c', 'a', 'b'], [3, 1, 2]]);
  assert.throws(() => applyEdit(set, ids, { op: 'move', from: 1, to: 4 }, 10), code('QOS_ERR_USAGE'));
});

test('a reference to no rule is QOS_ERR_NOT_FOUND, saying why', () => {
  const bad: Edit[] = [{ op: 'delete', ref: 4 }, { op: 'delete', ref: 0 }, { op: 'replace', ref: 'zz', rule: rule('x') }, { op: 'move', from: undefined, to: 1 }];
  for (const e of bad) assert.throws(() => applyEdit(set, ids, e, 10), code('QOS_ERR_NOT_FOUND'), JSON.stringify(e));
  assert.throws(() => applyEdit(set, ids, { op: 'delete', ref: 'zz' }, 10), /no rule zz \(the set has 3 rules; none by that name\)/);
  assert.throws(() => applyEdit(set, ids, { op: 'delete', ref: 9 }, 10), /no rule 9 \(the set has 3 rules\)/);
});

test('enable, disable, and import (the whole set, every rule a new id)', () => {
  const off = applyEdit(set, ids, { op: 'disable' }, 10);
  assert.deepEqual([off.set.enabled, names(off.set), off.ids, off.nextId], [false, ['a', 'b', 'c'], [1, 2, 3], 10]);
  assert.equal(applyEdit(off.set, off.ids, { op: 'enable' }, 10).set.enabled, true);
  const r = applyEdit(set, ids, { op: 'import', doc: { qosd_rules: 1, enabled: false, rules: [rule('y'), rule('z')] } }, 10);
  assert.deepEqual([r.set.enabled, names(r.set), r.ids, r.nextId], [false, ['y', 'z'], [10, 11], 12]);
});

test('one rule disabled and enabled again: in its place, with its id and name; the set stays enabled', () => {
  const off = applyEdit(set, ids, { op: 'disable', ref: 'b' }, 10);
  assert.deepEqual([off.set.enabled, names(off.set), off.set.rules.map((r) => r.enabled), off.ids, off.nextId], [true, ['a', 'b', 'c'], [undefined, false, undefined], [1, 2, 3], 10]);
  const on = applyEdit(off.set, off.ids, { op: 'enable', ref: 2 }, 10);
  assert.deepEqual(on.set.rules[1], rule('b'), 'enabled: the field is gone, the rule as it was');
  assert.deepEqual(on.ids, [1, 2, 3]);
  assert.throws(() => applyEdit(set, ids, { op: 'disable', ref: 'zz' }, 10), code('QOS_ERR_NOT_FOUND'));
});

test('the set and ids given are left as they were (frozen here: a write would throw)', () => {
  for (const e of [{ op: 'add', rule: rule('d'), position: 2 }, { op: 'move', from: 1, to: 3 }, { op: 'delete', ref: 'c' }, { op: 'replace', ref: 1, rule: rule('x') }, { op: 'disable' }, { op: 'disable', ref: 1 }] as Edit[]) applyEdit(set, ids, e, 10);
  assert.deepEqual([names(set), ids, set.enabled], [['a', 'b', 'c'], [1, 2, 3], true]);
});
