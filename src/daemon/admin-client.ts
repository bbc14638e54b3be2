/* A small client for the daemon's admin API (HTTP over its Unix socket, admin.ts): the CLI, the
 * benchmarks, qos try and the tests ask the daemon through it. */

import { request } from 'node:http';
import { ErrorCodes, QosError, type ErrorCode, type Problem } from '../errors.js';

export interface Response { status: number; body: string }

/** One request; rejects with QOS_ERR_DAEMON_UNREACHABLE if nobody listens. */
export function call(socketPath: string, method: string, path: string, timeoutMs = 5000, body?: unknown): Promise<Response> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
    // agent: false, a connection per request: Node's default agent keeps connections alive
    // and reuses one the daemon has already closed as idle (EPIPE on the next request)
    const req = request({ socketPath, method, path, timeout: timeoutMs, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => reject(new QosError('QOS_ERR_DAEMON_UNREACHABLE', `no daemon answers on ${socketPath} (${(e as NodeJS.ErrnoException).code ?? e.message}); is \`qos daemon\` running?`)));
    req.end(data);
  });
}

/** A request returning parsed JSON; a non-2xx answer becomes the daemon's QosError (same
 * code, message and problems, so the exit status is the one the error deserves). */
export async function callJson<T>(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<T> {
  const r = await call(socketPath, method, path, timeoutMs, body);
  let parsed: unknown;
  try { parsed = JSON.parse(r.body); } catch { throw new QosError('QOS_ERR_API', `daemon answered ${r.status} with non-JSON`); }
  if (r.status < 200 || r.status >= 300) {
    const e = (parsed as { error?: { code?: string; message?: string; problems?: Problem[] } }).error;
    const code = e?.code && e.code in ErrorCodes ? (e.code as ErrorCode) : 'QOS_ERR_API';
    throw new QosError(code, e?.message ?? `daemon answered ${r.status}`, e?.problems ?? []);
  }
  return parsed as T;
}

/** Streams NDJSON lines from a GET until the connection ends. */
export function stream(socketPath: string, path: string, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'GET', path }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) { onLine(buf.slice(0, nl)); buf = buf.slice(nl + 1); }
      });
      res.on('end', () => resolve());
    });
    req.on('error', (e) => reject(new QosError('QOS_ERR_DAEMON_UNREACHABLE', `no daemon answers on ${socketPath} (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
    req.end();
  });
}

/** A figure from a daemon's /metrics: the sum over the series whose labels contain `labels`
 * (0 when there is none). */
export async function metricOf(adminSocket: string, name: string, labels = ''): Promise<number> {
  const text = (await call(adminSocket, 'GET', '/metrics')).body;
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) if ((m[1] ?? '').includes(labels)) sum += Number(m[2]);
  return sum;
}
