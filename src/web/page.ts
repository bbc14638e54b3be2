/* What a page of the dashboard's browser app is (src/web/README.md): an id (its hash route
 * `#/<id>`), a title for the navigation, and mount(), which builds it into the page's root and
 * returns what to stop when the user leaves it. */

/** GET /v1/status at the app's start: the fields the app reads (the rest is there too). */
export interface Status {
  version?: string;
  pid?: number;
  uptime_s?: number;
  policy?: { source: string; origin: string; rules: number; generation: number };
  kernel?: { state?: string; [k: string]: unknown };
  tc?: Record<string, unknown>;
  rsvp?: Record<string, unknown>;
  dashboard?: { url: string };
  [k: string]: unknown;
}

export interface PageContext {
  status: Status;
  /** the query of the hash route: #/flows?program=/usr/bin/curl */
  params: URLSearchParams;
  /** goes to another route: navigate('#/flows?program=...') */
  navigate(hash: string): void;
}

export interface Page {
  id: string;
  title: string;
  /** false: reachable by its route but not listed in the navigation */
  nav?: boolean;
  /** shown in the navigation only when true for the daemon's status */
  available?(status: Status): boolean;
  /** builds the page into root; returns what to stop (timers, subscriptions) when it is left */
  mount(root: HTMLElement, ctx: PageContext): (() => void) | void;
}
