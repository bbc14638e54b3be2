/* tcpcheat: "sender TCP cheating" (seed 001, "The TCP Cheating mechanism", figure 14) for ONE
 * TCP connection, run on the QoS network's ingress router A. It watches the connection's
 * sender->receiver data segments on A's interface toward the sender (AF_PACKET, both
 * directions: the SYN-ACK leaves by that interface too) and answers each ACKable segment with
 * a fake ACK from the receiver's address and port (raw socket, IP_HDRINCL), so the sender's
 * pace no longer depends on the reverse path. Dropping the receiver's real ACKs is not done
 * here: src/tcp-cheat/ puts an nftables rule in A's forward hook (docs/tcp-cheating.md).
 *
 *   tcpcheat --dev IF --sender A.B.C.D:PORT --receiver A.B.C.D:PORT --window BYTES [--wscale N]
 *
 * An ACKable segment is one from the sender to the receiver carrying data (TCP payload > 0)
 * once the connection's start is known (its SYN seen, or its first data segment with
 * --wscale). A keeps one number, the highest in-order sequence number seen (rcv_nxt): a
 * segment that extends it moves it; every ACKable segment, in order, old or beyond a hole, is
 * answered with ack = rcv_nxt (a hole thus gets duplicate ACKs, as a receiver would send).
 * The window field is W_R >> the receiver's window scale (RFC 7323 section 2.3: the SYN-ACK's
 * shift, used only if the SYN offered the option too; or --wscale), at most 65535.
 * With TCP timestamps in use (both SYN and SYN-ACK carry them, or the data segment does)
 * the fake ACK carries TSecr = the segment's TSval (the sender measures the partial RTT to A)
 * and TSval = the segment's TSecr: the receiver's latest timestamp as the sender knows it,
 * which its PAWS check (RFC 7323 section 5) always accepts. No SACK blocks are sent.
 * IPv4 only. The IP identification is left to the kernel (0: it fills one in), DF is set.
 *
 * Prints "ready" on stdout once its sockets are open, and its counts as one JSON line when it
 * ends (SIGTERM, SIGINT, or its parent's death: PR_SET_PDEATHSIG). Needs CAP_NET_RAW. A bad
 * argument: one stderr line, exit 64; a socket that cannot be opened: exit 69. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BUF_MAX (256 * 1024) /* a GSO packet forwarded whole is up to 64 KiB; room to spare */
#define TCPOPT_TS_LEN 10

static volatile sig_atomic_t stopping;
static unsigned char buf[BUF_MAX];

struct endpoint { uint32_t addr; uint16_t port; }; /* both in network order */

static struct {
  struct endpoint snd, rcv;
  uint32_t window;       /* W_R, bytes */
  int wscale;            /* the shift the sender applies to our window; -1 until known */
  int wscale_given;
  int syn_seen, syn_wscale, syn_ts; /* the SYN offered window scaling (its shift) / timestamps */
  int ts;                /* the connection uses timestamps */
  int started;           /* rcv_nxt is known */
  uint32_t rcv_nxt;      /* host order */
} c = { .wscale = -1, .syn_wscale = -1 };

static struct {
  unsigned long long segments;      /* sender->receiver segments with data */
  unsigned long long acked;         /* of those, ACKable (answered) */
  unsigned long long before_start;  /* with data before the connection's start was known */
  unsigned long long fake_acks;     /* fake ACKs sent */
  unsigned long long send_errors;
  unsigned long long bytes;         /* in-order payload bytes rcv_nxt moved over */
} n;

static void fail(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tcpcheat: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(status);
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static struct endpoint endpoint(const char *s, const char *opt) {
  char host[64];
  const char *colon = strrchr(s, ':');
  struct endpoint e;
  struct in_addr a;
  char *end;
  long port;
  if (!colon || (size_t)(colon - s) >= sizeof host) fail(64, "%s takes A.B.C.D:PORT, not \"%s\"", opt, s);
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  if (inet_pton(AF_INET, host, &a) != 1) fail(64, "%s: \"%s\" is not an IPv4 address", opt, host);
  errno = 0;
  port = strtol(colon + 1, &end, 10);
  if (errno || *end || end == colon + 1 || port < 1 || port > 65535) fail(64, "%s: bad port in \"%s\"", opt, s);
  e.addr = a.s_addr;
  e.port = htons((uint16_t)port);
  return e;
}

static long number(const char *s, const char *opt, long min, long max) {
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < min || v > max) fail(64, "%s takes a whole number from %ld to %ld, not \"%s\"", opt, min, max, s);
  return v;
}

/* RFC 1071 one's complement sum over len bytes, added to sum. */
static uint32_t sum16(const void *p, size_t len, uint32_t sum) {
  const unsigned char *b = p;
  for (; len > 1; b += 2, len -= 2) sum += (uint32_t)(b[0] << 8 | b[1]);
  if (len) sum += (uint32_t)(b[0] << 8);
  return sum;
}

static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons((uint16_t)~sum);
}

/* The TCP options we care about: window scale and timestamps (RFC 7323). Returns 0, or -1 on
 * a malformed option list (the segment is then left alone). */
