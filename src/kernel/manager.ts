/* The daemon's kernel rules: the managed rule set (`qos rules`, stored in a file with a
 * revision number) after the policy's rules that the kernel can express, enforced by a
 * backend (backend.ts; nftables unless told otherwise). Edits (edits.ts) are serialised; each
 * is validated whole, planned (pure), applied, and only then saved (atomically) and made the
 * current state: a refused edit changes nothing. An edit based on an older revision than the
 * stored one is refused (QOS_ERR_RULES_STALE). */

import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { removeStaleTemps, stageFile, type StagedFile } from '../atomic-file.js';
import { dotted, parseValidated, tooBig, type DocKind, type DocLimits } from '../document.js';
import { QosError } from '../errors.js';
import { duplicateNames } from '../policy/load.js';
import { checkDirectory, readTextFile } from '../secure-path.js';
import type { PolicyDoc } from '../policy/schema.js';
import type { Counter, EnforcementBackend, PlanRule } from './backend.js';
import { hex32, type CtMark } from './ctmark.js';
import { applyEdit, type Edit } from './edits.js';
import { currentNetns, describeNetns, type NetnsInfo } from './netns.js';
import { NftBackend } from './nft-backend.js';
import { nftAtomProblems } from './plan.js';
import { atomCount, kernelAction, KernelRuleSchema, MAX_ATOMS_PER_SET, policyRuleInKernel, checkRuleAtoms, ruleProblems, RuleSetSchema, systemNames, type Atom, type AtomCheck, type KAction, type KernelRuleDoc, type KRule, type Names, type RuleSetDoc } from './rules.js';

export type KernelMode = 'auto' | 'on' | 'off';

export interface KernelOptions {
  rulesFile: string;
  table: string;
  mode: KernelMode;
  /** the bits of the connection mark the table may use (ctmark.ts) */
  ctMark: CtMark;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
  /** what enforces the rules: an nftables table named `table` in the `ctMark` bits unless given */
  backend?: EnforcementBackend<unknown>;
}

const StoreSchema = RuleSetSchema.extend({ revision: z.number().int().min(0) });

/** The largest rule set accepted (docs/kernel-rules.md, "Limits"; measured with
 * `node dist/bench/documents.js rules`): 65,535 rules as `qos rules export` writes them
 * (JSON, 12 MB) load, and no document these let through costs more than they do. */
export const RULE_SET_LIMITS: DocLimits = {
  bytes: 16 * 2 ** 20,
  yamlBytes: 128 * 2 ** 10,
  values: 1_000_000,
  ruleValues: 10_000,
  rules: 65_535,
};

/** A rule-set file, or the store (with its revision), as a kind of document. */
function ruleSetKind<S extends typeof RuleSetSchema | typeof StoreSchema>(schema: S, names: Names, expressible: AtomCheck): DocKind<S> {
  return {
    name: 'rule set', code: 'QOS_ERR_RULES_INVALID', schema, rule: KernelRuleSchema, limits: RULE_SET_LIMITS,
    docs: 'docs/kernel-rules.md, "Limits"', extra: (raw, set) => setProblems(raw, set, (r) => ruleProblems(r, names, expressible)),
  };
}

/** Reads a rule-set file (or standard input, "-") of at most the limit. */
export async function readRuleSetFile(file: string): Promise<string> {
  const kind = ruleSetKind(RuleSetSchema, systemNames(), nftAtomProblems);
  try {
    return await readTextFile(file === '-' ? '/dev/stdin' : file, { maxBytes: RULE_SET_LIMITS.bytes, tooBig: (n, atLeast) => tooBig(kind, file, n, atLeast) });
  } catch (e) {
    if (e instanceof QosError) throw e;
    throw new QosError('QOS_ERR_POLICY_IO', `cannot read ${file}: ${(e as Error).message}`);
  }
}

/** Where each policy rule is enforced. */
export interface Placement { position: number; name?: string; where: 'agent+kernel' | 'agent'; reason?: string }

