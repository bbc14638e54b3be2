/* The nftables enforcement backend: kernel rules as one table (plan.ts, pure) with each
 * flow's classification cached in the connection mark under rule numbers (ctmark.ts, pure),
 * applied in two transactions (nft.ts). A plan is computed from what the last applied one
 * left and changes nothing, so --dry-run costs nothing; only apply moves the state on. */

import type { BackendStatus, Counter, EnforcementBackend, PlanRule } from './backend.js';
import { describeCtMark, numberRules, readCtMark, type CtMark, type RuleNumber } from './ctmark.js';
import { BASE_CHAIN, NftTable, nftRunner, type NftRunner } from './nft.js';
import { nftAtomProblems, planTable, type TablePlan } from './plan.js';
import { documentsText, type MapTypes } from './nft-text.js';

export interface NftPlan {
  /** the whole table wanted; with no rules, the table is removed */
  table: TablePlan;
  empty: boolean;
  numbers: Map<string, RuleNumber>;
  counter: number;
  generation: number;
}

export interface NftBackendOptions {
  /** the table's name (`inet <table>`) */
  table: string;
  /** the bits of the connection mark the table may use */
  ctMark: CtMark;
  /** how nft is run: the real program unless a test gives the fake (nft-fake.ts) */
  runner?: NftRunner;
}

export class NftBackend implements EnforcementBackend<NftPlan> {
  readonly name = 'nftables';
  readonly validate = nftAtomProblems;
  private readonly nft: NftTable;
  private readonly runner: NftRunner;
  /** rule id → the number it has in the kernel, and for which action */
  private numbers: ReadonlyMap<string, RuleNumber> = new Map();
  private counter = 1;
  private generation = 0;

  constructor(private readonly o: NftBackendOptions) {
    this.runner = o.runner ?? nftRunner;
    this.nft = new NftTable(o.table, this.runner);
  }

  available(): Promise<string | null> { return this.runner.unavailable(); }

  plan(rules: readonly PlanRule[]): NftPlan {
    const mark = this.o.ctMark;
    const { nums, numbers, counter } = numberRules(this.numbers, rules, mark, this.counter);
    const generation = (this.generation % mark.maxGeneration) + 1;
    const table = planTable(this.o.table, rules.map((r) => r.rule), nums, generation, mark);
    return { table, empty: rules.length === 0, numbers, counter, generation };
  }

  layers(plan: NftPlan): Record<string, number> { return plan.table.layers; }

  describe(plan: NftPlan): { documents: unknown[]; commands: number; text: string } {
    if (plan.empty) { const d = this.nft.removal(); return { documents: [d], commands: 2, text: documentsText([d]) }; }
    const { docs, commands } = NftTable.documents(this.nft.change(plan.table));
    // hash maps keep their names in the kernel: a change may add elements to ones made before
    const known: MapTypes = new Map([...plan.table.maps].filter(([, m]) => !m.interval).map(([n, m]) => [n, { type: m.type.length === 1 ? m.type[0] : m.type, map: m.data }]));
    return { documents: docs, commands, text: documentsText(docs, known) };
  }

  async apply(plan: NftPlan, meanwhile?: () => void): Promise<{ commands: number }> {
    let commands: number;
    if (plan.empty) { const p = this.nft.remove(); meanwhile?.(); await p; commands = 2; } else ({ commands } = await this.nft.apply(this.nft.change(plan.table), meanwhile));
    this.generation = plan.generation;
    this.counter = plan.counter;
    this.numbers = plan.numbers;
    return { commands };
  }

  remove(): Promise<void> { return this.nft.remove(); }

  counters(): Promise<Map<string, Counter>> { return this.nft.counters(); }

  connectionRule(mark: number): { id: string | null; number: number; generation: number; current: boolean } {
    const { number, generation } = readCtMark(mark, this.o.ctMark);
    let id: string | null = null;
    if (number) for (const [k, n] of this.numbers) if (n.num === number) { id = k; break; }
    return { id, number, generation, current: generation !== 0 && generation === this.generation };
  }

  status(): BackendStatus {
    const bits = describeCtMark(this.o.ctMark);
    return {
      table: `${BASE_CHAIN.family} ${this.o.table}`,
      where: { hook: BASE_CHAIN.hook, priority: BASE_CHAIN.priority, ...bits },
      whereText: `hook ${BASE_CHAIN.hook} priority ${BASE_CHAIN.priority}, connection-mark bits ${bits.ct_mask}`,
      generation: this.generation,
    };
  }
}
