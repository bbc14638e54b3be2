/* What the RSVP engine (RFC 2205 section 3: path and reservation state, refresh, time-out,
 * merging, errors, confirmation, blockade) needs of the world around it, and what it offers.
 * The engine is pure: it never opens a socket, runs a program or reads the clock but through
 * these. The router process (`qos rsvp router`) and the daemon's host part give it the real
 * ones: a transport (raw IP protocol 46 with Router Alert, or UDP 1698/1699), the routing
 * table, traffic control through src/tc, admission control. Tests give it fakes and a
 * ManualClock (src/clock.ts) and run hours of protocol time in milliseconds. */

import type { Clock } from '../../clock.js';
import type { Flowspec } from '../flowspec.js';
import type { FilterSpec, SenderTemplate } from '../filter-spec.js';
import type { RsvpMessage } from '../message.js';
import type { PolicyData } from '../policy-data.js';
import type { Session } from '../session.js';
import type { StyleName } from '../style.js';
import type { SenderTspec } from '../tspec.js';
import type { Adspec } from '../adspec.js';

/** An interface of this node that speaks RSVP. */
export interface RsvpInterface {
  /** kernel name, e.g. veth-r1b */
  name: string;
  /** its addresses (the first of each family is the one RSVP_HOP carries) */
  addresses: string[];
  /** the logical interface handle RSVP_HOP carries (RFC 2205 section 3.1.3): the ifindex */
  lih: number;
  /** the link's rate, bytes/s, when known: Path going out here composes the ADSPEC's path
   * bandwidth with it (RFC 2210 section 3.3) */
  rate?: number;
  /** the link's MTU, bytes, when known: composed into the ADSPEC's path MTU */
  mtu?: number;
  /** the Guaranteed Service error terms of this interface's scheduler (RFC 2212 section 6):
   * c, bytes (rate-dependent), d, microseconds (rate-independent), whole numbers; Path going
   * out here adds them to the ADSPEC's Ctot/Csum and Dtot/Dsum. Without them a Path's GS
   * terms pass unchanged. */
  gs?: { c: number; d: number };
}

/** Where the routing table sends a destination: the outgoing interface, the next hop's
 * address (null: on link) and the source address the node uses there. */
export interface RouteTo { ifname: string; gateway: string | null; src: string }

export interface Routes {
  /** null: no route (the engine answers PathErr "no path", or drops) */
  lookup(destination: string): RouteTo | null;
}

/** A message as it arrived: decoded already (the transport's reader drops what does not decode
 * and counts it), with where it came in and the IP header's fields RSVP uses. */
export interface Inbound {
  msg: RsvpMessage;
  /** interface it arrived on */
  ifname: string;
  /** IP source and destination */
  src: string;
  dst: string;
  /** the IP TTL (hop limit) it arrived with: compared with the common header's send TTL to
   * find non-RSVP hops (RFC 2205 section 3.8) */
  ttl: number;
  /** the packet carried the Router Alert option (raw transport), or came over UDP */
  routerAlert: boolean;
}

/** A message to send. Path, PathTear and ResvConf toward the session's destination go with
 * Router Alert to `dst` = the session's destination (every RSVP router on the way intercepts
 * them); Resv, ResvTear, PathErr, ResvErr go hop by hop, unicast to the previous hop. */
export interface Outbound {
  msg: RsvpMessage;
  /** the interface to send on (null: as routing says) */
  ifname: string | null;
  dst: string;
  /** the IP source: for Path, the original sender's address (RFC 2205 section 3.1.3) */
  src: string;
  /** IP TTL; the common header's send TTL is set by the engine to the same value */
  ttl: number;
  routerAlert: boolean;
}

export interface Send {
  (o: Outbound): void;
}

/** One reservation a router installs on an outgoing interface: the merged FLOWSPEC of every
 * RSB on that (session, interface), and the senders it applies to (FF: one per filter; SE and
 * WF: all of them, WF with every sender whose path state routes through the interface). */
export interface Reservation {
  /** stable for the life of the reservation: session + interface (+ sender for FF) */
  key: string;
  ifname: string;
  session: Session;
  style: StyleName;
  flowspec: Flowspec;
  filters: FilterSpec[];
}

/** Traffic control as the engine uses it (the router: src/tc through its TrafficControl;
 * tests: a fake). update is called again with the same key when the merged FLOWSPEC or the
 * filters change; remove at teardown or time-out. A rejected promise is a traffic control
 * error: the engine sends ResvErr code 21 (traffic control error) and drops the RSB. */
export interface TrafficInstaller {
  update(r: Reservation): Promise<void>;
  remove(key: string): Promise<void>;
}

/** Who asks, as POLICY_DATA says (RFC 3182 AUTH_USER / AUTH_APP), null when none came. */
export interface PolicyIdentity { user: string | null; app: string | null }

/** Admission control per outgoing interface (seed 003's ACS/SBM role): the reservable share
 * of the link, and per-user and per-application quotas. Checked before TrafficInstaller.update;
 * `previous` is what the key holds now (a change is judged by its difference). */
export interface Admission {
  admit(req: { key: string; ifname: string; session: Session; flowspec: Flowspec; previous: Flowspec | null; identity: PolicyIdentity }):
    | { ok: true }
    | { ok: false; code: number; value: number; reason: string };
  /** the key no longer holds anything */
  release(key: string): void;
}

/** What a host's applications see (the RAPI upcalls of RFC 2205 appendix, in spirit). */
export type RsvpEvent =
  | { kind: 'path'; session: Session; sender: SenderTemplate; tspec: SenderTspec; adspec: Adspec | null; phop: string }
  | { kind: 'path-gone'; session: Session; sender: SenderTemplate; why: 'tear' | 'timeout' }
  | { kind: 'resv'; session: Session; style: StyleName; flowspec: Flowspec; filters: FilterSpec[] }
  | { kind: 'resv-gone'; session: Session; why: 'tear' | 'timeout' }
  | { kind: 'path-error'; session: Session; code: number; value: number; node: string }
  | { kind: 'resv-error'; session: Session; code: number; value: number; node: string }
  | { kind: 'confirm'; session: Session; receiver: string };

export interface EngineOptions {
  role: 'host' | 'router';
  clock: Clock;
  interfaces: RsvpInterface[];
  routes: Routes;
  send: Send;
  /** routers: required; hosts: optional (a receiving host reserves on nothing of its own) */
  traffic?: TrafficInstaller;
  admission?: Admission;
  /** R, the refresh period this node sends with (default 30,000 ms; each refresh is sent after
   * a random 0.5 R to 1.5 R) */
  refreshMs?: number;
  /** K (default 3): state whose refreshes stop lives (K + 0.5) * 1.5 * R of its sender */
  k?: number;
  /** the most path states this node holds (default 100,000): every RSVP packet on a link is
   * anyone's to send, and each new sender would otherwise cost memory and a timer for good */
  maxPaths?: number;
  /** deadlines this close to one that fires run with it (default 0; timers.ts) */
  slackMs?: number;
  /** for the refresh jitter (default Math.random) */
  random?: () => number;
  onEvent?: (e: RsvpEvent) => void;
  /** POLICY_DATA to put in what this host originates */
  policyData?: PolicyData;
}

/** The state a node holds, for status, tests and the benchmark. */
export interface EngineCounts {
  sessions: number; psb: number; rsb: number; tcsb: number; blockades: number;
  /** Path messages of new senders dropped because the node held maxPaths path states */
  paths_refused: number;
}
