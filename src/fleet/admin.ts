/* The admin side of the fleet (`qos fleet`, docs/fleet.md): documents checked and pushed to
 * etcd, each change with a record in `P/log` written in the same transaction (so `history` is
 * that key's history in etcd), the nodes' status against what they should run, a rollback to
 * the documents of an earlier revision, and a staged roll-out (canary keys tried on a share of
 * the nodes first). */

import { hostname, userInfo } from 'node:os';
import type { Etcd3 } from 'etcd3';
import { QosError } from '../errors.js';
import { sha256 } from '../daemon/policy-versions.js';
import { effective, docKey, kindPrefix, logKey, parseDocKey, prefixEnd, statusPrefix, DOC_KINDS, type DocKind, type DocVersion, type Target } from './keys.js';
import type { NodeStatus } from './node.js';

/** What etcd holds of the fleet at one revision. */
export interface FleetView { revision: number; docs: Map<string, DocVersion>; nodes: NodeStatus[] }

type Kv = { key: Buffer; value: Buffer; mod_revision: string };
const version = (kv: Kv): DocVersion => ({ key: kv.key.toString(), value: kv.value.toString(), revision: Number(kv.mod_revision) });

/** Every document and every node's status, at one revision (or the documents at `at`). */
export async function readFleet(client: Etcd3, prefix: string, at?: number): Promise<FleetView> {
  const ranges = [...DOC_KINDS.map((k) => kindPrefix(prefix, k)), ...(at === undefined ? [statusPrefix(prefix)] : [])];
  const r = await client.kv.txn({
    compare: [], failure: [],
    success: ranges.map((p) => ({ request_range: { key: Buffer.from(p), range_end: prefixEnd(p), ...(at === undefined ? {} : { revision: String(at) }) } })),
  });
  const docs = new Map<string, DocVersion>();
  const nodes: NodeStatus[] = [];
  r.responses.forEach((res, i) => {
    for (const kv of (res.response_range?.kvs ?? []) as Kv[]) {
      if (i < DOC_KINDS.length) { if (parseDocKey(prefix, kv.key.toString())) docs.set(kv.key.toString(), version(kv)); continue; }
      try { nodes.push(JSON.parse(kv.value.toString()) as NodeStatus); } catch { /* not a status: ignored */ }
    }
  });
  nodes.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { revision: Number(r.header.revision), docs, nodes };
}

export type NodeState = 'ok' | 'behind' | 'failed' | 'none';

/** One node against what it should run: per kind, the expected version and where it is. */
export interface NodeView {
  node: string; groups: string[]; state: NodeState; last_error: string | null; agents: number; decisions_per_s: number; updated_at: string;
  kinds: Record<DocKind, { state: NodeState; expected: { key: string; revision: number } | null; applied: { key: string; revision: number } | null; refused: { key: string; revision: number; error: string } | null }>;
}

const RANK: Record<NodeState, number> = { none: 0, ok: 1, behind: 2, failed: 3 };

export function nodeView(prefix: string, docs: ReadonlyMap<string, DocVersion>, s: NodeStatus): NodeView {
  const kinds = {} as NodeView['kinds'];
  let worst: NodeState = 'none';
  for (const kind of DOC_KINDS) {
    const want = effective(docs, prefix, kind, s.node, s.groups);
    const got = s.applied?.[kind] ?? null;
    const ref = s.refused?.[kind] ?? null;
    const state: NodeState = !want ? 'none'
      : got && got.key === want.key && got.revision === want.revision ? 'ok'
        : ref && ref.key === want.key && ref.revision === want.revision ? 'failed' : 'behind';
    kinds[kind] = {
      state, expected: want && { key: want.key, revision: want.revision }, applied: got && { key: got.key, revision: got.revision },
      refused: ref && { key: ref.key, revision: ref.revision, error: ref.error },
    };
    if (RANK[state] > RANK[worst]) worst = state;
  }
  return { node: s.node, groups: s.groups, state: worst, last_error: s.last_error, agents: s.agents, decisions_per_s: s.decisions_per_s, updated_at: s.updated_at, kinds };
}

/** Who makes a change, for the log. */
export function whoAmI(): string {
  let user = String(process.getuid?.() ?? '?');
  try { user = userInfo().username; } catch { /* a uid without a name */ }
  return `${user}@${hostname()}`;
}

interface Change { key: string; op: 'put' | 'delete'; value?: string }

