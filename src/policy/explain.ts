/* Why a call got the decision it got (`qos explain`, issue 25): the policy's rules walked in
 * order, condition by condition, as the engine (engine.ts) decides them, each rule either the
 * one that matched, one whose first failing condition is named ("exe /opt/zoom/* did not match
 * /usr/bin/firefox"), or one after the match, not reached. The engine decides through bitset
 * indexes and never visits a rule that cannot match; this walk is the slow, readable path, held
 * to the engine's verdict by explain.test.ts. Pure. */

import { LineCounter, parseDocument } from 'yaml';
import { compilePattern, isLiteral } from './glob.js';
import { actionDecision, type CallFacts, type Decision, type Identity } from './engine.js';
import { cidrContains, isV4Mapped, parseCidr, parsePortSpec, type Addr128 } from './net.js';
import { formatIPv6 } from '../protocol/note-ring.js';
import { EVENT_NAMES, list, type PolicyDoc, type RuleDoc } from './schema.js';

export interface RuleExplanation {
  position: number;
  name: string;
  /** the rule's line in the policy text, when the text was given */
  line?: number;
  result: 'matched' | 'failed' | 'not reached';
  /** for a rule that failed: its first condition that did not hold, for people */
  failed?: string;
}

export interface Explanation {
  /** the rule that decided ("default"), or null when nothing applied */
  rule: string | null;
  line?: number;
  decision: Decision | null;
  rules: RuleExplanation[];
}

/** The events a rule without `event` applies to: every call but setsockopt (engine.ts). */
const DEFAULT_EVENTS: readonly string[] = EVENT_NAMES.filter((e) => e !== 'setsockopt');

/** An address as the agent's records and flows write it: IPv4 dotted, IPv6 as inet_ntop does. */
function addrText(a: Addr128): string {
  if (isV4Mapped(a)) return [a[3]! >>> 24, (a[3]! >>> 16) & 255, (a[3]! >>> 8) & 255, a[3]! & 255].join('.');
  const b = new Uint8Array(16), view = new DataView(b.buffer);
  for (let i = 0; i < 4; i++) view.setUint32(4 * i, a[i]!);
  return formatIPv6(b, 0);
}

/** The first condition of rule r that does not hold for (id, f), or null if all hold. The
 * order is the engine's: the call's kind, its ends, then who is calling. */
export function firstFailure(r: RuleDoc, id: Identity, f: CallFacts): string | null {
  const m = r.match;
  const events = list(m.event) ?? DEFAULT_EVENTS;
  if (!events.includes(f.event)) return m.event === undefined ? `a rule without event does not apply to ${f.event} (name it: event: ${f.event})` : `event ${f.event} is not ${events.join(', ')}`;
  for (const [k, v] of [['family', f.family], ['type', f.type], ['proto', f.proto]] as const) {
    const want = list(m[k] as string | string[] | undefined);
    if (want && (v === undefined || !want.includes(v))) return v === undefined ? `the call has no ${k} (${k} ${want.join(', ')})` : `${k} ${v} is not ${want.join(', ')}`;
  }
  for (const [end, port, nets, ports] of [['remote', f.remote, m.remote, m.remote_port], ['local', f.local, m.local, m.local_port]] as const) {
    const cidrs = list(nets), specs = list(ports);
    if (!cidrs && !specs) continue;
    if (!port) return `the call has no ${end} end (${[cidrs ? `${end} ${cidrs.join(', ')}` : '', specs ? `${end}_port ${specs.join(', ')}` : ''].filter(Boolean).join('; ')})`;
    if (specs && !specs.some((s) => { const p = parsePortSpec(s)!; return port.port >= p.lo && port.port <= p.hi; })) return `${end}_port ${port.port} is not ${specs.join(', ')}`;
    if (cidrs && !cidrs.some((c) => cidrContains(parseCidr(c)!, port.addr))) return `${end} ${addrText(port.addr)} is not in ${cidrs.join(', ')}`;
  }
  for (const key of ['uid', 'gid', 'user', 'group', 'exe', 'unit', 'cmdline'] as const) {
    const want = list(m[key] as string | number | (string | number)[] | undefined);
    if (!want) continue;
    const have = id[key];
    const holds = key === 'uid' || key === 'gid' || key === 'user' || key === 'group'
      ? want.map(String).includes(String(have))
      : want.map(String).some((p) => (isLiteral(p) ? p === have : compilePattern(p).test(String(have))));
    if (!holds) return `${key} ${want.join(', ')} did not match ${have === '' ? '(none)' : String(have)}`;
  }
  return null;
}

/** Every rule's line in the policy text (YAML or JSON), by index; empty if it does not parse. */
export function ruleLines(text: string): number[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const rules = doc.get('rules', true) as { items?: { range?: [number, number, number] }[] } | undefined;
  return (rules?.items ?? []).map((n) => (n.range ? lc.linePos(n.range[0]).line : 0));
}

/** The policy walked for one call: which rule decided, and for each rule why or why not; the
 * rules' lines from the policy's text, or as ruleLines gave them before. */
export function explainCall(doc: PolicyDoc, id: Identity, f: CallFacts, text?: string | readonly number[]): Explanation {
  const lines = typeof text === 'string' ? ruleLines(text) : text ?? [];
  const rules: RuleExplanation[] = [];
  let decided: number | null = null;
  doc.rules.forEach((r, i) => {
    const base = { position: i + 1, name: r.name ?? `rule-${i + 1}`, ...(lines[i] ? { line: lines[i] } : {}) };
    if (decided !== null) { rules.push({ ...base, result: 'not reached' }); return; }
    const failed = firstFailure(r, id, f);
    if (failed === null) { decided = i; rules.push({ ...base, result: 'matched' }); } else rules.push({ ...base, result: 'failed', failed });
  });
  if (decided !== null) {
    const r = doc.rules[decided]!;
    return { rule: r.name ?? `rule-${decided + 1}`, ...(lines[decided] ? { line: lines[decided] } : {}), decision: actionDecision(r.action, r.name ?? `rule-${decided + 1}`), rules };
  }
  if (f.event === 'setsockopt' || !doc.default) return { rule: null, decision: null, rules };
  return { rule: 'default', decision: actionDecision(doc.default, 'default'), rules };
}
