/* `qos explain` assembled (issue 25): why a program's call gets its decision, and what the
 * kernel does with the program's sockets now, as the one JSON value that `qos explain --json`
 * prints, the daemon's POST /v1/explain answers and the dashboard's Flows page shows. The
 * policy walk is policy/explain.ts; the program comes from /proc; its sockets from the kernel
 * (ss --tos: TOS and priority, kernel/sockets.ts; the connection mark: the kernel rule that took
 * the flow, conntrack.ts; the traffic-control flow its packets fall in, tc-place.ts); what the
 * daemon decided for each socket from its flows. Where the policy, the flows and the live state
 * come from is the caller's (ExplainSources): the daemon's own parts (api.ts), or a policy file
 * and what a daemon answers, if one does (`qos explain --policy`). */

import { readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { QosError } from '../errors.js';
import { explainCall } from '../policy/explain.js';
import { parseAddr } from '../policy/net.js';
import { EVENT_NAMES, type EventName, type PolicyDoc } from '../policy/schema.js';
import { cgroupOf, cmdlineOf, credsOf, NameTable } from '../daemon/identity.js';
import { systemNames } from '../kernel/rules.js';
import { policyPlacement } from '../kernel/manager.js';
import { endOf, socketsOf, type KernelSocket } from '../kernel/sockets.js';
import { policyRuleInEbpf } from '../ebpf/rules.js';
import { resolvePatterns } from '../ebpf/resolve.js';
import { procLookup, type FiveTuple } from '../tc/attach.js';
import { conntrackIndex, markOf, type ConntrackIndex } from './conntrack.js';
import { tcLookup, tcPlace, type TcListing, type TcLookup } from './tc-place.js';
import type { DaemonFlow, ExplainReport, KernelRuleFact, LimitPlace, OwnTos, SocketReport, TcPlace } from './types.js';

export type { DaemonFlow, ExplainReport, KernelRuleFact, OwnTos, SocketReport } from './types.js';

/** What is explained: the program (a running process, or an executable described) and the
 * call; the CLI's options by the same names, the body of POST /v1/explain. */
export interface ExplainInput {
  pid?: number; fd?: number;
  exe?: string; cmdline?: string; user?: string; uid?: number;
  event: EventName;
  /** default: the socket's (--fd), else tcp */
  proto?: 'tcp' | 'udp';
  /** ADDRESS:PORT, [V6]:PORT */
  remote?: string; local?: string;
}

const INPUT_KEYS = ['pid', 'fd', 'exe', 'cmdline', 'user', 'uid', 'event', 'proto', 'remote', 'local'];

/** The input from a request body (or the CLI's options), checked whole: QOS_ERR_USAGE names
 * the first thing wrong. */
export function explainInput(body: Record<string, unknown>): ExplainInput {
  const extra = Object.keys(body).filter((k) => !INPUT_KEYS.includes(k));
  if (extra.length) throw new QosError('QOS_ERR_USAGE', `explain takes ${INPUT_KEYS.join(', ')}; not ${extra.join(', ')}`);
  const int = (k: string, min: number): number | undefined => {
    const v = body[k];
    if (v === undefined) return undefined;
    if (!Number.isSafeInteger(v) || (v as number) < min) throw new QosError('QOS_ERR_USAGE', `--${k} takes a whole number${min ? ' above 0' : ''}, not ${JSON.stringify(v)}`);
    return v as number;
  };
  const str = (k: string): string | undefined => {
    const v = body[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length > 4096) throw new QosError('QOS_ERR_USAGE', `--${k} takes text (at most 4,096 characters), not ${JSON.stringify(v).slice(0, 80)}`);
    return v;
  };
  const event = str('event') ?? 'connect';
  if (!EVENT_NAMES.includes(event as EventName)) throw new QosError('QOS_ERR_USAGE', `--event takes ${EVENT_NAMES.join(', ')}, not "${event}"`);
  const proto = str('proto');
  if (proto !== undefined && proto !== 'tcp' && proto !== 'udp') throw new QosError('QOS_ERR_USAGE', `--proto takes tcp or udp, not "${proto}"`);
  const i: ExplainInput = { pid: int('pid', 1), fd: int('fd', 0), exe: str('exe'), cmdline: str('cmdline'), user: str('user'), uid: int('uid', 0), event: event as EventName, proto: proto as 'tcp' | 'udp' | undefined, remote: str('remote'), local: str('local') };
  if (i.pid === undefined && i.exe === undefined) throw new QosError('QOS_ERR_USAGE', 'say which program: --pid PID (a running process) or --exe PATH');
  if (i.fd !== undefined && i.pid === undefined) throw new QosError('QOS_ERR_USAGE', '--fd is one of a process\'s sockets: give --pid too');
  if (i.remote !== undefined) endpoint(i.remote, '--remote');
  if (i.local !== undefined) endpoint(i.local, '--local');
  for (const k of Object.keys(i) as (keyof ExplainInput)[]) if (i[k] === undefined) delete i[k];
  return i;
}

/** "ADDR:PORT" or "[V6]:PORT" */
function endpoint(v: string, name: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(v) ?? /^([^:]+):(\d{1,5})$/.exec(v);
  if (!m || !isIP(m[1]!) || Number(m[2]) > 65535) throw new QosError('QOS_ERR_USAGE', `${name} takes ADDRESS:PORT ([ADDRESS]:PORT for IPv6), not "${v}"`);
  return { address: m[1]!, port: Number(m[2]) };
}

/** What the daemon has in place: its eBPF programs (attached, the files and rules they hold)
 * and its nftables table. */
export interface LiveState { ebpf: { attached: boolean; files: readonly string[]; rules: readonly string[] }; kernel: boolean }

/** Where explain gets what is not the program's own. */
export interface ExplainSources {
  /** the policy: its document, its text (for the rules' lines) and where it came from */
  policy(): Promise<{ doc: PolicyDoc; text: string; source: string; lines?: readonly number[] }>;
  /** what the daemon has in place; null: not known (a policy file, and no daemon asked) */
  live(): Promise<LiveState | null>;
  /** the daemon's flows; null when no daemon answers */
  flows(): Promise<DaemonFlow[] | null>;
  /** the daemon's traffic control, or why there is none to look in */
  tc(): Promise<TcListing | string>;
  /** the kernel rule a connection mark names (the daemon's table), or why it cannot say */
  connectionRule(mark: number): KernelRuleFact | string;
  /** the network namespace the daemon's table and traffic control act in (net:[N]) */
  netns: string | null;
  /** the per-application limit the socket's tag in the kernel names: null for none, or why it
   * cannot be said */
  limit(pid: number, fd: number): { name: string; id: number; egress_bps: number | null; ingress_bps: number | null } | null | string;
}

const ntop = (e: { address: string; port: number }) => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);
const sameEnd = (a: { address: string; port: number } | null, b: { address: string; port: number } | null) => {
  if (!a || !b || a.port !== b.port) return false;
  const x = parseAddr(a.address), y = parseAddr(b.address);
  return !!x && !!y && x.every((w, i) => w === y[i]);
};

