/* The daemon's kernel rules: the managed rule set (`qos rules`, stored in a file with a
 * revision number) after the policy's rules that the kernel can express, compiled into one
 * nftables table. Edits are serialised; each is validated whole, applied in one
 * transaction, and only then saved (atomically): a refused edit changes nothing. An edit
 * based on an older revision than the stored one is refused (QOS_ERR_RULES_STALE). */

import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { removeStaleTemps, stageFile, type StagedFile } from '../atomic-file.js';
import { dotted, parseValidated, tooBig, type DocKind, type DocLimits } from '../document.js';
import { QosError } from '../errors.js';
import { duplicateNames } from '../policy/load.js';
import { checkDirectory, readTextFile } from '../secure-path.js';
import type { PolicyDoc } from '../policy/schema.js';
import { describeCtMark, hex32, type CtMark } from './ctmark.js';
import { currentNetns, describeNetns, type NetnsInfo } from './netns.js';
import { planTable, type TablePlan } from './plan.js';
import { BASE_CHAIN, nftUnavailable, NftTable, type Counter, type NftDoc } from './nft.js';
import { atomCount, kernelAction, KernelRuleSchema, MAX_ATOMS_PER_SET, policyRuleInKernel, ruleAtoms, ruleProblems, RuleSetSchema, systemNames, type Atom, type KAction, type KernelRuleDoc, type KRule, type Names, type RuleSetDoc } from './rules.js';

export type KernelMode = 'auto' | 'on' | 'off';