export function policyPlacement(doc: PolicyDoc, names: Names = systemNames(), expressible: AtomCheck = nftAtomProblems): { placements: Placement[]; rules: KernelRuleDoc[]; ids: string[] } {
  const placements: Placement[] = [];
  const rules: KernelRuleDoc[] = [];
  const ids: string[] = [];
  doc.rules.forEach((r, i) => {
    const k = policyRuleInKernel(r, names, expressible);
    placements.push({ position: i + 1, ...(r.name ? { name: r.name } : {}), where: k.rule ? 'agent+kernel' : 'agent', ...(k.reason ? { reason: k.reason } : {}) });
    if (k.rule) { rules.push(k.rule); ids.push(`p:${r.name ?? `#${i + 1}`}`); }
  });
  return { placements, rules, ids };
}

/** Parses and checks rule-set text (JSON or YAML) whole, for a backend (nftables unless
 * told); throws QOS_ERR_RULES_INVALID listing every problem with line, column and path. */
export function parseRuleSet(text: string, file: string, names: Names = systemNames(), expressible: AtomCheck = nftAtomProblems): RuleSetDoc {
  return parseValidated(text, file, ruleSetKind(RuleSetSchema, names, expressible));
}

type Problem = { path: PropertyKey[]; message: string };

/** What a rule set's schema cannot check: unique names, the atoms of the whole set, and each
 * rule's ruleProblems (not made when the set has too many atoms: that is what they cost). */
function setProblems(raw: unknown, set: RuleSetDoc | undefined, problemsOf: (r: KernelRuleDoc) => Problem[]): Problem[] {
  const out = duplicateNames(raw);
  const atoms = set?.rules.reduce((n, r) => n + atomCount(r.match), 0) ?? 0;
  if (atoms > MAX_ATOMS_PER_SET) out.push({ path: ['rules'], message: `the rules' lists make ${atoms} combinations (atoms) in all; a rule set may make at most ${MAX_ATOMS_PER_SET} (docs/kernel-rules.md, "Limits")` });
  else set?.rules.forEach((r, i) => { for (const p of problemsOf(r)) out.push({ path: ['rules', i, ...p.path], message: p.message }); });
  return out;
}

/** A rule as the kernel needs it, kept as long as the rule (an object never changed: edits
 * replace rules) and the user and group names stay the same. */
interface Compiled { names: Names; problems: Problem[]; atoms: Atom[]; action: KAction; actionKey: string }

/** The user and group tables, read again only when /etc/passwd or /etc/group changed. */
function namesStamp(): string {
  const st = (f: string) => { try { const s = statSync(f); return `${s.mtimeMs}:${s.size}:${s.ino}`; } catch { return '-'; } };
  return `${st('/etc/passwd')} ${st('/etc/group')}`;
}

/** Checks one rule given through the API, for a backend (nftables unless told). */
export function checkRule(raw: unknown, names: Names = systemNames(), expressible: AtomCheck = nftAtomProblems): KernelRuleDoc {
  const res = KernelRuleSchema.safeParse(raw);
  const problems = res.success
    ? ruleProblems(res.data, names, expressible).map((p) => ({ path: p.path.map(String).join('.'), message: p.message }))
    : res.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  if (problems.length) throw new QosError('QOS_ERR_RULES_INVALID', `invalid rule: ${problems.length} problem(s)`, problems);
  return res.data!;
}

/** The portable text of a rule set: what `export` prints and `import` reads back unchanged;
 * with a revision, the daemon's stored file. */
export function ruleSetText(doc: RuleSetDoc, revision?: number): string {
  return JSON.stringify({ qosd_rules: 1, ...(revision === undefined ? {} : { revision }), enabled: doc.enabled, rules: doc.rules }, null, 2) + '\n';
}

/** What an edit did; a dry run (`dry_run` set) applied nothing: `dry_run` holds the exact
 * documents it would apply, `nft` the same as text (the backend's own: `nft -f` commands). */
export interface ApplyReport { revision: number; applied: boolean; apply_ms: number; commands: number; layers: Record<string, number>; dry_run?: unknown[]; nft?: string }

export class KernelRules {
  private set: RuleSetDoc = { qosd_rules: 1, enabled: true, rules: [] };
  /** stable ids of the set's rules, parallel to set.rules: counters follow a moved rule */
  private ids: number[] = [];
  private nextId = 1;
  private revision = 0;
  private policy: { rules: KernelRuleDoc[]; ids: string[]; placements: Placement[] } = { rules: [], ids: [], placements: [] };
  private readonly backend: EnforcementBackend<unknown>;
  /** what the backend cannot express (rules.ts ruleProblems) */
  readonly validate: AtomCheck;
  private active = false;
  private problem: string | null = null;
  /** the plan applied last, or null when there was nothing to apply */
  private plan: unknown = null;
  private lastApplyMs = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private names = systemNames();
  private namesAt = namesStamp();
  private readonly compiled = new WeakMap<KernelRuleDoc, Compiled>();
  private netns: NetnsInfo | null = null;

  constructor(private readonly o: KernelOptions) {
    this.backend = o.backend ?? new NftBackend({ table: o.table, ctMark: o.ctMark });
    this.validate = this.backend.validate;
  }

  /** Loads the stored set and, unless kernel rules are off or unavailable, applies it. The
   * store must be where no other user can change it (QOS_ERR_UNSAFE_PATH otherwise); what a
   * killed daemon left of a save is removed. */
  async start(policy: PolicyDoc): Promise<void> {
    this.policy = policyPlacement(policy, this.names, this.validate);
    const file = this.o.rulesFile;
    checkDirectory(dirname(file), 'the kernel rule store', file);
    let text: string | null = null;
    try {
      const stale = removeStaleTemps(file);
      if (stale.length) this.o.log.info({ dir: dirname(file), files: stale }, 'removed temporary files of an interrupted save');
      text = await readTextFile(file, { maxBytes: RULE_SET_LIMITS.bytes, tooBig: (n, atLeast) => tooBig(this.storeKind(), file, n, atLeast), trustedAs: 'the kernel rule store' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== null) {
      const doc = parseValidated(text, file, this.storeKind());
      const { revision, ...set } = doc;
      this.set = set;
      this.revision = revision;
      this.ids = set.rules.map(() => this.nextId++);
    }
    if (this.o.mode === 'off') { this.problem = 'kernel rules are off (--kernel off)'; this.o.log.info({ mode: 'off' }, 'kernel rules off (--kernel off): no nftables table'); return; }
    const why = await this.backend.available();
    if (why) {
      if (this.o.mode === 'on') throw new QosError('QOS_ERR_ENVIRONMENT', `--kernel on, but ${this.backend.name} cannot be used: ${why}`);
      this.problem = `${this.backend.name} cannot be used: ${why}`;
      this.o.log.warn({ reason: why }, 'kernel rules not applied: the agent alone marks');
      return;
    }
    this.active = true;
    this.netns = currentNetns();
    await this.applyNow(this.set, this.ids);
    this.announce();
  }

  private storeKind() { return ruleSetKind(StoreSchema, this.names, this.validate); }

  /** Says in the log what the table is, where, and on whom it acts (every process of the
   * namespace, not only programs under the agent). */
  private announce(): void {
    const s = this.installed();
    if (!this.plan) {
      this.o.log.info(s, `kernel rules: none to apply (no policy rule the kernel can express, no \`qos rules\`): no ${this.backend.name} table installed in network namespace ${describeNetns(this.netns!)}`);
      return;
    }
    const names = this.policy.ids.map((id, i) => this.policy.rules[i]!.name ?? id.slice(2));
    this.o.log.info(s, `kernel rules installed: table ${s.table} in network namespace ${describeNetns(this.netns!)}, ${this.backend.status().whereText}; `
      + `${names.length} policy rules${names.length ? ` (${names.join(', ')})` : ''} and ${s.rule_set_in_kernel} \`qos rules\` rules `
      + "mark the packets of every process in this namespace, not only programs under the agent (--kernel off: none)");
  }

  /** The policy changed (reload): its kernel-expressible rules are re-applied. */
  setPolicy(policy: PolicyDoc): Promise<void> {
    return this.serial(async () => {
      const prev = this.policy;
      this.policy = policyPlacement(policy, this.names, this.validate);
      // a reload that leaves the kernel's part alone leaves the table (and every flow's cache) alone
      const same = JSON.stringify([prev.ids, prev.rules]) === JSON.stringify([this.policy.ids, this.policy.rules]);
      if (same) return;
      try { await this.applyNow(this.set, this.ids); } catch (e) { this.policy = prev; throw e; }
    });
  }

  /** One edit (edits.ts), on the set at revision `expect` if given. A dry run plans it and
   * reports the documents that would be applied, changing nothing. */
  edit(expect: number | undefined, dryRun: boolean, edit: Edit): Promise<ApplyReport> {
    return this.serial(async () => {
      if (expect !== undefined && expect !== this.revision) {
        throw new QosError('QOS_ERR_RULES_STALE', `the rule set is at revision ${this.revision}, not ${expect}: someone changed it since you read it; read it again (qos rules list) and retry`);
      }
      this.refreshNames();
      const { set: next, ids, nextId } = applyEdit(this.set, this.ids, edit, this.nextId);
      // new rules were checked on the way in, but names must still be unique and users exist
      const problems = setProblems(next, next, (r) => this.compile1(r).problems).map((p) => ({ file: '<rules>', path: dotted(p.path), message: p.message }));
      if (problems.length) throw new QosError('QOS_ERR_RULES_INVALID', `<rules>: ${problems.length} error(s)`, problems);
      if (dryRun) return this.dryRun(next, ids);
      // the new file is written while the backend works, and put in place once it took the set
      let staged: StagedFile | undefined;
      let stageError: unknown;
      const stage = () => {
        try {
          mkdirSync(dirname(this.o.rulesFile), { recursive: true, mode: 0o755 });
          staged = stageFile(this.o.rulesFile, ruleSetText(next, this.revision + 1), { mode: 0o644 });
        } catch (e) { stageError = e; }
      };
      let report: ApplyReport;
      try { report = await this.applyNow(next, ids, stage); } catch (e) { staged?.discard(); throw e; }
      if (!staged && stageError === undefined) stage();
      this.set = next;
      this.ids = ids;
      this.nextId = nextId;
      this.revision++;
      if (stageError !== undefined) throw stageError;
      staged!.commit();
      return { ...report, revision: this.revision };
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private refreshNames(): void {
    const at = namesStamp();
    if (at !== this.namesAt) { this.names = systemNames(); this.namesAt = at; }
  }

  private compile1(r: KernelRuleDoc): Compiled {
    let c = this.compiled.get(r);
    if (c?.names !== this.names) {
      const { problems, atoms } = checkRuleAtoms(r, this.names, this.validate);
      const action = kernelAction(r.action);
      c = { names: this.names, problems, atoms, action, actionKey: JSON.stringify(action) };
      this.compiled.set(r, c);
    }
    return c;
  }

  /** The kernel rules in order: the policy's, then the set's (if enabled); with each the key
   * of its action. */
  private compile(set: RuleSetDoc, ids: number[]): PlanRule[] {
    const out: PlanRule[] = [];
    const add = (id: string, origin: KRule['origin'], r: KernelRuleDoc) => {
      const c = this.compile1(r);
      out.push({ rule: { id, ...(r.name ? { name: r.name } : {}), origin, atoms: c.atoms, action: c.action }, actionKey: c.actionKey });
    };
    this.policy.rules.forEach((r, i) => add(this.policy.ids[i]!, 'policy', r));
    if (set.enabled) set.rules.forEach((r, i) => { if (r.enabled !== false) add(`r${ids[i]}`, 'rules', r); });
    return out;
  }

  /** What applying the set would do: planned, described, nothing changed. */
  private dryRun(set: RuleSetDoc, ids: number[]): ApplyReport {
    const plan = this.backend.plan(this.compile(set, ids));
    const { documents, commands, text } = this.backend.describe(plan);
    return { revision: this.revision, applied: false, apply_ms: 0, commands, layers: this.backend.layers(plan), dry_run: documents, nft: text };
  }

  /** Compiles, plans (pure) and applies the set; the plan becomes the current state only
   * once the backend took it. `meanwhile` runs while the backend works. */
  private async applyNow(set: RuleSetDoc, ids: number[], meanwhile?: () => void): Promise<ApplyReport> {
    const t0 = performance.now();
    const rules = this.compile(set, ids);
    const plan = this.backend.plan(rules);
    const layers = this.backend.layers(plan);
    if (!this.active) return { revision: this.revision, applied: false, apply_ms: 0, commands: 0, layers };
    const { commands } = await this.backend.apply(plan, meanwhile);
    this.plan = rules.length ? plan : null;
    this.lastApplyMs = performance.now() - t0;
    this.o.log.info({ rules: rules.length, layers, commands, ms: Math.round(this.lastApplyMs) }, 'kernel rules applied');
    return { revision: this.revision, applied: true, apply_ms: Math.round(this.lastApplyMs * 10) / 10, commands, layers };
  }

  /** Removes the table: the daemon stops and leaves no trace. */
  async stop(): Promise<void> {
    await this.queue;
    if (this.active) await this.backend.remove().catch((e: Error) => this.o.log.error({ err: e.message }, 'could not remove the kernel table'));
    this.active = false;
  }

  get storedRevision(): number { return this.revision; }
  get ruleSet(): RuleSetDoc { return this.set; }

  status(): Record<string, unknown> {
    return {
      mode: this.o.mode, active: this.active, problem: this.problem, ...this.installed(), rules_file: this.o.rulesFile,
      revision: this.revision, enabled: this.set.enabled, rules: this.set.rules.length,
      policy_rules_in_kernel: this.policy.rules.length, layers: this.plan ? this.backend.layers(this.plan) : null, generation: this.backend.status().generation,
      last_apply_ms: Math.round(this.lastApplyMs * 10) / 10,
    };
  }

  /** What the table is, where it is, and what it holds: status and the start-up log. */
  private installed() {
    const applied = this.active && this.plan !== null;
    const b = this.backend.status();
    return {
      table: b.table, installed: applied, namespace: this.netns, ...b.where,
      policy_kernel_rules: this.policy.ids.map((id, i) => this.policy.rules[i]!.name ?? id.slice(2)),
      rule_set_in_kernel: this.set.enabled ? this.set.rules.filter((r) => r.enabled !== false).length : 0,
      acts_on: applied ? 'the packets of every process in the namespace, not only programs under the agent' : null,
    };
  }

  /** What a connection's mark says of it (`qos explain`): the kernel rule that took the flow,
   * a policy rule by its name or a `qos rules` rule by its position and name; null while no
   * table is installed (the mark's bits are then not this daemon's). */
  connectionRule(mark: number): { mark: string; number: number; generation: number; current: boolean; rule: { origin: 'policy' | 'rules'; name: string | null; position: number } | null } | null {
    if (!this.active || this.plan === null) return null;
    const c = this.backend.connectionRule(mark);
    let rule: { origin: 'policy' | 'rules'; name: string | null; position: number } | null = null;
    if (c.id?.startsWith('p:')) {
      const i = this.policy.ids.indexOf(c.id);
      if (i >= 0) rule = { origin: 'policy', name: this.policy.rules[i]!.name ?? c.id.slice(2), position: this.policy.placements.find((p) => `p:${p.name ?? `#${p.position}`}` === c.id)?.position ?? 0 };
    } else if (c.id?.startsWith('r')) {
      const i = this.ids.indexOf(Number(c.id.slice(1)));
      if (i >= 0) rule = { origin: 'rules', name: this.set.rules[i]!.name ?? null, position: i + 1 };
    }
    return { mark: hex32(mark), number: c.number, generation: c.generation, current: c.current, rule };
  }

  /** The set's and the policy's rules with their counters. */
  async list(): Promise<Record<string, unknown>> {
    const counters: Map<string, Counter> = this.active && this.plan ? await this.backend.counters() : new Map();
    const c = (id: string) => counters.get(id) ?? { packets: 0, bytes: 0 };
    return {
      revision: this.revision, enabled: this.set.enabled, kernel: this.status(),
      rules: this.set.rules.map((r, i) => ({ position: i + 1, ...r, ...c(`r${this.ids[i]}`) })),
      policy_rules: this.policy.placements.map((p) => ({ ...p, ...(p.where === 'agent+kernel' ? c(`p:${p.name ?? `#${p.position}`}`) : {}) })),
    };
  }
}
