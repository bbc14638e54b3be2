/* `qos rsvp router`: this network namespace (or machine) as an RSVP router (docs/rsvp.md,
 * "Routers"). It intercepts Path messages passing through (Router Alert), keeps path and
 * reservation state, forwards both, and on each Resv runs admission control for the outgoing
 * interface — the reservable share of its link rate, quotas per user and per application from
 * POLICY_DATA (seed 003's ACS role) — before installing the reservation as a traffic control
 * flow and filter (src/tc), which it removes on teardown or time-out, and all of them at exit.
 *
 * Its traffic control lives in its own nftables table (inet qosd_rsvp) and HTB root d5c: on
 * the interfaces it reserves on; a state file per network namespace lets the next router
 * remove what one killed with SIGKILL left. */

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { QosError } from '../errors.js';
import { TrafficControl } from '../tc/control.js';
import { systemRunner } from '../tc/runner.js';
import { LinkAdmission, type AdmissionConfig } from './admission.js';
import { bandwidth } from './engine/state.js';
import type { Admission, Reservation, RsvpEvent, RsvpInterface, TrafficInstaller } from './engine/types.js';
import { RsvpNode } from './node.js';
import { TcInstaller } from './tc-install.js';

export interface RouterOptions {
  refreshMs: number;
  k: number;
  udp: boolean;
  /** link rates by interface, bytes/s: the HTB root's rate and what admission shares out */
  links: Map<string, number>;
  /** the share of a link's rate reservations may take, 0 to 1 */
  share: number;
  quotas: Pick<AdmissionConfig, 'users' | 'apps' | 'default'>;
  table: string;
  stateDir: string;
  log?: Logger;
  onEvent?: (e: RouterEvent) => void;
  /** Guaranteed Service error terms by interface (--gs-terms), over the defaults of gsTermsFor */
  gsTerms?: Map<string, { c: number; d: number }>;
  /** INTEGRITY keys (RFC 2747; node.ts NodeOptions.keys) and whether a message without one is dropped */
  keys?: Map<string, Uint8Array>;
  requireIntegrity?: boolean;
}

/** What a router reports: the engine's events (path-gone and resv-gone, with why) and what
 * became of each reservation on an interface. */
export type RouterEvent =
  | RsvpEvent
  | { kind: 'installed' | 'changed'; key: string; ifname: string; flow: number; rate: number; filters: number }
  | { kind: 'removed'; key: string }
  | { kind: 'refused'; key: string; ifname: string; code: number; value: number; reason: string }
  | { kind: 'tc-error'; key: string; ifname: string; error: string };

/** The installer, reporting each change. */
class ReportingInstaller implements TrafficInstaller {
  constructor(private readonly inner: TcInstaller, private readonly report: (e: RouterEvent) => void) {}

  async update(r: Reservation): Promise<void> {
    const had = this.inner.get(r.key) !== undefined;
    try {
      await this.inner.update(r);
    } catch (e) {
      this.report({ kind: 'tc-error', key: r.key, ifname: r.ifname, error: e instanceof Error ? e.message : String(e) });
      throw e;
    }
    const h = this.inner.get(r.key)!;
    this.report({ kind: had ? 'changed' : 'installed', key: r.key, ifname: r.ifname, flow: h.flow, rate: bandwidth(r.flowspec), filters: h.filters.length });
  }

  async remove(key: string): Promise<void> {
    const had = this.inner.get(key) !== undefined;
    await this.inner.remove(key);
    if (had) this.report({ kind: 'removed', key });
  }
}

/** Admission, reporting each refusal. */
class ReportingAdmission implements Admission {
  constructor(private readonly inner: LinkAdmission, private readonly report: (e: RouterEvent) => void) {}
  admit(req: Parameters<Admission['admit']>[0]): ReturnType<Admission['admit']> {
    const a = this.inner.admit(req);
    if (!a.ok) this.report({ kind: 'refused', key: req.key, ifname: req.ifname, code: a.code, value: a.value, reason: a.reason });
    return a;
  }
  release(key: string): void { this.inner.release(key); }
}