static int options(const unsigned char *o, size_t len, int *wscale, int *has_ts, uint32_t *tsval, uint32_t *tsecr) {
  size_t i = 0;
  *wscale = -1;
  *has_ts = 0;
  while (i < len) {
    unsigned kind = o[i], l;
    if (kind == TCPOPT_EOL) break;
    if (kind == TCPOPT_NOP) { i++; continue; }
    if (i + 1 >= len) return -1;
    l = o[i + 1];
    if (l < 2 || i + l > len) return -1;
    if (kind == TCPOPT_WINDOW && l == TCPOLEN_WINDOW) *wscale = o[i + 2] > 14 ? 14 : o[i + 2]; /* RFC 7323 2.3 */
    if (kind == TCPOPT_TIMESTAMP && l == TCPOPT_TS_LEN) {
      *has_ts = 1;
      memcpy(tsval, o + i + 2, 4);
      memcpy(tsecr, o + i + 6, 4);
      *tsval = ntohl(*tsval);
      *tsecr = ntohl(*tsecr);
    }
    i += l;
  }
  return 0;
}

/* Sends the sender a fake ACK from the receiver: ack = rcv_nxt, window W_R scaled, timestamps
 * echoed if the connection uses them. */
static void fake_ack(int raw, uint32_t seq_to_sender, uint32_t tsval, uint32_t tsecr, int with_ts) {
  unsigned char p[sizeof(struct iphdr) + sizeof(struct tcphdr) + 12];
  struct iphdr *ip = (struct iphdr *)p;
  struct tcphdr *t = (struct tcphdr *)(p + sizeof *ip);
  size_t tcplen = sizeof *t + (with_ts ? 12 : 0);
  uint32_t w = c.window >> (c.wscale < 0 ? 0 : c.wscale), sum;
  struct { uint32_t src, dst; uint8_t zero, proto; uint16_t len; } __attribute__((packed)) ph;
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = c.snd.addr };

  memset(p, 0, sizeof p);
  ip->version = 4;
  ip->ihl = 5;
  ip->tot_len = htons((uint16_t)(sizeof *ip + tcplen));
  ip->frag_off = htons(IP_DF);
  ip->ttl = 64;
  ip->protocol = IPPROTO_TCP;
  ip->saddr = c.rcv.addr;
  ip->daddr = c.snd.addr;
  ip->check = fold(sum16(ip, sizeof *ip, 0)); /* the kernel fills it again (raw(7)): the same */

  t->source = c.rcv.port;
  t->dest = c.snd.port;
  t->seq = htonl(seq_to_sender);
  t->ack_seq = htonl(c.rcv_nxt);
  t->doff = (uint16_t)(tcplen / 4);
  t->ack = 1;
  t->window = htons((uint16_t)(w > 65535 ? 65535 : w));
  if (with_ts) {
    unsigned char *o = (unsigned char *)(t + 1);
    uint32_t v = htonl(tsval), e = htonl(tsecr);
    o[0] = TCPOPT_NOP;
    o[1] = TCPOPT_NOP;
    o[2] = TCPOPT_TIMESTAMP;
    o[3] = TCPOPT_TS_LEN;
    memcpy(o + 4, &v, 4);
    memcpy(o + 8, &e, 4);
  }
  ph.src = ip->saddr;
  ph.dst = ip->daddr;
  ph.zero = 0;
  ph.proto = IPPROTO_TCP;
  ph.len = htons((uint16_t)tcplen);
  sum = sum16(&ph, sizeof ph, 0);
  t->check = fold(sum16(t, tcplen, sum));

  if (sendto(raw, p, sizeof *ip + tcplen, 0, (struct sockaddr *)&to, sizeof to) < 0) n.send_errors++;
  else n.fake_acks++;
}

