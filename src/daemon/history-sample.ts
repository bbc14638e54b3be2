/* What GET /v1/metrics/history answers (metrics-history.ts), as types only: the daemon and
 * the dashboard's Metrics page (src/web/pages/metrics.ts) both read them from here. */

export interface DscpRate { packets_per_s: number; bytes_per_s: number }

export interface HistorySample {
  /** the end of the interval, ISO 8601 */
  t: string;
  decisions_per_s: number;
  /** null: no request was answered in the interval */
  latency_p50_us: number | null;
  latency_p99_us: number | null;
  script_calls_per_s: number;
  script_faults_per_s: number;
  /** by class name (ef, af41, cs0, or the number of an unnamed one); null: no kernel counters,
   * or they could not be read this time */
  dscp: Record<string, DscpRate> | null;
}

/** GET /v1/metrics/history */
export interface HistoryAnswer { interval_s: number; next_sample_in_s: number; samples: HistorySample[] }
