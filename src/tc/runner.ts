/* The machine side of host traffic control (control.ts's TcRunner): tc -batch files, one nft -f
 * transaction, ip vectors and the 802.1p tagger's steps (plan.ts) run for real, and what the
 * kernel says of an interface (exists, VLAN, speed, index, root qdisc) and of what a killed
 * predecessor left. */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QosError } from '../errors.js';
import { run } from '../exec.js';
import type { TcRunner } from './control.js';
import { dot1pAttach, dot1pDetach, DOT1P_PREF, HANDLE_TEXT, le32, type Dot1pStep } from './plan.js';

async function withFile<T>(name: string, text: string, f: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-tc-'));
  try {
    const file = join(dir, name);
    writeFileSync(file, text);
    return await f(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const systemRunner: TcRunner = {
  async apply(p) {
    // nft deletions must not meet a class that is gone, nor packets a class not yet made:
    // the transaction goes after tc's additions and before its deletions
    const [adds, dels] = [p.tc.filter((l) => !/^(class|qdisc) del /.test(l)), p.tc.filter((l) => /^(class|qdisc) del /.test(l))];
    if (adds.length) await withFile('tc.batch', adds.join('\n') + '\n', (f) => run(['tc', '-batch', f], { code: 'QOS_ERR_KERNEL', pkg: 'iproute2' }));
    if (p.nft.length) await withFile('tx.nft', p.nft.join('\n') + '\n', (f) => run(['nft', '-f', f], { code: 'QOS_ERR_KERNEL', pkg: 'nftables' }));
    if (dels.length) await withFile('tc.batch', dels.join('\n') + '\n', (f) => run(['tc', '-batch', f], { code: 'QOS_ERR_KERNEL', pkg: 'iproute2' }));
    for (const a of p.ip) await run(['ip', ...a], { code: 'QOS_ERR_KERNEL', pkg: 'iproute2' });
    for (const s of p.dot1p) await dot1p(s);
  },
  async link(dev) {
    const r = await run(['ip', '-d', '-j', 'link', 'show', 'dev', dev], { ok: 'any', pkg: 'iproute2' });
    if (r.code !== 0) return { exists: false, vlan: false, speed: null, root: null };
    const info = (JSON.parse(r.stdout) as Array<{ ifindex?: number; linkinfo?: { info_kind?: string } }>)[0];
    let speed: number | null = null;
    try { const mbit = Number(readFileSync(`/sys/class/net/${dev}/speed`, 'utf8')); if (mbit > 0) speed = mbit * 125_000; } catch { /* no speed: a virtual device */ }
    const root = (await rootQdisc(dev));
    return { exists: true, vlan: info?.linkinfo?.info_kind === 'vlan', speed, root: root && root.handle !== '0:' ? `${root.kind} ${root.handle}` : null, ...(info?.ifindex !== undefined ? { index: info.ifindex } : {}) };
  },
  async leftovers(table, devs) {
    const t = await run(['nft', 'list', 'table', 'inet', table], { ok: 'any', pkg: 'nftables' });
    const ours: string[] = [], tagged: string[] = [];
    for (const dev of devs) {
      if ((await rootQdisc(dev))?.handle === HANDLE_TEXT) ours.push(dev);
      if (await taggerOn(dev)) tagged.push(dev);
    }
    return { devs: ours, table: t.code === 0, tagged };
  },
};

/** dev's root qdisc, or null (no such interface). */
async function rootQdisc(dev: string): Promise<{ kind: string; handle: string } | null> {
  const r = await run(['tc', '-j', 'qdisc', 'show', 'dev', dev, 'root'], { ok: 'any', pkg: 'iproute2' });
  if (r.code !== 0) return null;
  return (JSON.parse(r.stdout || '[]') as Array<{ kind: string; handle: string }>)[0] ?? null;
}

/** Whether our tagger is on dev's egress. */
async function taggerOn(dev: string): Promise<boolean> {
  const r = await run(['tc', '-j', 'filter', 'show', 'dev', dev, 'egress'], { ok: 'any', pkg: 'iproute2' });
  if (r.code !== 0) return false;
  return (JSON.parse(r.stdout || '[]') as Array<{ pref?: number; kind?: string }>).some((f) => f.pref === DOT1P_PREF && f.kind === 'bpf');
}

/** One step of the 802.1p tagger: tc attaches and detaches it; its map (found through the
 * program tc attached) is changed with bpftool, in one batch. */
async function dot1p(s: Dot1pStep): Promise<void> {
  const tc = (args: string[], ok?: 'any') => run(['tc', ...args], { code: 'QOS_ERR_KERNEL', pkg: 'iproute2', ok });
  if (s.op === 'attach') { for (const a of dot1pAttach(s.dev)) await tc(a); return; }
  if (s.op === 'detach') {
    await tc(dot1pDetach(s.dev), 'any'); // (gone with the interface: fine)
    // the clsact qdisc goes too if no one else has a filter on it
    const rest = await Promise.all(['ingress', 'egress'].map((d) => tc(['-j', 'filter', 'show', 'dev', s.dev, d], 'any')));
    if (rest.every((r) => r.code === 0 && (JSON.parse(r.stdout || '[]') as unknown[]).length === 0)) await tc(['qdisc', 'del', 'dev', s.dev, 'clsact'], 'any');
    return;
  }
  const filters = JSON.parse((await tc(['-j', 'filter', 'show', 'dev', s.dev, 'egress'])).stdout || '[]') as Array<{ pref?: number; options?: { prog?: { id?: number } } }>;
  const prog = filters.find((f) => f.pref === DOT1P_PREF && f.options?.prog?.id)?.options?.prog?.id;
  if (!prog) throw new QosError('QOS_ERR_KERNEL', `the 802.1p tagger is not on ${s.dev}`);
  const info = JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'id', String(prog)], { code: 'QOS_ERR_KERNEL', pkg: 'bpftool' })).stdout) as { map_ids?: number[] };
  const map = info.map_ids?.[0];
  if (map === undefined) throw new QosError('QOS_ERR_KERNEL', `the 802.1p tagger on ${s.dev} has no map`);
  const lines = s.entries.map(([k, v]) => (v === null ? `map delete id ${map} key ${le32(k)}` : `map update id ${map} key ${le32(k)} value ${le32(v)}`));
  await withFile('pcp.batch', lines.join('\n') + '\n', (f) => run(['bpftool', 'batch', 'file', f], { code: 'QOS_ERR_KERNEL', pkg: 'bpftool' }));
}
