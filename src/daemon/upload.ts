/* A request body taken as bytes, not JSON (a capture file for POST /v1/characterize): streamed
 * to a private temporary file, never held in memory, bounded by its route's `maxBody`, and
 * removed once the route has answered. The admin socket and the dashboard both receive upload
 * routes through it (component.ts, Route.upload). */

import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QosError } from '../errors.js';

/** One request's body as a file: `save()` reads it (once), `remove()` deletes the file and its
 * directory. The directory is made by mkdtemp (mode 0700, an unguessable name) and the file
 * created exclusively with mode 0600: no other user can read, replace or link it. */
export class Upload {
  private dir: string | null = null;
  private saving: Promise<string> | null = null;

  constructor(private readonly req: IncomingMessage, private readonly max: number) {}

  /** The path of the file holding the whole body; QOS_ERR_TOO_LARGE past `max` bytes (by its
   * Content-Length, or as it is read). */
  save(): Promise<string> {
    this.saving ??= this.write();
    return this.saving;
  }

  private async write(): Promise<string> {
    const length = Number(this.req.headers['content-length'] ?? 0);
    if (length > this.max) throw tooLarge(this.max);
    this.dir = await mkdtemp(join(tmpdir(), 'qosd-upload-'));
    const path = join(this.dir, 'body');
    const fh = await open(path, 'wx', 0o600);
    const out = createWriteStream('', { fd: fh });
    const req = this.req, max = this.max;
    await new Promise<void>((resolve, reject) => {
      let size = 0, settled = false;
      const settle = (e?: Error) => {
        if (settled) return;
        settled = true;
        if (!e) return resolve();
        // the rest of the body is left unread (not destroyed: the answer still goes back)
        req.unpipe(out);
        req.pause();
        out.destroy();
        reject(e);
      };
      req.on('data', (c: Buffer) => { size += c.length; if (size > max) settle(tooLarge(max)); });
      req.on('error', (e) => settle(new QosError('QOS_ERR_USAGE', `the request body could not be read: ${e.message}`)));
      req.on('close', () => { if (!req.complete) settle(new QosError('QOS_ERR_USAGE', 'the request body ended before its end (the client went away)')); });
      out.on('error', (e) => settle(new QosError('QOS_ERR_ENVIRONMENT', `cannot keep the request body in ${path}: ${e.message}`)));
      out.on('finish', () => settle());
      req.pipe(out);
    });
    return path;
  }

  /** Deletes the file (after the route answered, or failed). */
  async remove(): Promise<void> {
    await this.saving?.catch(() => undefined);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}

function tooLarge(max: number): QosError {
  return new QosError('QOS_ERR_TOO_LARGE', `request body over ${max} bytes`);
}

/** Runs a route that may take its body as a file: `fn` gets `upload()`, the file is removed
 * when it settles, and a body the route did not read whole (refused before it, or past its
 * bound) closes the connection, which could not carry another request. */
export async function withUpload<T>(req: IncomingMessage, res: ServerResponse, max: number | null, fn: (upload: (() => Promise<string>) | undefined) => Promise<T>): Promise<T> {
  if (max === null) return fn(undefined);
  const up = new Upload(req, max);
  try {
    return await fn(() => up.save());
  } finally {
    await up.remove();
    if (!req.complete && !res.headersSent) res.setHeader('connection', 'close');
  }
}
