/* `qos try`: the first run that shows something, with no internet. A local server on
 * loopback, curl run under the agent to it, the decision the daemon logged for curl's connect,
 * and the DS field of curl's packets as captured on `lo`: a user sees that the policy decided
 * and that the kernel sent what it decided. Uses the running daemon if there is one (its
 * policy), else a temporary one with the policy `qos daemon` would load, without kernel rules
 * (it touches nothing on the machine), stopped at the end. */

import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LiveCapture } from '../capture/live.js';
import { TCP_ACK, TCP_SYN, type Packet } from '../capture/pcap.js';
import { call } from '../daemon/admin-client.js';
import { DaemonChild } from '../daemon/child.js';
import { dscpOf } from '../daemon/decide.js';
import { QosError } from '../errors.js';
import { installed, run } from '../exec.js';
import { dscpName } from '../policy/dscp.js';
import { agentEnv } from './run.js';

export interface TryOptions {
  library: string;
  /** the admin API of a running daemon (whose agent socket it names) */
  admin: string;
  /** the local server's port (the built-in policy marks 554, RTSP control, AF31) */
  port: number;
}

export interface TryDecision {
  event: string;
  rule: string | null;
  class: string;
  /** the DSCP the decision puts on the wire (0: none) */
  dscp: number;
}

export interface TryReport {
  daemon: { running: boolean; socket: string; policy: string | null; kernel: string };
  server: { address: string; port: number };
  program: { argv: string[]; pid: number; exit: number | null; http: string };
  decisions: TryDecision[];
  wire: { packets: number; syn_dscp: number | null; dscp: Record<string, number> };
  /** the packets carry the decided DSCP (or none, when nothing was decided) */
  ok: boolean;
  summary: string;
}

const END_PORT = 9;

