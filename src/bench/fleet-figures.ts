/* The figures of `qos bench fleet` from what it observed (pure): etcd's own counters read from
 * its Prometheus text, and the moment the last node of a fleet reported a revision applied. */

/** One sample of a Prometheus text exposition: the metric's name, its labels, its value. */
export interface PromSample { name: string; labels: Record<string, string>; value: number }

const SAMPLE_RE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$/;
const LABEL_RE = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;

function promNumber(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  if (Number.isNaN(v)) throw new Error(`"${s}" is not a Prometheus sample value`);
  return v;
}

/** The samples of a Prometheus text exposition (format 0.0.4: comments and blank lines skipped,
 * values such as 1.234e+06 and +Inf, an optional timestamp); throws naming a line it cannot read. */
export function parseProm(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`not a Prometheus sample: ${line.slice(0, 120)}`);
    const labels: Record<string, string> = {};
    if (m[2] !== undefined && m[2] !== '') {
      LABEL_RE.lastIndex = 0;
      let end = 0;
      for (let l = LABEL_RE.exec(m[2]); l; l = LABEL_RE.exec(m[2])) {
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
        end = LABEL_RE.lastIndex;
      }
      if (end !== m[2].length) throw new Error(`labels not readable: ${line.slice(0, 120)}`);
    }
    out.push({ name: m[1]!, labels, value: promNumber(m[3]!) });
  }
  return out;
}

/** The sum of a metric's samples whose labels include every pair of `match`, over one or more
 * expositions (one per etcd member); throws if no exposition has the metric at all, so a
 * renamed counter is an error and never a silent 0. */
export function promSum(texts: string | readonly string[], name: string, match: Record<string, string> = {}): number {
  let found = false;
  let sum = 0;
  for (const t of typeof texts === 'string' ? [texts] : texts) {
    for (const s of parseProm(t)) {
      if (s.name !== name) continue;
      found = true;
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
  }
  if (!found) throw new Error(`no metric ${name} in the exposition`);
  return sum;
}

/** The largest of a metric's values across expositions (a gauge each member has of its own
 * copy, such as its database's size). */
export function promMax(texts: readonly string[], name: string): number {
  return Math.max(...texts.map((t) => promSum(t, name)));
}

/** When every node of a set has reported a revision at or past a target: each status update
 * is noted with the revision it says is applied and the moment it was seen; `aim` sets the
 * target, `done` is the moment the last node reached it (null until all have). */
export class Convergence {
  private readonly latest = new Map<string, { revision: number; at: number }>();
  private reached = new Map<string, number>();
  private target = Infinity;
  private readonly nodes: ReadonlySet<string>;

  constructor(nodes: Iterable<string>) {
    this.nodes = new Set(nodes);
  }

  /** A node's status said `revision` was applied, seen at `at`. */
  note(node: string, revision: number, at: number): void {
    if (!this.nodes.has(node)) return;
    const l = this.latest.get(node);
    if (!l || revision > l.revision) this.latest.set(node, { revision, at });
    if (revision >= this.target && !this.reached.has(node)) this.reached.set(node, at);
  }

  /** From now on, the target is `revision` (the nodes already past it count from when they got there). */
  aim(revision: number): void {
    this.target = revision;
    this.reached = new Map();
    for (const [node, l] of this.latest) if (l.revision >= revision) this.reached.set(node, l.at);
  }

  /** The moment the last node reached the target, or null while one has not. */
  done(): number | null {
    if (this.reached.size < this.nodes.size) return null;
    return Math.max(...this.reached.values());
  }

  /** The moment the first node reached the target, or null while none has. */
  first(): number | null {
    return this.reached.size ? Math.min(...this.reached.values()) : null;
  }

  /** The nodes that have not reached the target yet, in name order. */
  missing(): string[] {
    return [...this.nodes].filter((n) => !this.reached.has(n)).sort();
  }
}
