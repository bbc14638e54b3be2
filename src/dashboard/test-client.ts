/* An HTTP client for the dashboard's tests: one request, its status, headers and body (no
 * connection reuse, no path normalising: the path is sent as written), and a reader of
 * server-sent events. */

import { request, type IncomingMessage } from 'node:http';

export interface Answer { status: number; headers: IncomingMessage['headers']; body: string }

export function ask(base: string, method: string, path: string, o: { headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(o.body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(o.body)) } : {}), ...o.headers };
    // an empty header is left out: a chunked body has no length
    for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
    const req = request({ host: u.hostname, port: u.port, method, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Logs in with the token: the cookie to send back and the CSRF token. */
export async function login(base: string, token: string): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const a = await ask(base, 'POST', '/api/login', { body: JSON.stringify({ token }) });
  if (a.status !== 200) throw new Error(`login answered ${a.status}: ${a.body}`);
  const setCookie = a.headers['set-cookie']![0]!;
  return { cookie: setCookie.split(';')[0]!, csrf: (JSON.parse(a.body) as { csrf: string }).csrf, setCookie };
}

export interface SseEvent { event: string; data: string }

/** A reader of GET /api/events: every event as it comes (comments included, as event ':'). */
export class SseClient {
  readonly events: SseEvent[] = [];
  /** everything read, as text (for a stream that is not server-sent events: NDJSON) */
  raw = '';
  res!: IncomingMessage;
  private buf = '';
  private waiters: (() => void)[] = [];
  private constructor() {}

  /** GET /api/events with the CSRF token in the query, as a browser's EventSource sends it;
   * another path with it in the header. */
  static open(base: string, s: { cookie: string; csrf: string }, path = '/api/events'): Promise<SseClient> {
    const c = new SseClient();
    const u = new URL(base);
    const events = path === '/api/events';
    return new Promise((resolve, reject) => {
      const req = request({ host: u.hostname, port: u.port, path: events ? `${path}?csrf=${encodeURIComponent(s.csrf)}` : path, headers: { cookie: s.cookie, ...(events ? {} : { 'x-csrf-token': s.csrf }) }, agent: false }, (res) => {
        c.res = res;
        if (res.statusCode !== 200) { reject(new Error(`${path} answered ${res.statusCode}`)); res.resume(); return; }
        res.setEncoding('utf8');
        res.on('data', (d: string) => c.push(d));
        resolve(c);
      });
      req.on('error', reject);
      req.end();
    });
  }

  private push(d: string): void {
    this.raw += d;
    this.buf += d;
    let end;
    while ((end = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) event = ':';
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (block.startsWith('retry:')) continue;
      this.events.push({ event, data: data.join('\n') });
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** The first event (from the start) that pred accepts; rejects after ms. */
  async until(pred: (e: SseEvent) => boolean, ms: number): Promise<SseEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const e = this.events.find(pred);
      if (e) return e;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such event within ${ms} ms; got ${this.events.map((x) => x.event).join(' ')}`);
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  close(): void {
    this.res.destroy();
  }
}