/** Changes documents in one transaction with their record in P/log; the revision it made. */
export async function commit(client: Etcd3, prefix: string, action: string, changes: Change[], extra: Record<string, unknown> = {}): Promise<number> {
  const log = {
    action, by: whoAmI(), at: new Date().toISOString(), ...extra,
    changes: changes.map((c) => ({ key: c.key, op: c.op, ...(c.value === undefined ? {} : { sha256: sha256(c.value), bytes: Buffer.byteLength(c.value) }) })),
  };
  const r = await client.kv.txn({
    compare: [], failure: [],
    success: [
      ...changes.map((c) => (c.op === 'put'
        ? { request_put: { key: Buffer.from(c.key), value: Buffer.from(c.value!) } }
        : { request_delete_range: { key: Buffer.from(c.key) } })),
      { request_put: { key: Buffer.from(logKey(prefix)), value: Buffer.from(JSON.stringify(log)) } },
    ],
  });
  return Number(r.header.revision);
}

/** One entry of `qos fleet history`: a change `qos fleet` made, at its revision. */
export interface HistoryEntry { revision: number; action: string; by: string; at: string; changes: { key: string; op: string; sha256?: string; bytes?: number }[]; [k: string]: unknown }

/** The last `limit` changes, newest first, read from etcd's history of P/log; `compacted`: the
 * revision etcd's history was compacted to, when it cut the list short. */
export async function history(client: Etcd3, prefix: string, limit: number): Promise<{ entries: HistoryEntry[]; compacted: number | null }> {
  const entries: HistoryEntry[] = [];
  let at: number | undefined;
  while (entries.length < limit) {
    let kvs: Kv[];
    try {
      const q = client.get(logKey(prefix));
      kvs = (await (at === undefined ? q : q.revision(at)).exec()).kvs as unknown as Kv[];
    } catch (e) {
      const m = /compacted/i.test((e as Error).message);
      if (m) return { entries, compacted: at ?? null };
      throw e;
    }
    const kv = kvs[0];
    if (!kv) break;
    const rev = Number(kv.mod_revision);
    try { entries.push({ ...(JSON.parse(kv.value.toString()) as HistoryEntry), revision: rev }); } catch { entries.push({ revision: rev, action: '(unreadable)', by: '', at: '', changes: [] }); }
    if (rev <= 1) break;
    at = rev - 1;
  }
  return { entries, compacted: null };
}

/** Puts every document back as it was at `revision` (canary keys aside, and removed): the
 * documents created since are deleted. Returns the revision made, or null if nothing differs. */
export async function rollback(client: Etcd3, prefix: string, revision: number): Promise<{ revision: number | null; changes: Change[] }> {
  const now = await readFleet(client, prefix);
  if (revision > now.revision) throw new QosError('QOS_ERR_NOT_FOUND', `etcd is at revision ${now.revision}: there is no revision ${revision} to roll back to (qos fleet history lists them)`);
  let then: FleetView;
  try {
    then = await readFleet(client, prefix, revision);
  } catch (e) {
    if (/compacted/i.test((e as Error).message)) throw new QosError('QOS_ERR_NOT_FOUND', `etcd has compacted its history past revision ${revision}: the documents of that revision are gone`);
    throw e;
  }
  const changes: Change[] = [];
  const keep = (k: string) => parseDocKey(prefix, k)?.level !== 'canary';
  for (const [k, d] of then.docs) if (keep(k) && now.docs.get(k)?.value !== d.value) changes.push({ key: k, op: 'put', value: d.value });
  for (const k of now.docs.keys()) if (!then.docs.has(k) || !keep(k)) changes.push({ key: k, op: 'delete' });
  if (!changes.length) return { revision: null, changes };
  return { revision: await commit(client, prefix, 'rollback', changes, { to: revision }), changes };
}

/** The live nodes that would run a document at `target` (nothing above it for them). */
export function takers(view: FleetView, prefix: string, target: Target): NodeStatus[] {
  const key = docKey(prefix, target);
  const docs = new Map(view.docs);
  docs.set(key, { key, value: '', revision: Number.MAX_SAFE_INTEGER });
  return view.nodes.filter((n) => effective(docs, prefix, target.kind, n.node, n.groups)?.key === key);
}

export interface WaitResult { node: string; state: 'applied' | 'refused' | 'gone' | 'timeout'; error?: string }

/** Waits until each node reports what it should run (`want(node)`, a key and revision) applied,
 * refused, or until the time is up; polls every `everyMs`. */
