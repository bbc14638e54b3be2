/* What the benchmarks share: medians of noisy runs, and the C helpers' JSON results. */

import { QosError } from '../errors.js';
import { run, runSync } from '../exec.js';

/** The median, unrounded (for ratios). */
export function medianF(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const median = (xs: number[]) => Math.round(medianF(xs));

/** Runs a helper to completion and parses the JSON object it prints. */
export function runJson<T>(argv: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 300_000): T {
  return parseJson(argv, runSync(argv, { env, timeoutMs, code: 'QOS_ERR_BENCH' }).stdout);
}

function parseJson<T>(argv: string[], out: string): T {
  try {
    return JSON.parse(out) as T;
  } catch {
    throw new QosError('QOS_ERR_BENCH', `${argv[0]} printed no JSON: ${out.slice(0, 200)}`);
  }
}

/** runJson without blocking the event loop: for loads that run beside clients of our own. */
export async function runJsonAsync<T>(argv: string[], timeoutMs = 300_000): Promise<T> {
  return parseJson(argv, (await run(argv, { timeoutMs, code: 'QOS_ERR_BENCH' })).stdout);
}

/** Has close run at SIGINT or SIGTERM, then the process exit (130, 143) saying that `what` of
 * `qos bench name` are gone; returns what stops listening (at the benchmark's own end). */
export function closeOnSignal(name: string, what: string, close: () => Promise<void>): () => void {
  const onSignal = (sig: NodeJS.Signals) => {
    void close().finally(() => {
      process.stderr.write(`qos bench ${name}: ${sig}: stopped; ${what} are gone\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); };
}
