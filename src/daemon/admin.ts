/* The admin interface: JSON over HTTP on a Unix socket (root-only by file mode).
 * GET /v1/status, /v1/flows, /v1/decisions[?follow=1], /metrics; POST /v1/reload. */

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