/** Why a call of a program gets its decision, and its sockets in the kernel now. callerUid:
 * whose program it is when neither uid nor user is given. */
export async function explain(input: ExplainInput, sources: ExplainSources, callerUid: number): Promise<ExplainReport> {
  const { doc, text, source, lines } = await sources.policy();
  const names = systemNames();
  const users = new NameTable('/etc/passwd'), groups = new NameTable('/etc/group');
  const now = Date.now();
  // the program
  let program: ExplainReport['program'];
  let agent: boolean | null = null;
  if (input.pid !== undefined) {
    const pid = input.pid;
    const creds = credsOf(pid);
    if (!creds) throw new QosError('QOS_ERR_NOT_FOUND', `no process ${pid}`);
    let exe: string;
    try { exe = readlinkSync(`/proc/${pid}/exe`); } catch { throw new QosError('QOS_ERR_PRIVILEGE', `cannot read /proc/${pid}/exe: run qos explain as root or as the process's user`); }
    const { cgroup, unit } = cgroupOf(pid);
    program = { pid, uid: creds.uid, gid: creds.gid, user: users.get(creds.uid, now), group: groups.get(creds.gid, now), exe, cmdline: cmdlineOf(pid), unit, cgroup };
    try { agent = (await readFile(`/proc/${pid}/maps`, 'utf8')).includes('libqosagent.so'); } catch { agent = null; }
  } else {
    if (input.user !== undefined && !names.users.has(input.user)) throw new QosError('QOS_ERR_USAGE', `no user ${input.user} on this host`);
    const uid = input.uid ?? (input.user !== undefined ? names.users.get(input.user)! : callerUid);
    program = { pid: 0, uid, gid: uid, user: input.user ?? users.get(uid, now), group: groups.get(uid, now), exe: input.exe!, cmdline: input.cmdline ?? '', unit: '', cgroup: '' };
  }
  // its sockets as the kernel has them now, and as the daemon decided them
  let sockets: SocketReport[] | null = null, socketsError: string | undefined;
  if (input.pid !== undefined) {
    try { sockets = await socketReports(input.pid, sources); } catch (e) { socketsError = (e as Error).message.split('\n')[0]!; }
  }
  let socket: SocketReport | null = null;
  if (input.fd !== undefined) {
    socket = sockets?.find((s) => s.fd === input.fd) ?? null;
    if (!socket) throw new QosError('QOS_ERR_NOT_FOUND', socketsError ? `cannot read process ${input.pid}'s sockets: ${socketsError}` : `process ${input.pid} has no TCP or UDP socket on descriptor ${input.fd}`);
  }
  // the call: a socket's own protocol and remote end unless given
  const remoteText = input.remote ?? (socket && endOf(socket.remote) ? ntop(endOf(socket.remote)!) : undefined);
  const remote = remoteText ? endpoint(remoteText, '--remote') : null, local = input.local ? endpoint(input.local, '--local') : null;
  const proto = input.proto ?? socket?.proto ?? 'tcp';
  if (!socket && remote && sockets) socket = sockets.find((s) => s.proto === proto && sameEnd(endOf(s.remote), remote)) ?? null;
  const family = (remote ?? local)?.address.includes(':') ? 'inet6' as const : 'inet' as const;
  const facts = {
    event: input.event, family, type: proto === 'tcp' ? 'stream' as const : 'dgram' as const, proto,
    ...(remote ? { remote: { addr: parseAddr(remote.address)!, port: remote.port } } : {}), ...(local ? { local: { addr: parseAddr(local.address)!, port: local.port } } : {}),
  };
  const e = explainCall(doc, program, facts, lines ?? text);
  const path = await enforcement(doc, e.rule, program.exe, agent, sources, names);
  return {
    policy: source, program, agent, call: { event: facts.event, proto, remote, local },
    decided_by: e.rule, line: e.line ?? null, decision: e.decision, path, rules: e.rules,
    sockets, ...(socketsError ? { sockets_error: socketsError } : {}), socket,
  };
}

