/* Characterisation through the admin API (docs/characterize.md, "Through the daemon"), a daemon
 * component, for the dashboard's Characterise page and any client:
 *   POST /v1/characterize[?name=&grid=&count=&peak_window=&min_unit=&rates=&flow=]
 *        the body a capture file (pcap or pcapng, at most 64 MiB), streamed to a private
 *        temporary file (daemon/upload.ts): the answer is what `qos characterize --json` prints
 *   POST /v1/characterize/live { pid, fd } | { proto, local, remote }, seconds (1-60), the same
 *        options: a flow of the flow table captured with tcpdump (live.ts) for that long;
 *        root only (tcpdump sees every process's packets)
 * One characterisation at a time: a second while one runs is refused (409 QOS_ERR_CONFLICT),
 * so requests cannot pile up captures, temporary files and CPU. */

import type { Component, Route, RouteRequest } from '../component.js';
import type { Endpoint, Flow } from '../daemon/flows.js';
import { QosError } from '../errors.js';
import { canonicalAddress, socketOfDescriptor, type ProcSocket } from '../rsvp/connections.js';
import { parseRate } from '../units.js';
import { appSelect, bpfForApp, characterizeLive, type AppSocket } from './live.js';
import { characterizationJson, characterizeFile, flowFilter, type CharacterizeOptions } from './offline.js';

/** An uploaded capture's bound, and a live capture's. */
export const MAX_CAPTURE = 64 * 2 ** 20;
export const MAX_LIVE_SECONDS = 60;

type Options = Omit<CharacterizeOptions, 'name' | 'cumulative'>;

/** The options `qos characterize` takes, from a request's query or body: `grid`, `count`,
 * `peak_window` (ms), `min_unit` (bytes), `rates` (comma-separated, as --rates), `flow` (as
 * --flow). Each checked as the CLI checks it. */
export function optionsOf(get: (k: string) => unknown): Options {
  const o: Options = {};
  const int = (k: string): number | undefined => {
    const v = get(k);
    if (v === undefined || v === null || v === '') return undefined;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n <= 0) throw new QosError('QOS_ERR_USAGE', `${k} takes a positive whole number, not ${JSON.stringify(v)}`);
    return n;
  };
  o.grid = int('grid') ?? 32;
  const pw = int('peak_window');
  o.peakWindowS = (pw ?? 10) / 1000;
  const mu = int('min_unit');
  if (mu !== undefined) o.minUnit = mu;
  const count = get('count');
  if (count !== undefined && count !== null && count !== '') {
    if (count === true || count === '1' || count === 'true') o.count = true;
    else if (count !== false && count !== '0' && count !== 'false') throw new QosError('QOS_ERR_USAGE', `count is true or false, not ${JSON.stringify(count)}`);
  }
  const rates = get('rates');
  if (rates !== undefined && rates !== null && rates !== '') {
    if (typeof rates !== 'string') throw new QosError('QOS_ERR_USAGE', 'rates is a comma-separated list, as --rates takes');
    o.rates = rates.split(',').map(parseRate);
    if (o.rates.some((r) => !(r > 0))) throw new QosError('QOS_ERR_USAGE', 'rates: every rate must be above 0');
  }
  const flow = get('flow');
  if (flow !== undefined && flow !== null && flow !== '') {
    if (typeof flow !== 'string') throw new QosError('QOS_ERR_USAGE', 'flow is a string, as --flow takes');
    o.select = flowFilter(flow);
  }
  return o;
}

function endpoint(v: unknown, what: string): Endpoint {
  const e = v as Partial<Endpoint> | null;
  if (!e || typeof e !== 'object' || typeof e.address !== 'string' || !Number.isInteger(e.port)) throw new QosError('QOS_ERR_USAGE', `${what} is {"address", "port"} as GET /v1/flows gives it`);
  return { address: e.address, port: e.port! };
}

const same = (host: string | null, port: number | null, e: Endpoint | null) => (e === null ? host === null : host !== null && host === canonicalAddress(e.address) && port === e.port);

/** The flow a live request names, { pid, fd } or { proto, local, remote } (remote null for an
 * unconnected socket), one the flow table holds, and what its socket sends as the kernel has
 * it now (the table may not know its local end: a connect without bind). */
