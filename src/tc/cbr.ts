/* A constant-bit-rate UDP sender, for the traffic-control tests and `qos bench tc`: a Python
 * program run as `python3 -c CBR_PROGRAM DST PORT BPS SECONDS [SPORT]` (DST an IPv4 or IPv6
 * address; SPORT the source port, for a reservation's filter that names it). Datagrams of CBR_PAYLOAD bytes,
 * each starting with its sequence number and send time (struct '!Id'), at BPS of payload on an
 * absolute schedule (a late wake-up sends the datagrams it owes at once, as a CBR source does);
 * it prints how many it sent. */

export const CBR_PAYLOAD = 1000;

export const CBR_PROGRAM = `import socket, struct, sys, time
dst, port, bps, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
fam, _, _, _, addr = socket.getaddrinfo(dst, port, 0, socket.SOCK_DGRAM)[0]
s = socket.socket(fam, socket.SOCK_DGRAM)
if len(sys.argv) > 5: s.bind(('', int(sys.argv[5])))
gap = ${CBR_PAYLOAD} * 8 / bps
n = int(secs / gap)
t0 = time.time() + 0.05
for k in range(n):
    d = t0 + k * gap - time.time()
    if d > 0: time.sleep(d)
    s.sendto(struct.pack('!Id', k, time.time()).ljust(${CBR_PAYLOAD}, b'x'), addr)
print(n)
`;