/** Which path enforces the deciding rule for this program: the agent if the process has it,
 * eBPF for an exe rule whose files hold the program's, nftables for a rule the table holds. */
async function enforcement(doc: PolicyDoc, rule: string | null, exe: string, agent: boolean | null, sources: ExplainSources, names: ReturnType<typeof systemNames>): Promise<ExplainReport['path']> {
  const live = await sources.live();
  const i = rule && rule !== 'default' ? doc.rules.findIndex((r, k) => (r.name ?? `rule-${k + 1}`) === rule) : -1;
  if (i < 0) return rule === 'default' ? { path: agent === false ? 'none' : 'agent', why: 'the policy\'s default is the agent\'s' } : { path: 'none', why: 'no rule decides: the default, or nothing' };
  const r = doc.rules[i]!;
  const placed = policyRuleInEbpf(r, i, names);
  const inEbpf = placed.rule;
  // the daemon says which files its programs hold; for a policy file, the patterns are resolved here
  const holds = !!inEbpf?.exe && (live ? live.ebpf.attached && live.ebpf.rules.includes(rule!) && live.ebpf.files.includes(exe) : [...resolvePatterns(inEbpf.exe).values()].some((x) => x.files.some((f) => f.path === exe)));
  const kernel = policyPlacement({ ...doc, rules: [r] }, names).placements[0]!;
  const noAgent = agent === false ? 'the process has no agent; ' : '';
  if (agent) return { path: 'agent', why: 'the process has the agent loaded: it decides, from this rule' };
  if (holds) return { path: 'ebpf', why: `${noAgent}the eBPF programs hold this rule for ${exe}${live ? '' : ', if the daemon has them attached (qos status)'}` };
  if (kernel.where === 'agent+kernel' && live?.kernel !== false) return { path: 'nftables', why: `${noAgent}the nftables table holds this rule${live ? '' : ', if the daemon has it installed (qos status)'}` };
  if (agent === false) return { path: 'none', why: `the process has no agent, and neither eBPF nor nftables can enforce this rule (${inEbpf ? `eBPF: ${inEbpf.exe ? `${exe} is not among the files its exe names` : 'it names no exe'}` : placed.reason}; nftables: ${kernel.reason ?? 'the daemon has no table installed'})` };
  return { path: 'agent', why: 'only the agent can enforce this rule: the program must run under it (qos run)' };
}

/** The process's sockets, each with the daemon's decision, the application's own TOS, the
 * kernel rule its connection's mark names, its traffic-control flow and its per-application
 * limit. */
