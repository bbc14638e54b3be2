/* FLOWSPEC templates by codec name, as WSAGetQOSByName offered them (seed 002, "The Right QOS
 * Structure for Your App"). Every value is derived here from the codec's parameters and RTP
 * framing, with the derivation kept beside it for `qos flowspec show` and docs/flowspec.md. */

import { QosError } from '../errors.js';
import { unspecified, type FlowSpec, type NumericField } from './model.js';

/** RTP's fixed header (RFC 3550 section 5.1): part of the data the application sends. */
export const RTP_HEADER = 12;
/** UDP (8) and IPv4 (20) headers: the layer-3 overhead the actual token rate adds (seed 002). */
export const UDP_IPV4_HEADERS = 28;
/** Ethernet's MTU: a video packet's data is cut to fit one frame. */
export const ETHERNET_MTU = 1500;

/** A voice codec: constant bit rate, frames of fixed duration, several frames per RTP packet. */
export interface AudioCodec {
  kind: 'audio';
  name: string;
  about: string;
  /** nominal bit rate, bits/s */
  bitRate: number;
  /** one coded frame, microseconds */
  frameUs: number;
  framesPerPacket: number;
}

/** A video codec at a picture size: a target bit rate spread over the pictures, each picture cut
 * into RTP packets of at most one Ethernet frame. */
export interface VideoCodec {
  kind: 'video';
  name: string;
  about: string;
  /** target bit rate, bits/s */
  bitRate: number;
  /** pictures per second */
  pictureRate: number;
  /** the codec's RTP payload header, bytes */
  payloadHeader: number;
}

export type Codec = AudioCodec | VideoCodec;

/** The codecs WSAGetQOSByName named (seed 002, Figure 4), with the parameters each template is
 * derived from (docs/flowspec.md gives the source of each). */
export const CODECS: readonly Codec[] = [
  { kind: 'audio', name: 'G711', about: 'G.711 PCM, 8000 samples/s of 8 bits; 20 ms per packet (RFC 3551 default packetization)', bitRate: 64_000, frameUs: 10_000, framesPerPacket: 2 },
  { kind: 'audio', name: 'G723.1', about: 'G.723.1 at 6.3 kbit/s: 30 ms frames of 24 bytes, one per packet', bitRate: 6_300, frameUs: 30_000, framesPerPacket: 1 },
  { kind: 'audio', name: 'G729', about: 'G.729 CS-ACELP: 10 ms frames of 10 bytes, two per packet', bitRate: 8_000, frameUs: 10_000, framesPerPacket: 2 },
  { kind: 'audio', name: 'GSM6.10', about: 'GSM 06.10 full rate: 20 ms frames of 33 bytes (RFC 3551), one per packet', bitRate: 13_000, frameUs: 20_000, framesPerPacket: 1 },
  { kind: 'video', name: 'H261QCIF', about: 'H.261 at QCIF (176x144), 15 pictures/s, 128 kbit/s (p = 2 of p x 64 kbit/s); RFC 2032 payload header', bitRate: 128_000, pictureRate: 15, payloadHeader: 4 },
  { kind: 'video', name: 'H261CIF', about: 'H.261 at CIF (352x288), 30 pictures/s, 384 kbit/s (p = 6); RFC 2032 payload header', bitRate: 384_000, pictureRate: 30, payloadHeader: 4 },
  { kind: 'video', name: 'H263QCIF', about: 'H.263 at QCIF (176x144), 15 pictures/s, 64 kbit/s; RFC 2190 mode A payload header', bitRate: 64_000, pictureRate: 15, payloadHeader: 4 },
  { kind: 'video', name: 'H263CIF', about: 'H.263 at CIF (352x288), 30 pictures/s, 256 kbit/s; RFC 2190 mode A payload header', bitRate: 256_000, pictureRate: 30, payloadHeader: 4 },
];

/** One step of a template's derivation: a quantity, how it is computed, its value. */
export interface Step {
  name: string;
  formula: string;
  value: number | null;
}

export interface Template {
  name: string;
  codec: Codec;
  spec: FlowSpec;
  /** intermediate quantities, then each FLOWSPEC field, in the order computed */
  derivation: Step[];
}

