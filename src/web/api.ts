/* The admin API from the browser: every page reads and changes the daemon only through the
 * admin routes (docs/dashboard.md), under /api, with the session's CSRF token. */

const CSRF_KEY = 'qosd-csrf';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: { line?: number; col?: number; path?: string; message: string }[] = [],
  ) {
    super(message);
  }
}

export function csrfToken(): string {
  return localStorage.getItem(CSRF_KEY) ?? '';
}

/** Back to the login page: the session is gone (401) or the token is not this session's (403
 * on a request that carried one means the server no longer knows it). */
function relogin(): never {
  localStorage.removeItem(CSRF_KEY);
  location.assign('/');
  throw new ApiError(401, 'QOS_ERR_UNAUTHENTICATED', 'the session has ended: log in again');
}

export interface ApiOptions {
  method?: string;
  /** sent as JSON */
  body?: unknown;
  /** sent as application/octet-stream (a capture file) */
  raw?: Blob | ArrayBuffer;
  query?: Record<string, string | number | undefined>;
}

function urlOf(path: string, query?: ApiOptions['query']): string {
  const u = new URL('/api' + path, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
  return u.pathname + u.search;
}

async function call(path: string, o: ApiOptions): Promise<Response> {
  const headers: Record<string, string> = { 'x-csrf-token': csrfToken() };
  let body: BodyInit | undefined;
  if (o.raw !== undefined) { headers['content-type'] = 'application/octet-stream'; body = o.raw; }
  else if (o.body !== undefined) { headers['content-type'] = 'application/json'; body = JSON.stringify(o.body); }
  const r = await fetch(urlOf(path, o.query), { method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, credentials: 'same-origin' });
  if (r.status === 401 || (r.status === 403 && !csrfToken())) relogin();
  if (!r.ok) {
    let err: { code?: string; message?: string; problems?: ApiError['problems'] } = {};
    try { err = ((await r.json()) as { error?: typeof err }).error ?? {}; } catch { /* not JSON */ }
    throw new ApiError(r.status, err.code ?? `HTTP_${r.status}`, err.message ?? `${r.status} ${r.statusText}`, err.problems ?? []);
  }
  return r;
}

/** An admin route's JSON answer: api('/v1/flows'), api('/v1/rules/move', { body: {...} }). */
export async function api<T>(path: string, o: ApiOptions = {}): Promise<T> {
  return (await (await call(path, o)).json()) as T;
}

/** An admin route's text answer (`/metrics`, NDJSON). */
export async function apiText(path: string, o: ApiOptions = {}): Promise<string> {
  return (await call(path, o)).text();
}

/** An NDJSON answer, one value per line (GET /v1/decisions). */
export async function apiLines<T>(path: string, o: ApiOptions = {}): Promise<T[]> {
  return (await apiText(path, o)).split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

/** A row of GET /v1/apps: one program, user, unit (cgroup) or DSCP class, as the daemon's
 * eBPF programs counted its sockets' packets (src/ebpf/apps.ts). Bytes include the IP headers;
 * the rates are bytes/s over the daemon's last read of the counters. */
export interface AppRow {
  key: string; name: string;
  tx_bytes: number; rx_bytes: number; tx_packets: number; rx_packets: number;
  tx_bps: number; rx_bps: number;
  /** ms since the epoch, the daemon's clock */
  last_active: number;
  /** program rows: a process that ran it, and the users that did */
  pid?: number; users?: string[];
}
export type AppCounts = Pick<AppRow, 'tx_bytes' | 'rx_bytes' | 'tx_packets' | 'rx_packets'>;
export type AppsBy = 'program' | 'user' | 'unit' | 'class';
/** GET /v1/apps: the n rows with the most bytes, the rest summed in `other` (null when none) */
export interface AppsAnswer { at: string; by: AppsBy; rows: AppRow[]; other: AppCounts | null; tracked: number; total: AppCounts }

/** The per-application statistics by one dimension (GET /v1/apps?by=&n=); without the daemon's
 * eBPF programs an ApiError QOS_ERR_ENVIRONMENT saying why. */
export function apps(by: AppsBy, n: number): Promise<AppsAnswer> {
  return api<AppsAnswer>('/v1/apps', { query: { by, n } });
}

export async function logout(): Promise<void> {
  await fetch('/api/logout', { method: 'POST', headers: { 'x-csrf-token': csrfToken() }, credentials: 'same-origin' }).catch(() => undefined);
  localStorage.removeItem(CSRF_KEY);
  location.assign('/');
}