async function socketReports(pid: number, sources: ExplainSources): Promise<SocketReport[]> {
  const kernel = await socketsOf(pid);
  const flows = ((await sources.flows().catch(() => null)) ?? []).filter((f) => f.pid === pid);
  let netns: string | null = null;
  try { netns = readlinkSync(`/proc/${pid}/ns/net`); } catch { /* gone, or not ours to read */ }
  const elsewhere = netns === null || netns !== sources.netns ? `the process is in network namespace ${netns ?? '(unknown)'}, the daemon's table and traffic control in ${sources.netns ?? '(unknown)'}` : null;
  // read once for all the sockets, and only if some socket has both ends
  const tuples = kernel.map((k) => tupleOf(k, flowOf(k, flows)));
  const any = tuples.some((t) => t !== null);
  const listing = any && !elsewhere ? await sources.tc().catch((e: Error) => `cannot read the daemon's traffic control: ${e.message}`) : null;
  const lookup: TcLookup | string | null = listing === null ? null : typeof listing === 'string' ? listing : tcLookup(listing);
  let conntrack: ConntrackIndex | null = null, conntrackError = '';
  if (any && !elsewhere) {
    try { conntrack = conntrackIndex(await readFile(`/proc/${pid}/net/nf_conntrack`, 'utf8')); } catch (e) { conntrackError = `cannot read /proc/${pid}/net/nf_conntrack (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): no connection tracking in its namespace`; }
  }
  const routes = new Map<string, Promise<string>>();
  const route = (t: FiveTuple) => {
    const key = `${t.dst} ${t.src}`;
    let r = routes.get(key);
    if (!r) routes.set(key, (r = procLookup.route(t.dst, t.src)));
    return r;
  };
  return Promise.all(kernel.map(async (k, n): Promise<SocketReport> => {
    const f = flowOf(k, flows), t = tuples[n]!;
    let tc: TcPlace, rule: SocketReport['kernel_rule'];
    if (!t) {
      const why = 'it has no remote end (listening, or not connected): where its packets go is not known';
      tc = { in: 'none', why };
      rule = { why };
    } else if (elsewhere) {
      tc = { in: 'none', why: elsewhere };
      rule = { why: elsewhere };
    } else {
      if (typeof lookup === 'string') tc = { in: 'none', why: lookup };
      else if (!lookup?.byDev.size) tc = { in: 'none', why: 'the daemon has no traffic-control filter' };
      else {
        try { tc = tcPlace(lookup, t, await route(t)); } catch (e) { tc = { in: 'none', why: `no route for its packets: ${(e as Error).message.split('\n')[0]}` }; }
      }
      const mark = conntrack === null ? null : markOf(conntrack, t);
      if (conntrack === null) rule = { why: conntrackError };
      else if (mark === null) rule = { why: 'connection tracking has no entry for it' };
      else { const c = sources.connectionRule(mark); rule = typeof c === 'string' ? { why: c } : c; }
    }
    const l = sources.limit(pid, k.fd);
    const limit: LimitPlace = typeof l === 'string' ? { in: 'none', why: l } : l === null ? { in: 'none', why: 'its tag in the kernel names no limit' } : { in: 'limit', ...l };
    return { ...k, ...(f ? { daemon: f } : {}), own_tos: ownTos(f, k), kernel_rule: rule, tc, limit };
  }));
}

/** The daemon's flow for a kernel socket: the agent's by descriptor, the eBPF programs' by the
 * remote end (they know the socket by its cookie, not a descriptor). */
function flowOf(k: KernelSocket, flows: DaemonFlow[]): DaemonFlow | undefined {
  const remote = endOf(k.remote);
  return flows.find((f) => f.path !== 'ebpf' && f.fd === k.fd) ?? flows.find((f) => f.path === 'ebpf' && f.proto === k.proto && sameEnd(f.remote, remote));
}

/** A socket's 5-tuple as its packets carry it: its ends from the kernel; an unconnected UDP
 * socket's remote end is where the daemon saw it send. */
function tupleOf(k: KernelSocket, f: DaemonFlow | undefined): FiveTuple | null {
  const local = endOf(k.local), remote = endOf(k.remote) ?? (k.proto === 'udp' && f?.remote ? { address: f.remote.address.replace(/^::ffff:(?=\d+\.)/i, ''), port: f.remote.port } : null);
  if (!local || !remote) return null;
  const family = isIP(remote.address) === 6 ? 6 : 4;
  const any = local.address === '0.0.0.0' || local.address === '::';
  return { family, proto: k.proto, src: any ? '*' : local.address, sport: local.port, dst: remote.address, dport: remote.port };
}

function ownTos(f: DaemonFlow | undefined, k: KernelSocket): OwnTos | null {
  if (!f) return null;
  if (f.path === 'ebpf') return f.app_tos_kept ? { asked: null, by: 'ebpf', override: false, honoured: true } : null;
  if (f.appTos === null || f.appTos === undefined) return null;
  // the DSCP bits: the ECN bits are the kernel's to change
  return { asked: f.appTos, by: 'agent', override: f.decision?.override === true, honoured: (k.tos & 0xfc) === (f.appTos & 0xfc) };
}