/** A file name for this network namespace: two routers in two namespaces keep two files. */
export function namespaceTag(): string {
  try {
    const m = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'));
    return m ? m[1]! : 'host';
  } catch {
    return 'host';
  }
}

/** Interfaces whose driver reports a speed (a veth reports none), bytes/s. */
function driverSpeeds(): Map<string, number> {
  const out = new Map<string, number>();
  for (const dev of readdirSync('/sys/class/net')) {
    try {
      const mbit = Number(readFileSync(`/sys/class/net/${dev}/speed`, 'utf8'));
      if (mbit > 0) out.set(dev, mbit * 125_000);
    } catch { /* down, or no speed */ }
  }
  return out;
}

/** The Guaranteed Service error terms (RFC 2212 section 6) an interface exports: those given
 * for it, else, on an interface it reserves on (one with a rate, the HTB root's), those of a
 * rate-based scheduler (its HTB class) at that rate: C = the link's MTU, bytes (packets are
 * served whole, so one may leave up to MTU / R later than the fluid model at R says: the
 * rate-dependent term), and D = one MTU at the link's rate, microseconds, rounded up (another
 * flow's packet already on the wire when this one's arrives: the rate-independent term). An
 * interface with no rate or MTU exports none. */
export function gsTermsFor(i: Pick<RsvpInterface, 'name' | 'rate' | 'mtu'>, given?: Map<string, { c: number; d: number }>): { c: number; d: number } | undefined {
  const g = given?.get(i.name);
  if (g) return g;
  if (!i.rate || !i.mtu) return undefined;
  return { c: i.mtu, d: Math.ceil((i.mtu / i.rate) * 1e6) };
}

export interface RunningRouter {
  node: RsvpNode;
  tc: TrafficControl;
  installer: TcInstaller;
  admission: LinkAdmission;
  stop(): Promise<void>;
}

export async function startRouter(o: RouterOptions): Promise<RunningRouter> {
  if (process.getuid?.() !== 0) throw new QosError('QOS_ERR_PRIVILEGE', 'qos rsvp router needs root: it opens a raw IP socket and installs queueing disciplines');
  const tc = new TrafficControl(systemRunner, o.log, { table: o.table, stateFile: join(o.stateDir, `rsvp-router-${namespaceTag()}.json`) });
  await tc.start();
  let node: RsvpNode | undefined;
  try {
    for (const [dev, rate] of o.links) await tc.setInterface(dev, { rate });
    // what admission shares out: the rates given, else what each interface's driver reports
    const links: AdmissionConfig['links'] = {};
    for (const [dev, rate] of driverSpeeds()) links[dev] = { rate, share: o.share };
    for (const [dev, rate] of o.links) links[dev] = { rate, share: o.share };
    const report = o.onEvent ?? (() => undefined);
    const admission = new LinkAdmission({ links, ...o.quotas });
    const installer = new TcInstaller(tc);
    node = await RsvpNode.open({
      role: 'router', refreshMs: o.refreshMs, k: o.k, udp: o.udp, rates: new Map(Object.entries(links).map(([dev, l]) => [dev, l.rate])), gsTerms: (i) => gsTermsFor(i, o.gsTerms), traffic: new ReportingInstaller(installer, report), admission: new ReportingAdmission(admission, report),
      ...(o.log ? { log: o.log } : {}), onEvent: report, ...(o.keys ? { keys: o.keys, requireIntegrity: o.requireIntegrity ?? false } : {}),
    });
    const n = node;
    return {
      node: n, tc, installer, admission,
      async stop() {
        await n.close();
        await tc.stop();
      },
    };
  } catch (e) {
    await node?.close().catch(() => undefined);
    await tc.stop().catch(() => undefined);
    throw e;
  }
}
