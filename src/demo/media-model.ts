/* What the demonstration's media application sends, as a value (pure): the size of each frame
 * and the datagrams it is split into. media-app.ts sends exactly this; `qos demo --reserve`
 * reads it to work out the FLOWSPEC its policy reserves (reservation.ts). */

/** The largest datagram payload the media application sends, bytes. */
export const MEDIA_MAX_PAYLOAD = 1200;
/** "QMD1", sequence number, frame number, send time: the smallest datagram. */
export const MEDIA_HEADER = 20;
/** A key frame every GOP frames, KEY_WEIGHT times the mean frame. */
const GOP = 25;
const KEY_WEIGHT = 3;
/** Each frame is its weight times the mean, times 1 ± SPREAD. */
const SPREAD = 0.25;

export interface MediaParams { kbps: number; fps: number; seed: number }

/** The frame sizes of a stream, frame after frame; the same for the same seed. */
export class FrameSizes {
  private seed: number;
  private readonly mean: number;
  private readonly otherWeight = (GOP - KEY_WEIGHT) / (GOP - 1); // so that a group's mean is the mean frame

  constructor(p: MediaParams) {
    this.seed = p.seed >>> 0 || 1;
    this.mean = (p.kbps * 1000) / 8 / p.fps;
  }

  /** xorshift32 */
  private random(): number {
    let s = this.seed;
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    this.seed = s;
    return s / 0x100000000;
  }

  /** Frame n's size in bytes (call with n = 0, 1, 2, ... in order). */
  next(n: number): number {
    const w = n % GOP === 0 ? KEY_WEIGHT : this.otherWeight;
    return Math.max(MEDIA_HEADER, Math.round(this.mean * w * (1 - SPREAD + this.random() * 2 * SPREAD)));
  }
}

/** The payload sizes of the datagrams a frame of `bytes` is sent as. */
export function datagramsOf(bytes: number): number[] {
  const out: number[] = [];
  for (let left = bytes; left > 0;) {
    const size = Math.max(MEDIA_HEADER, Math.min(MEDIA_MAX_PAYLOAD, left));
    out.push(size);
    left -= size;
  }
  return out;
}

/** Every datagram of durationS seconds of the stream: send time (s) and payload bytes. */
export function mediaSchedule(p: MediaParams, durationS: number): Array<{ t: number; bytes: number }> {
  const frames = new FrameSizes(p);
  const out: Array<{ t: number; bytes: number }> = [];
  for (let n = 0; n / p.fps < durationS; n++) for (const bytes of datagramsOf(frames.next(n))) out.push({ t: n / p.fps, bytes });
  return out;
}
