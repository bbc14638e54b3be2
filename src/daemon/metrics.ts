/* Prometheus metrics of the daemon (served at /metrics on the admin socket). The per-request
 * counters are plain numbers on the hot path, copied into prom-client only when scraped:
 * a labelled prom-client inc() hashes its labels every time. */

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Counts by a two-part label key without building a key string per increment. */
class Tally {
  private readonly counts = new Map<string, Map<string, number>>();
  add(a: string, b: string): void {
    let m = this.counts.get(a);
    if (!m) this.counts.set(a, (m = new Map()));
    m.set(b, (m.get(b) ?? 0) + 1);
  }
  *entries(): Generator<[string, string, number]> {
    for (const [a, m] of this.counts) for (const [b, n] of m) yield [a, b, n];
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly decisionTally = new Tally();
  private readonly cachedTally = new Tally();
  private readonly messageTally = new Tally();
  readonly latency = new Histogram({
    name: 'qosd_request_duration_seconds', help: 'Time from a request line arriving to its reply being written',
    buckets: [2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2], registers: [this.registry],
  });
  readonly agents = new Gauge({ name: 'qosd_agents_connected', help: 'Agent connections open now', registers: [this.registry] });
  readonly errors = new Counter({ name: 'qosd_errors_total', help: 'Errors, by code', labelNames: ['code'], registers: [this.registry] });
  readonly reloads = new Counter({ name: 'qosd_policy_reloads_total', help: 'Policy reloads, by result', labelNames: ['result'], registers: [this.registry] });
  readonly staleCached = new Counter({
    name: 'qosd_stale_cached_decisions_total', help: 'Calls an agent decided from a cache older than the running policy (a reload raced them)', registers: [this.registry],
  });
  readonly scriptCalls = new Counter({
    name: 'qosd_script_calls_total', help: 'Policy script handler calls, by handler and result (decided, fallthrough, error, timeout, killed, overloaded, suspended)',
    labelNames: ['handler', 'result'], registers: [this.registry],
  });
  readonly scriptDuration = new Histogram({
    name: 'qosd_script_call_duration_seconds', help: 'Time from a script call being queued to its answer',
    buckets: [1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.25, 1], registers: [this.registry],
  });
  readonly scriptRestarts = new Counter({ name: 'qosd_script_worker_restarts_total', help: 'Script workers replaced after hanging or dying', registers: [this.registry] });
  readonly flows = new Gauge({ name: 'qosd_flows', help: 'Entries in the flow table', registers: [this.registry] });

  constructor() {
    const decisions = this.decisionTally, cachedDecisions = this.cachedTally, messages = this.messageTally;
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
        for (const [type, , n] of messages.entries()) this.inc({ type }, n);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'qosd_' });
  }

  decision(rule: string, cls: string, cached: boolean): void {
    (cached ? this.cachedTally : this.decisionTally).add(rule, cls);
  }

  message(type: string): void {
    this.messageTally.add(type, '');
  }
}
