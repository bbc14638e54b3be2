/* The YAML or JSON documents qosd reads (the policy, kernel rule sets), parsed and validated
 * whole: every problem with file, line and column, as a compiler would. And bounded, so that
 * no document can exhaust the daemon (issue 15): its size (smaller for YAML, whose parser is
 * several times slower than JSON's), nesting, YAML anchors and aliases, the values it holds
 * once aliases are expanded, values per rule, rules, and the problems listed. The limits of
 * each kind are measured (src/bench/documents.ts) and documented (docs/policy.md,
 * docs/kernel-rules.md). Pure functions of their arguments: they may run in a worker thread. */

import { Composer, isAlias, isCollection, isMap, isNode, isPair, isScalar, LineCounter, Parser, type CST, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { QosError, type ErrorCode, type Problem } from './errors.js';

export interface DocLimits {
  /** bytes of a JSON document */
  bytes: number;
  /** bytes of a document in any other YAML form */
  yamlBytes: number;
  /** values (maps, lists, scalars; YAML aliases expanded) in the whole document */
  values: number;
  /** values in one rule */
  ruleValues: number;
  /** rules in the document */
  rules: number;
}

/** A kind of document: a top-level map whose `rules` list is validated rule by rule. */
export interface DocKind<S extends z.ZodType> {
  /** names the document in messages: "policy", "rule set" */
  name: string;
  code: ErrorCode;
  /** the whole document (it must accept `rules: []`) */
  schema: S;
  /** one element of `rules` */
  rule: z.ZodType;
  limits: DocLimits;
  /** where the limits are explained */
  docs: string;
  /** checks the schema cannot make: they see the raw value, and the parsed one if valid */
  extra?: (raw: unknown, parsed: z.infer<S> | undefined) => { path: PropertyKey[]; message: string }[];
}

/** Problems listed at most; checking rules stops once this many are found. */
export const MAX_PROBLEMS = 100;
/** YAML nesting deeper than this is refused before it is composed: the composer recurses,
 * and a stack overflow deep in it has aborted the process (V8 compiling a RegExp there). */
export const MAX_DEPTH = 32;
/** YAML anchors and aliases, together: resolving one alias visits every other (the yaml
 * package), so n of them cost n² (40,000 aliases: 55 s). */
export const MAX_ANCHORS = 1000;
/** Keys in one map: the formats' maps have a dozen; V8 and the yaml package slow down on
 * objects of many keys (an object of 1.5 million: 7 s in JSON.parse). */
export const MAX_KEYS = 1000;
/** Longest message kept: a map with a million unknown keys makes one issue naming them all. */
const MAX_MESSAGE = 300;

export function dotted(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

type Issue = { path: PropertyKey[]; message: string };

const mib = (n: number) => (n >= 2 ** 20 ? `${+(n / 2 ** 20).toFixed(1)} MiB` : `${+(n / 1024).toFixed(1)} KiB`);

/** The error for a document over its byte limit (`bytes`: its size, or with atLeast a lower
 * bound). */
export function tooBig<S extends z.ZodType>(kind: DocKind<S>, file: string, bytes: number, atLeast = false, yaml = false): QosError {
  const l = kind.limits;
  const message = yaml
    ? `${bytes} bytes of YAML: a ${kind.name} in YAML may have at most ${mib(l.yamlBytes)}, in JSON ${mib(l.bytes)} (${kind.docs})`
    : `${atLeast ? 'more than ' : ''}${atLeast ? l.bytes : bytes} bytes: a ${kind.name} may have at most ${mib(l.bytes)} as JSON, ${mib(l.yamlBytes)} as YAML (${kind.docs})`;
  return new QosError(kind.code, `${file}: too large`, [{ file, message }]);
}

/** Parses YAML/JSON text and validates it as a `kind`, collecting every problem (syntax,
 * schema, bounds, the kind's extra checks) with line and column; throws kind.code listing
 * them (at most MAX_PROBLEMS). */
export function parseValidated<S extends z.ZodType>(text: string, file: string, kind: DocKind<S>): z.infer<S> {
  const bytes = Buffer.byteLength(text);
  if (bytes > kind.limits.bytes) throw tooBig(kind, file, bytes);
  // JSON (a 10,000-rule set, prepared by a program) is taken without the YAML parser, which
  // costs seconds there; a small one with problems goes the YAML way, for their positions
  const t = text.trimStart();
  if (t.startsWith('{') || t.startsWith('[')) {
    const scan = scanJson(text, kind.limits.values);
    const where = (offset: number, message: string) => fail(kind, file, [{ file, ...lineCol(text, offset), message }]);
    if (scan.deep !== undefined) where(scan.deep, `nested more than ${MAX_DEPTH} levels deep`);
    if (scan.keys !== undefined) where(scan.keys, `more than ${MAX_KEYS} keys in one map`);
    if (scan.values !== undefined) where(scan.values, `more than ${kind.limits.values} values (maps, lists, scalars) in the ${kind.name} (${kind.docs})`);
    let value: unknown;
    let syntax: Problem | undefined;
    try { value = JSON.parse(text); } catch (e) { syntax = jsonSyntaxProblem(text, file, e as Error, kind); }
    if (!syntax) {
      const checked = scan.repeated === undefined ? validate(value, kind) : undefined;
      if (checked?.issues.length === 0) return checked.value;
      if (bytes > kind.limits.yamlBytes) {
        if (scan.repeated !== undefined) fail(kind, file, [{ file, ...lineCol(text, scan.repeated), message: 'Map keys must be unique' }]);
        fail(kind, file, checked!.issues.map((i) => ({ file, path: dotted(i.path) || undefined, message: i.message })), checked!.stopped);
      }
    } else if (bytes > kind.limits.yamlBytes) fail(kind, file, [syntax]);
  }
  if (bytes > kind.limits.yamlBytes) throw tooBig(kind, file, bytes, false, true);
  return parseYaml(text, file, kind);
}

function parseYaml<S extends z.ZodType>(text: string, file: string, kind: DocKind<S>): z.infer<S> {
  const lc = new LineCounter();
  const at = (offset: number) => { const { line, col } = lc.linePos(offset); return { file, line, col }; };
  const tokens = Array.from(new Parser(lc.addNewLine).parse(text));
  const deep = deepToken(tokens);
  if (deep !== undefined) fail(kind, file, [{ ...at(deep), message: `nested more than ${MAX_DEPTH} levels deep` }]);
  // as parseDocument does, from the tokens we checked
  let doc: Document.Parsed | undefined;
  for (const d of new Composer({ prettyErrors: false, uniqueKeys: false }).compose(tokens, true, text.length)) {
    if (!doc) doc = d;
    else fail(kind, file, [{ ...at(d.range[0]), message: 'more than one YAML document (a line "---")' }]);
  }
  const problems: Problem[] = doc!.errors.map((e) => ({ ...at(e.pos[0]), message: e.message.split('\n')[0]! }));
  if (problems.length) fail(kind, file, problems);
  for (const s of structureProblems(doc!)) problems.push({ ...at(s.offset), message: s.message });
  if (problems.length) fail(kind, file, problems);
  // aliases share what they refer to; their count and the values they expand to are bounded
  let raw: unknown;
  try { raw = doc!.toJS({ maxAliasCount: -1 }) ?? {}; } catch (e) { fail(kind, file, [{ file, message: `cannot read the document: ${(e as Error).message}` }]); }
  const { value, issues, stopped } = validate(raw, kind);
  if (!issues.length) return value;
  fail(kind, file, issues.map((i) => ({ file, ...position(doc!, lc, i.path), path: dotted(i.path) || undefined, message: i.message })), stopped);
}

/** Throws the kind's error: problems in order of position, at most MAX_PROBLEMS of them. */
function fail<S extends z.ZodType>(kind: DocKind<S>, file: string, problems: Problem[], stopped = false): never {
  const sorted = problems.map((p) => (p.message.length > MAX_MESSAGE ? { ...p, message: p.message.slice(0, MAX_MESSAGE) + '...' } : p))
    .sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  const shown = sorted.slice(0, MAX_PROBLEMS);
  if (sorted.length > MAX_PROBLEMS || stopped) shown.push({ file, message: `more problems not listed: checking stops after ${MAX_PROBLEMS}` });
  throw new QosError(kind.code, `${file}: ${sorted.length}${stopped ? '+' : ''} error(s)`, shown);
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1, start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) { line++; start = i + 1; }
  return { line, col: offset - start + 1 };
}

function jsonSyntaxProblem<S extends z.ZodType>(text: string, file: string, e: Error, kind: DocKind<S>): Problem {
  const pos = /at position (\d+)/.exec(e.message);
  return { file, ...(pos ? lineCol(text, Number(pos[1])) : {}), message: `not JSON (a ${kind.name} over ${mib(kind.limits.yamlBytes)} must be): ${e.message.replace(/ (in JSON )?at position \d+.*$/, '')}` };
}

/** The offset of the first token nested deeper than MAX_DEPTH collections, if any. */
function deepToken(tokens: CST.Token[]): number | undefined {
  const stack: [CST.Token, number][] = tokens.map((t) => [t, 0]);
  while (stack.length) {
    const [t, depth] = stack.pop()!;
    if (t.type === 'document') { if (t.value) stack.push([t.value, depth]); continue; }
    if (t.type !== 'block-map' && t.type !== 'block-seq' && t.type !== 'flow-collection') continue;
    if (depth + 1 > MAX_DEPTH) return t.offset;
    for (const it of t.items) {
      if (it.key) stack.push([it.key, depth + 1]);
      if (it.value) stack.push([it.value, depth + 1]);
    }
  }
  return undefined;
}

/** What the YAML composer leaves to us: keys repeated in a map (its own check is quadratic:
 * a map of 100,000 keys took minutes), too many anchors and aliases, an alias to an anchor
 * not (yet) defined or to a collection it is inside (whose value would contain itself). */
function structureProblems(doc: Document.Parsed): { offset: number; message: string }[] {
  const out: { offset: number; message: string }[] = [];
  const anchors = new Map<string, Node>();
  const open = new Set<Node>();
  let refs = 0;
  // in document order, as the yaml package resolves an alias: to the last anchor before it
  const stack: ({ node: unknown } | { close: Node })[] = [{ node: doc.contents }];
  while (stack.length) {
    const e = stack.pop()!;
    if ('close' in e) { open.delete(e.close); continue; }
    const node = e.node;
    if (isPair(node)) { stack.push({ node: node.value }, { node: node.key }); continue; }
    if (!isNode(node)) continue;
    const offset = node.range?.[0] ?? 0;
    const counted = () => { if (++refs === MAX_ANCHORS + 1) out.push({ offset, message: `more than ${MAX_ANCHORS} anchors and aliases` }); };
    if (isAlias(node)) {
      counted();
      const target = anchors.get(node.source);
      if (!target) out.push({ offset, message: `alias *${node.source} before any anchor &${node.source}` });
      else if (open.has(target)) out.push({ offset, message: `alias *${node.source} is inside the collection it names` });
    } else if (node.anchor) {
      counted();
      anchors.set(node.anchor, node);
    }
    if (!isCollection(node)) continue;
    if (isMap(node)) {
      const extra = node.items[MAX_KEYS]?.key;
      if (extra !== undefined) out.push({ offset: isNode(extra) ? extra.range?.[0] ?? offset : offset, message: `more than ${MAX_KEYS} keys in one map` });
      const seen = new Set<string>();
      for (const p of node.items) {
        if (!isScalar(p.key)) continue;
        const k = String(p.key.value);
        if (seen.has(k)) out.push({ offset: p.key.range?.[0] ?? 0, message: 'Map keys must be unique' });
        seen.add(k);
      }
    }
    open.add(node);
    stack.push({ close: node });
    for (let i = node.items.length - 1; i >= 0; i--) stack.push({ node: node.items[i] });
  }
  return out.sort((a, b) => a.offset - b.offset);
}

function position(doc: Document, lc: LineCounter, path: readonly PropertyKey[]): { line?: number; col?: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]);
  }
  return {};
}