export async function waitFor(client: Etcd3, prefix: string, kind: DocKind, want: Map<string, { key: string; revision: number }>, timeoutMs: number, everyMs = 100): Promise<WaitResult[]> {
  const end = Date.now() + timeoutMs;
  const done = new Map<string, WaitResult>();
  for (;;) {
    const view = await readFleet(client, prefix);
    const live = new Map(view.nodes.map((n) => [n.node, n]));
    for (const [node, w] of want) {
      if (done.has(node)) continue;
      const s = live.get(node);
      const got = s?.applied?.[kind];
      const ref = s?.refused?.[kind];
      if (got && got.key === w.key && got.revision >= w.revision) done.set(node, { node, state: 'applied' });
      else if (ref && ref.key === w.key && ref.revision === w.revision) done.set(node, { node, state: 'refused', error: ref.error });
    }
    if (done.size === want.size) break;
    if (Date.now() >= end) {
      for (const node of want.keys()) if (!done.has(node)) done.set(node, { node, state: live.has(node) ? 'timeout' : 'gone' });
      break;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return [...want.keys()].map((n) => done.get(n)!);
}

export interface PushResult {
  key: string; revision: number;
  canary?: { nodes: string[]; key_revision: number; results: WaitResult[]; rolled_back?: WaitResult[] };
  results?: WaitResult[];
}

/** Pushes a checked document to `target`. With `canary` (a share of the nodes that would take
 * it), it goes first to that many of them by their canary keys; once each reports it applied,
 * it is written to the target and the canary keys removed in one transaction. If one refuses it
 * (or does not report in `timeoutMs`, or is gone), the canary keys are removed instead, those
 * nodes go back to what they ran, and QOS_ERR_FLEET_REFUSED says why. `wait`: then waits for
 * every node that takes it. */
export async function push(client: Etcd3, prefix: string, target: Target, text: string, o: { canary?: number; timeoutMs: number; wait?: boolean }): Promise<PushResult> {
  const key = docKey(prefix, target);
  let out: PushResult;
  if (o.canary !== undefined) {
    const view = await readFleet(client, prefix);
    const nodes = takers(view, prefix, target).map((n) => n.node).sort();
    if (!nodes.length) throw new QosError('QOS_ERR_USAGE', `--canary: no live node would run ${key} (qos fleet status lists the nodes): nothing to try it on first; push without --canary`);
    const pick = nodes.slice(0, Math.max(1, Math.ceil(nodes.length * o.canary)));
    const ckey = (n: string) => docKey(prefix, { kind: target.kind, level: 'canary', name: n });
    const crev = await commit(client, prefix, 'canary', pick.map((n) => ({ key: ckey(n), op: 'put', value: text })), { target: key });
    const results = await waitFor(client, prefix, target.kind, new Map(pick.map((n) => [n, { key: ckey(n), revision: crev }])), o.timeoutMs);
    const failed = results.filter((r) => r.state !== 'applied');
    if (failed.length) {
      // back to what they ran: the canary keys go, and each node falls back to its next key
      await commit(client, prefix, 'canary-abort', pick.map((n) => ({ key: ckey(n), op: 'delete' })), { target: key });
      const after = await readFleet(client, prefix);
      const back = new Map<string, { key: string; revision: number }>();
      for (const n of after.nodes) {
        if (!pick.includes(n.node)) continue;
        const d = effective(after.docs, prefix, target.kind, n.node, n.groups);
        if (d) back.set(n.node, { key: d.key, revision: d.revision });
      }
      const rolled = await waitFor(client, prefix, target.kind, back, o.timeoutMs);
      const detail = failed.map((f) => `${f.node}: ${f.state}${f.error ? ` (${f.error})` : ''}`).join('; ');
      const err = new QosError('QOS_ERR_FLEET_REFUSED', `the roll-out of ${key} stopped at the canary stage, nothing was written to ${key}, and the canary nodes were rolled back: ${detail}`);
      (err as QosError & { detail?: unknown }).detail = { key, canary: { nodes: pick, key_revision: crev, results, rolled_back: rolled } };
      throw err;
    }
    const rev = await commit(client, prefix, 'push', [{ key, op: 'put', value: text }, ...pick.map((n) => ({ key: ckey(n), op: 'delete' as const }))], { canary: pick });
    out = { key, revision: rev, canary: { nodes: pick, key_revision: crev, results } };
  } else {
    out = { key, revision: await commit(client, prefix, 'push', [{ key, op: 'put', value: text }]) };
  }
  if (o.wait) {
    const view = await readFleet(client, prefix);
    const want = new Map(takers(view, prefix, target).map((n) => [n.node, { key, revision: out.revision }]));
    out.results = await waitFor(client, prefix, target.kind, want, o.timeoutMs);
    const bad = out.results.filter((r) => r.state !== 'applied');
    if (bad.length) {
      const err = new QosError('QOS_ERR_FLEET_REFUSED', `${key} was written at revision ${out.revision}, but ${bad.map((f) => `${f.node}: ${f.state}${f.error ? ` (${f.error})` : ''}`).join('; ')}`);
      (err as QosError & { detail?: unknown }).detail = out;
      throw err;
    }
  }
  return out;
}
