/* Reads a policy file (YAML, or JSON which YAML accepts) and validates it, reporting every
 * problem at once with line and column, as a compiler would. Free of daemon state: it may
 * run in a worker thread. */

import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { z } from 'zod';
import { QosError, type ErrorCode, type Problem } from '../errors.js';
import { readTextFile } from '../secure-path.js';
import { PolicySchema, type PolicyDoc } from './schema.js';

function position(doc: Document, lc: LineCounter, path: readonly PropertyKey[]): { line?: number; col?: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (isNode(node) && node.range) {
      const { line, col } = lc.linePos(node.range[0]);
      return { line, col };
    }
  }
  return {};
}

export function dotted(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

/** Parses YAML/JSON text and validates it with a schema, collecting every problem (syntax,
 * schema, and the extra checks given, which see the raw value and the parsed one if the
 * schema accepted it) with line and column; throws `code` listing them. */
export function parseValidated<S extends z.ZodType>(
  text: string, file: string, schema: S, code: ErrorCode,
  extra: (raw: unknown, parsed: z.infer<S> | undefined) => { path: PropertyKey[]; message: string }[] = () => [],
): z.infer<S> {
  // JSON without problems (a 10,000-rule set, prepared by a program) is taken without the
  // YAML parser, which costs seconds there; anything wrong goes the YAML way, for positions
  const fast = jsonFastPath(text);
  if (fast !== undefined) {
    const res = schema.safeParse(fast);
    if (res.success && extra(fast, res.data as z.infer<S>).length === 0) return res.data as z.infer<S>;
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const problems: Problem[] = [];
  for (const e of doc.errors) {
    const { line, col } = lc.linePos(e.pos[0]);
    problems.push({ file, line, col, message: e.message.split('\n')[0]! });
  }
  if (problems.length) throw new QosError(code, `${file}: ${problems.length} error(s)`, problems);
  const raw = doc.toJS() ?? {};
  const res = schema.safeParse(raw);
  const issues = [...(res.success ? [] : res.error.issues.map((i) => ({ path: i.path as PropertyKey[], message: i.message }))), ...extra(raw, res.success ? (res.data as z.infer<S>) : undefined)];
  if (issues.length) {
    for (const { path, message } of issues) problems.push({ file, ...position(doc, lc, path), path: dotted(path) || undefined, message });
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
    throw new QosError(code, `${file}: ${problems.length} error(s)`, problems);
  }
  return res.data as z.infer<S>;
}

/** JSON text parsed, if it is JSON without a repeated key in any object (which JSON.parse
 * would take silently and YAML refuses); undefined otherwise. */
export function jsonFastPath(text: string): unknown {
  const t = text.trimStart();
  if (!t.startsWith('{') && !t.startsWith('[')) return undefined;
  let value: unknown;
  try { value = JSON.parse(text); } catch { return undefined; }
  return hasRepeatedKey(text) ? undefined : value;
}

/** Whether an object in (valid) JSON text repeats a key, by a scan of its strings and
 * brackets. */
function hasRepeatedKey(text: string): boolean {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (top.has(key)) return true;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) { stack.push(new Set()); expectKey = true; }
    else if (c === 0x5b /* [ */) { stack.push(null); expectKey = false; }
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) { stack.pop(); expectKey = false; }
    else if (c === 0x2c /* , */) expectKey = stack[stack.length - 1] !== null && stack.length > 0;
  }
  return false;
}

/** Parses and validates policy text; throws QOS_ERR_POLICY_INVALID listing every problem. */
export function parsePolicy(text: string, file = '<policy>'): PolicyDoc {
  return parseValidated(text, file, PolicySchema, 'QOS_ERR_POLICY_INVALID', duplicateNames);
}

/** Rule names must be unique; checked apart from the schema so it is reported with the rest. */
export function duplicateNames(raw: unknown): { path: PropertyKey[]; message: string }[] {
  const rules = (raw as { rules?: unknown }).rules;
  if (!Array.isArray(rules)) return [];
  const seen = new Map<string, number>();
  const out: { path: PropertyKey[]; message: string }[] = [];
  rules.forEach((r: unknown, i) => {
    const name = (r as { name?: unknown } | null)?.name;
    if (typeof name !== 'string') return;
    const first = seen.get(name);
    if (first !== undefined) out.push({ path: ['rules', i, 'name'], message: `duplicate rule name "${name}" (first at rules[${first}])` });
    else seen.set(name, i);
  });
  return out;
}

/** A policy's script, read from disk (compiled by script/check.ts or the daemon's pool). */
export interface PolicyScript {
  path: string;
  source: string;
  kind: 'js' | 'tcl';
}

/** Reads and validates a policy file, and reads the script it names. By default both must be
 * files only root or the daemon's user can change (secure-path.ts: the daemon runs what they
 * say as root); `anyPath` reads them wherever they are (`qos policy check`). */
export async function loadPolicyFile(path: string, o: { anyPath?: boolean } = {}): Promise<{ doc: PolicyDoc; text: string; script: PolicyScript | null }> {
  const trustedAs = o.anyPath ? undefined : 'the policy';
  let text: string;
  try {
    text = await readTextFile(path, {
      maxBytes: POLICY_MAX_BYTES, trustedAs,
      tooBig: (n, atLeast) => new QosError('QOS_ERR_POLICY_INVALID', `${path}: too large`, [{ file: path, message: `${atLeast ? `more than ${POLICY_MAX_BYTES}` : n} bytes; a policy may have at most ${POLICY_MAX_BYTES / 2 ** 20} MiB` }]),
    });
  } catch (e) {
    if (e instanceof QosError) throw e;
    throw new QosError('QOS_ERR_POLICY_IO', `cannot read policy ${path}: ${(e as Error).message}`, [], { cause: e });
  }
  const doc = parsePolicy(text, path);
  if (!doc.script) return { doc, text, script: null };
  const scriptPath = resolve(dirname(path), doc.script);
  const kind = /\.tcl$/.test(scriptPath) ? 'tcl' : 'js';
  const at = /^script:\s*/m.exec(text);
  const problem = (message: string) => ({ file: path, line: at ? text.slice(0, at.index).split('\n').length : undefined, col: at ? at[0].length + 1 : undefined, path: 'script', message });
  let source: string;
  try {
    source = await readTextFile(scriptPath, {
      maxBytes: SCRIPT_MAX_BYTES, trustedAs: o.anyPath ? undefined : 'the policy script',
      tooBig: (n, atLeast) => new QosError('QOS_ERR_POLICY_INVALID', `${path}: 1 error(s)`, [problem(`${scriptPath}: ${atLeast ? `more than ${SCRIPT_MAX_BYTES}` : n} bytes; a script may have at most ${SCRIPT_MAX_BYTES / 2 ** 20} MiB`)]),
    });
  } catch (e) {
    if (e instanceof QosError) throw e;
    throw new QosError('QOS_ERR_POLICY_INVALID', `${path}: 1 error(s)`, [problem(`cannot read ${scriptPath}: ${(e as Error).message}`)], { cause: e });
  }
  return { doc, text, script: { path: scriptPath, source, kind } };
}

/** What the daemon reads into its heap: a policy (10,000 rules as JSON are 1.6 MB), a script
 * (compiled in a sandbox with its own memory cap). */
const POLICY_MAX_BYTES = 4 * 2 ** 20;
const SCRIPT_MAX_BYTES = 4 * 2 ** 20;
