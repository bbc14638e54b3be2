/* How `qos characterize` prints a rate or a size in its text (format.ts), shared with the
 * dashboard's Characterise page so both show the same figures: 12.3k, 1.25M. Pure. */

/** A figure with an SI prefix: below 10,000 to a tenth, then k (one decimal), M and G (two). */
export function num(x: number): string {
  return x >= 1e9 ? `${(x / 1e9).toFixed(2)}G` : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : String(Math.round(x * 10) / 10);
}
