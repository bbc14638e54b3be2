/* Which connection-mark masks and splits are accepted, how a mask splits into rule-number and
 * generation bits, what a refused one says, and how rules are numbered in it. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { ctMark, DEFAULT_CT_MASK, deposit, hex32, numberRules, parseCtMask, readCtMark } from './ctmark.js';

const split = (m: ReturnType<typeof ctMark>) => [hex32(m.numberMask), hex32(m.generationMask), m.maxRules, m.maxGeneration];

test('the default mask leaves the low byte alone: 16 bits of rule number above it (65,535 rules), 8 of generation on top', () => {
  assert.equal(hex32(DEFAULT_CT_MASK), '0xffffff00');
  assert.deepEqual(split(ctMark(DEFAULT_CT_MASK)), ['0x00ffff00', '0xff000000', 65535, 255]);
});

test('the whole mark splits as before masks: number in the low 16 bits, generation in the high 16', () => {
  assert.deepEqual(split(ctMark(0xffffffff)), ['0x0000ffff', '0xffff0000', 65535, 65535]);
});

test('a mask need not be one run of bits: the number takes its lowest set bits, the generation the rest', () => {
  assert.deepEqual(split(ctMark(0xf0f0f0f0)), ['0x0000f0f0', '0xf0f00000', 255, 255], 'a 16-bit mask: 8 generation bits by default');
  assert.deepEqual(split(ctMark(0x0ff0ff0f, 4)), ['0x00f0ff0f', '0x0f000000', 65535, 15]);
  assert.equal(deposit(0b1011, 0xf0f0), 0xb0);
  assert.equal(deposit(0x1ff, 0x0ff0ff0f), 0x1f0f);
  assert.equal(deposit(255, 0xff000000), 0xff000000, 'the top bit too (unsigned)');
});

test('a mask with few bits: the generation keeps 8 by default, fewer (down to 4) when asked', () => {
  assert.deepEqual(split(ctMark(0x00ffc000, 4)), ['0x000fc000', '0x00f00000', 63, 15], 'ten bits around mwan3 and the low byte');
  assert.deepEqual(split(ctMark(0x00fff000)), ['0x0000f000', '0x00ff0000', 15, 255]);
});

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_USAGE' && pattern.test(e.message), String(pattern));
}

test('refused with the reason: not a number, too few bits, a split with no number bits, too many number bits, too few generation bits', () => {
  refused(() => parseCtMask('ff00'), /--ct-mask takes a 32-bit mask such as 0xffffff00, not "ff00"/);
  refused(() => parseCtMask('0x1ffffffff'), /not "0x1ffffffff"/);
  refused(() => parseCtMask('0xf0'), /0x000000f0: has 4 bits; qosd needs at least 5/);
  refused(() => parseCtMask('0xff'), /0x000000ff: has 8 bits, and the generation takes 8 of them by default: give fewer with --ct-generation-bits/);
  refused(() => parseCtMask('0xffffffff', '8'), /leaves 24 bits for the rule number; at most 16 .* give 16 or more generation bits/);
  refused(() => parseCtMask('0xffff', '3'), /the generation takes 4 to 15 of the mask's 16 bits/);
  refused(() => parseCtMask('0xffff', 'x'), /--ct-generation-bits takes a whole number, not "x"/);
  assert.equal(parseCtMask('4294967040').mask, DEFAULT_CT_MASK, 'decimal');
  assert.equal(parseCtMask(' 0xFFFFFF00 ').mask, DEFAULT_CT_MASK, 'upper case, spaces');
});

test('rule numbers: kept while a rule and its action stay, new ones from a counter that moves on, gone ones reused only after it wraps', () => {
  const mark = ctMark(0xf0000fff, 4); // 16 bits: 12 for the number
  const r = (id: string, actionKey = 'a', origin: 'policy' | 'rules' = 'rules') => ({ rule: { id, origin }, actionKey });
  const first = numberRules(new Map(), [r('x'), r('y')], mark, 1);
  assert.deepEqual([[...first.nums], first.counter], [[['x', 1], ['y', 2]], 3]);
  const second = numberRules(first.numbers, [r('y'), r('z'), r('x', 'b')], mark, first.counter);
  assert.deepEqual([[...second.nums], second.counter], [[['y', 2], ['z', 3], ['x', 4]], 5], 'y kept; x changed action: a new number, not its old 1');
  const wrapped = numberRules(second.numbers, [r('y'), r('w')], mark, mark.maxRules);
  assert.deepEqual([...wrapped.nums], [['y', 2], ['w', mark.maxRules]]);
  const past = numberRules(wrapped.numbers, [r('y'), r('w'), r('v')], mark, wrapped.counter);
  assert.deepEqual(past.nums.get('v'), 1, 'after the wrap, the number of a gone rule');
  const tiny = ctMark(0x3f, 4); // 2 number bits: 3 rules
  assert.throws(() => numberRules(new Map(), [r('p1', 'a', 'policy'), r('a'), r('b'), r('c')], tiny, 1),
    (e: Error & { code?: string }) => e.code === 'QOS_ERR_RULES_INVALID' && /4 kernel rules \(1 from the policy, 3 from the rule set\).*at most 3 rules/.test(e.message));
});

test('a connection mark read back (qos explain): the number and generation the table deposited, the other bits ignored', () => {
  const def = ctMark(DEFAULT_CT_MASK);
  assert.deepEqual(readCtMark(0x01000100, def), { number: 1, generation: 1 });
  assert.deepEqual(readCtMark(0x0a0007ff, def), { number: 7, generation: 10 }, 'the low byte is another tool\'s');
  assert.deepEqual(readCtMark(0, def), { number: 0, generation: 0 });
  const odd = ctMark(0x0ff0ff0f, 4);
  const mark = deposit(0xabc, odd.numberMask) | deposit(5, odd.generationMask) | 0xf00f00f0; // every bit outside the mask set
  assert.deepEqual(readCtMark(mark, odd), { number: 0xabc, generation: 5 });
});
