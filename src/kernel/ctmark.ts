/* The bits of the connection mark (ct mark) the kernel table may use. The table caches each
 * flow's classification there: the generation of the rules that classified it and the number
 * of the rule that decided it (plan.ts). Other software keeps its own state in the same
 * 32 bits (DSCP saved for ingress by dscpclassify and QoSmate in the low byte, routing marks of
 * mwan3), so qosd takes only the bits of a mask, reads only those and writes no other.
 * docs/kernel-rules.md, "The connection mark". */

import { QosError } from '../errors.js';

/** The bits qosd leaves alone by default: the low byte, where tools that save a DSCP for the
 * way back keep it (nft-dscpclassify 0x000000ff, QoSmate's `ctinfo dscp 63 128`). */
export const DEFAULT_CT_MASK = 0xffffff00;
/** Rule numbers never need more than 16 bits: a set holds at most 65,535 rules. */
export const MAX_NUMBER_BITS = 16;
/** Fewer generation bits make a flow idle across 2^bits - 1 changes (the generation wraps
 * round to its own) keep its old classification too easily. */
export const MIN_GENERATION_BITS = 4;
/** Without --ct-generation-bits: as many as the number leaves, at least this. */
export const DEFAULT_GENERATION_BITS = 8;

export interface CtMark {
  /** every bit the table reads or writes; it never changes another */
  mask: number;
  /** the bits holding the rule number: the lowest `numberBits` bits of the mask */
  numberMask: number;
  /** the bits holding the generation: the others */
  generationMask: number;
  numberBits: number;
  generationBits: number;
  /** rule numbers are 1..maxRules (0: no rule took the flow) */
  maxRules: number;
  /** generations are 1..maxGeneration (0: never classified) */
  maxGeneration: number;
}

const bitCount = (m: number) => { let n = 0; for (let x = m >>> 0; x; x &= x - 1) n++; return n; };

/** The 32-bit value as nftables prints it: 0x00ffff00. */
export const hex32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** Spreads v's bits, lowest first, over the set bits of mask (so a mask need not be one run
 * of bits: a number in 0x0000ff0f is written into those twelve bits). */
export function deposit(v: number, mask: number): number {
  let out = 0;
  for (let bit = 1, m = mask >>> 0; m; bit *= 2) {
    const low = m & -m;
    if (v & bit) out |= low;
    m &= m - 1;
  }
  return out >>> 0;
}

/** The split of a mask into number and generation bits; throws QOS_ERR_USAGE (changing
 * nothing) for a mask or a split the table cannot work with. */
export function ctMark(mask: number, generationBits?: number): CtMark {
  const problem = (why: string) => new QosError('QOS_ERR_USAGE', `--ct-mask ${Number.isInteger(mask) && mask >= 0 ? hex32(mask) : String(mask)}${generationBits === undefined ? '' : ` with --ct-generation-bits ${generationBits}`}: ${why} (docs/kernel-rules.md, "The connection mark")`);
  if (!Number.isInteger(mask) || mask < 0 || mask > 0xffffffff) throw problem('a mask is a 32-bit number');
  const bits = bitCount(mask);
  const least = MIN_GENERATION_BITS + 1;
  if (bits < least) throw problem(`has ${bits} bits; qosd needs at least ${least}: ${MIN_GENERATION_BITS} for the generation and one for the rule number`);
  let gen: number;
  if (generationBits === undefined) {
    gen = Math.max(DEFAULT_GENERATION_BITS, bits - MAX_NUMBER_BITS);
    if (bits - gen < 1) throw problem(`has ${bits} bits, and the generation takes ${gen} of them by default: give fewer with --ct-generation-bits (at least ${MIN_GENERATION_BITS}), or a mask with more bits`);
  } else {
    if (!Number.isInteger(generationBits) || generationBits < MIN_GENERATION_BITS || generationBits > bits - 1) throw problem(`the generation takes ${MIN_GENERATION_BITS} to ${bits - 1} of the mask's ${bits} bits`);
    gen = generationBits;
    if (bits - gen > MAX_NUMBER_BITS) throw problem(`leaves ${bits - gen} bits for the rule number; at most ${MAX_NUMBER_BITS} are used (65,535 rules): give ${bits - MAX_NUMBER_BITS} or more generation bits, or a smaller mask`);
  }
  const numberBits = bits - gen;
  let numberMask = 0;
  for (let m = mask >>> 0, k = 0; k < numberBits; k++) { const low = m & -m; numberMask |= low; m &= m - 1; }
  numberMask >>>= 0;
  return {
    mask: mask >>> 0, numberMask, generationMask: (mask & ~numberMask) >>> 0, numberBits, generationBits: gen,
    maxRules: 2 ** numberBits - 1, maxGeneration: 2 ** gen - 1,
  };
}

