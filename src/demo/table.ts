/* The demonstration's result as a person reads it: the runs side by side (without the daemon,
 * with it, and with --reserve the RSVP reservation). */

import { columns } from '../columns.js';
import type { PhaseFigures } from './analyze.js';
import type { DemoResult, RunName, RunResult } from './demo.js';

const ms = (x: number | null) => (x === null ? '-' : x >= 100 ? `${x.toFixed(0)} ms` : x >= 1 ? `${x.toFixed(1)} ms` : `${x.toFixed(3)} ms`);
const pct = (x: number) => `${x.toFixed(x >= 10 ? 1 : 2)} %`;

function marks(r: RunResult): string {
  return Object.entries(r.media_dscp).map(([d, n]) => `DSCP ${d} ×${n}`).join(', ') || '-';
}

function rows(get: (r: RunResult) => string, label: string, runs: RunResult[]): string[] {
  return [label, ...runs.map(get)];
}

function phaseRows(name: string, f: (r: RunResult) => PhaseFigures, runs: RunResult[]): string[][] {
  return [
    rows((r) => `${pct(f(r).loss_pct)} (${f(r).lost}/${f(r).datagrams})`, `${name}: media loss`, runs),
    rows((r) => `${ms(f(r).delay_ms_p50)} / ${ms(f(r).delay_ms_p99)}`, `${name}: delay p50 / p99`, runs),
    rows((r) => ms(f(r).jitter_ms), `${name}: jitter (RFC 3550)`, runs),
  ];
}

/** The demonstration's result as a table: a title, a header, one row per figure, and the
 * conclusion in one sentence when both runs are there. Printed by formatDemo, an HTML table
 * in the report. */
export interface DemoTable { title: string; head: string[]; rows: string[][]; conclusion: string | null }

const HEAD: Record<RunName, string> = { unmarked: 'without daemon', marked: 'with qos daemon', reserved: 'RSVP reservation' };

/** A router's drops by class: by precedence (pN), or by the classes the run names. */
function drops(r: RunResult): string {
  return r.router_drops.map((n, k) => (n ? `${r.router_classes?.[k] ?? `p${k}`}:${n}` : '')).filter(Boolean).join(' ') || 'none';
}

const kbit = (bytesPerS: number) => `${Math.round((bytesPerS * 8) / 1000)} kb/s`;

/** The reserved run's own rows ('-' in the others). */
function reservationRows(runs: RunResult[]): string[][] {
  const cell = (f: (x: NonNullable<RunResult['reservation']>) => string) => (r: RunResult) => (r.reservation ? f(r.reservation) : '-');
  return [
    rows(cell((x) => `${kbit(x.flowspec.TokenRate)}, bucket ${x.flowspec.TokenBucketSize} B, max ${x.flowspec.MaxSduSize} B`), 'reserved (Controlled Load)', runs),
    rows(cell((x) => (x.receivers_ms_after_media_start === null ? 'never' : `${ms(x.receivers_ms_after_media_start)} after the media began`)), 'Resv at the source (RECEIVERS)', runs),
    rows(cell((x) => (x.router.installed ? `installed on ${x.router.ifname}, ${kbit(x.router.rate_Bps ?? 0)}` : `not installed${x.router.refused ? `: ${x.router.refused}` : ''}`)), 'router reservation', runs),
    rows(cell((x) => (x.datagrams_marked ? `${x.datagrams_before_mark} before the Resv` : `all ${x.datagrams_before_mark}, never marked`)), 'media datagrams best effort', runs),
  ];
}

export function demoTable(d: DemoResult): DemoTable {
  const names = (['unmarked', 'marked', 'reserved'] as const).filter((n) => d.runs[n]);
  const runs = names.map((n) => d.runs[n]!);
  const head = ['', ...names.map((n) => HEAD[n])];
  const reserved = d.runs.reserved;
  const s = d.setup;
  const table: string[][] = [
    rows(marks, 'media datagrams sent', runs),
    ...phaseRows('burst', (r) => r.burst, runs),
    ...phaseRows('idle', (r) => r.idle, runs),
    rows((r) => `${ms(r.tcp_setup_ms)}${r.control_dscp !== null ? ` (DSCP ${r.control_dscp})` : ''}`, 'TCP set-up in a burst (wire)', runs),
    rows((r) => (s.app === 'media' && typeof r.app_report?.control_setup_ms === 'number' ? ms(r.app_report.control_setup_ms) : '-'), 'TCP connect() as the app saw it', runs),
    rows((r) => `${r.cross_traffic_mbps_during_burst.toFixed(2)} Mb/s`, 'cross traffic through, in bursts', runs),
    rows(drops, reserved ? 'router drops by class' : 'router drops by precedence', runs),
    ...(reserved ? reservationRows(runs) : []),
  ];
  if (s.app === 'iperf3') {
    table.push(rows((r) => (r.app_report && r.app_report.lost_percent !== null ? `${pct(Number(r.app_report.lost_percent))}, jitter ${ms(Number(r.app_report.jitter_ms))}` : '-'), 'iperf3 says: loss, jitter', runs));
  }
  const title = `qos demo: ${s.app === 'iperf3' ? 'iperf3 -u' : 'media application'} at ${s.kbps} kb/s, ${s.cycles} bursts of ${s.onMs} ms `
    + `(${s.offMs} ms apart) across a ${s.bottleneckBps / 1e6} Mb/s link queued by precedence (${s.scheduler}${reserved ? '; in the reserved run by qos rsvp router' : ''}), over IPv${s.family}`;
  const u = d.runs.unmarked, m = d.runs.marked;
  const marking = u && m
    ? `With the daemon, media loss during bursts went from ${pct(u.burst.loss_pct)} to ${pct(m.burst.loss_pct)} and p99 delay from ${ms(u.burst.delay_ms_p99)} to ${ms(m.burst.delay_ms_p99)}; `
      + `the TCP control connection was set up in ${ms(m.tcp_setup_ms)} instead of ${ms(u.tcp_setup_ms)}.`
    : null;
  const x = reserved?.reservation;
  const reserving = !u || !reserved || !x ? null
    : x.receivers_ms_after_media_start === null
      ? `No reservation reached the source (${x.router.refused ? `the router refused it: ${x.router.refused}` : 'no Resv came'}): the media stayed best effort and lost ${pct(reserved.burst.loss_pct)} during bursts.`
      : `With an RSVP reservation (the Resv came ${ms(x.receivers_ms_after_media_start)} after the media began), `
        + `media loss during bursts was ${pct(reserved.burst.loss_pct)} (best effort: ${pct(u.burst.loss_pct)}) and p99 delay ${ms(reserved.burst.delay_ms_p99)}.`;
  const conclusion = [marking, reserving].filter(Boolean).join(' ') || null;
  return { title, head, rows: table, conclusion };
}

/** The table as text, columns padded. */
export function formatDemo(d: DemoResult): string {
  const t = demoTable(d);
  const lines = columns([t.head, ...t.rows], '   ').map((l) => l.trimEnd());
  return [t.title, '', ...lines, ...(t.conclusion ? ['', t.conclusion] : [])].join('\n');
}
