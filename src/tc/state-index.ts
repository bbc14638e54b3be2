/* What control.ts asks of its state for each request, kept as indexes so that a request costs
 * the same with 10 or 10,000 flows (pure): each interface's reserved rate and flow count, each
 * flow's filters, each interface's exact filters by key (an equal one is a conflict) and its
 * filters with wildcards (few; each new one is checked against them for overlap). Built once
 * per batch from the state, then kept in step by the batch's requests. */

import { isExact, kernelRate, overlaps, type TcFilter, type TcFlow, type TcState } from './model.js';
import { filterKey } from './plan.js';

export class TcIndex {
  private readonly reservedOn = new Map<string, number>();
  private readonly flowsOn = new Map<string, number>();
  private readonly byFlow = new Map<number, Set<number>>();
  private readonly exact = new Map<string, TcFilter>();
  private readonly wild = new Map<string, Set<TcFilter>>();

  /** The index of s: its flows' devs are in s.devs, its filters' flows in s.flows. */
  constructor(private readonly s: TcState) {
    for (const f of s.flows.values()) this.addFlow(f);
    for (const f of s.filters.values()) this.addFilter(f);
  }

  /** What the flows on dev reserve, bytes/s. */
  reserved(dev: string): number { return this.reservedOn.get(dev) ?? 0; }
  flows(dev: string): number { return this.flowsOn.get(dev) ?? 0; }
  /** The ids of a flow's filters. */
  filtersOf(flow: number): number[] { return [...(this.byFlow.get(flow) ?? [])]; }

  /** The filter on f's interface that f may not sit beside: an equal exact one, or a
   * wildcard one it overlaps (an exact filter may sit inside a wildcard one). */
  conflict(f: TcFilter): TcFilter | undefined {
    const dev = this.devOf(f);
    if (isExact(f)) return this.exact.get(exactKey(dev, f));
    for (const g of this.wild.get(dev) ?? []) if (overlaps(f, g)) return g;
    return undefined;
  }

  addFlow(f: TcFlow): void {
    this.reservedOn.set(f.dev, this.reserved(f.dev) + kernelRate(f));
    this.flowsOn.set(f.dev, this.flows(f.dev) + 1);
  }
  removeFlow(f: TcFlow): void {
    this.reservedOn.set(f.dev, this.reserved(f.dev) - kernelRate(f));
    this.flowsOn.set(f.dev, this.flows(f.dev) - 1);
    this.byFlow.delete(f.id);
  }

  /** f's flow must be in the state the index was built on (or added to it since). */
  addFilter(f: TcFilter): void {
    const dev = this.devOf(f);
    if (isExact(f)) this.exact.set(exactKey(dev, f), f);
    else this.wild.set(dev, (this.wild.get(dev) ?? new Set()).add(f));
    this.byFlow.set(f.flow, (this.byFlow.get(f.flow) ?? new Set()).add(f.id));
  }
  removeFilter(f: TcFilter): void {
    const dev = this.devOf(f);
    if (isExact(f)) { if (this.exact.get(exactKey(dev, f)) === f) this.exact.delete(exactKey(dev, f)); }
    else this.wild.get(dev)?.delete(f);
    this.byFlow.get(f.flow)?.delete(f.id);
  }

  private devOf(f: TcFilter): string {
    const flow = this.s.flows.get(f.flow);
    if (!flow) throw new Error(`filter ${f.id}: no flow ${f.flow}`);
    return flow.dev;
  }
}

const exactKey = (dev: string, f: TcFilter) => `${dev} ${f.family} ${filterKey(f)}`;
