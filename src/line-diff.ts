/* A line diff for the dashboard's Policy page (running text → edited text), computed in the browser:
 * Myers' O((N+M)D) algorithm ("An O(ND) Difference Algorithm and Its Variations", 1986) on
 * the lines between the common prefix and suffix, and the result cut into hunks with a few
 * lines of context, the unchanged runs between them collapsed. Pure: no DOM. */

export type DiffLine =
  | { kind: 'same'; text: string; old: number; new: number }
  | { kind: 'del'; text: string; old: number }
  | { kind: 'add'; text: string; new: number };

/** Past this many differing lines the edit script is not searched for: the middle is shown as
 * all its old lines removed, then all its new lines added (the search keeps D vectors). */
export const MAX_EDITS = 4000;

/** Lines of a text; a final newline ends the last line, it does not start another. */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** The lines of `a` and `b` as kept, removed and added lines, in order; numbers are 1-based. */
export function diffLines(a: readonly string[], b: readonly string[]): DiffLine[] {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const out: DiffLine[] = [];
  for (let i = 0; i < pre; i++) out.push({ kind: 'same', text: a[i]!, old: i + 1, new: i + 1 });
  const midA = a.slice(pre, a.length - suf);
  const midB = b.slice(pre, b.length - suf);
  for (const [k, i, j] of middle(midA, midB)) {
    if (k === 'same') out.push({ kind: 'same', text: midA[i]!, old: pre + i + 1, new: pre + j + 1 });
    else if (k === 'del') out.push({ kind: 'del', text: midA[i]!, old: pre + i + 1 });
    else out.push({ kind: 'add', text: midB[j]!, new: pre + j + 1 });
  }
  for (let s = suf; s > 0; s--) out.push({ kind: 'same', text: a[a.length - s]!, old: a.length - s + 1, new: b.length - s + 1 });
  return out;
}

type Step = ['same' | 'del' | 'add', number, number];

/** Myers' greedy forward search, keeping each D's furthest-reaching vector to walk back. */
function middle(a: readonly string[], b: readonly string[]): Step[] {
  const n = a.length, m = b.length, max = n + m;
  if (max === 0) return [];
  const all = (): Step[] => [...a.map((_, i): Step => ['del', i, -1]), ...b.map((_, j): Step => ['add', -1, j])];
  if (n === 0 || m === 0) return all();
  const off = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = -1;
  for (let d = 0; d <= Math.min(max, MAX_EDITS); d++) {
    trace.push(v.slice());
    const next = v.slice();
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      next[off + k] = x;
      if (x >= n && y >= m) { found = d; break; }
    }
    v = next;
    if (found >= 0) { trace.push(v); break; }
  }
  if (found < 0) return all();
  // walk back from (n, m): trace[d] is the vector before step d, trace[d + 1] after it
  const steps: Step[] = [];
  let x = n, y = m;
  for (let d = found; d > 0; d--) {
    const prev = trace[d]!;
    const k = x - y;
    const down = k === -d || (k !== d && prev[off + k - 1]! < prev[off + k + 1]!);
    const pk = down ? k + 1 : k - 1;
    const px = prev[off + pk]!, py = px - pk;
    while (x > px + (down ? 0 : 1) && y > py + (down ? 1 : 0)) { x--; y--; steps.push(['same', x, y]); }
    if (down) { y--; steps.push(['add', -1, y]); } else { x--; steps.push(['del', x, -1]); }
  }
  while (x > 0 && y > 0) { x--; y--; steps.push(['same', x, y]); }
  return steps.reverse();
}

/** A diff's rows for display: changed lines with `context` lines around them; each longer
 * unchanged run is one `skip` row saying how many lines it stands for. */
export type DiffRow = DiffLine | { kind: 'skip'; lines: number };

export function collapse(lines: readonly DiffLine[], context = 3): DiffRow[] {
  const rows: DiffRow[] = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i]!.kind !== 'same') { rows.push(lines[i]!); i++; continue; }
    let j = i;
    while (j < lines.length && lines[j]!.kind === 'same') j++;
    const head = i === 0 ? 0 : context;            // after a change
    const tail = j === lines.length ? 0 : context; // before a change
    if (j - i > head + tail + 1) {
      rows.push(...lines.slice(i, i + head));
      rows.push({ kind: 'skip', lines: j - i - head - tail });
      rows.push(...lines.slice(j - tail, j));
    } else rows.push(...lines.slice(i, j));
    i = j;
  }
  return rows;
}