/* seq a is after b, modulo 2^32 (RFC 793 section 3.3) */
static int after(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

static void packet(int raw, const unsigned char *b, size_t len, int outgoing) {
  const struct iphdr *ip = (const struct iphdr *)b;
  const struct tcphdr *t;
  size_t ihl, tot, thl, payload;
  int ws, has_ts, to_receiver, from_receiver;
  uint32_t tsval = 0, tsecr = 0, seq, end;

  if (len < sizeof *ip || ip->version != 4 || ip->protocol != IPPROTO_TCP) return;
  ihl = (size_t)ip->ihl * 4;
  tot = ntohs(ip->tot_len);
  if (ihl < sizeof *ip || tot < ihl + sizeof *t || tot > len) return;
  if (ntohs(ip->frag_off) & 0x3fff) return; /* a fragment: not ours to read */
  t = (const struct tcphdr *)(b + ihl);
  thl = (size_t)t->doff * 4;
  if (thl < sizeof *t || ihl + thl > tot) return;
  to_receiver = ip->saddr == c.snd.addr && t->source == c.snd.port && ip->daddr == c.rcv.addr && t->dest == c.rcv.port;
  from_receiver = ip->saddr == c.rcv.addr && t->source == c.rcv.port && ip->daddr == c.snd.addr && t->dest == c.snd.port;
  if (!to_receiver && !from_receiver) return;
  if (options((const unsigned char *)(t + 1), thl - sizeof *t, &ws, &has_ts, &tsval, &tsecr) < 0) return;
  payload = tot - ihl - thl;
  seq = ntohl(t->seq);

  if (from_receiver) {
    /* only the SYN-ACK matters here (our own fake ACKs pass by too, outgoing) */
    if (outgoing && t->syn && t->ack && c.syn_seen && !c.wscale_given) {
      c.wscale = c.syn_wscale >= 0 && ws >= 0 ? ws : 0;
      c.ts = c.syn_ts && has_ts;
    }
    return;
  }
  if (outgoing) return;
  if (t->syn) {
    /* a new connection on this 5-tuple: start over */
    c.syn_seen = 1;
    c.syn_wscale = ws;
    c.syn_ts = has_ts;
    c.rcv_nxt = seq + 1;
    c.started = 1;
    if (!c.wscale_given) c.wscale = -1;
    return;
  }
  if (!payload) return;
  n.segments++;
  if (!c.started) {
    if (!c.wscale_given) { n.before_start++; return; }
    c.rcv_nxt = seq; /* joined mid-connection: trust the first segment seen */
    c.started = 1;
  }
  if (c.wscale < 0) { n.before_start++; return; } /* SYN seen but no SYN-ACK yet: nothing to ACK */
  end = seq + (uint32_t)payload;
  if (!after(seq, c.rcv_nxt) && after(end, c.rcv_nxt)) {
    n.bytes += end - c.rcv_nxt;
    c.rcv_nxt = end;
  }
  n.acked++;
  fake_ack(raw, ntohl(t->ack_seq), tsecr, tsval, c.ts || has_ts);
}

int main(int argc, char **argv) {
  const char *dev = NULL, *snd = NULL, *rcv = NULL, *window = NULL;
  struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
  struct sigaction sa;
  int pkt, raw, one = 1, i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) fail(64, "%s needs a value (tcpcheat --dev IF --sender A:P --receiver A:P --window BYTES [--wscale N])", a);
    if (!strcmp(a, "--dev")) dev = argv[++i];
    else if (!strcmp(a, "--sender")) snd = argv[++i];
    else if (!strcmp(a, "--receiver")) rcv = argv[++i];
    else if (!strcmp(a, "--window")) window = argv[++i];
    else if (!strcmp(a, "--wscale")) { c.wscale = (int)number(argv[++i], "--wscale", 0, 14); c.wscale_given = 1; }
    else fail(64, "unknown argument \"%s\"", a);
  }
  if (!dev || !snd || !rcv || !window) fail(64, "usage: tcpcheat --dev IF --sender A:P --receiver A:P --window BYTES [--wscale N]");
  c.snd = endpoint(snd, "--sender");
  c.rcv = endpoint(rcv, "--receiver");
  c.window = (uint32_t)number(window, "--window", 1, 65535L << 14);
  if (strlen(dev) >= IFNAMSIZ || !(ll.sll_ifindex = (int)if_nametoindex(dev))) fail(64, "--dev: no interface \"%s\"", dev);

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: a blocked recv returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) stopping = 1; /* the parent died before the line above */

  /* ETH_P_ALL: a socket bound to one protocol is not shown outgoing packets (the SYN-ACK);
   * DGRAM: each packet from its network header on */
  pkt = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (pkt < 0) fail(69, "AF_PACKET socket: %s (needs CAP_NET_RAW)", strerror(errno));
  if (bind(pkt, (struct sockaddr *)&ll, sizeof ll) < 0) fail(69, "bind to %s: %s", dev, strerror(errno));
  /* a signal that lands between the loop's test and recvfrom waits at most this long */
  if (setsockopt(pkt, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_usec = 200000 }, sizeof(struct timeval)) < 0) fail(69, "SO_RCVTIMEO: %s", strerror(errno));
  raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw < 0) fail(69, "raw socket: %s (needs CAP_NET_RAW)", strerror(errno));
  if (setsockopt(raw, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0) fail(69, "IP_HDRINCL: %s", strerror(errno));
  printf("ready\n");
  fflush(stdout);

  while (!stopping) {
    struct sockaddr_ll from;
    socklen_t fl = sizeof from;
    ssize_t r = recvfrom(pkt, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      fail(69, "recv on %s: %s", dev, strerror(errno));
    }
    if (from.sll_protocol == htons(ETH_P_IP)) packet(raw, buf, (size_t)r, from.sll_pkttype == PACKET_OUTGOING);
  }
  printf("{\"segments\":%llu,\"ackable\":%llu,\"beforeStart\":%llu,\"fakeAcks\":%llu,\"sendErrors\":%llu,\"inOrderBytes\":%llu,\"wscale\":%d,\"timestamps\":%s}\n",
         n.segments, n.acked, n.before_start, n.fake_acks, n.send_errors, n.bytes, c.wscale, c.ts ? "true" : "false");
  fflush(stdout);
  return 0;
}
