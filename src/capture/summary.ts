/* What a capture held, as the reader sums it up (pcap.ts) and as messages say it: the CLI's
 * first line and exit-66 error (src/characterize), and the dashboard's Characterise page, which
 * imports this file into the browser: nothing here may need Node. */

/** The link types read (LINKTYPE_ values, as a pcap or pcapng file names them), and what they
 * are called in messages. Another link type's records are skipped and counted. */
export const READ_LINK_TYPES: ReadonlyMap<number, string> = new Map([
  [0, 'BSD loopback'], [1, 'Ethernet'], [9, 'PPP'], [12, 'raw IP'], [14, 'raw IP'], [50, 'PPP in HDLC framing'],
  [101, 'raw IP'], [104, 'Cisco HDLC'], [108, 'OpenBSD loopback'], [113, 'Linux cooked'], [228, 'raw IPv4'],
  [229, 'raw IPv6'], [239, 'Linux NFLOG'], [276, 'Linux cooked v2'],
]);
/** Some link types not read, named in the warning that says their records are skipped. */
const OTHERS: ReadonlyMap<number, string> = new Map([
  [6, 'Token Ring'], [7, 'ARCNET'], [8, 'SLIP'], [10, 'FDDI'], [105, 'IEEE 802.11'], [107, 'Frame Relay'],
  [119, 'Prism 802.11'], [127, 'radiotap 802.11'], [129, 'ARCNET (Linux)'], [143, 'DOCSIS'], [163, 'AVS 802.11'],
  [192, 'PPI'], [195, 'IEEE 802.15.4'], [201, 'Bluetooth HCI'], [220, 'USB (Linux)'], [252, 'Wireshark upper PDU'],
]);

/** A link type as messages call it: "105 (IEEE 802.11)". */
export function linkTypeName(t: number): string {
  const n = READ_LINK_TYPES.get(t) ?? OTHERS.get(t);
  return n ? `${t} (${n})` : String(t);
}

export interface CaptureSummary {
  format: 'pcap' | 'pcapng' | null;
  /** every record (packet block) in the file, as tshark numbers its frames */
  records: number;
  /** IP packets decoded, and their lengths summed */
  ip_packets: number;
  ip_bytes: number;
  /** the first and the last IP packet's time in file order, seconds since the epoch to the
   * nanosecond (as tshark's frame.time_epoch), or null with none */
  first_s: string | null;
  last_s: string | null;
  /** frames of a link type read that hold no IP packet (ARP, LLDP, encrypted MACsec, ...) */
  not_ip: number;
  /** records skipped as damaged (a time out of range, an IP header that cannot be read), each
   * with a warning naming its offset */
  damaged: number;
  /** records of link types not read, by link type number */
  skipped: Record<string, number>;
}

/** What was read but not counted as IP, as phrases: "2 without IP", "86 of link type 107
 * (Frame Relay) skipped", "1 damaged, skipped". Empty when every record was an IP packet. */
export function notCounted(c: Pick<CaptureSummary, 'not_ip' | 'damaged' | 'skipped'>): string[] {
  const parts: string[] = [];
  if (c.not_ip) parts.push(`${c.not_ip} without IP`);
  for (const [t, n] of Object.entries(c.skipped)) parts.push(`${n} of link type ${linkTypeName(Number(t))} skipped`);
  if (c.damaged) parts.push(`${c.damaged} damaged, skipped`);
  return parts;
}

/** "1 record", "2 records". */
export function records(n: number): string {
  return `${n} record${n === 1 ? '' : 's'}`;
}
