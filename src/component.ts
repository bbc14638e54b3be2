/* The daemon's parts as components (ARCHITECTURE.md, "Components"): each has a name, may
 * start and stop, says what it is in `qos status`, feeds /metrics, and owns admin routes.
 * A Components table starts them in the order they were added, stops them in reverse, stops
 * the ones it started if one fails to start, and answers a route by asking the component
 * that owns it. Later parts (tc, RSVP, the dashboard, fleet) register the same way. */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { QosError } from './errors.js';

/** An admin request as a route sees it. */
export interface RouteRequest {
  method: string;
  /** the path of the URL, e.g. /v1/rules/3 */
  path: string;
  url: URL;
  /** the JSON object of the body (empty for GET and for routes that take no body) */
  body: Record<string, unknown>;
  /** the caller's uid, from the kernel (SO_PEERCRED) */
  uid: number;
  /** for a route with `upload`: saves the body to a private temporary file and gives its path
   * (removed once the route has answered); QOS_ERR_TOO_LARGE past the route's `maxBody` */
  upload?: () => Promise<string>;
}

/** What a route answers: JSON (status 200 unless given), text of a content type, or the
 * response taken over (a stream the route writes and ends itself). */
export type RouteAnswer =
  | { status?: number; json: unknown }
  | { status?: number; contentType: string; text: string }
  | { stream: (req: IncomingMessage, res: ServerResponse) => void };

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | '*';
  /** the path, or with `prefix` every path at or under it (path + '/...') */
  path: string;
  prefix?: boolean;
  /** the route reads a JSON object from the body (POST, PUT, DELETE) */
  body?: boolean;
  /** the route takes its body as bytes, not JSON (a capture file): it reads them, when it
   * decides to, through `upload()` of its request (daemon/upload.ts) */
  upload?: boolean;
  /** the most bytes this route's body may have (default: the server's bound); past it the
   * answer is 413 QOS_ERR_TOO_LARGE, whichever server (admin socket, dashboard) received it */
  maxBody?: number;
  handle(r: RouteRequest): RouteAnswer | Promise<RouteAnswer>;
}

export interface Component {
  readonly name: string;
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /** called once every component has started */
  running?(): void;
  /** fields of `qos status` (GET /v1/status): merged into its top level */
  status?(): Record<string, unknown>;
  /** brings gauges up to date before /metrics is read */
  collect?(): void;
  readonly routes?: readonly Route[];
}

export class Components {
  private readonly all: Component[] = [];
  private readonly started: Component[] = [];

  /** Adds a component; its routes must not be another's. */
  add<C extends Component>(c: C): C {
    if (this.all.some((x) => x.name === c.name)) throw new QosError('QOS_ERR_INTERNAL', `two components named ${c.name}`);
    for (const r of c.routes ?? []) {
      const other = this.all.find((x) => x.routes?.some((o) => o.path === r.path && (o.method === r.method || o.method === '*' || r.method === '*')));
      if (other) throw new QosError('QOS_ERR_INTERNAL', `${c.name} and ${other.name} both route ${r.method} ${r.path}`);
    }
    this.all.push(c);
    return c;
  }

  /** Starts every component not started yet, in order; if one fails, those it started are
   * stopped again (in reverse) and the error is thrown. */
  async start(): Promise<void> {
    for (const c of this.all) {
      if (this.started.includes(c)) continue;
      try {
        await c.start?.();
      } catch (e) {
        await this.stop().catch(() => undefined);
        throw e;
      }
      this.started.push(c);
    }
    for (const c of this.all) c.running?.();
  }

  /** Stops the started components, the last started first; every one is stopped even if one
   * fails (the first failure is thrown after). */
  async stop(): Promise<void> {
    let first: unknown;
    while (this.started.length) {
      const c = this.started.pop()!;
      try { await c.stop?.(); } catch (e) { first ??= e; }
    }
    if (first !== undefined) throw first;
  }

  status(): Record<string, unknown> {
    return Object.assign({}, ...this.all.map((c) => c.status?.() ?? {})) as Record<string, unknown>;
  }

  collect(): void {
    for (const c of this.all) c.collect?.();
  }

  /** The route for a request, or a QOS_ERR_NOT_FOUND. */
  route(method: string, path: string): Route {
    for (const c of this.all) {
      for (const r of c.routes ?? []) {
        const at = r.prefix ? path === r.path || path.startsWith(`${r.path}/`) : path === r.path;
        if (at && (r.method === '*' || r.method === method)) return r;
      }
    }
    throw new QosError('QOS_ERR_NOT_FOUND', `no route ${method} ${path}`);
  }

  get names(): string[] {
    return this.all.map((c) => c.name);
  }
}
