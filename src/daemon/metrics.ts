/* Prometheus metrics of the daemon (served at /metrics on the admin socket). The per-request
 * counters and histograms are plain numbers on the hot path, handed to prom-client only when
 * scraped: a prom-client inc() or observe() hashes its labels every time (~1 us a request
 * here, even with no labels). */

import { Counter, Gauge, Registry, collectDefaultMetrics, type MetricValueWithName } from 'prom-client';

/** Counts by a two-part label key without building a key string per increment: each count is
 * a cell bumped in place, found by a lookup of the first part and then, unless the second is
 * the one it had last time (a rule mostly decides one class), a lookup of the second. */
class Tally {
  private readonly counts = new Map<string, { last: string; cell: { n: number }; cells: Map<string, { n: number }> }>();
  add(a: string, b: string): void {
    const m = this.counts.get(a);
    if (!m) {
      const cell = { n: 1 };
      this.counts.set(a, { last: b, cell, cells: new Map([[b, cell]]) });
    } else if (m.last === b) m.cell.n++;
    else {
      let c = m.cells.get(b);
      if (!c) m.cells.set(b, (c = { n: 0 }));
      c.n++;
      m.last = b;
      m.cell = c;
    }
  }
  *entries(): Generator<[string, string, number]> {
    for (const [a, m] of this.counts) for (const [b, c] of m.cells) yield [a, b, c.n];
  }
}

/** Counts by one label, a cell per value found by one lookup and bumped in place. */
class Counts {
  private readonly counts = new Map<string, { n: number }>();
  add(a: string): void {
    const c = this.counts.get(a);
    if (c) c.n++;
    else this.counts.set(a, { n: 1 });
  }
  *entries(): Generator<[string, number]> {
    for (const [a, c] of this.counts) yield [a, c.n];
  }
}

/** A histogram without labels: observe() finds a bucket and adds one. Registered with
 * prom-client as a metric it renders like its own Histogram (cumulative le buckets, sum,
 * count). */
export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string, private readonly bounds: readonly number[], registry: Registry) {
    this.counts = new Float64Array(bounds.length + 1);
    registry.registerMetric(this as never);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: MetricValueWithName<string>[] } {
    const values: MetricValueWithName<string>[] = [];
    let acc = 0;
    this.bounds.forEach((le, i) => {
      acc += this.counts[i]!;
      values.push({ metricName: `${this.name}_bucket`, labels: { le }, value: acc });
    });
    values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf' }, value: this.count });
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.count });
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly decisionTally = new Tally();
  private readonly cachedTally = new Tally();
  private readonly messageCounts = new Counts();
  private readonly scriptTally = new Tally();
  readonly latency = new FastHistogram('qosd_request_duration_seconds', 'Time from a request line arriving to its reply being written',
    [2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2], this.registry);
  readonly agents = new Gauge({ name: 'qosd_agents_connected', help: 'Agent connections open now', registers: [this.registry] });
  readonly errors = new Counter({ name: 'qosd_errors_total', help: 'Errors, by code', labelNames: ['code'], registers: [this.registry] });
  readonly reloads = new Counter({ name: 'qosd_policy_reloads_total', help: 'Policy reloads, by result', labelNames: ['result'], registers: [this.registry] });
  readonly staleCached = new Counter({
    name: 'qosd_stale_cached_decisions_total', help: 'Calls an agent decided from a cache older than the running policy (a reload raced them)', registers: [this.registry],
  });
  readonly scriptDuration = new FastHistogram('qosd_script_call_duration_seconds', 'Time from a script call being queued to its answer',
    [1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.25, 1], this.registry);
  readonly scriptRestarts = new Counter({ name: 'qosd_script_worker_restarts_total', help: 'Script workers replaced after hanging or dying', registers: [this.registry] });
  readonly flows = new Gauge({ name: 'qosd_flows', help: 'Entries in the flow table', registers: [this.registry] });
  readonly refused = new Counter({
    name: 'qosd_agent_connections_refused_total', help: 'Agent connections closed at once, by the bound that refused them (total, reserved-for-root, per-user) or because the process that connected was gone',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly hangups = new Counter({
    name: 'qosd_agent_hangups_total', help: 'Agent connections the daemon closed, by reason (malformed lines, a line too long, replies left unread, the process gone)',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly unanswered = new Counter({
    name: 'qosd_agent_requests_unanswered_total', help: 'Requests not decided because their agent had closed its connection before they were reached (it had stopped waiting: a stopped or stalled daemon)', registers: [this.registry],
  });
  readonly rings = new Gauge({ name: 'qosd_agent_rings', help: 'Agent connections with a notification ring (docs/protocol.md), now', registers: [this.registry] });
  readonly ringShed = new Counter({
    name: 'qosd_agent_notifications_shed_total', help: 'Notifications agents dropped because their ring was full (the daemon was behind): the flows they were about are missing from the flow table', registers: [this.registry],
  });
  readonly followerDropped = new Counter({ name: 'qosd_follower_decisions_dropped_total', help: 'Decisions not sent to a `qos decisions --follow` reader that fell behind', registers: [this.registry] });
  readonly identityReads = new Gauge({ name: 'qosd_identity_reads', help: 'Process identities read from /proc since start (once per new process and per Startup)', registers: [this.registry] });
  readonly evicted = new Gauge({ name: 'qosd_flows_evicted', help: "Flow-table entries users lost to their own bound (their oldest), since start", registers: [this.registry] });

  constructor() {
    const decisions = this.decisionTally, cachedDecisions = this.cachedTally, messages = this.messageCounts, scripts = this.scriptTally;
    new Counter({
      name: 'qosd_decisions_total', help: 'Policy decisions, by rule and DSCP class; cached="true" for those an agent applied from its cache',
      labelNames: ['rule', 'class', 'cached'], registers: [this.registry],
      collect() {
        this.reset();
        for (const [rule, cls, n] of decisions.entries()) this.inc({ rule, class: cls, cached: 'false' }, n);
        for (const [rule, cls, n] of cachedDecisions.entries()) this.inc({ rule, class: cls, cached: 'true' }, n);
      },
    });
    new Counter({
      name: 'qosd_agent_messages_total', help: 'Agent messages received, by type', labelNames: ['type'], registers: [this.registry],
      collect() {
        this.reset();
        for (const [type, n] of messages.entries()) this.inc({ type }, n);
      },
    });
    new Counter({
      name: 'qosd_script_calls_total', help: 'Policy script handler calls, by handler and how each ended for the program (decided, fallthrough, error, timeout, killed, overloaded, suspended, late)',
      labelNames: ['handler', 'result'], registers: [this.registry],
      collect() {
        this.reset();
        for (const [handler, result, n] of scripts.entries()) this.inc({ handler, result }, n);
      },
    });
    // The event-loop lag is sampled every 100 ms, not prom-client's default 10 ms: that timer
    // woke an idle daemon 100 times a second (0.7 % of a core, by /proc/PID/stat over 10 s;
    // 0.1 % after). A lag is still measured whole, only sampled less often.
    collectDefaultMetrics({ register: this.registry, prefix: 'qosd_', eventLoopMonitoringPrecision: 100 });
  }

  decision(rule: string, cls: string, cached: boolean): void {
    (cached ? this.cachedTally : this.decisionTally).add(rule, cls);
  }

  scriptCall(handler: string, result: string): void {
    this.scriptTally.add(handler, result);
  }

  message(type: string): void {
    this.messageCounts.add(type);
  }
}