/** A template's FLOWSPEC from its codec, with the derivation of every value. */
export function deriveTemplate(c: Codec): Template {
  const steps: Step[] = [];
  const step = (name: string, formula: string, value: number | null) => { steps.push({ name, formula, value }); return value; };
  const spec = unspecified();
  const field = (f: NumericField, formula: string, value: number | null) => { spec[f] = step(f, formula, value); };
  if (c.kind === 'audio') {
    const frame = step('frame', `ceil(${c.bitRate} bit/s x ${c.frameUs / 1e6} s / 8) bytes`, Math.ceil((c.bitRate * c.frameUs) / 8e6))!;
    const packetUs = step('packet interval', `${c.framesPerPacket} x ${c.frameUs} us`, c.framesPerPacket * c.frameUs)!;
    const sdu = step('packet', `${c.framesPerPacket} x ${frame} + RTP ${RTP_HEADER} bytes`, c.framesPerPacket * frame + RTP_HEADER)!;
    // seed 003 section 8.1.4: Guaranteed "for low and bounded latency applications, such as interactive voice"
    spec.ServiceType = 'Guaranteed';
    field('TokenRate', `ceil(${sdu} bytes / ${packetUs / 1e6} s)`, Math.ceil((sdu * 1e6) / packetUs));
    // seed 002: "In constant-rate applications, the TokenRate is equal to the PeakBandwidth"
    field('PeakBandwidth', 'TokenRate (constant rate)', spec.TokenRate);
    field('TokenBucketSize', `2 packets: one sent late, the next on time (2 x ${sdu})`, 2 * sdu);
    field('MaxSduSize', 'one packet (every packet the same size)', sdu);
    field('MinimumPolicedSize', 'one packet (seed 002: the average packet size)', sdu);
  } else {
    const room = step('data per packet', `MTU ${ETHERNET_MTU} - IPv4/UDP ${UDP_IPV4_HEADERS} - RTP ${RTP_HEADER} - payload header ${c.payloadHeader}`, ETHERNET_MTU - UDP_IPV4_HEADERS - RTP_HEADER - c.payloadHeader)!;
    const picture = step('picture', `ceil(${c.bitRate} bit/s / 8 / ${c.pictureRate} per s) bytes`, Math.ceil(c.bitRate / 8 / c.pictureRate))!;
    const packets = step('packets per picture', `ceil(${picture} / ${room})`, Math.ceil(picture / room))!;
    const sent = step('picture sent', `${picture} + ${packets} x (RTP ${RTP_HEADER} + ${c.payloadHeader})`, picture + packets * (RTP_HEADER + c.payloadHeader))!;
    // seed 003 section 8.1.4: Controlled Load for "somewhat jitter tolerant" traffic, "for example, streaming video"
    spec.ServiceType = 'ControlledLoad';
    field('TokenRate', `${sent} bytes x ${c.pictureRate} per s`, sent * c.pictureRate);
    // a picture leaves in one burst: no peak below the link's (seed 002: PeakBandwidth's default is infinity)
    field('PeakBandwidth', 'not specified (a picture is sent as one burst)', null);
    field('MaxSduSize', `MTU ${ETHERNET_MTU} - IPv4/UDP ${UDP_IPV4_HEADERS}`, ETHERNET_MTU - UDP_IPV4_HEADERS);
    // Windows: "In video applications, TokenBucketSize will likely be the largest average frame size"
    field('TokenBucketSize', `max(picture sent ${sent}, MaxSduSize ${spec.MaxSduSize})`, Math.max(sent, spec.MaxSduSize!));
    field('MinimumPolicedSize', `floor(${sent} / ${packets}) (seed 002: the average packet size)`, Math.floor(sent / packets));
  }
  field('Latency', 'not specified (the network derives the delay from the token bucket)', null);
  field('DelayVariation', 'not specified', null);
  return { name: c.name, codec: c, spec, derivation: steps };
}

/** Every template, in the order WSAGetQOSByName listed them. */
export const TEMPLATES: readonly Template[] = CODECS.map(deriveTemplate);

const key = (name: string) => name.toLowerCase().replace(/[-_. ]/g, '');

/** The template of this name, in any case and with or without dots (g.711, gsm610). */
export function templateNamed(name: string): Template {
  const t = TEMPLATES.find((x) => key(x.name) === key(name));
  if (!t) throw new QosError('QOS_ERR_USAGE', `no FLOWSPEC template "${name}": the templates are ${TEMPLATES.map((x) => x.name).join(', ')}`);
  return t;
}
