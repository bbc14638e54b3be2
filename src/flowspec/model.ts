/* The FLOWSPEC of the Winsock 2 Generic QoS API (seed 002, "Specifying Traffic Requirements in
 * the QOS Structure"): a token bucket, delay bounds, a service type and packet sizes. Values are
 * in GQoS's units (bytes, bytes/s, microseconds); "not specified" is null (docs/flowspec.md). */

/** The eight FLOWSPEC fields, in the structure's order (seed 002). */
export const FIELDS = ['TokenRate', 'TokenBucketSize', 'PeakBandwidth', 'Latency', 'DelayVariation', 'ServiceType', 'MaxSduSize', 'MinimumPolicedSize'] as const;

/** The numeric fields: each a 32-bit unsigned value, or null for QOS_NOT_SPECIFIED. */
export type NumericField = Exclude<(typeof FIELDS)[number], 'ServiceType'>;
export const NUMERIC_FIELDS = FIELDS.filter((f): f is NumericField => f !== 'ServiceType');

/** What each numeric field measures, for errors, help and the human form. */
export const FIELD_UNITS: Record<NumericField, 'bytes/s' | 'bytes' | 'us'> = {
  TokenRate: 'bytes/s', TokenBucketSize: 'bytes', PeakBandwidth: 'bytes/s', Latency: 'us', DelayVariation: 'us', MaxSduSize: 'bytes', MinimumPolicedSize: 'bytes',
};

/** Windows' QOS_NOT_SPECIFIED (qos.h): the value a FLOWSPEC field holds when left to the default.
 * Accepted on input; qosd keeps and prints null instead. */
export const QOS_NOT_SPECIFIED = 0xffffffff;

/** The largest value a numeric field can hold: a ULONG below QOS_NOT_SPECIFIED. */
export const MAX_FIELD_VALUE = QOS_NOT_SPECIFIED - 1;

/** The service types (seed 002; seed 003 section 8.1.5: NetworkControl only through the traffic
 * control API), with Windows' SERVICETYPE_* values from qos.h. NotSpecified is
 * QOS_NOT_SPECIFIED in the ServiceType field. */
export const SERVICE_TYPES = {
  BestEffort: 1,
  ControlledLoad: 2,
  Guaranteed: 3,
  Qualitative: 13,
  NetworkControl: 10,
  NoTraffic: 0,
  NotSpecified: QOS_NOT_SPECIFIED,
} as const;
export type ServiceType = keyof typeof SERVICE_TYPES;

/** Each service type's constant in Windows' qos.h, for people who know GQoS code. */
export const WINDOWS_SERVICE_TYPES: Record<ServiceType, string> = {
  BestEffort: 'SERVICETYPE_BESTEFFORT', ControlledLoad: 'SERVICETYPE_CONTROLLEDLOAD', Guaranteed: 'SERVICETYPE_GUARANTEED', Qualitative: 'SERVICETYPE_QUALITATIVE',
  NetworkControl: 'SERVICETYPE_NETWORK_CONTROL', NoTraffic: 'SERVICETYPE_NOTRAFFIC', NotSpecified: 'QOS_NOT_SPECIFIED',
};
export const SERVICE_TYPE_NAMES = Object.keys(SERVICE_TYPES) as ServiceType[];

/** The service types that promise a quantity (a traffic volume, a delay): they need a token
 * bucket (seed 002: "carry a certain traffic volume"). */
export const QUANTITATIVE: ReadonlySet<ServiceType> = new Set(['ControlledLoad', 'Guaranteed']);

/** A validated FLOWSPEC: whole numbers in 0..MAX_FIELD_VALUE, or null (not specified). */
export type FlowSpec = Record<NumericField, number | null> & { ServiceType: ServiceType };

/** The FLOWSPEC with every field left to its default. */
export function unspecified(): FlowSpec {
  return { TokenRate: null, TokenBucketSize: null, PeakBandwidth: null, Latency: null, DelayVariation: null, ServiceType: 'NotSpecified', MaxSduSize: null, MinimumPolicedSize: null };
}

/** A service type as written: the seed's names in any case (ControlledLoad, controlledload),
 * SERVICETYPE_CONTROLLEDLOAD, or kebab/snake forms (controlled-load, controlled_load). */
export function serviceTypeNamed(text: string): ServiceType | undefined {
  const key = text.trim().toLowerCase().replace(/^servicetype_/, '').replace(/[-_ ]/g, '');
  return SERVICE_TYPE_NAMES.find((n) => n.toLowerCase() === key);
}
