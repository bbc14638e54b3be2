/* `qos top`: what each program (user, unit, DSCP class) sends and receives now, live, from the
 * counters the daemon's eBPF programs keep in the kernel (docs/apps.md), the busiest first. */

import type { Command } from 'commander';
import { adminSocket } from '../../paths.js';
import { callJson } from '../../daemon/admin-client.js';
import { appsDimension, DIMENSIONS, type Row } from '../../ebpf/apps.js';
import { columns } from '../../columns.js';
import { formatBitRate, formatBytes } from '../../units.js';
import { duration, positiveInt } from '../options.js';
import { print } from '../format.js';

interface Apps { at: string; by: string; rows: Row[]; other: { tx_bytes: number; rx_bytes: number } | null; tracked: number; total: { tx_bytes: number; rx_bytes: number } }

/** The rows, the busiest now first (then the most bytes). */
export function byRate(rows: readonly Row[]): Row[] {
  return [...rows].sort((a, b) => b.tx_bps + b.rx_bps - (a.tx_bps + a.rx_bps) || b.tx_bytes + b.rx_bytes - (a.tx_bytes + a.rx_bytes));
}

/** The human view: a header line, then one line per row (at most n), in the order given. */
export function formatTop(a: Apps, n: number): string {
  const rows = a.rows.slice(0, n);
  const who = a.by === 'program' ? 'PROGRAM' : a.by.toUpperCase();
  const sent = rows.reduce((s, r) => s + r.tx_bps, 0), received = rows.reduce((s, r) => s + r.rx_bps, 0);
  const head = `qos top: by ${a.by}, ${a.at.replace('T', ' ').slice(0, 19)} UTC; now sent ${formatBitRate(sent)}, received ${formatBitRate(received)}; since the daemon started sent ${formatBytes(a.total.tx_bytes)}, received ${formatBytes(a.total.rx_bytes)}`;
  const table = [['SENT/s', 'RECEIVED/s', 'SENT', 'RECEIVED', ...(a.by === 'program' ? ['PID', 'USER'] : []), who],
    ...rows.map((r) => [formatBitRate(r.tx_bps), formatBitRate(r.rx_bps), formatBytes(r.tx_bytes), formatBytes(r.rx_bytes),
      ...(a.by === 'program' ? [r.pid ? String(r.pid) : '-', r.users?.join(',') ?? '-'] : []), r.name])];
  const more = a.tracked > rows.length || a.other ? [`(${a.tracked - rows.length} more${a.other ? ', and programs no longer tracked' : ''}: --rows N, --json)`] : [];
  return [head, ...columns(table), ...more].join('\n');
}

export function topCommands(program: Command): void {
  program
    .command('top')
    .description('what each program (or user, unit, DSCP class) sends and receives now, the busiest first: counted in the kernel by the daemon\'s eBPF programs (docs/apps.md)')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--by <what>', `one row per ${DIMENSIONS.join(', ')}`, 'program')
    .option('--rows <n>', 'rows shown (default: what the terminal holds, or 20)', (v) => positiveInt(v, '--rows'))
    .option('--interval <time>', 'time between updates', (v) => duration(v, '--interval'), 1)
    .option('--once', 'one view, after one interval (rates need two reads), then exit')
    .option('--json', 'print JSON: with --once one object, else one object per line each interval')
    .action(async (o: { admin: string; by: string; rows?: number; interval: number; once?: boolean; json?: boolean }) => {
      const by = appsDimension(o.by);
      const read = () => callJson<Apps>(o.admin, 'GET', `/v1/apps?by=${by}`);
      const tty = process.stdout.isTTY === true && !o.json;
      const rows = o.rows ?? (tty ? Math.max(5, (process.stdout.rows ?? 24) - 3) : 20);
      const wait = () => new Promise((r) => setTimeout(r, o.interval * 1000));
      await read(); // the rates are over the interval from this read to the next
      for (;;) {
        await wait();
        const a = await read();
        a.rows = byRate(a.rows);
        if (o.json) print(JSON.stringify(o.once ? a : { ...a, rows: a.rows.slice(0, rows) }, null, o.once ? 2 : undefined));
        else print((tty ? '\x1b[H\x1b[2J' : o.once ? '' : '\n') + formatTop(a, rows));
        if (o.once) return;
      }
    });
}