export interface KernelOptions {
  rulesFile: string;
  table: string;
  mode: KernelMode;
  /** the bits of the connection mark the table may use (ctmark.ts) */
  ctMark: CtMark;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
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
function ruleSetKind<S extends typeof RuleSetSchema | typeof StoreSchema>(schema: S, names: Names): DocKind<S> {
  return {
    name: 'rule set', code: 'QOS_ERR_RULES_INVALID', schema, rule: KernelRuleSchema, limits: RULE_SET_LIMITS,
    docs: 'docs/kernel-rules.md, "Limits"', extra: (raw, set) => setProblems(raw, set, names),
  };
}

/** Reads a rule-set file (or standard input, "-") of at most the limit. */
export async function readRuleSetFile(file: string): Promise<string> {
  const kind = ruleSetKind(RuleSetSchema, systemNames());
  try {
    return await readTextFile(file === '-' ? '/dev/stdin' : file, { maxBytes: RULE_SET_LIMITS.bytes, tooBig: (n, atLeast) => tooBig(kind, file, n, atLeast) });
  } catch (e) {
    if (e instanceof QosError) throw e;
    throw new QosError('QOS_ERR_POLICY_IO', `cannot read ${file}: ${(e as Error).message}`);
  }
}

/** Where each policy rule is enforced. */
export interface Placement { position: number; name?: string; where: 'agent+kernel' | 'agent'; reason?: string }

export function policyPlacement(doc: PolicyDoc, names: Names = systemNames()): { placements: Placement[]; rules: KernelRuleDoc[]; ids: string[] } {
  const placements: Placement[] = [];
  const rules: KernelRuleDoc[] = [];
  const ids: string[] = [];
  doc.rules.forEach((r, i) => {
    const k = policyRuleInKernel(r, names);
    placements.push({ position: i + 1, ...(r.name ? { name: r.name } : {}), where: k.rule ? 'agent+kernel' : 'agent', ...(k.reason ? { reason: k.reason } : {}) });
    if (k.rule) { rules.push(k.rule); ids.push(`p:${r.name ?? `#${i + 1}`}`); }
  });
  return { placements, rules, ids };
}

/** Parses and checks rule-set text (JSON or YAML) whole; throws QOS_ERR_RULES_INVALID
 * listing every problem with line, column and path. */
export function parseRuleSet(text: string, file: string, names: Names = systemNames()): RuleSetDoc {
  return parseValidated(text, file, ruleSetKind(RuleSetSchema, names));
}

type Problem = { path: PropertyKey[]; message: string };

/** What a rule set's schema cannot check: unique names, the atoms of the whole set, and each
 * rule's ruleProblems (not made when the set has too many atoms: that is what they cost). */
function setProblems(raw: unknown, set: RuleSetDoc | undefined, names: Names, problemsOf = (r: KernelRuleDoc) => ruleProblems(r, names)): Problem[] {
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

/** Checks one rule given through the API. */
export function checkRule(raw: unknown, names: Names = systemNames()): KernelRuleDoc {
  const res = KernelRuleSchema.safeParse(raw);
  const problems = res.success
    ? ruleProblems(res.data, names).map((p) => ({ path: p.path.map(String).join('.'), message: p.message }))
    : res.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  if (problems.length) throw new QosError('QOS_ERR_RULES_INVALID', `invalid rule: ${problems.length} problem(s)`, problems);
  return res.data!;
}

/** The portable text of a rule set: what `export` prints and `import` reads back unchanged;
 * with a revision, the daemon's stored file. */
export function ruleSetText(doc: RuleSetDoc, revision?: number): string {
  return JSON.stringify({ qosd_rules: 1, ...(revision === undefined ? {} : { revision }), enabled: doc.enabled, rules: doc.rules }, null, 2) + '\n';
}

export interface ApplyReport { revision: number; applied: boolean; apply_ms: number; commands: number; layers: Record<string, number>; dry_run?: NftDoc[] }

export class KernelRules {
  private set: RuleSetDoc = { qosd_rules: 1, enabled: true, rules: [] };
  /** stable ids of the set's rules, parallel to set.rules: counters follow a moved rule */
  private ids: number[] = [];
  private nextId = 1;
  private revision = 0;
  private policy: { rules: KernelRuleDoc[]; ids: string[]; placements: Placement[] } = { rules: [], ids: [], placements: [] };
  private readonly nft: NftTable;
  private active = false;
  private problem: string | null = null;
  private gen = 0;
  /** rule id → the number it has in the kernel, and for which action */
  private nums = new Map<string, { num: number; actionKey: string }>();
  private nextNum = 1;
  private plan: TablePlan | null = null;
  private lastApplyMs = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private names = systemNames();
  private namesAt = namesStamp();
  private readonly compiled = new WeakMap<KernelRuleDoc, Compiled>();
  private netns: NetnsInfo | null = null;

  constructor(private readonly o: KernelOptions) {
    this.nft = new NftTable(o.table);
  }

  /** Loads the stored set and, unless kernel rules are off or unavailable, applies it. The
   * store must be where no other user can change it (QOS_ERR_UNSAFE_PATH otherwise); what a
   * killed daemon left of a save is removed. */
  async start(policy: PolicyDoc): Promise<void> {
    this.policy = policyPlacement(policy, this.names);
    const file = this.o.rulesFile;
    checkDirectory(dirname(file), 'the kernel rule store', file);
    let text: string | null = null;
    try {
      const stale = removeStaleTemps(file);
      if (stale.length) this.o.log.info({ dir: dirname(file), files: stale }, 'removed temporary files of an interrupted save');
      text = await readTextFile(file, { maxBytes: RULE_SET_LIMITS.bytes, tooBig: (n, atLeast) => tooBig(ruleSetKind(StoreSchema, this.names), file, n, atLeast), trustedAs: 'the kernel rule store' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== null) {
      const doc = parseValidated(text, file, ruleSetKind(StoreSchema, this.names));
      const { revision, ...set } = doc;
      this.set = set;
      this.revision = revision;
      this.ids = set.rules.map(() => this.nextId++);
    }
    if (this.o.mode === 'off') { this.problem = 'kernel rules are off (--kernel off)'; this.o.log.info({ mode: 'off' }, 'kernel rules off (--kernel off): no nftables table'); return; }
    const why = await nftUnavailable();
    if (why) {
      if (this.o.mode === 'on') throw new QosError('QOS_ERR_ENVIRONMENT', `--kernel on, but nftables cannot be used: ${why}`);
      this.problem = `nftables cannot be used: ${why}`;
      this.o.log.warn({ reason: why }, 'kernel rules not applied: the agent alone marks');
      return;
    }
    this.active = true;
    this.netns = currentNetns();
    await this.applyNow(this.set, false);
    this.announce();
  }

  /** Says in the log what the table is, where, and on whom it acts (every process of the
   * namespace, not only programs under the agent). */
  private announce(): void {
    const s = this.installed();
    if (!this.plan) {
      this.o.log.info(s, `kernel rules: none to apply (no policy rule the kernel can express, no \`qos rules\`): no nftables table installed in network namespace ${describeNetns(this.netns!)}`);
      return;
    }
    const names = this.policy.ids.map((id, i) => this.policy.rules[i]!.name ?? id.slice(2));
    this.o.log.info(s, `kernel rules installed: table ${s.table} in network namespace ${describeNetns(this.netns!)}, hook ${BASE_CHAIN.hook} priority ${BASE_CHAIN.priority}, `
      + `connection-mark bits ${s.ct_mask}; ${names.length} policy rules${names.length ? ` (${names.join(', ')})` : ''} and ${s.rule_set_in_kernel} \`qos rules\` rules `
      + "mark the packets of every process in this namespace, not only programs under the agent (--kernel off: none)");
  }

  /** The policy changed (reload): its kernel-expressible rules are re-applied. */
  setPolicy(policy: PolicyDoc): Promise<void> {
    return this.serial(async () => {
      const prev = this.policy;
      this.policy = policyPlacement(policy, this.names);
      // a reload that leaves the kernel's part alone leaves the table (and every flow's cache) alone
      const same = JSON.stringify([prev.ids, prev.rules]) === JSON.stringify([this.policy.ids, this.policy.rules]);
      if (same) return;
      try { await this.applyNow(this.set, false); } catch (e) { this.policy = prev; throw e; }
    });
  }

  /** One edit: fn gets a copy of the set and its ids and returns the new ones. */
  edit(expect: number | undefined, dryRun: boolean, fn: (set: RuleSetDoc, ids: number[]) => void): Promise<ApplyReport> {
    return this.serial(async () => {
      if (expect !== undefined && expect !== this.revision) {
        throw new QosError('QOS_ERR_RULES_STALE', `the rule set is at revision ${this.revision}, not ${expect}: someone changed it since you read it; read it again (qos rules list) and retry`);
      }
      this.refreshNames();
      // edits put new rules in the list, never change one: a shallow copy is the old set kept
      const next: RuleSetDoc = { ...this.set, rules: [...this.set.rules] };
      const ids = [...this.ids];
      fn(next, ids);
      // new rules were checked on the way in, but names must still be unique and users exist
      const problems = setProblems(next, next, this.names, (r) => this.compile1(r).problems).map((p) => ({ file: '<rules>', path: dotted(p.path), message: p.message }));
      if (problems.length) throw new QosError('QOS_ERR_RULES_INVALID', `<rules>: ${problems.length} error(s)`, problems);
      const nextIdBefore = this.nextId;
      if (dryRun) { const report = await this.applyNow(next, true, ids); this.nextId = nextIdBefore; return report; }
      // the new file is written while nft works, and put in place once the kernel took the set
      let staged: StagedFile | undefined;
      let stageError: unknown;
      const stage = () => {
        try {
          mkdirSync(dirname(this.o.rulesFile), { recursive: true, mode: 0o755 });
          staged = stageFile(this.o.rulesFile, ruleSetText(next, this.revision + 1), { mode: 0o644 });
        } catch (e) { stageError = e; }
      };
      let report: ApplyReport;
      try { report = await this.applyNow(next, false, ids, stage); } catch (e) { staged?.discard(); throw e; }
      if (!staged && stageError === undefined) stage();
      this.set = next;
      this.ids = ids;
      this.revision++;
      if (stageError !== undefined) throw stageError;
      staged!.commit();
      return { ...report, revision: this.revision };
    });
  }

  newId(): number { return this.nextId++; }

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
      const problems = ruleProblems(r, this.names);
      const action = kernelAction(r.action);
      c = { names: this.names, problems, atoms: problems.length ? [] : ruleAtoms(r.match, this.names), action, actionKey: JSON.stringify(action) };
      this.compiled.set(r, c);
    }
    return c;
  }

  /** The kernel rules in order: the policy's, then the set's (if enabled); with each the key
   * of its action. */
  private compile(set: RuleSetDoc, ids: number[]): { rule: KRule; actionKey: string }[] {
    const out: { rule: KRule; actionKey: string }[] = [];
    const add = (id: string, origin: KRule['origin'], r: KernelRuleDoc) => {
      const c = this.compile1(r);
      out.push({ rule: { id, ...(r.name ? { name: r.name } : {}), origin, atoms: c.atoms, action: c.action }, actionKey: c.actionKey });
    };
    this.policy.rules.forEach((r, i) => add(this.policy.ids[i]!, 'policy', r));
    if (set.enabled) set.rules.forEach((r, i) => add(`r${ids[i]}`, 'rules', r));
    return out;
  }

  private async applyNow(set: RuleSetDoc, dryRun: boolean, ids = this.ids, meanwhile?: () => void): Promise<ApplyReport> {
    const t0 = performance.now();
    const compiled = this.compile(set, ids);
    const rules = compiled.map((c) => c.rule);
    // Rule numbers for the connection mark, one per rule and action: kept while the rule
    // stays as it is, new ones taken from a counter that only moves on, so that a flow
    // classified before a change never meets a number that means something else now.
    // Only when the counter wraps are numbers of gone rules reused.
    const nums = new Map<string, number>();
    const used = new Set<number>();
    for (const c of compiled) {
      const had = this.nums.get(c.rule.id);
      if (had && had.actionKey === c.actionKey) { nums.set(c.rule.id, had.num); used.add(had.num); }
    }
    const mark = this.o.ctMark, max = mark.maxRules;
    if (rules.length > max) {
      const fromPolicy = this.policy.rules.length;
      throw new QosError('QOS_ERR_RULES_INVALID', `${rules.length} kernel rules (${fromPolicy} from the policy, ${rules.length - fromPolicy} from the rule set), but the connection-mark bits ${hex32(mark.mask)} `
        + `leave ${mark.numberBits} bits for the rule number: at most ${max} rules. Give --ct-mask more bits (or fewer to the generation, --ct-generation-bits), or fewer rules (docs/kernel-rules.md, "The connection mark")`);
    }
    let next = this.nextNum;
    for (const r of rules) {
      if (nums.has(r.id)) continue;
      while (used.has(next) || next > max || next < 1) next = next >= max ? 1 : next + 1;
      nums.set(r.id, next); used.add(next);
      next = next >= max ? 1 : next + 1;
    }
    const gen = (this.gen % mark.maxGeneration) + 1;
    const plan = planTable(this.o.table, rules, nums, gen, mark);
    const layers = plan.layers;
    if (!this.active && !dryRun) return { revision: this.revision, applied: false, apply_ms: 0, commands: 0, layers };
    const empty = rules.length === 0;
    if (dryRun) {
      const { docs, commands } = empty ? { docs: [this.nft.removal()], commands: 2 } : await this.nft.apply(plan, true);
      return { revision: this.revision, applied: false, apply_ms: 0, commands, layers, dry_run: docs };
    }
    let commands: number;
    if (empty) { const p = this.nft.remove(); meanwhile?.(); await p; commands = 2; } else ({ commands } = await this.nft.apply(plan, false, meanwhile));
    this.gen = gen;
    this.nextNum = next;
    this.nums = new Map(compiled.map((c) => [c.rule.id, { num: nums.get(c.rule.id)!, actionKey: c.actionKey }]));
    this.plan = empty ? null : plan;
    this.lastApplyMs = performance.now() - t0;
    this.o.log.info({ rules: rules.length, layers, commands, ms: Math.round(this.lastApplyMs) }, 'kernel rules applied');
    return { revision: this.revision, applied: true, apply_ms: Math.round(this.lastApplyMs * 10) / 10, commands, layers };
  }

  /** Removes the table: the daemon stops and leaves no trace. */
  async stop(): Promise<void> {
    await this.queue;
    if (this.active) await this.nft.remove().catch((e: Error) => this.o.log.error({ err: e.message }, 'could not remove the kernel table'));
    this.active = false;
  }

  get storedRevision(): number { return this.revision; }
  get ruleSet(): RuleSetDoc { return this.set; }

  status(): Record<string, unknown> {
    return {
      mode: this.o.mode, active: this.active, problem: this.problem, ...this.installed(), rules_file: this.o.rulesFile,
      revision: this.revision, enabled: this.set.enabled, rules: this.set.rules.length,
      policy_rules_in_kernel: this.policy.rules.length, layers: this.plan?.layers ?? null, generation: this.gen, last_apply_ms: Math.round(this.lastApplyMs * 10) / 10,
    };
  }

  /** What the table is, where it is, and what it holds: status and the start-up log. */
  private installed() {
    const applied = this.active && this.plan !== null;
    return {
      table: `${BASE_CHAIN.family} ${this.o.table}`, installed: applied,
      namespace: this.netns, hook: BASE_CHAIN.hook, priority: BASE_CHAIN.priority, ...describeCtMark(this.o.ctMark),
      policy_kernel_rules: this.policy.ids.map((id, i) => this.policy.rules[i]!.name ?? id.slice(2)),
      rule_set_in_kernel: this.set.enabled ? this.set.rules.length : 0,
      acts_on: applied ? 'the packets of every process in the namespace, not only programs under the agent' : null,
    };
  }

  /** The set's and the policy's rules with their counters. */
  async list(): Promise<Record<string, unknown>> {
    const counters: Map<string, Counter> = this.active && this.plan ? await this.nft.counters() : new Map();
    const c = (id: string) => counters.get(id) ?? { packets: 0, bytes: 0 };
    return {
      revision: this.revision, enabled: this.set.enabled, kernel: this.status(),
      rules: this.set.rules.map((r, i) => ({ position: i + 1, ...r, ...c(`r${this.ids[i]}`) })),
      policy_rules: this.policy.placements.map((p) => ({ ...p, ...(p.where === 'agent+kernel' ? c(`p:${p.name ?? `#${p.position}`}`) : {}) })),
    };
  }
}
