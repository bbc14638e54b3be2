/* A router's reservations as host traffic control (src/tc): each one the engine installs on an
 * outgoing interface becomes a flow (an HTB class at its rate, its policer and marks) with a
 * filter per sender (FF, SE) or one for the whole session (WF: any source), made through the
 * same TrafficControl the daemon's API drives, so they are listed, planned and removed alike.
 *
 * The IntServ FLOWSPEC (RFC 2210) maps onto the GQoS one (seed 002): Tspec r, b and p are
 * TokenRate, TokenBucketSize and PeakBandwidth (infinity: not specified). IntServ counts bytes
 * of IP datagrams, headers included, where GQoS counts the payload and adds the headers from
 * MinimumPolicedSize: so MinimumPolicedSize is left unspecified (the rate is r as it is) and
 * MaxSduSize is M less the IP and transport headers (the policer counts packets of M bytes).
 * Guaranteed reserves its Rspec rate R when it is above r (RFC 2212: the rate it is served at). */

import { QosError } from '../errors.js';
import type { FlowInput, TrafficControl } from '../tc/control.js';
import { layer3Overhead } from '../flowspec/overhead.js';
import type { FilterInput } from '../tc/model.js';
import type { Reservation, TrafficInstaller } from './engine/types.js';

/** The traffic control flow a reservation asks for. */
export function flowInputOf(r: Reservation): FlowInput {
  const t = r.flowspec.tspec;
  const gs = r.flowspec.service === 'GS';
  const whole = (x: number) => Math.ceil(x);
  const rate = r.flowspec.service === 'GS' ? Math.max(t.r, r.flowspec.R) : t.r;
  const framing = { proto: r.session.protocol === 6 ? 'tcp' as const : 'udp' as const, ipv6: r.session.destination.includes(':') };
  return {
    dev: r.ifname,
    flowspec: {
      TokenRate: whole(rate),
      TokenBucketSize: whole(t.b),
      PeakBandwidth: Number.isFinite(t.p) ? whole(Math.max(t.p, rate)) : null,
      MaxSduSize: Math.max(1, t.M - layer3Overhead(framing)),
    },
    service: gs ? 'Guaranteed' : 'ControlledLoad',
    ...framing,
    name: nameOf(r.key),
  };
}

/** A flow's name from the reservation's key: what `qos tc flows` shows (1-64 of [\w.-]). */
function nameOf(key: string): string {
  return ('rsvp-' + key.replace(/[^\w.-]+/g, '_')).slice(0, 64);
}

/** The filters a reservation asks for, keyed by their text so a change adds and removes only
 * the difference. Port 0 (RFC 2205: any port) and protocol 0 are wildcards. */
export function filterInputsOf(r: Reservation, flow: number): Map<string, FilterInput> {
  const s = r.session;
  const proto = s.protocol === 0 ? '*' : String(s.protocol);
  const port = (p: number) => (p === 0 || proto === '*' ? '*' : String(p));
  const sources = r.style === 'WF' || r.filters.length === 0 ? [{ source: '*', port: 0 }] : r.filters;
  const out = new Map<string, FilterInput>();
  for (const f of sources) {
    const input: FilterInput = { flow, family: s.destination.includes(':') ? 6 : 4, src: f.source, dst: s.destination, proto, sport: port(f.port), dport: port(s.port) };
    out.set(`${input.src} ${input.sport} ${input.dst} ${input.dport} ${input.proto}`, input);
  }
  return out;
}

interface Held { flow: number; filters: Map<string, number> }

export class TcInstaller implements TrafficInstaller {
  private readonly held = new Map<string, Held>();

  /** markOf: the conforming DSCP a reservation's flow takes instead of its service's (seed
   * 003's DCLASS; a host's policy `reserve` with a dscp), or null */
  constructor(private readonly tc: TrafficControl, private readonly markOf: (r: Reservation) => number | null = () => null) {}

  async update(r: Reservation): Promise<void> {
    const dscp = this.markOf(r);
    const input = dscp === null ? flowInputOf(r) : { ...flowInputOf(r), dscp };
    let h = this.held.get(r.key);
    if (!h) {
      const made = (await this.tc.addFlow(input, false, { kind: 'rsvp', reservation: r.key })) as { id: number };
      h = { flow: made.id, filters: new Map() };
      this.held.set(r.key, h);
      try {
        await this.filters(h, r);
      } catch (e) {
        // a reservation with no filter would hold bandwidth nothing uses
        await this.remove(r.key).catch(() => undefined);
        throw e;
      }
      return;
    }
    await this.tc.modifyFlow(h.flow, input);
    await this.filters(h, r);
  }

  private async filters(h: Held, r: Reservation): Promise<void> {
    const want = filterInputsOf(r, h.flow);
    for (const [k, id] of [...h.filters]) {
      if (want.has(k)) continue;
      await this.tc.deleteFilter(id);
      h.filters.delete(k);
    }
    for (const [k, f] of want) {
      if (h.filters.has(k)) continue;
      const made = (await this.tc.addFilter(f)) as { id: number };
      h.filters.set(k, made.id);
    }
  }

  async remove(key: string): Promise<void> {
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    try {
      await this.tc.deleteFlow(h.flow);
    } catch (e) {
      if (!(e instanceof QosError && e.code === 'QOS_ERR_NOT_FOUND')) throw e;
    }
  }

  /** the flow and filter numbers of one reservation, if it is held */
  get(key: string): { flow: number; filters: number[] } | undefined {
    const h = this.held.get(key);
    return h && { flow: h.flow, filters: [...h.filters.values()] };
  }

  /** the reservations held: key, flow and filter numbers */
  list(): { key: string; flow: number; filters: number[] }[] {
    return [...this.held].map(([key, h]) => ({ key, flow: h.flow, filters: [...h.filters.values()] }));
  }
}
