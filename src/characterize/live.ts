/* `qos characterize --live`: capture one flow, one program's sockets or an interface with
 * tcpdump for a while; print the on-line estimate (and whether it would be re-advertised)
 * every refresh interval; at the end characterise the capture off-line, which the capture
 * was kept for (in a temporary file: two streaming passes, as for a file). */

import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LiveCapture } from '../capture/live.js';
import type { Packet } from '../capture/pcap.js';
import { QosError } from '../errors.js';
import { runSync } from '../exec.js';
import { characterizeFile, flowKey, type CharacterizeOptions, type CharacterizeResult } from './offline.js';
import { OnlineLbap, Readvertiser, type OnlineOptions } from './online.js';

export interface LiveOptions extends CharacterizeOptions {
  iface: string;
  netns?: string;
  /** BPF filter for tcpdump */
  filter: string;
  durationS: number;
  refreshS: number;
  online?: OnlineOptions;
  holdS?: number;
  onSnapshot?: (s: Snapshot) => void;
  /** called once tcpdump listens: what is sent from then on is in the capture */
  onStart?: () => void;
  /** the capture file's bound: past it the capture stops and QOS_ERR_TOO_LARGE is thrown (the
   * daemon's POST /v1/characterize/live, bounded like an upload) */
  maxBytes?: number;
}

/** One flow's on-line estimate at one refresh. */
export interface Snapshot { t_s: number; key: string; r: number; b: number; p: number; m: number; M: number; packets: number; advertise: boolean }

export type LiveResult = CharacterizeResult & { online: Snapshot[] };

/** A tcpdump filter from a --flow spec (the same forms flowFilter takes). */
export function bpfForFlow(spec: string): string {
  const s = spec.trim();
  const key = /^(tcp|udp) \[?([^\]\s]+?)\]?:(\d+) > \[?([^\]\s]+?)\]?:(\d+)$/.exec(s);
  if (key) return `${key[1]} and src host ${key[2]} and src port ${key[3]} and dst host ${key[4]} and dst port ${key[5]}`;
  const parts: string[] = [];
  for (const part of s.split(',')) {
    const m = /^\s*(proto|src|dst|sport|dport|host|port)\s*=\s*([0-9A-Za-z.:]+)\s*$/.exec(part);
    if (!m) throw new QosError('QOS_ERR_USAGE', `--flow: "${part.trim()}" is not field=value (proto, src, dst, sport, dport, host, port) nor a flow key`);
    const [, f, v] = m as unknown as [string, string, string];
    const bpf: Record<string, string> = {
      proto: v === 'tcp' || v === 'udp' ? v : `(ip proto ${v} or ip6 proto ${v})`,
      src: `src host ${v}`, dst: `dst host ${v}`, host: `host ${v}`, sport: `src port ${v}`, dport: `dst port ${v}`, port: `port ${v}`,
    };
    parts.push(bpf[f]!);
  }
  return parts.join(' and ');
}

/** A program's sockets as the kernel lists them (ss), for `--app NAME`: protocol, local and
 * peer address and port (peer null when unconnected). */
export interface AppSocket { proto: 'tcp' | 'udp'; local: string; lport: number; peer: string | null; pport: number | null }

export function parseSs(text: string, name: string): AppSocket[] {
  const out: AppSocket[] = [];
  const ep = (x: string): [string, number] | null => {
    const m = /^\[?([^\]%]*?)(?:%[^\]]*)?\]?:(\d+|\*)$/.exec(x);
    if (!m || m[2] === '*') return null;
    return [m[1]!, Number(m[2])];
  };
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 7 || (f[0] !== 'tcp' && f[0] !== 'udp')) continue;
    if (![...line.matchAll(/\("([^"]*)",pid=\d+/g)].some((m) => m[1] === name)) continue;
    const l = ep(f[4]!), p = ep(f[5]!);
    if (!l) continue;
    const any = (a: string) => a === '*' || a === '0.0.0.0' || a === '::';
    out.push({ proto: f[0] as 'tcp' | 'udp', local: any(l[0]) ? '' : l[0], lport: l[1], peer: p && !any(p[0]) ? p[0] : null, pport: p ? p[1] : null });
  }
  return out;
}

