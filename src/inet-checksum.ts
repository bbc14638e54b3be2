/* The Internet checksum (RFC 1071): the 16-bit ones' complement of the ones' complement sum of
 * the data as big-endian 16-bit words, an odd last byte padded with zero. RSVP's common header
 * (RFC 2205 section 3.1.1), IPv4 headers and UDP use it; rsvp/ and capture/ share this one. */

/** The ones' complement sum of bytes (not yet complemented), folded to 16 bits; start adds a
 * previous partial sum (a pseudo-header's). */
export function onesComplementSum(bytes: Uint8Array, start = 0): number {
  let sum = start;
  const n = bytes.length;
  let i = 0;
  // two words an iteration (an RSVP message is whole 32-bit words), then a last word and byte
  for (; i + 3 < n; i += 4) sum += ((bytes[i]! << 8) | bytes[i + 1]!) + ((bytes[i + 2]! << 8) | bytes[i + 3]!);
  if (i + 1 < n) { sum += (bytes[i]! << 8) | bytes[i + 1]!; i += 2; }
  if (i < n) sum += bytes[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The checksum to put in a header whose checksum field is zero in bytes. */
export function inetChecksum(bytes: Uint8Array, start = 0): number {
  return ~onesComplementSum(bytes, start) & 0xffff;
}
