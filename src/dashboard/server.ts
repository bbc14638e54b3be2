/* The dashboard's HTTP server, a daemon component (`qos daemon --http ADDR:PORT`, docs/dashboard.md).
 * It serves the browser app (dist/web/) and the admin API itself under /api/: /api/v1/... goes
 * to the same route table the admin socket uses (component.ts), the caller taken as root, so
 * the browser can do nothing the admin API does not allow and check; and /api/events, the live
 * flows and decisions as server-sent events (event-stream.ts).
 *
 * Who may use it: whoever holds the token the daemon writes at start to a root-only file
 * (token.ts). POST /api/login with it gives a session cookie (HttpOnly, SameSite=Strict) and a
 * CSRF token; every other path needs the cookie (401), every request but GET and HEAD also the
 * CSRF token in X-CSRF-Token (403), and a request another origin made is refused (403).
 *
 * Every /api/ request needs the CSRF token, reads too: a browser sends a cookie for 127.0.0.1 to
 * every port of it, so another local user's web server on another port, if the administrator's
 * browser ever visits it, gets the session cookie. The CSRF token is kept by the page in
 * storage of its own origin (port included), which no other port can read; the cookie alone
 * opens only the app's files, which hold nothing secret. */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream } from 'node:fs';
import { isIP, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Component, Components } from '../component.js';
import { fail, json, readBody, runRoute } from '../daemon/admin.js';
import { QosError } from '../errors.js';
import { PACKAGE_ROOT } from '../paths.js';
import { EventStreams, HEARTBEAT_MS, MAX_STREAMS, STREAM_BUFFER, type EventSources } from './event-stream.js';
import { LOGIN_HTML, LOGIN_JS, NOT_BUILT_HTML } from './login-page.js';
import { Sessions } from './sessions.js';
import { staticFile } from './static-files.js';
import { newToken, removeToken, sameToken, writeToken } from './token.js';

/** Request bodies are at most this many bytes (413 past it), unless their admin route allows
 * more (Route.maxBody: a capture file for POST /api/v1/characterize). */
export const MAX_BODY = 1 << 20;
/** HTTP connections at once. */
export const MAX_CONNECTIONS = 256;
export const COOKIE = 'qosd_session';
export const DEFAULT_WEB_ROOT = join(PACKAGE_ROOT, 'dist/web');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export interface DashboardOptions {
  host: string;
  port: number;
  tokenFile: string;
  routes: Pick<Components, 'route'>;
  sources: EventSources;
  log: Logger;
  clock: Clock;
  /** where the browser app is (default dist/web/ of this package) */
  webRoot?: string;
  streams?: { maxStreams?: number; bufferBytes?: number; heartbeatMs?: number };
  sessions?: { max?: number; idleMs?: number };
}

/** `ADDR:PORT` of --http (`127.0.0.1:8080`, `[::1]:8080`, `localhost:0`). */
export function parseListen(v: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(v) ?? /^([^:[\]]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535 || (m[0].startsWith('[') && isIP(m[1]!) !== 6)) throw new QosError('QOS_ERR_USAGE', `--http takes ADDR:PORT (127.0.0.1:8080, [::1]:8080), not "${v}"`);
  return { host: m[1]!, port };
}

