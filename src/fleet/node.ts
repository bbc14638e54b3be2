/* A daemon in a fleet (`qos daemon --fleet`, docs/fleet.md): the `fleet` component. It reads its
 * keys (keys.ts) from etcd at one revision, applies the document each kind resolves to (node >
 * group > fleet, a canary key above them all) and watches those keys from the next revision.
 * A new version is checked and applied as a local edit would be (the policy through the running
 * policy's apply: checked, written atomically to the fleet's policy file, reloaded, put back if
 * refused; a rule set as one import, dry-run first), so a version that fails is refused, reported
 * and the last good one keeps running. What runs is on local disk (the policy file, the rule
 * store, `state.json` naming the versions), so a daemon started while etcd is down enforces it.
 *
 * When etcd cannot be reached the session ends and a new one starts after a back-off (250 ms,
 * doubling to 10 s or `retryMaxMs`, jittered): it reads the keys again at one revision, so it catches up with
 * what it missed, and a version is identified by its key and the revision that wrote it, so
 * nothing is applied twice. Its status is a key on a lease (`P/status/<node>`), rewritten when
 * something changes and every `statusEveryMs` (30 s: agents and decisions/s); a node that dies is gone from etcd after the
 * lease's TTL, one that stops revokes it at once. */

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../atomic-file.js';
import type { Clock, Timer } from '../clock.js';
import type { Component } from '../component.js';
import { formatProblems, QosError } from '../errors.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { sha256 } from '../daemon/policy-versions.js';
import { DOC_KINDS, effective, keysFor, statusKey, type DocKind, type DocVersion } from './keys.js';
import { fleetClient, type FleetConnection } from './connect.js';

/** A version as a node records it: which key, written at which revision, its text's sha256. */
export interface AppliedVersion { key: string; revision: number; sha256: string; at: string }
export interface RefusedVersion { key: string; revision: number; error: string; at: string }

/** What a node writes to its status key (and `qos status` shows under `fleet`). */
export interface NodeStatus {
  node: string;
  groups: string[];
  pid: number;
  version: number;
  started: string;
  updated_at: string;
  /** the version each kind runs (null: none from the fleet yet) */
  applied: Record<DocKind, AppliedVersion | null>;
  /** the last version of each kind this node refused, while no later one was applied */
  refused: Record<DocKind, RefusedVersion | null>;
  last_error: string | null;
  agents: number;
  decisions_per_s: number;
  /** versions applied since the daemon started, per kind */
  applies: Record<DocKind, number>;
}

/** What the fleet does to the rest of the daemon. */
export interface FleetTargets {
  /** replaces the running policy with a checked text (throws, changing nothing, if refused) */
  applyPolicy(text: string, by: string): Promise<void>;
  /** the running policy text's sha256 */
  policySha256(): string;
  /** replaces the kernel rule set with this file's text (throws, changing nothing, if refused) */
  applyRules(text: string, by: string): Promise<void>;
  /** agents connected and decisions made so far */
  stats(): { agents: number; decisions: number };
}

export interface FleetNodeOptions extends FleetConnection {
  prefix: string;
  node: string;
  groups: string[];
  /** where the fleet's state is kept (the policy file is `policy.yaml` in it) */
  dir: string;
  targets: FleetTargets;
  log: Logger;
  clock: Clock;
  /** the status key's lease (default 10 s) */
  leaseTtlS?: number;
  /** how often the status is rewritten with fresh figures (default 30 s) */
  statusEveryMs?: number;
  /** the longest wait between attempts to reach etcd (default 10 s) */
  retryMaxMs?: number;
}

interface DiskState { applied: Record<DocKind, AppliedVersion | null> }

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;

/** The policy file a fleet daemon runs, in the fleet's state directory; made with `initial`
 * (the built-in policy) the first time, so a new node enforces something before etcd answers. */
export function fleetPolicyFile(dir: string, initial: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = join(dir, 'policy.yaml');
  if (!existsSync(file)) writeFileAtomic(file, initial, { mode: 0o644 });
  return file;
}

export class FleetNode implements Component {
  readonly name = 'fleet';
  private readonly stateFile: string;
  private applied: Record<DocKind, AppliedVersion | null> = { policy: null, rules: null };
  private refused: Record<DocKind, RefusedVersion | null> = { policy: null, rules: null };
  private applies: Record<DocKind, number> = { policy: 0, rules: 0 };
  private lastError: string | null = null;
  private connected = false;
  /** why the last session with etcd ended (shown by `qos status` on the node: etcd cannot be told) */
  private etcdError: { at: string; error: string } | null = null;
  private stopped = false;
  private readonly started = new Date().toISOString();
  /** the current session's client, watchers and lease */
  private client: Etcd3 | null = null;
  private watchers: Watcher[] = [];
  private lease: Lease | null = null;
  private endSession: ((why: string) => void) | null = null;
  /** the documents this node's keys hold now, as read and watched */
  private docs = new Map<string, DocVersion>();
  private revision = 0;
  private reconciling: Promise<void> = Promise.resolve();
  private statusTimer: Timer | null = null;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private lastDecisions = { n: 0, at: 0 };
  private decisionsPerS = 0;

