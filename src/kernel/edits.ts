/* Edits of the managed rule set as data (what each /v1/rules request asks, api.ts), applied
 * by one pure function: the set and the rules' stable ids in, new ones out, the input left
 * as it was. Rules are referred to by position (1-based) or name. */

import { QosError } from '../errors.js';
import type { KernelRuleDoc, RuleSetDoc } from './rules.js';

export type Edit =
  | { op: 'add'; rule: KernelRuleDoc; /** 1..n+1; the end when absent */ position?: unknown }
  | { op: 'replace'; ref: unknown; rule: KernelRuleDoc }
  | { op: 'delete'; ref: unknown }
  | { op: 'move'; from: unknown; /** 1..n */ to: unknown }
  /** the whole set, or with `ref` one rule (kept in its place, its id and name: only in the
   * kernel or not) */
  | { op: 'enable'; ref?: unknown }
  | { op: 'disable'; ref?: unknown }
  | { op: 'import'; doc: RuleSetDoc };

/** A rule set with its rules' stable ids (parallel to set.rules: counters follow a moved
 * rule, a replaced rule gets a new id) and the next id to give. */
export interface Edited { set: RuleSetDoc; ids: number[]; nextId: number }

/** The index of the rule a reference names (a position 1..n, or a name); QOS_ERR_NOT_FOUND. */
export function ruleIndex(set: RuleSetDoc, r: unknown): number {
  const s = String(r);
  const i = /^\d+$/.test(s) ? Number(s) - 1 : set.rules.findIndex((x) => x.name === s);
  if (i < 0 || i >= set.rules.length) throw new QosError('QOS_ERR_NOT_FOUND', `no rule ${s} (the set has ${set.rules.length} rules${/^\d+$/.test(s) ? '' : '; none by that name'})`);
  return i;
}

/** A position 1..max as an index; QOS_ERR_USAGE otherwise. */
function positionIndex(v: unknown, max: number): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) throw new QosError('QOS_ERR_USAGE', `position must be 1..${max}, not ${JSON.stringify(v)}`);
  return (v as number) - 1;
}

/** The set after one edit (pure: `set` and `ids` are not changed; rules are shared, never
 * changed: an edit puts new rules in the list). Throws QOS_ERR_NOT_FOUND for a reference to
 * no rule and QOS_ERR_USAGE for a position out of range. */
export function applyEdit(set: RuleSetDoc, ids: readonly number[], edit: Edit, nextId: number): Edited {
  if ((edit.op === 'enable' || edit.op === 'disable') && edit.ref === undefined) return { set: { ...set, enabled: edit.op === 'enable' }, ids: [...ids], nextId };
  if (edit.op === 'import') {
    return { set: { ...set, enabled: edit.doc.enabled, rules: edit.doc.rules }, ids: edit.doc.rules.map((_, i) => nextId + i), nextId: nextId + edit.doc.rules.length };
  }
  const rules = [...set.rules], out = [...ids];
  switch (edit.op) {
    case 'add': {
      const at = edit.position === undefined ? rules.length : positionIndex(edit.position, rules.length + 1);
      rules.splice(at, 0, edit.rule);
      out.splice(at, 0, nextId++);
      break;
    }
    case 'replace': { const i = ruleIndex(set, edit.ref); rules[i] = edit.rule; out[i] = nextId++; break; }
    case 'enable': case 'disable': {
      // the same rule, in or out of the kernel: it keeps its id (its counters); enabled is the
      // default, so an enabled rule is written without the field
      const i = ruleIndex(set, edit.ref);
      const { enabled: _, ...rule } = rules[i]!;
      rules[i] = edit.op === 'enable' ? rule : { ...rule, enabled: false };
      break;
    }
    case 'delete': { const i = ruleIndex(set, edit.ref); rules.splice(i, 1); out.splice(i, 1); break; }
    case 'move': {
      const from = ruleIndex(set, edit.from);
      const to = positionIndex(edit.to, rules.length);
      const [r] = rules.splice(from, 1);
      const [id] = out.splice(from, 1);
      rules.splice(to, 0, r!);
      out.splice(to, 0, id!);
      break;
    }
  }
  return { set: { ...set, rules }, ids: out, nextId };
}