export async function liveSocket(body: Record<string, unknown>, flows: { get(pid: number, fd: number): Flow | undefined; list(): Flow[] }): Promise<{ flow: Flow; socket: AppSocket }> {
  let candidates: Flow[];
  let wanted: ((s: ProcSocket) => boolean) | null = null;
  let what: string;
  if (body.pid !== undefined || body.fd !== undefined) {
    if (!Number.isInteger(body.pid) || !Number.isInteger(body.fd)) throw new QosError('QOS_ERR_USAGE', 'pid and fd are whole numbers');
    what = `pid ${String(body.pid)} fd ${String(body.fd)}`;
    const f = flows.get(body.pid as number, body.fd as number);
    candidates = f ? [f] : [];
  } else {
    const proto = body.proto;
    if (proto !== 'tcp' && proto !== 'udp') throw new QosError('QOS_ERR_USAGE', 'a live flow is { pid, fd } or { proto: "tcp"|"udp", local, remote }');
    const local = endpoint(body.local, 'local');
    const remote = body.remote === null || body.remote === undefined ? null : endpoint(body.remote, 'remote');
    what = `${proto} ${local.address}:${local.port} > ${remote ? `${remote.address}:${remote.port}` : '(unconnected)'}`;
    candidates = flows.list().filter((x) => x.proto === proto || x.proto === null); // a socket reported first at its connect has no type yet
    wanted = (s) => s.proto === proto && (s.local === canonicalAddress(local.address) || (/^(0\.0\.0\.0|::)$/.test(s.local) && /^(0\.0\.0\.0|::)$/.test(local.address))) && s.lport === local.port && same(s.remote, s.rport, remote);
  }
  for (const f of candidates) {
    const s = await socketOfDescriptor(f.pid, f.fd);
    if (!s || (wanted && !wanted(s))) continue;
    const any = (a: string) => a === '0.0.0.0' || a === '::';
    return { flow: f, socket: { proto: s.proto, local: any(s.local) ? '' : s.local, lport: s.lport, peer: s.remote && !any(s.remote) ? s.remote : null, pport: s.remote ? s.rport : null } };
  }
  throw new QosError('QOS_ERR_NOT_FOUND', `the daemon knows no open TCP or UDP flow ${what} (GET /v1/flows; the socket must still be open)`);
}

export interface CharacterizeApiOptions {
  flows: { get(pid: number, fd: number): Flow | undefined; list(): Flow[] };
  /** the interface live captures listen on (default any) */
  iface?: string;
}

export class CharacterizeApi implements Component {
  readonly name = 'characterize';
  /** what runs now, for the busy answer; null when idle */
  private current: string | null = null;
  readonly routes: readonly Route[] = [
    { method: 'POST', path: '/v1/characterize', upload: true, maxBody: MAX_CAPTURE, handle: (r) => this.upload(r) },
    { method: 'POST', path: '/v1/characterize/live', body: true, handle: (r) => this.live(r) },
  ];

  constructor(private readonly o: CharacterizeApiOptions) {}

  status(): Record<string, unknown> {
    return { characterize: { running: this.current } };
  }

  /** Runs one characterisation, or refuses while another runs. */
  private async exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.current !== null) throw new QosError('QOS_ERR_CONFLICT', `the daemon is characterising already (${this.current}); one at a time: try again when it is done`);
    this.current = what;
    try {
      return await fn();
    } finally {
      this.current = null;
    }
  }

  private async upload(r: RouteRequest) {
    const name = r.url.searchParams.get('name') || 'upload';
    if (name.length > 255 || /[\0-\x1f]/.test(name)) throw new QosError('QOS_ERR_USAGE', 'name is a file name of at most 255 characters, without control characters');
    const o = optionsOf((k) => r.url.searchParams.get(k) ?? undefined);
    return this.exclusive(`the upload ${JSON.stringify(name)}`, async () => {
      const file = await r.upload!();
      const result = await characterizeFile(file, { ...o, name });
      return { json: characterizationJson(result, o.select ? 'packet matches flow' : 'IP packet') };
    });
  }

  private async live(r: RouteRequest) {
    if (r.uid !== 0) throw new QosError('QOS_ERR_FORBIDDEN', `a live capture is root's alone (uid ${r.uid} asked): tcpdump sees every process's packets`);
    const seconds = r.body.seconds;
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > MAX_LIVE_SECONDS) throw new QosError('QOS_ERR_USAGE', `seconds is a whole number from 1 to ${MAX_LIVE_SECONDS}`);
    const o = optionsOf((k) => r.body[k]);
    const { flow: f, socket: sock } = await liveSocket(r.body, this.o.flows);
    const own = appSelect([sock]);
    return this.exclusive(`a live capture of pid ${f.pid} fd ${f.fd}`, async () => {
      const result = await characterizeLive({
        ...o, select: o.select ? (p) => own(p) && o.select!(p) : own, iface: this.o.iface ?? 'any', filter: bpfForApp([sock]),
        durationS: seconds, refreshS: seconds, maxBytes: MAX_CAPTURE,
      });
      return { json: characterizationJson(result, `packet of pid ${f.pid} fd ${f.fd} in ${seconds} s`) };
    });
  }
}