  constructor(private readonly o: FleetNodeOptions) {
    this.stateFile = join(o.dir, 'state.json');
  }

  async start(): Promise<void> {
    try {
      const s = JSON.parse(readFileSync(this.stateFile, 'utf8')) as DiskState;
      if (s && typeof s === 'object' && s.applied) this.applied = { policy: s.applied.policy ?? null, rules: s.applied.rules ?? null };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log.warn({ file: this.stateFile, err: (e as Error).message }, 'fleet: the record of the versions applied is unreadable; the next versions from etcd are applied');
    }
    // refused at start, before the daemon listens: a bad --fleet or certificate file
    fleetClient(this.o).close();
    this.o.log.info({ fleet: this.o.fleet, node: this.o.node, groups: this.o.groups, prefix: this.o.prefix, policy: this.applied.policy, rules: this.applied.rules },
      'fleet: enforcing the last versions applied (from local disk) until etcd answers');
  }

  /** Once the daemon runs: the sessions with etcd, one after another. */
  running(): void {
    this.loop = this.sessions();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const lease = this.lease;
    this.endSession?.('daemon stopping');
    // a node that stops says so at once: its status key goes with its lease
    if (lease) await Promise.race([lease.revoke().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    await this.loop;
  }

  status(): Record<string, unknown> {
    return { fleet: { fleet: this.o.fleet, prefix: this.o.prefix, connected: this.connected, etcd_error: this.etcdError, revision: this.revision, ...this.nodeStatus() } };
  }

  private nodeStatus(): NodeStatus {
    const { agents } = this.o.targets.stats();
    return {
      node: this.o.node, groups: this.o.groups, pid: process.pid, version: PROTOCOL_VERSION, started: this.started, updated_at: new Date().toISOString(),
      applied: this.applied, refused: this.refused, last_error: this.lastError, agents, decisions_per_s: this.decisionsPerS, applies: this.applies,
    };
  }

  private async sessions(): Promise<void> {
    const max = this.o.retryMaxMs ?? BACKOFF_MAX_MS;
    let delay = BACKOFF_MIN_MS;
    while (!this.stopped) {
      const began = Date.now();
      const why = await this.session().catch((e: unknown) => (e as Error).message ?? String(e));
      this.connected = false;
      this.etcdError = { at: new Date().toISOString(), error: why };
      if (this.stopped) break;
      // a session that held a while starts the back-off afresh
      if (Date.now() - began > max) delay = BACKOFF_MIN_MS;
      this.o.log.warn({ err: why, retry_ms: delay }, 'fleet: lost etcd; enforcing the last versions applied, and trying again');
      await new Promise<void>((resolve) => {
        const t = this.o.clock.after(delay * (0.75 + Math.random() / 2), () => { this.wake = null; resolve(); });
        this.wake = () => { t.cancel(); this.wake = null; resolve(); };
      });
      delay = Math.min(delay * 2, max);
    }
  }

  /** One session: read, apply, watch, report; resolves with why it ended. */
  private async session(): Promise<string> {
    const client = this.client = fleetClient(this.o);
    const ended = new Promise<string>((resolve) => { this.endSession = resolve; });
    try {
      const keys = DOC_KINDS.flatMap((k) => keysFor(this.o.prefix, k, this.o.node, this.o.groups));
      // every key at one revision: what the node must run now, whatever it missed
      const r = await client.kv.txn({ compare: [], success: keys.map((key) => ({ request_range: { key: Buffer.from(key) } })), failure: [] });
      const at = Number(r.header.revision);
      this.docs = new Map();
      for (const res of r.responses) {
        for (const kv of res.response_range?.kvs ?? []) this.docs.set(kv.key.toString(), { key: kv.key.toString(), value: kv.value.toString(), revision: Number(kv.mod_revision) });
      }
      this.revision = at;
      this.connected = true;
      this.etcdError = null;
      this.o.log.info({ revision: at, documents: [...this.docs.values()].map((d) => `${d.key}@${d.revision}`) }, 'fleet: connected to etcd');
      // the status key, on a lease that lapses if this daemon dies
      const lease = this.lease = client.lease(this.o.leaseTtlS ?? 10, { autoKeepAlive: true });
      lease.on('lost', (e: Error) => this.endSession?.(`status lease lost: ${e.message}`));
      await lease.grant();
      this.schedule(true);
      await this.reconciling;
      // then every change from the next revision on, in one stream
      for (const key of keys) {
        const w = await client.watch().key(key).startRevision(String(at + 1)).create();
        this.watchers.push(w);
        w.on('put', (kv) => { this.docs.set(key, { key, value: kv.value.toString(), revision: Number(kv.mod_revision) }); this.revision = Math.max(this.revision, Number(kv.mod_revision)); this.schedule(); });
        w.on('delete', (kv) => { this.docs.delete(key); this.revision = Math.max(this.revision, Number(kv.mod_revision)); this.schedule(); });
        w.on('disconnected', () => this.endSession?.('the watch stream was cut'));
        w.on('error', (e: Error) => this.endSession?.(`watch failed: ${e.message}`));
      }
      this.statusTimer = this.o.clock.every(this.o.statusEveryMs ?? 30_000, () => void this.publish());
      return await ended;
    } finally {
      this.endSession = null;
      this.statusTimer?.cancel();
      this.statusTimer = null;
      const ws = this.watchers;
      this.watchers = [];
      this.lease = null;
      await Promise.allSettled(ws.map((w) => w.cancel()));
      client.close();
      this.client = null;
    }
  }

  /** Applies what the keys now say, after whatever apply is running (events coming meanwhile
   * are taken together by the next run). */
  private schedule(first = false): void {
    this.reconciling = this.reconciling.then(() => this.reconcile(first), () => this.reconcile(first));
  }

  /** Applies what each kind resolves to; the status is written when that changed something
   * (and at the start of a session), the figures in it only every `statusEveryMs`. */
  private async reconcile(first = false): Promise<void> {
    let changed = first;
    for (const kind of DOC_KINDS) if (await this.reconcileKind(kind)) changed = true;
    if (changed) await this.publish();
  }

  /** Whether it applied or refused a version. */
  private async reconcileKind(kind: DocKind): Promise<boolean> {
    const doc = effective(this.docs, this.o.prefix, kind, this.o.node, this.o.groups);
    if (!doc) return false; // nothing from the fleet for this kind: what runs stays
    const cur = this.applied[kind];
    if (cur && cur.key === doc.key && cur.revision === doc.revision) return false;
    const ref = this.refused[kind];
    if (ref && ref.key === doc.key && ref.revision === doc.revision) return false;
    const by = `fleet ${doc.key}@${doc.revision}`;
    const hash = sha256(doc.value);
    const { targets, log } = this.o;
    try {
      if (kind === 'policy') {
        // the same text from another key (a canary becoming the fleet's) is not loaded again
        if (hash !== targets.policySha256()) await targets.applyPolicy(doc.value, by);
      } else if (!cur || cur.sha256 !== hash) {
        await targets.applyRules(doc.value, by);
      }
      this.applied[kind] = { key: doc.key, revision: doc.revision, sha256: hash, at: new Date().toISOString() };
      this.refused[kind] = null;
      this.applies[kind]++;
      if (!this.refused.policy && !this.refused.rules) this.lastError = null;
      this.save();
      log.info({ kind, key: doc.key, revision: doc.revision, sha256: hash }, `fleet: applied ${kind} ${doc.key} at revision ${doc.revision}`);
      return true;
    } catch (e) {
      const err = e instanceof QosError ? `${e.message}${e.problems.length ? `: ${formatProblems(e.problems).split('\n').join('; ')}` : ''}` : String((e as Error).message ?? e);
      this.refused[kind] = { key: doc.key, revision: doc.revision, error: err, at: new Date().toISOString() };
      this.lastError = `${kind} ${doc.key}@${doc.revision} refused: ${err}`;
      log.error({ kind, key: doc.key, revision: doc.revision, err }, `fleet: refused ${kind} ${doc.key} at revision ${doc.revision}; the last good version keeps running`);
      return true;
    }
  }

  /** The record of what runs, beside it on disk (atomic). */
  private save(): void {
    try {
      writeFileAtomic(this.stateFile, JSON.stringify({ applied: this.applied } satisfies DiskState, null, 2) + '\n', { mode: 0o644 });
    } catch (e) {
      this.o.log.error({ file: this.stateFile, err: (e as Error).message }, 'fleet: cannot record the versions applied');
    }
  }

  private async publish(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    const { decisions } = this.o.targets.stats();
    const now = Date.now();
    if (this.lastDecisions.at) this.decisionsPerS = Math.round(((decisions - this.lastDecisions.n) * 1000 / Math.max(1, now - this.lastDecisions.at)) * 10) / 10;
    this.lastDecisions = { n: decisions, at: now };
    try {
      await lease.put(statusKey(this.o.prefix, this.o.node)).value(JSON.stringify(this.nodeStatus()));
    } catch (e) {
      this.endSession?.(`status not written: ${(e as Error).message}`);
    }
  }
}