/** `--ct-mask` as given: hexadecimal (0x...) or decimal. */
export function parseCtMask(text: string, generationBits?: string): CtMark {
  const t = text.trim();
  const mask = /^0x[0-9a-f]{1,8}$/i.test(t) ? parseInt(t.slice(2), 16) : /^\d{1,10}$/.test(t) ? Number(t) : NaN;
  if (Number.isNaN(mask)) throw new QosError('QOS_ERR_USAGE', `--ct-mask takes a 32-bit mask such as ${hex32(DEFAULT_CT_MASK)}, not "${text}"`);
  let gen: number | undefined;
  if (generationBits !== undefined) {
    if (!/^\d{1,2}$/.test(generationBits.trim())) throw new QosError('QOS_ERR_USAGE', `--ct-generation-bits takes a whole number, not "${generationBits}"`);
    gen = Number(generationBits);
  }
  return ctMark(mask, gen);
}

/** The inverse of deposit: the set bits of mask in v, gathered lowest first into a number. */
export function extract(v: number, mask: number): number {
  let out = 0;
  for (let bit = 1, m = mask >>> 0; m; bit *= 2) {
    const low = m & -m;
    if ((v >>> 0) & low) out += bit;
    m &= m - 1;
  }
  return out;
}

/** A connection mark read back (`qos explain`): the rule number and the generation the table
 * wrote in its bits (0 and 0: a flow it never classified); the other bits are not qosd's. */
export function readCtMark(mark: number, m: CtMark): { number: number; generation: number } {
  return { number: extract(mark, m.numberMask), generation: extract(mark, m.generationMask) };
}

/** What status and the start-up log say about the bits. */
export function describeCtMark(m: CtMark): { ct_mask: string; ct_rule_bits: string; ct_generation_bits: string; max_rules: number } {
  return { ct_mask: hex32(m.mask), ct_rule_bits: hex32(m.numberMask), ct_generation_bits: hex32(m.generationMask), max_rules: m.maxRules };
}

/** The number a rule has in the mark, and the key of the action it was given for. */
export interface RuleNumber { num: number; actionKey: string }

/** Rule numbers for the connection mark, one per rule and action (pure): a rule keeps its
 * number while it stays as it is, new ones are taken from `counter`, which only moves on, so
 * that a flow classified before a change never meets a number that means something else now.
 * Only when the counter wraps are numbers of gone rules reused. Throws QOS_ERR_RULES_INVALID
 * when the mark's number bits cannot number every rule. */
export function numberRules(prev: ReadonlyMap<string, RuleNumber>, rules: readonly { rule: { id: string; origin: 'policy' | 'rules' }; actionKey: string }[], mark: CtMark, counter: number): { nums: Map<string, number>; numbers: Map<string, RuleNumber>; counter: number } {
  const max = mark.maxRules;
  if (rules.length > max) {
    let fromPolicy = 0;
    for (const r of rules) if (r.rule.origin === 'policy') fromPolicy++;
    throw new QosError('QOS_ERR_RULES_INVALID', `${rules.length} kernel rules (${fromPolicy} from the policy, ${rules.length - fromPolicy} from the rule set), but the connection-mark bits ${hex32(mark.mask)} `
      + `leave ${mark.numberBits} bits for the rule number: at most ${max} rules. Give --ct-mask more bits (or fewer to the generation, --ct-generation-bits), or fewer rules (docs/kernel-rules.md, "The connection mark")`);
  }
  const nums = new Map<string, number>();
  const used = new Set<number>();
  for (const c of rules) {
    const had = prev.get(c.rule.id);
    if (had && had.actionKey === c.actionKey) { nums.set(c.rule.id, had.num); used.add(had.num); }
  }
  let next = counter;
  for (const { rule: r } of rules) {
    if (nums.has(r.id)) continue;
    while (used.has(next) || next > max || next < 1) next = next >= max ? 1 : next + 1;
    nums.set(r.id, next); used.add(next);
    next = next >= max ? 1 : next + 1;
  }
  const numbers = new Map<string, RuleNumber>();
  for (const c of rules) numbers.set(c.rule.id, { num: nums.get(c.rule.id)!, actionKey: c.actionKey });
  return { nums, numbers, counter: next };
}