/** Which packets a program's sockets send (the same test as bpfForApp, for a file). */
export function appSelect(socks: AppSocket[]): (p: Packet) => boolean {
  return (p) => socks.some((s) => (s.proto === 'tcp' ? 6 : 17) === p.proto && s.lport === p.sport && (!s.local || s.local === p.src)
    && (s.peer === null || s.peer === p.dst) && (s.pport === null || s.pport === p.dport));
}

/** The tcpdump filter for what a program's sockets send. */
export function bpfForApp(socks: AppSocket[]): string {
  return socks.map((s) => `(${[s.proto, s.local ? `src host ${s.local}` : '', `src port ${s.lport}`, s.peer ? `dst host ${s.peer}` : '', s.pport ? `dst port ${s.pport}` : ''].filter(Boolean).join(' and ')})`).join(' or ');
}

/** The sockets of the programs named `name` now (in a network namespace, if given). */
export function appSockets(name: string, netns?: string): AppSocket[] {
  return parseSs(runSync(['ss', '-tunapH'], { netns, pkg: 'iproute2' }).stdout, name);
}

export async function characterizeLive(o: LiveOptions): Promise<LiveResult> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-live-'));
  const file = join(dir, 'capture.pcap');
  let fd: number | null = openSync(file, 'wx', 0o600);
  const close = () => { if (fd !== null) { closeSync(fd); fd = null; } };
  let written = 0, overflow = false;
  let stopEarly = () => {};
  const keep = (c: Buffer) => {
    if (fd === null || overflow) return;
    written += c.length;
    if (o.maxBytes !== undefined && written > o.maxBytes) { overflow = true; stopEarly(); return; }
    writeSync(fd, c);
  };
  const start = Date.now() / 1000;
  const flows = new Map<string, { on: OnlineLbap; adv: Readvertiser }>();
  const select = o.select ?? (() => true);
  const size = (p: Packet) => (o.count ? 1 : p.ipLength);
  const snapshots: Snapshot[] = [];
  const cap = new LiveCapture({ iface: o.iface, filter: o.filter, netns: o.netns, tee: keep }, (p) => {
    if (!select(p)) return;
    const k = flowKey(p);
    let f = flows.get(k);
    if (!f) flows.set(k, (f = { on: new OnlineLbap(o.online), adv: new Readvertiser(o.holdS ?? 120) }));
    f.on.add(Number(p.tsNs) / 1e9 - start, size(p));
  });
  const refresh = () => {
    const now = Date.now() / 1000 - start;
    for (const [key, f] of flows) {
      const e = f.on.estimate(now);
      const s: Snapshot = { t_s: Math.round(now * 1000) / 1000, key, ...e, advertise: f.adv.offer(now, e) };
      snapshots.push(s);
      o.onSnapshot?.(s);
    }
  };
  try {
    await cap.start();
    o.onStart?.();
    const timer = setInterval(refresh, o.refreshS * 1000);
    await new Promise<void>((r) => {
      const t = setTimeout(r, o.durationS * 1000);
      stopEarly = () => { clearTimeout(t); r(); };
    });
    clearInterval(timer);
    await cap.stop();
    close();
    if (overflow) throw new QosError('QOS_ERR_TOO_LARGE', `the capture passed ${o.maxBytes} bytes before its ${o.durationS} s were over: capture for less time`);
    refresh();
    const result = await characterizeFile(file, o);
    return { ...result, file: `live capture on ${o.iface}${o.netns ? ` in ${o.netns}` : ''} (${o.filter})`, online: snapshots };
  } catch (e) {
    cap.kill();
    throw e;
  } finally {
    close();
    rmSync(dir, { recursive: true, force: true });
  }
}
