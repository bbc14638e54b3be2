/* The nftables documents of a change (nft.ts: JSON, what `nft -j -f` is given) as nft's own
 * text, the commands `nft -f` reads: what a dry run shows a person (the dashboard's preview,
 * `qos rules ... --dry-run --nft`). Pure. It renders the commands and expressions the table's
 * plan uses (plan.ts, nft.ts); src/e2e/nft-text.test.ts applies the text and the JSON to two
 * namespaces and finds the same table in both. */

import { QosError } from '../errors.js';
import type { NftDoc } from './nft.js';

type Obj = Record<string, unknown>;

const bad = (what: string, v: unknown): never => {
  throw new QosError('QOS_ERR_INTERNAL', `nft-text: no text form for ${what} ${JSON.stringify(v)?.slice(0, 200)}`);
};

/** An nft quoted string (comments): nft's strings have no escapes, so a double quote, which
 * no rule id holds, is left out. */
const quoted = (s: string) => `"${s.replace(/"/g, '')}"`;

/** A 32-bit mark as nft lists one. */
const hex32 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** Expressions whose values are marks, written in hex. */
function isMark(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const o = e as Obj;
  if ('ct' in o) return (o.ct as Obj).key === 'mark';
  if ('meta' in o) return (o.meta as Obj).key === 'mark';
  const bin = (o['&'] ?? o['|'] ?? o['^']) as unknown[] | undefined;
  return !!bin && isMark(bin[0]);
}

/** One expression (or statement) as text; `mark`: a number is a mark (hex). */
export function exprText(e: unknown, mark = false): string {
  if (typeof e === 'number') return mark ? hex32(e) : String(e);
  if (typeof e === 'string') return e;
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return bad('the value', e);
  const o = e as Obj;
  const [k] = Object.keys(o);
  const v = o[k!] as Obj & unknown[];
  switch (k) {
    case 'payload': return `${v.protocol} ${v.field}`;
    case 'meta': return `meta ${v.key}`;
    case 'ct': return `ct ${v.key}`;
    case 'concat': return (v as unknown[]).map((x) => exprText(x)).join(' . ');
    case 'prefix': return `${exprText(v.addr)}/${v.len}`;
    case 'range': return `${exprText(v[0], mark)}-${exprText(v[1], mark)}`;
    case '&': case '|': case '^': return `${exprText(v[0], mark)} ${k} ${exprText(v[1], mark || isMark(v[0]))}`;
    case 'match': {
      const m = mark || isMark(v.left);
      // nft writes `==` only after a binary operation, where a bare value would be its operand
      const binop = !!v.left && typeof v.left === 'object' && ['&', '|', '^'].some((b) => b in (v.left as Obj));
      const op = v.op === '==' && !binop ? '' : `${v.op} `;
      return `${exprText(v.left)} ${op}${exprText(v.right, m)}`;
    }
    case 'mangle': return `${exprText(v.key)} set ${exprText(v.value, isMark(v.key))}`;
    case 'map': return `${exprText(v.key)} map ${exprText(v.data)}`;
    case 'vmap': return `${exprText(v.key)} vmap ${exprText(v.data)}`;
    case 'counter': return 'counter';
    case 'accept': case 'drop': case 'return': case 'continue': return k;
    case 'goto': case 'jump': return `${k} ${v.target}`;
    default: return bad('the expression', e);
  }
}

/** A map's or set's type: one type or a concatenation. */
const typeText = (t: unknown) => (Array.isArray(t) ? t.join(' . ') : String(t));

/** One element of `add element` or `delete element`: key, comment, and the data of a map. */
function elemText(x: unknown, markKey: boolean, markData: boolean): string {
  const [key, data] = Array.isArray(x) ? x : [x, undefined];
  let s: string;
  if (key && typeof key === 'object' && 'elem' in key) {
    const el = (key as { elem: Obj }).elem;
    s = exprText(el.val, markKey) + (typeof el.comment === 'string' ? ` comment ${quoted(el.comment)}` : '');
  } else s = exprText(key, markKey);
  return data === undefined ? s : `${s} : ${exprText(data, markData)}`;
}

/** The types of maps (by kernel name: those the text declares, and any already in the
 * table), to write marks in hex. */
export type MapTypes = Map<string, { type: unknown; map: unknown }>;

/** One command as a line of nft text. */
export function commandText(cmd: unknown, types: MapTypes = new Map()): string {
  if (!cmd || typeof cmd !== 'object') return bad('the command', cmd);
  const [verb] = Object.keys(cmd);
  const what = (cmd as Record<string, Obj>)[verb!]!;
  const [kind] = Object.keys(what);
  const o = what[kind!] as Obj;
  const where = kind === 'table' ? `${o.family} ${o.name}` : `${o.family} ${o.table}`;
  switch (`${verb} ${kind}`) {
    case 'add table': case 'delete table': case 'flush table':
      return `${verb} table ${where}`;
    case 'add chain': {
      const base = o.hook === undefined ? '' : ` { type ${o.type} hook ${o.hook} priority ${o.prio}; policy ${o.policy ?? 'accept'}; }`;
      return `add chain ${where} ${o.name}${base}`;
    }
    case 'delete chain': case 'flush chain':
      return `${verb} chain ${where} ${o.name}`;
    case 'add map': {
      types.set(String(o.name), { type: o.type, map: o.map });
      const flags = Array.isArray(o.flags) && o.flags.length ? ` flags ${o.flags.join(', ')};` : '';
      const stmts = Array.isArray(o.stmt) ? o.stmt.map((s) => ` ${exprText(s)};`).join('') : '';
      return `add map ${where} ${o.name} { type ${typeText(o.type)} : ${o.map};${flags}${stmts} }`;
    }
    case 'delete map': case 'flush map':
      return `${verb} map ${where} ${o.name}`;
    case 'add element': case 'delete element': {
      const t = types.get(String(o.name));
      const elems = (o.elem as unknown[]).map((x) => elemText(x, t?.type === 'mark', t?.map === 'mark'));
      return `${verb} element ${where} ${o.name} { ${elems.join(', ')} }`;
    }
    case 'add rule': {
      const comment = typeof o.comment === 'string' ? ` comment ${quoted(o.comment)}` : '';
      return `add rule ${where} ${o.chain} ${(o.expr as unknown[]).map((x) => exprText(x)).join(' ')}${comment}`;
    }
    default: return bad('the command', cmd);
  }
}

/** Documents (each one transaction: prepare, then switch) as nft text, each headed by a
 * comment line saying which; a document's metainfo is left out. `known`: the types of maps
 * already in the table (the documents add elements to them). */
export function documentsText(docs: readonly NftDoc[], known: MapTypes = new Map(), heads: readonly string[] = ['prepare', 'switch']): string {
  const types: MapTypes = new Map(known);
  const out: string[] = [];
  docs.forEach((d, i) => {
    const cmds = d.nftables.filter((c) => !(c && typeof c === 'object' && 'metainfo' in c));
    out.push(`# transaction ${i + 1} of ${docs.length}${heads[i] && docs.length > 1 ? `: ${heads[i]}` : ''} (${cmds.length} commands)`);
    for (const c of cmds) out.push(commandText(c, types));
  });
  return out.join('\n') + '\n';
}
