/* Rows of text cells as aligned columns, for the human forms of tables (`qos flows`,
 * `qos flowspec templates`, the demo's result): each column but the last padded to its widest
 * cell, cells joined by gap. */

/** The rows as lines, columns aligned. */
export function columns(rows: readonly (readonly string[])[], gap = '  '): string[] {
  const w: number[] = [];
  for (const r of rows) r.forEach((c, i) => { w[i] = Math.max(w[i] ?? 0, c.length); });
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join(gap));
}
