/* A FLOWSPEC from what a user wrote (a YAML/JSON object, or the CLI's options): field names in
 * the seed's spelling or snake/kebab case, values as numbers in the field's unit or strings with
 * units; then the seed's rules. Every problem is reported at once, each naming its field. */

import { QosError, type Problem } from '../errors.js';
import { parseDurationUs, parseRate, parseSize } from '../units.js';
import {
  FIELD_UNITS, MAX_FIELD_VALUE, NUMERIC_FIELDS, QOS_NOT_SPECIFIED, QUANTITATIVE, SERVICE_TYPE_NAMES, SERVICE_TYPES,
  serviceTypeNamed, unspecified, type FlowSpec, type NumericField, type ServiceType,
} from './model.js';

type Field = NumericField | 'ServiceType';

/** Names accepted for each field, compared without case, '-', '_' or spaces: the seed's name and
 * the CLI's short one (`qos flowspec check --bucket`). */
const ALIASES: Record<string, Field> = {
  tokenrate: 'TokenRate', rate: 'TokenRate',
  tokenbucketsize: 'TokenBucketSize', bucket: 'TokenBucketSize', bucketsize: 'TokenBucketSize',
  peakbandwidth: 'PeakBandwidth', peak: 'PeakBandwidth',
  latency: 'Latency',
  delayvariation: 'DelayVariation', jitter: 'DelayVariation',
  servicetype: 'ServiceType', service: 'ServiceType',
  maxsdusize: 'MaxSduSize', maxsdu: 'MaxSduSize',
  minimumpolicedsize: 'MinimumPolicedSize', minpoliced: 'MinimumPolicedSize', minpolicedsize: 'MinimumPolicedSize',
};

/** Text that means "not specified" (QOS_NOT_SPECIFIED), e.g. to clear a template's value. */
const NOT_SPECIFIED_TEXT = /^\s*(not[-_ ]?specified|qos_not_specified|0xffffffff)\s*$/i;

/** Options of parseFlowSpec. */
export interface ParseOptions {
  /** values the input does not give (a template's); default: every field not specified */
  base?: FlowSpec;
  /** prefix of each problem's path, e.g. "rules[2].action.flowspec" */
  path?: string;
}

/** The validated FLOWSPEC an object describes, over `base`; throws QOS_ERR_USAGE listing every
 * problem, each with the field's name and the rule it breaks. */
export function parseFlowSpec(input: unknown, o: ParseOptions = {}): FlowSpec {
  const problems: Problem[] = [];
  const at = (field: string) => (o.path ? `${o.path}.${field}` : field);
  const spec: FlowSpec = { ...(o.base ?? unspecified()) };
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new QosError('QOS_ERR_USAGE', 'a FLOWSPEC is an object of fields (TokenRate, TokenBucketSize, ...)', [{ path: o.path, message: 'not an object' }]);
  }
  for (const [key, value] of Object.entries(input)) {
    const field = ALIASES[key.toLowerCase().replace(/[-_ ]/g, '')];
    if (!field) {
      problems.push({ path: at(key), message: `unknown field; a FLOWSPEC has ${NUMERIC_FIELDS.join(', ')} and ServiceType` });
      continue;
    }
    try {
      if (field === 'ServiceType') spec.ServiceType = serviceTypeOf(value);
      else spec[field] = fieldValue(field, value);
    } catch (e) {
      if (!(e instanceof QosError)) throw e;
      problems.push({ path: at(field), message: e.message });
    }
  }
  if (!problems.length) problems.push(...checkFlowSpec(spec).map((p) => ({ ...p, path: at(p.path!) })));
  if (problems.length) throw flowSpecError(problems);
  return spec;
}

/** One QosError for the problems: its message names each field and rule, so that a caller that
 * prints only the message (the CLI, a daemon log line) says everything. */
export function flowSpecError(problems: Problem[]): QosError {
  return new QosError('QOS_ERR_USAGE', `invalid FLOWSPEC: ${problems.map((p) => (p.path ? `${p.path}: ` : '') + p.message).join('; ')}`, problems);
}

/** A numeric field's value: a number in the field's unit, or text with a unit; QOS_NOT_SPECIFIED,
 * null and "not-specified" mean not specified. Rounded up to a whole unit (a reservation is never
 * smaller than what was written), then held to 0..MAX_FIELD_VALUE. */
