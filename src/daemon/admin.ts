/* The admin interface: JSON over HTTP on a Unix socket (root-only by file mode).
 * GET /v1/status, /v1/flows, /v1/decisions[?follow=1], /metrics; POST /v1/reload; the kernel
 * rule set under /v1/rules (kernel/api.ts). */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { QosError } from '../errors.js';
import { decisionJson, type DecisionRecord } from './decide.js';

export interface AdminHandlers {
  status(): unknown;
  flows(): unknown;
  recentDecisions(limit: number): DecisionRecord[];
  subscribe(fn: (r: DecisionRecord) => void): () => void;
  metrics(): Promise<{ contentType: string; body: string }>;
  reload(): Promise<unknown>;
  rules(method: string, path: string, body: Record<string, unknown>): Promise<{ status: number; body: unknown }>;
}

/** Request bodies are JSON objects of at most this many bytes (a 65,535-rule import fits). */
const MAX_BODY = 64 * 2 ** 20;

function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) { reject(new QosError('QOS_ERR_USAGE', `request body over ${MAX_BODY} bytes`)); req.destroy(); return; }
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

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class AdminServer {
  private server: Server | null = null;
  constructor(private readonly path: string, private readonly h: AdminHandlers) {}

  async listen(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
    await unlink(this.path).catch(() => undefined);
    const server = createServer((req, res) => {
      this.route(req, res).catch((e: unknown) => {
        const err = e instanceof QosError ? e : new QosError('QOS_ERR_INTERNAL', String(e));
        if (!res.headersSent) json(res, 500, { error: err.toJSON() });
        else res.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => { server.off('error', reject); resolve(); });
    });
    await chmod(this.path, 0o600);
    this.server = server;
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
    const key = `${req.method} ${url.pathname}`;
    if (url.pathname === '/v1/rules' || url.pathname.startsWith('/v1/rules/')) {
      let body: Record<string, unknown>;
      try { body = req.method === 'GET' ? {} : await readBody(req); } catch (e) { return json(res, 400, { error: (e as QosError).toJSON() }); }
      const a = await this.h.rules(req.method ?? 'GET', url.pathname, body);
      return json(res, a.status, a.body);
    }
    switch (key) {
      case 'GET /v1/status': return json(res, 200, this.h.status());
      case 'GET /v1/flows': return json(res, 200, this.h.flows());
      case 'GET /metrics': {
        const m = await this.h.metrics();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
        return;
      }
      case 'POST /v1/reload': return json(res, 200, await this.h.reload());
      case 'GET /v1/decisions': {
        const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? 100) || 100, 1), 10000);
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        for (const r of this.h.recentDecisions(limit)) res.write(decisionJson(r) + '\n');
        if (url.searchParams.get('follow') !== '1') { res.end(); return; }
        const off = this.h.subscribe((r) => { res.write(decisionJson(r) + '\n'); });
        req.on('close', off);
        return;
      }
      default:
        return json(res, 404, { error: new QosError('QOS_ERR_NOT_FOUND', `no route ${key}`).toJSON() });
    }
  }
}
