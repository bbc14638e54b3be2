/* Prometheus metrics of the daemon (served at /metrics on the admin socket). */

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly decisions = new Counter({ name: 'qosd_decisions_total', help: 'Policy decisions, by rule and DSCP class', labelNames: ['rule', 'class'], registers: [this.registry] });
  readonly messages = new Counter({ name: 'qosd_agent_messages_total', help: 'Agent messages received, by type', labelNames: ['type'], registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'qosd_request_duration_seconds', help: 'Time from a request line arriving to its reply being written',
    buckets: [2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2], registers: [this.registry],
  });
  readonly agents = new Gauge({ name: 'qosd_agents_connected', help: 'Agent connections open now', registers: [this.registry] });
  readonly errors = new Counter({ name: 'qosd_errors_total', help: 'Errors, by code', labelNames: ['code'], registers: [this.registry] });
  readonly reloads = new Counter({ name: 'qosd_policy_reloads_total', help: 'Policy reloads, by result', labelNames: ['result'], registers: [this.registry] });
  readonly flows = new Gauge({ name: 'qosd_flows', help: 'Entries in the flow table', registers: [this.registry] });
  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'qosd_' });
  }
}