/** Whether a host (an address or a name) is this machine's loopback. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export class DashboardServer implements Component {
  readonly name = 'dashboard';
  private server: Server | null = null;
  private token = '';
  private readonly sessions: Sessions;
  readonly streams: EventStreams;
  private readonly webRoot: string;
  private address: AddressInfo | null = null;
  private loginsRefused = 0;

  constructor(private readonly o: DashboardOptions) {
    this.sessions = new Sessions(o.clock, o.sessions?.max, o.sessions?.idleMs);
    this.streams = new EventStreams(o.sources, o.clock, { maxStreams: MAX_STREAMS, bufferBytes: STREAM_BUFFER, heartbeatMs: HEARTBEAT_MS, ...o.streams });
    this.webRoot = o.webRoot ?? DEFAULT_WEB_ROOT;
  }

  /** The URL the dashboard is at (without the token), once listening. */
  get url(): string | null {
    const a = this.address;
    if (!a) return null;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
  }

  async start(): Promise<void> {
    this.token = newToken();
    writeToken(this.o.tokenFile, this.token);
    const server = createServer((req, res) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) fail(res, e);
        else res.destroy();
      });
    });
    server.maxConnections = MAX_CONNECTIONS;
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.o.port, this.o.host, () => { server.off('error', reject); resolve(); });
      });
    } catch (e) {
      removeToken(this.o.tokenFile);
      const code = (e as NodeJS.ErrnoException).code;
      // qosd.service allows no inet socket unless a drop-in does (docs/dashboard.md, "Under systemd")
      const hint = code === 'EAFNOSUPPORT' || code === 'EPERM' || code === 'EACCES' ? ' (under qosd.service, add a drop-in with RestrictAddressFamilies=AF_INET AF_INET6 and IPAddressAllow=localhost: docs/dashboard.md)' : '';
      throw new QosError('QOS_ERR_ENVIRONMENT', `the dashboard cannot listen on ${this.o.host}:${this.o.port}: ${code ?? (e as Error).message}${hint}`);
    }
    this.server = server;
    this.address = server.address() as AddressInfo;
    // the token is in the file only: never in the log
    this.o.log.info({ url: this.url, token_file: this.o.tokenFile }, 'dashboard listening (qos dashboard prints the URL to log in with)');
    if (!isLoopback(this.address.address)) {
      this.o.log.warn({ url: this.url }, 'the dashboard listens beyond this machine, on plain http: anyone on the way can read the session cookie; bind it to 127.0.0.1 and reach it through an SSH tunnel');
    }
  }

  async stop(): Promise<void> {
    this.streams.close();
    const s = this.server;
    this.server = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    removeToken(this.o.tokenFile);
  }

  status(): Record<string, unknown> {
    return { dashboard: { url: this.url, token_file: this.o.tokenFile, sessions: this.sessions.size, logins_refused: this.loginsRefused, streams: this.streams.streams, events_dropped: this.streams.droppedTotal } };
  }

  /** Why a request must be refused as another origin's, or null. */
  private crossOrigin(req: IncomingMessage): string | null {
    const host = req.headers.host;
    if (!host) return 'the request names no Host';
    // a loopback dashboard is reached by a loopback name only: another name is a page whose
    // name was made to point here (DNS rebinding)
    if (isLoopback(this.address!.address) && !isLoopback(host.replace(/:\d+$/, ''))) return `Host ${host} is not this machine's loopback`;
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') return `the browser says the request came from another site (Sec-Fetch-Site: ${site})`;
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) return `Origin ${origin} is not this dashboard's (http://${host})`;
    return null;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const path = url.pathname;
    const why = this.crossOrigin(req);
    if (why) throw new QosError('QOS_ERR_FORBIDDEN', why);
    const length = Number(req.headers['content-length'] ?? 0);
    const max = this.maxBodyOf(method, path);
    if (length > max) {
      res.setHeader('connection', 'close');
      throw new QosError('QOS_ERR_TOO_LARGE', `request body of ${length} bytes: the dashboard takes at most ${max} there`);
    }
    if (path === '/api/login' && method === 'POST') return this.login(req, res);
    if (path === '/login.js' && (method === 'GET' || method === 'HEAD')) return this.text(res, 200, 'text/javascript; charset=utf-8', LOGIN_JS, method);
    const session = this.sessions.use(cookieOf(req, COOKIE));
    if (!session) {
      if ((method === 'GET' || method === 'HEAD') && (path === '/' || path === '/index.html')) return this.text(res, 401, 'text/html; charset=utf-8', LOGIN_HTML, method);
      throw new QosError('QOS_ERR_UNAUTHENTICATED', 'no dashboard session: log in at / with the token `qos dashboard` prints');
    }
    const api = path.startsWith('/api/');
    if ((api || (method !== 'GET' && method !== 'HEAD')) && !sameToken(this.csrfOf(req, url, path), session.csrf)) {
      throw new QosError('QOS_ERR_FORBIDDEN', api ? 'an API request needs the X-CSRF-Token header the login answered' : 'a request that changes something needs the X-CSRF-Token header the login answered');
    }
    if (path === '/api/logout' && method === 'POST') {
      this.sessions.drop(session.id);
      res.setHeader('set-cookie', `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
      return json(res, 200, { ok: true });
    }
    if (path === '/api/events' && method === 'GET') {
      if (!this.streams.claim(res)) throw new QosError('QOS_ERR_ENVIRONMENT', `the dashboard has ${MAX_STREAMS} streams open already; close one`);
      return this.streams.serve(res);
    }
    if (path.startsWith('/api/')) return this.admin(req, res, method, path.slice('/api'.length), url);
    if (method !== 'GET' && method !== 'HEAD') throw new QosError('QOS_ERR_NOT_FOUND', `no route ${method} ${path}`);
    return this.file(res, path, method);
  }

  /** The bound on a request's body: MAX_BODY, or its admin route's own (Route.maxBody). */
  private maxBodyOf(method: string, path: string): number {
    if (!path.startsWith('/api/') || path === '/api/login' || path === '/api/logout' || path === '/api/events') return MAX_BODY;
    try {
      return this.o.routes.route(method, path.slice('/api'.length)).maxBody ?? MAX_BODY;
    } catch {
      return MAX_BODY; // no such route: answered 404 later, after the session check
    }
  }

  /** The CSRF token the request brings: its X-CSRF-Token header; for GET /api/events also the
   * query's csrf (a browser's EventSource cannot send headers). */
  private csrfOf(req: IncomingMessage, url: URL, path: string): string {
    const h = req.headers['x-csrf-token'];
    if (typeof h === 'string') return h;
    return path === '/api/events' ? url.searchParams.get('csrf') ?? '' : '';
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, MAX_BODY);
    if (typeof body.token !== 'string' || !sameToken(body.token, this.token)) {
      // counted, not logged: whoever can reach the port could otherwise fill the log
      this.loginsRefused++;
      throw new QosError('QOS_ERR_UNAUTHENTICATED', 'that is not the dashboard\'s login token (it changes at every start of the daemon; qos dashboard prints the current one)');
    }
    const s = this.sessions.create();
    // no Secure: the dashboard speaks plain http (a Secure cookie would never be sent back)
    res.setHeader('set-cookie', `${COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/`);
    json(res, 200, { csrf: s.csrf });
  }

  /** /api/<admin path>: the admin API's own route, as root. */
  private async admin(req: IncomingMessage, res: ServerResponse, method: string, path: string, url: URL): Promise<void> {
    const route = this.o.routes.route(method, path);
    await runRoute(req, res, route, {
      method, path, url: new URL(path + url.search, 'http://qosd'), uid: 0, max: route.maxBody ?? MAX_BODY,
      stream: () => { if (!this.streams.claim(res)) throw new QosError('QOS_ERR_ENVIRONMENT', `the dashboard has ${MAX_STREAMS} streams open already; close one`); },
    });
  }

  /** `/`, `/index.html` and `/assets/...` from the web root. */
  private file(res: ServerResponse, path: string, method: string): void {
    const isPage = path === '/' || path === '/index.html';
    if (!isPage && !path.startsWith('/assets/')) throw new QosError('QOS_ERR_NOT_FOUND', `no page ${path}`);
    const f = staticFile(this.webRoot, path);
    if (!f) {
      if (isPage) return this.text(res, 200, 'text/html; charset=utf-8', NOT_BUILT_HTML, method);
      throw new QosError('QOS_ERR_NOT_FOUND', `no file ${path}`);
    }
    res.writeHead(200, { 'content-type': f.type, 'content-length': f.size, 'cache-control': isPage ? 'no-store' : 'private, max-age=300' });
    if (method === 'HEAD') { res.end(); return; }
    createReadStream(f.path).on('error', () => res.destroy()).pipe(res);
  }

  private text(res: ServerResponse, status: number, type: string, text: string, method: string): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(method === 'HEAD' ? undefined : text);
  }
}