export function fieldValue(field: NumericField, value: unknown): number | null {
  const unit = FIELD_UNITS[field];
  if (value === null || value === undefined || value === QOS_NOT_SPECIFIED) return null;
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string') {
    if (NOT_SPECIFIED_TEXT.test(value)) return null;
    n = unit === 'bytes/s' ? parseRate(value) : unit === 'bytes' ? parseSize(value) : parseDurationUs(value, 'us');
  } else throw new QosError('QOS_ERR_USAGE', `${JSON.stringify(value)} is not a number of ${unit} nor text with a unit`);
  if (!Number.isFinite(n) || n < 0) throw new QosError('QOS_ERR_USAGE', `${String(value)} is not a number of ${unit}, 0 or more`);
  // the units multiply by powers of ten, which are not exact in binary: 16.12kbit is 2015.0000000000002
  const whole = Math.ceil(Math.round(n * 1e6) / 1e6);
  if (whole > MAX_FIELD_VALUE) throw new QosError('QOS_ERR_USAGE', `${String(value)} is ${whole} ${unit}, more than a FLOWSPEC field holds (${MAX_FIELD_VALUE}; ${QOS_NOT_SPECIFIED} is QOS_NOT_SPECIFIED)`);
  return whole;
}

/** A ServiceType as written (a name in any of its spellings, or Windows' SERVICETYPE_* number). */
export function serviceTypeOf(value: unknown): ServiceType {
  const byName = typeof value === 'string' ? serviceTypeNamed(value) : undefined;
  const byCode = typeof value === 'number' ? SERVICE_TYPE_NAMES.find((n) => SERVICE_TYPES[n] === value) : undefined;
  const t = byName ?? byCode;
  if (!t) throw new QosError('QOS_ERR_USAGE', `${JSON.stringify(value)} is not a service type: ${SERVICE_TYPE_NAMES.join(', ')} (any case; also controlled-load, SERVICETYPE_GUARANTEED)`);
  return t;
}

/** The rules a FLOWSPEC's fields must keep together (seed 002 and Windows' FLOWSPEC reference;
 * docs/flowspec.md, "Rules"). Each problem's path is the field to change. */
export function checkFlowSpec(s: FlowSpec): Problem[] {
  const problems: Problem[] = [];
  const bad = (path: NumericField, message: string) => problems.push({ path, message });
  for (const f of ['TokenRate', 'TokenBucketSize', 'PeakBandwidth', 'MaxSduSize', 'MinimumPolicedSize'] as const) {
    // a zero rate or bucket lets nothing through; a zero MinimumPolicedSize divides the overhead formula by zero
    if (s[f] === 0) bad(f, `must be above 0 ${FIELD_UNITS[f]} (leave it not specified instead)`);
  }
  if (s.PeakBandwidth !== null && s.TokenRate !== null && s.PeakBandwidth < s.TokenRate) {
    bad('PeakBandwidth', `${s.PeakBandwidth} bytes/s is below TokenRate (${s.TokenRate} bytes/s): PeakBandwidth must be at least TokenRate (seed 002)`);
  }
  if (s.TokenBucketSize !== null && s.MaxSduSize !== null && s.TokenBucketSize < s.MaxSduSize) {
    bad('TokenBucketSize', `${s.TokenBucketSize} bytes is below MaxSduSize (${s.MaxSduSize} bytes): a packet larger than the bucket can never conform`);
  }
  if (s.MinimumPolicedSize !== null && s.MaxSduSize !== null && s.MinimumPolicedSize > s.MaxSduSize) {
    bad('MinimumPolicedSize', `${s.MinimumPolicedSize} bytes is above MaxSduSize (${s.MaxSduSize} bytes): no packet is larger than MaxSduSize`);
  }
  if (QUANTITATIVE.has(s.ServiceType)) {
    // seed 002: these services "carry a certain traffic volume", which a token bucket states
    if (s.TokenRate === null) bad('TokenRate', `${s.ServiceType} needs a TokenRate (the traffic volume it carries, bytes/s)`);
    if (s.TokenBucketSize === null) bad('TokenBucketSize', `${s.ServiceType} needs a TokenBucketSize (the burst it carries, bytes)`);
  }
  if (s.ServiceType === 'NoTraffic') {
    // seed 002: NoTraffic is the direction in which nothing is sent
    for (const f of ['TokenRate', 'TokenBucketSize', 'PeakBandwidth'] as const) {
      if (s[f] !== null) bad(f, `NoTraffic means no data in this direction: leave ${f} not specified`);
    }
  }
  return problems;
}
