/* Reads a policy file (YAML, or JSON which YAML accepts) and validates it, reporting every
 * problem at once with line and column, as a compiler would (document.ts). Free of daemon
 * state: it may run in a worker thread. */

import { dirname, resolve } from 'node:path';
import { parseValidated, tooBig, type DocKind, type DocLimits } from '../document.js';
import { QosError } from '../errors.js';
import { readTextFile } from '../secure-path.js';
import { PolicySchema, RuleSchema, type PolicyDoc } from './schema.js';

/** The largest policy accepted (docs/policy.md, "Limits"; measured with
 * `node dist/bench/documents.js policy`): 10,000 rules as a program writes them (JSON) load
 * in under a second; the worst document these let through takes about two, under 200 MB. */
export const POLICY_LIMITS: DocLimits = {
  bytes: 4 * 2 ** 20,
  yamlBytes: 128 * 2 ** 10,
  values: 200_000,
  ruleValues: 10_000,
  rules: 40_000,
};

export const POLICY_KIND: DocKind<typeof PolicySchema> = {
  name: 'policy', code: 'QOS_ERR_POLICY_INVALID', schema: PolicySchema, rule: RuleSchema,
  limits: POLICY_LIMITS, docs: 'docs/policy.md, "Limits"', extra: duplicateNames,
};

/** Parses and validates policy text; throws QOS_ERR_POLICY_INVALID listing every problem. */
export function parsePolicy(text: string, file = '<policy>'): PolicyDoc {
  return parseValidated(text, file, POLICY_KIND);
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

/** Reads a policy file's text (bounded; with `anyPath` wherever it is, otherwise only where
 * the daemon may trust it, secure-path.ts). */
export async function readPolicyText(path: string, o: { anyPath?: boolean } = {}): Promise<string> {
  try {
    return await readTextFile(path, { maxBytes: POLICY_LIMITS.bytes, tooBig: (n, atLeast) => tooBig(POLICY_KIND, path, n, atLeast), trustedAs: o.anyPath ? undefined : 'the policy' });
  } catch (e) {
    if (e instanceof QosError) throw e;
    throw new QosError('QOS_ERR_POLICY_IO', `cannot read policy ${path}: ${(e as Error).message}`, [], { cause: e });
  }
}

/** Reads and validates a policy file, and reads the script it names. By default both must be
 * files only root or the daemon's user can change (secure-path.ts: the daemon runs what they
 * say as root); `anyPath` reads them wherever they are (`qos policy check`). */
export async function loadPolicyFile(path: string, o: { anyPath?: boolean } = {}): Promise<{ doc: PolicyDoc; text: string; script: PolicyScript | null }> {
  return policyFromText(await readPolicyText(path, o), path, o);
}

/** Validates policy text as if it were the file at `path` (problems name it; a script it
 * names is read relative to its directory), and reads that script as loadPolicyFile does. */
export async function policyFromText(text: string, path: string, o: { anyPath?: boolean } = {}): Promise<{ doc: PolicyDoc; text: string; script: PolicyScript | null }> {
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

/** A policy script is compiled in a sandbox with its own memory cap; this bounds only what
 * the daemon reads into its own heap first. */
const SCRIPT_MAX_BYTES = 4 * 2 ** 20;
