/* The admin interface: JSON over HTTP on a Unix socket. The routes are the components'
 * (component.ts): GET /v1/status, /metrics (daemon.ts), /v1/flows, /v1/decisions[?follow=1]
 * (decision-log.ts), POST /v1/reload (running-policy.ts), the running policy's text, check,
 * apply and versions: GET /v1/policy, POST /v1/policy/check, POST /v1/policy/apply,
 * GET /v1/policy/versions[/N], POST /v1/policy/versions/N/restore (policy-api.ts;
 * docs/policy.md), the kernel rule set under /v1/rules (kernel/api.ts),
 * POST /v1/characterize[/live] (characterize/api.ts, docs/characterize.md; the upload's body is a capture file, streamed to a temporary file: upload.ts),
 * GET /v1/metrics/history[?since=ISO] (metrics-history.ts: the last 360 samples, oldest
 * first, of those after `since` if given: `{interval_s, next_sample_in_s, samples: [{t,
 * decisions_per_s, latency_p50_us, latency_p99_us, script_calls_per_s, script_faults_per_s,
 * dscp: {<class>: {packets_per_s, bytes_per_s}} | null}]}`, null where unknown; a `since`
 * that is not an ISO time is 400 QOS_ERR_USAGE). An error thrown by a route is answered with
 * the status of its code.
 *
 * Who may use it: root, the daemon's own user, and members of the admin group if one is set
 * (`qos daemon --admin-group`). The socket is created with that mode from the start (mode 0600,
 * or 0660 and the group), and every connection is checked again with SO_PEERCRED and
 * SO_PEERGROUPS: a connection made through a mode that was wrong for a moment, or a descriptor
 * handed to someone else, still gets 403. */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, chown, mkdir, unlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { httpStatusFor, QosError } from '../errors.js';
import type { Components, Route, RouteRequest } from '../component.js';
import { peerCred, peerGroups } from './identity.js';
import { withUpload } from './upload.js';

/** Request bodies are JSON objects of at most this many bytes (a 65,535-rule import fits),
 * unless their route says otherwise (Route.maxBody). */
const MAX_BODY = 64 * 2 ** 20;

/** The JSON object of a request's body ({} if empty); past `max` bytes the rest is not read
 * and QOS_ERR_TOO_LARGE thrown: its answer (fail) closes the connection (the dashboard reads
 * bodies with a smaller bound). */
export function readBody(req: IncomingMessage, max = MAX_BODY): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.pause();
        parts.length = 0;
        reject(new QosError('QOS_ERR_TOO_LARGE', `request body over ${max} bytes`));
        return;
      }
      parts.push(d);
    });
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      if (!text.trim()) return resolve({});
      try {
        const v: unknown = JSON.parse(text);
        if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
        resolve(v as Record<string, unknown>);
      } catch (e) { reject(new QosError('QOS_ERR_USAGE', `request body is not a JSON object: ${(e as Error).message}`)); }
    });
    req.on('error', reject);
  });
}

/** Runs an admin route for a request, as the admin socket and the dashboard both do: its JSON
 * body (if it takes one) or its body as a file (an upload route), each up to `max` bytes, then
 * its answer written; before a stream is handed the response, `stream()` may refuse it. */
export async function runRoute(req: IncomingMessage, res: ServerResponse, route: Route, r: Omit<RouteRequest, 'body' | 'upload'> & { max: number; stream?(): void }): Promise<void> {
  const body = route.body && r.method !== 'GET' ? await readBody(req, r.max) : {};
  const a = await withUpload(req, res, route.upload ? r.max : null, (upload) => Promise.resolve(route.handle({ method: r.method, path: r.path, url: r.url, body, uid: r.uid, upload })));
  if ('stream' in a) {
    r.stream?.();
    return a.stream(req, res);
  }
  if ('json' in a) return json(res, a.status ?? 200, a.json);
  res.writeHead(a.status ?? 200, { 'content-type': a.contentType });
  res.end(a.text);
}

/** An error as the admin API answers it: its status from its code (errors.ts), its JSON. */
export function fail(res: ServerResponse, e: unknown): void {
  const err = e instanceof QosError ? e : new QosError('QOS_ERR_INTERNAL', String(e));
  // the rest of a body too large is not read: the connection cannot carry another request
  if (err.code === 'QOS_ERR_TOO_LARGE') res.setHeader('connection', 'close');
  json(res, httpStatusFor(err), { error: err.toJSON() });
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export interface AdminOptions {
  /** gid whose members may use the API besides root and the daemon's user */
  group?: number;
}

export class AdminServer {
  private server: Server | null = null;
  private readonly refused = new WeakMap<Socket, string>();
  /** each connection's uid, from the kernel: routes only root may use check it */
  private readonly uids = new WeakMap<Socket, number>();
  constructor(private readonly path: string, private readonly routes: Pick<Components, 'route'>, private readonly o: AdminOptions = {}) {}

  async listen(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
    await unlink(this.path).catch(() => undefined);
    const server = createServer((req, res) => {
      const why = this.refused.get(req.socket);
      if (why !== undefined) {
        res.setHeader('connection', 'close');
        fail(res, new QosError('QOS_ERR_FORBIDDEN', why));
        return;
      }
      this.route(req, res).catch((e: unknown) => {
        if (!res.headersSent) fail(res, e);
        else res.end();
      });
    });
    server.on('connection', (s: Socket) => { const why = this.who(s); if (why) this.refused.set(s, why); });
    // The socket is bound inside listen(), synchronously: with this umask it is born with the
    // mode it keeps (a chmod afterwards would leave a moment in which anyone could connect).
    const umask = process.umask(this.o.group === undefined ? 0o177 : 0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => { server.off('error', reject); resolve(); });
      });
    } finally {
      process.umask(umask);
    }
    if (this.o.group !== undefined) await chown(this.path, process.getuid?.() ?? 0, this.o.group);
    await chmod(this.path, this.o.group === undefined ? 0o600 : 0o660);
    this.server = server;
  }

  /** Why the peer of s may not use the API, or null if it may. */
  private who(s: Socket): string | null {
    const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const cred = typeof fd === 'number' ? peerCred(fd) : null;
    if (!cred) return 'the daemon cannot tell who is connected (SO_PEERCRED)';
    this.uids.set(s, cred.uid);
    const me = process.getuid?.() ?? 0;
    if (cred.uid === 0 || cred.uid === me) return null;
    const g = this.o.group;
    if (g !== undefined && (cred.gid === g || (peerGroups(fd!) ?? []).includes(g))) return null;
    return `uid ${cred.uid} may not use the admin API: it is root's${me !== 0 ? `, uid ${me}'s` : ''}${g !== undefined ? ` and group ${g}'s` : ''} (qos daemon --admin-group)`;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    await unlink(this.path).catch(() => undefined);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://qosd');
    const method = req.method ?? 'GET';
    const route = this.routes.route(method, url.pathname);
    await runRoute(req, res, route, { method, path: url.pathname, url, uid: this.uids.get(req.socket)!, max: route.maxBody ?? MAX_BODY });
  }
}