/** Whether a daemon answers on the admin socket. */
async function running(admin: string): Promise<Record<string, unknown> | null> {
  try {
    const r = await call(admin, 'GET', '/v1/status', 2000);
    return r.status === 200 ? (JSON.parse(r.body) as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function listen(port: number): Promise<Server> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello from qos try\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new QosError('QOS_ERR_ENVIRONMENT', e.code === 'EADDRINUSE'
      ? `127.0.0.1:${port} is in use: choose another port with --port (a port your policy marks shows a mark)` : `cannot listen on 127.0.0.1:${port}: ${e.message}`)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** Runs argv under the agent; resolves with its exit status and output. */
async function runAgent(argv: string[], o: { library: string; socket: string }): Promise<{ pid: number; exit: number | null; out: string }> {
  const r = await run(argv, { env: agentEnv({ library: o.library, socket: o.socket }), stderr: 'inherit', ok: 'any', pkg: 'curl' });
  return { pid: r.pid!, exit: r.code, out: r.stdout };
}

/** Sends end marks to 127.0.0.1:9 until the capture has one: every packet sent before is in it. */
async function drain(seen: () => boolean, mark: Buffer): Promise<void> {
  const sock = createSocket('udp4');
  try {
    for (let i = 0; i < 400 && !seen(); i++) {
      await new Promise<void>((r) => sock.send(mark, END_PORT, '127.0.0.1', () => r()));
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    sock.close();
  }
  if (!seen()) throw new QosError('QOS_ERR_ENVIRONMENT', 'the capture on lo did not see its end mark');
}

export async function tryIt(o: TryOptions): Promise<TryReport> {
  if (process.getuid?.() !== 0) throw new QosError('QOS_ERR_ENVIRONMENT', 'qos try captures packets on lo with tcpdump: run it as root');
  if (!installed('tcpdump')) throw new QosError('QOS_ERR_ENVIRONMENT', 'qos try needs tcpdump: install the Debian package tcpdump');
  const found = await running(o.admin);
  let temp: DaemonChild | null = null;
  let dir: string | null = null;
  if (!found) {
    dir = mkdtempSync(join(tmpdir(), 'qos-try-'));
    // the policy `qos daemon` would load; no kernel rules: a try changes nothing on the machine
    temp = new DaemonChild(dir, null, ['--kernel', 'off']);
    try {
      await temp.start();
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw new QosError('QOS_ERR_ENVIRONMENT', `could not start a temporary daemon: ${(e as Error).message}`);
    }
  }
  const admin = temp ? temp.admin : o.admin;
  const status = found ?? (await running(admin));
  const socket = temp ? temp.socket : String(found!.agent_socket);
  const daemon: TryReport['daemon'] = {
    running: found !== null, socket, policy: (status?.policy as { source?: string } | undefined)?.source ?? null,
    kernel: (status?.kernel as { active?: boolean } | undefined)?.active ? 'on' : 'off',
  };
  let server: Server | null = null;
  const packets: Packet[] = [];
  const mark = Buffer.from(`qos-try-end-${process.pid}-${Date.now()}`);
  let marked = false;
  const cap = new LiveCapture({ iface: 'lo', filter: `(tcp and dst host 127.0.0.1 and dst port ${o.port}) or (udp and dst host 127.0.0.1 and dst port ${END_PORT})`, snaplen: 256 }, (p) => {
    if (p.proto === 17) { if (p.payload.includes(mark)) marked = true; return; }
    packets.push(p);
  });
  try {
    server = await listen(o.port);
    await cap.start();
    const argv = ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `http://127.0.0.1:${o.port}/`];
    const prog = await runAgent(argv, { library: o.library, socket });
    await drain(() => marked, mark);
    await cap.stop();
    const r = await call(admin, 'GET', '/v1/decisions?limit=1000');
    const decisions = r.body.split('\n').filter(Boolean)
      .map((l) => JSON.parse(l) as { pid: number; event: string; rule: string | null; class: string; decision: { dscp?: number; tos?: number } | null; remote: { port: number } | null })
      .filter((d) => d.pid === prog.pid && (d.event !== 'connect' || d.remote?.port === o.port))
      .map((d): TryDecision => ({ event: d.event, rule: d.rule, class: d.class, dscp: dscpOf(d.decision) ?? 0 }));
    const dscp: Record<string, number> = {};
    for (const p of packets) { const n = dscpName(p.tos >> 2); dscp[n] = (dscp[n] ?? 0) + 1; }
    const syn = packets.find((p) => (p.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN);
    const decided = decisions.find((d) => d.dscp !== 0)?.dscp ?? 0;
    const asked = decisions.some((d) => d.event === 'connect');
    const ok = asked && packets.length > 0 && packets.every((p) => p.tos >> 2 === decided);
    const rule = decisions.find((d) => d.rule)?.rule;
    const summary = !asked ? `the daemon decided nothing for curl's connect: its agent did not reach ${socket} (qos run --debug -- curl ... says why)`
      : !packets.length ? 'curl sent nothing to the local server'
      : ok && decided ? `marked as the policy decided: rule ${rule ?? '(script)'}, DSCP ${dscpName(decided)} on every packet curl sent`
      : ok ? `left unmarked, as the policy decided (no rule matched 127.0.0.1:${o.port}; try --port 554, or a port your policy marks)`
      : `the packets do not carry the decided DSCP ${dscpName(decided)}: see \`qos decisions\` and docs/agent.md`;
    return {
      daemon, server: { address: '127.0.0.1', port: o.port },
      program: { argv, pid: prog.pid, exit: prog.exit, http: prog.out.trim() },
      decisions, wire: { packets: packets.length, syn_dscp: syn ? syn.tos >> 2 : null, dscp }, ok, summary,
    };
  } finally {
    cap.kill();
    if (server) await new Promise((r) => server!.close(r));
    await temp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

export function formatTry(t: TryReport): string {
  const d = t.daemon;
  const lines = [
    `qos try: curl under the agent to a local server at ${t.server.address}:${t.server.port} (no internet needed)`,
    `  daemon       ${d.running ? `the running one (${d.socket})` : 'a temporary one (none was running), stopped again'}; policy ${d.policy === null || d.policy === '<built-in>' ? 'built-in' : d.policy}; kernel rules ${d.kernel}`,
    `  curl         exit ${t.program.exit}, HTTP ${t.program.http || '-'}`,
  ];
  for (const x of t.decisions) lines.push(`  decided      ${x.event} -> ${x.rule ? `rule ${x.rule}: ` : 'no rule: '}${x.class === 'none' ? 'no mark' : x.class}`);
  const counts = Object.entries(t.wire.dscp).map(([k, n]) => `${n} ${k === 'CS0' ? 'unmarked' : k}`).join(', ');
  lines.push(`  on the wire  ${t.wire.packets} packets from curl to the server (tcpdump on lo): ${counts || 'none'}${t.wire.syn_dscp !== null ? `; the SYN ${dscpName(t.wire.syn_dscp)}` : ''}`);
  lines.push(`${t.ok ? 'ok' : 'MISMATCH'}: ${t.summary}`);
  return lines.join('\n');
}