/** The value checked against the kind: first its bounds (values, values per rule, rules),
 * then the top level and each rule by itself, stopping once MAX_PROBLEMS are found (a
 * million bad values would otherwise make a million issues: seconds and a gigabyte), then the
 * kind's extra checks. */
function validate<S extends z.ZodType>(raw: unknown, kind: DocKind<S>): { value: z.infer<S>; issues: Issue[]; stopped: boolean } {
  const l = kind.limits;
  const rules = isObject(raw) && Array.isArray(raw.rules) ? (raw.rules as unknown[]) : undefined;
  const none = { value: undefined as z.infer<S>, stopped: false };
  if (rules && rules.length > l.rules) return { ...none, issues: [{ path: ['rules'], message: `${rules.length} rules: a ${kind.name} may have at most ${l.rules} (${kind.docs})` }] };
  // the values, aliases expanded: each rule within its own bound, all within the document's
  let left = l.values;
  const over = (path: PropertyKey[], what: string) => ({ ...none, issues: [{ path, message: `${what} (${kind.docs})` }] });
  const tooMany = `more than ${l.values} values in the ${kind.name}, counting each time a YAML alias repeats one`;
  const top = countValues(rules ? { ...(raw as object), rules: [] } : raw, left);
  if (typeof top !== 'number') return over(top.path, tooMany);
  left -= top;
  for (const [i, r] of (rules ?? []).entries()) {
    const n = countValues(r, Math.min(left, l.ruleValues));
    if (typeof n !== 'number') {
      return left <= l.ruleValues
        ? over(['rules', i, ...n.path], tooMany)
        : over(['rules', i], `more than ${l.ruleValues} values (lists and their items, maps, scalars) in one rule`);
    }
    left -= n;
  }
  const issues: Issue[] = [];
  const add = (prefix: PropertyKey[], e: z.ZodError) => { for (const i of e.issues) issues.push({ path: [...prefix, ...(i.path as PropertyKey[])], message: i.message }); };
  const head = kind.schema.safeParse(rules ? { ...(raw as object), rules: [] } : raw);
  if (!head.success) add([], head.error);
  const parsed: unknown[] = [];
  let stopped = false;
  for (const [i, r] of (rules ?? []).entries()) {
    if (issues.length >= MAX_PROBLEMS) { stopped = true; break; }
    const res = kind.rule.safeParse(r);
    if (res.success) parsed.push(res.data); else add(['rules', i], res.error);
  }
  const value = (issues.length ? undefined : rules ? { ...(head.data as object), rules: parsed } : head.data) as z.infer<S>;
  if (!stopped) issues.push(...(kind.extra?.(raw, value) ?? []));
  return { value, issues, stopped };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** How many values `v` holds (itself, and what it contains, shared parts counted each time),
 * or where it passes `max`. */
function countValues(v: unknown, max: number): number | { path: PropertyKey[] } {
  const stack: unknown[] = [v];
  let n = 0;
  while (stack.length) {
    const x = stack.pop();
    if (++n > max) return { path: pathOfValue(v, n) };
    if (typeof x !== 'object' || x === null) continue;
    if (Array.isArray(x)) for (let i = x.length - 1; i >= 0; i--) stack.push(x[i]);
    else for (const k in x) stack.push((x as Record<string, unknown>)[k]);
  }
  return n;
}

/** The path of the nth value countValues meets (the same walk, keeping paths). */
function pathOfValue(v: unknown, nth: number): PropertyKey[] {
  type Entry = { v: unknown; key?: PropertyKey; up?: Entry };
  const stack: Entry[] = [{ v }];
  for (let n = 1; ; n++) {
    const e = stack.pop()!;
    if (n === nth) {
      const path: PropertyKey[] = [];
      for (let x: Entry | undefined = e; x?.up; x = x.up) path.unshift(x.key!);
      return path;
    }
    if (typeof e.v !== 'object' || e.v === null) continue;
    if (Array.isArray(e.v)) for (let i = e.v.length - 1; i >= 0; i--) stack.push({ v: e.v[i], key: i, up: e });
    else for (const k in e.v) stack.push({ v: (e.v as Record<string, unknown>)[k], key: k, up: e });
  }
}

/** What JSON.parse does not say about JSON text, by one scan of its strings and brackets
 * before it is parsed (JSON.parse builds every object before it finds a mistake at the end):
 * the offset of the first key repeated in an object (JSON.parse takes the last silently, YAML
 * refuses), of the first bracket nested deeper than MAX_DEPTH, of the first key past
 * MAX_KEYS in one object, of the first value past maxValues (V8 took 2.6 s to refuse 4 MB of
 * "[", 4 s to parse 16 MB of "{}," and 7 s for an object of 1.5 million keys). Safe on text
 * that is not JSON (the answer is then of no use). */
export function scanJson(text: string, maxValues = Infinity): { repeated?: number; deep?: number; keys?: number; values?: number } {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let values = 0;
  // the last character outside strings and blanks: a value starts after [ , : or at the start
  let prev = 0x5b;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    const starts = prev === 0x5b || prev === 0x2c || prev === 0x3a;
    prev = c;
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const raw = text.slice(i + 1, j);
        let key = raw;
        if (raw.includes('\\')) try { key = JSON.parse(`"${raw}"`) as string; } catch { /* not JSON */ }
        if (top.has(key)) return { repeated: i };
        if (top.size === MAX_KEYS) return { keys: i };
        top.add(key);
        expectKey = false;
      } else if (++values > maxValues) return { values: i };
      i = j;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++values > maxValues) return { values: i };
      if (stack.length === MAX_DEPTH) return { deep: i };
      stack.push(c === 0x7b ? new Set() : null);
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) { stack.pop(); expectKey = false; }
    else if (c === 0x2c /* , */) expectKey = stack[stack.length - 1] !== null && stack.length > 0;
    else if (starts && c !== 0x3a && ++values > maxValues) return { values: i };
  }
  return {};
}

/** JSON text parsed, if it is JSON without a repeated key in any object; undefined otherwise. */
export function jsonFastPath(text: string): unknown {
  const t = text.trimStart();
  if (!t.startsWith('{') && !t.startsWith('[')) return undefined;
  let value: unknown;
  try { value = JSON.parse(text); } catch { return undefined; }
  return scanJson(text).repeated === undefined ? value : undefined;
}
