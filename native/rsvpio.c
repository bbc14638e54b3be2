/* rsvpio: RSVP's packet I/O (RFC 2205 section 3.11.5) for the Node process that spawns it,
 * which has no raw sockets: IP protocol 46 with the Router Alert option (RFC 2113, RFC 2711),
 * or the UDP encapsulation of RFC 2205 appendix C. It carries bytes only; src/rsvp/transport/
 * decides what goes where. It needs CAP_NET_RAW for `raw` (and nothing for `udp`); it drops
 * nothing itself: run it with just that capability (setcap cap_net_raw+ep, or a unit's
 * AmbientCapabilities) rather than as root where you can.
 *
 *   rsvpio raw [--intercept] [-4] [-6]   protocol 46 (both families unless one is named);
 *                                        --intercept: IP_ROUTER_ALERT / IPV6_ROUTER_ALERT 1, so
 *                                        the kernel hands this socket the packets with Router
 *                                        Alert it would forward (needs forwarding on; IPv6 on a
 *                                        second socket, IPPROTO_RAW, the only kind Linux allows)
 *   rsvpio udp --port P [--join G]       UDP port P (0: any), IPv4, joining group G on every
 *                                        interface
 *
 * Frames, both ways, all integers big-endian:
 *   u32 length     of what follows (type and body), at most FRAME_MAX
 *   u8  type       1 SEND (in), 2 PACKET (out), 3 RESULT (out), 4 READY (out)
 * SEND and PACKET have one body:
 *   u8  family     4 or 6
 *   u8  flags      bit 0: Router Alert (to add; was present)
 *   u8  ttl        IP TTL / hop limit (to send with; arrived with)
 *   u16 port       UDP: the destination port (SEND), the source port (PACKET); raw: 0
 *   char ifname[16]  NUL-padded; SEND: empty = as routing says
 *   u8  src[16]    IPv4 in the first 4 bytes; SEND: all zero = the kernel chooses
 *   u8  dst[16]
 *   ... the RSVP message
 * RESULT answers each SEND, in order: i32 errno (0: sent), then a one-line reason.
 * READY is written once, when the sockets are open.
 * A malformed frame is fatal (the stream's framing is lost): one line on stderr, exit 2.
 * It exits 0 when stdin closes, so it never outlives its parent. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_RSVP
#define IPPROTO_RSVP 46
#endif
#ifndef IPV6_ROUTER_ALERT_ISOLATE
#define IPV6_ROUTER_ALERT_ISOLATE 30 /* linux/in6.h, Linux 5.1 */
#endif

enum { T_SEND = 1, T_PACKET = 2, T_RESULT = 3, T_READY = 4 };
enum { BURST = 64 };
enum { F_RA = 1 };
#define HEAD 4                    /* the length field */
#define BODY (1 + 1 + 1 + 1 + 2 + IFNAMSIZ + 16 + 16) /* type, family, flags, ttl, port, ifname, src, dst */
#define MSG_MAX 65535             /* an RSVP message's length field is 16 bits */
#define FRAME_MAX (BODY + MSG_MAX)
#define RA_V4_LEN 4               /* RFC 2113: 0x94 0x04 0x00 0x00 */
#define RA_V6_VALUE 1             /* RFC 2711: "datagram contains an RSVP message" */

static unsigned char inbuf[HEAD + FRAME_MAX];
static size_t inlen;
static unsigned char pkt[HEAD + FRAME_MAX + 60];
static int fd4 = -1, fd6 = -1, fd6ra = -1, udp = 0;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("rsvpio: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void put16(unsigned char *p, unsigned v) { p[0] = v >> 8; p[1] = v; }
static void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static unsigned get16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static void write_all(const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EPIPE) exit(0); /* the parent is gone: so is the reason to run */
    if (w < 0) die("stdout: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

/* Frames out are gathered and written once per turn of the loop: a router answering a burst
 * of refreshes makes one write, not one per message (each write wakes the parent). */
static unsigned char obuf[1 << 18];
static size_t olen;

static void flush(void) {
  write_all(obuf, olen);
  olen = 0;
}

static void out(const unsigned char *p, size_t n) {
  if (olen + n > sizeof obuf) flush();
  if (n > sizeof obuf) { write_all(p, n); return; }
  memcpy(obuf + olen, p, n);
  olen += n;
}

static void result(int err, const char *why) {
  unsigned char f[HEAD + 1 + 4 + 200];
  size_t n = strnlen(why, 200);
  put32(f, (uint32_t)(1 + 4 + n));
  f[4] = T_RESULT;
  put32(f + 5, (uint32_t)err);
  memcpy(f + 9, why, n);
  out(f, HEAD + 1 + 4 + n);
}

static void setopt(int fd, int level, int name, int value, const char *what) {
  if (setsockopt(fd, level, name, &value, sizeof value) < 0) die("setsockopt %s: %s", what, strerror(errno));
}

/* The packet frame's head (everything before the message), at pkt. */
static void packet_head(int family, int ra, int ttl, unsigned port, unsigned ifindex, const void *src, const void *dst, size_t len) {
  unsigned char *b = pkt + HEAD;
  put32(pkt, (uint32_t)(BODY + len));
  b[0] = T_PACKET;
  b[1] = (unsigned char)family;
  b[2] = ra ? F_RA : 0;
  b[3] = (unsigned char)ttl;
  put16(b + 4, port);
  memset(b + 6, 0, IFNAMSIZ + 32);
  if (ifindex && !if_indextoname(ifindex, (char *)b + 6)) snprintf((char *)b + 6, IFNAMSIZ, "if%u", ifindex);
  memcpy(b + 6 + IFNAMSIZ, src, family == 4 ? 4 : 16);
  memcpy(b + 6 + IFNAMSIZ + 16, dst, family == 4 ? 4 : 16);
}

/* Whether IPv4 options (RFC 791 section 3.1 layout) hold Router Alert (RFC 2113). */
static int has_ra4(const unsigned char *o, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (o[i] == IPOPT_END) return 0;
    if (o[i] == IPOPT_NOOP) { i++; continue; }
    if (i + 1 >= n || o[i + 1] < 2) return 0;
    if (o[i] == IPOPT_RA) return 1;
    i += o[i + 1];
  }
  return 0;
}

/* Whether a hop-by-hop header (RFC 8200 section 4.3) holds Router Alert (RFC 2711, type 5). */
static int has_ra6(const unsigned char *h, size_t n) {
  size_t i = 2;
  if (n < 2 || (size_t)(h[1] + 1) * 8 > n) return 0;
  n = (size_t)(h[1] + 1) * 8;
  while (i < n) {
    if (h[i] == 0) { i++; continue; }
    if (i + 1 >= n) return 0;
    if (h[i] == 5) return 1;
    i += 2 + (size_t)h[i + 1];
  }
  return 0;
}

/* One datagram from fd, as a PACKET frame on stdout. Errors on receive are not fatal (an ICMP
 * error queued on the socket, say): they are reported on stderr and the socket read on. */
/* Reads one packet if one is waiting and writes its frame; 0 when none was. */
static int receive(int fd, int family, int whole) {
  unsigned char *msg = pkt + HEAD + BODY;
  unsigned char cbuf[512];
  struct sockaddr_storage from;
  struct iovec iov = { msg, sizeof pkt - HEAD - BODY };
  struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) fprintf(stderr, "rsvpio: recvmsg: %s\n", strerror(errno));
    return 0;
  }
  unsigned ifindex = 0;
  int ttl = 0, ra = 0;
  struct in_addr dst4 = { 0 };
  struct in6_addr dst6 = IN6ADDR_ANY_INIT;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      ifindex = (unsigned)pi.ipi_ifindex;
      dst4 = pi.ipi_addr;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
      memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      ifindex = pi.ipi6_ifindex;
      dst6 = pi.ipi6_addr;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
      memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPOPTS) {
      ra = has_ra6(CMSG_DATA(c), c->cmsg_len - CMSG_LEN(0));
    }
  }
  size_t len = (size_t)n;
  if (family == 4 && !udp) {
    /* a raw IPv4 socket reads the IP header too: TTL, addresses and options from it */
    struct ip h;
    if (len < sizeof h) return 1; /* read, and not ours */
    memcpy(&h, msg, sizeof h);
    size_t hl = (size_t)h.ip_hl * 4;
    if (hl < sizeof h || hl > len) return 1; /* read, and not ours */
    ra = has_ra4(msg + sizeof h, hl - sizeof h);
    packet_head(4, ra, h.ip_ttl, 0, ifindex, &h.ip_src, &h.ip_dst, len - hl);
    memmove(msg, msg + hl, len - hl);
    len -= hl;
  } else if (family == 4) {
    struct sockaddr_in *s = (struct sockaddr_in *)&from;
    packet_head(4, 0, ttl, ntohs(s->sin_port), ifindex, &s->sin_addr, &dst4, len);
  } else if (whole) {
    /* the Router Alert socket reads whole packets: the IPv6 header, hop-by-hop options, and
     * (only these are RSVP's) protocol 46 after them */
    if (len < 40 + 8 || msg[6] != 0) return 1; /* read, and not ours */
    size_t hl = 40 + (size_t)(msg[41] + 1) * 8;
    if (hl > len || msg[40] != IPPROTO_RSVP) return 1; /* read, and not ours */
    ra = has_ra6(msg + 40, hl - 40);
    packet_head(6, ra, msg[7], 0, ifindex, msg + 8, msg + 24, len - hl);
    memmove(msg, msg + hl, len - hl);
    len -= hl;
  } else {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&from;
    packet_head(6, ra, ttl, 0, ifindex, &s->sin6_addr, &dst6, len);
  }
  out(pkt, HEAD + BODY + len);
  return 1;
}

/* The IPv4 header, with Router Alert if asked, for IP_HDRINCL: the source may be another
 * node's (a router forwards Path with the sender's address as source, RFC 2205 section
 * 3.1.3). Linux fills the total length and the checksum always, the id when it is 0, and the
 * source when it is 0 (raw(7)); it does not fragment such a packet: one larger than the
 * path's MTU fails with EMSGSIZE, reported in the RESULT. IPv6 needs no header of ours: the
 * source comes in IPV6_PKTINFO (IPV6_FREEBIND lets it be another node's), Router Alert in
 * IPV6_HOPOPTS, and the kernel fragments. */
static size_t ip4_header(unsigned char *h, int ra, int ttl, const unsigned char *src, const unsigned char *dst, size_t len) {
  size_t hl = 20 + (ra ? RA_V4_LEN : 0);
  memset(h, 0, hl);
  h[0] = 0x40 | (unsigned char)(hl / 4);
  put16(h + 2, (unsigned)(hl + len));
  h[8] = (unsigned char)ttl;
  h[9] = IPPROTO_RSVP;
  memcpy(h + 12, src, 4);
  memcpy(h + 16, dst, 4);
  if (ra) { h[20] = IPOPT_RA; h[21] = RA_V4_LEN; }
  return hl;
}

/* Sends one SEND frame's message; answers with a RESULT. */
static void send_frame(const unsigned char *b, size_t n) {
  int family = b[1], ra = b[2] & F_RA, ttl = b[3];
  unsigned port = get16(b + 4);
  char ifname[IFNAMSIZ + 1] = { 0 };
  memcpy(ifname, b + 6, IFNAMSIZ);
  const unsigned char *src = b + 6 + IFNAMSIZ, *dst = src + 16, *msg = dst + 16;
  size_t len = n - BODY;
  unsigned ifindex = 0;
  char why[160];
  if (family != 4 && family != 6) die("a SEND frame of family %d (4 or 6)", family);
  int fd = family == 4 ? fd4 : fd6;
  if (fd < 0) { result(EAFNOSUPPORT, family == 4 ? "IPv4 is not open" : "IPv6 is not open"); return; }
  if (ifname[0] && !(ifindex = if_nametoindex(ifname))) {
    snprintf(why, sizeof why, "no interface %s", ifname);
    result(ENODEV, why);
    return;
  }
  if (len + 20 + RA_V4_LEN > MSG_MAX) {
    snprintf(why, sizeof why, "a message of %zu bytes does not fit in one IP packet", len);
    result(EMSGSIZE, why);
    return;
  }
  unsigned char cbuf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int)) + CMSG_SPACE(8)];
  memset(cbuf, 0, sizeof cbuf);
  struct msghdr mh = { .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  size_t clen = 0;
  struct sockaddr_in to4 = { .sin_family = AF_INET, .sin_port = htons(port) };
  struct sockaddr_in6 to6 = { .sin6_family = AF_INET6, .sin6_scope_id = ifindex };
  unsigned char head[20 + RA_V4_LEN];
  struct iovec iov[2];
  size_t niov = 0;
  if (family == 4) {
    memcpy(&to4.sin_addr, dst, 4);
    mh.msg_name = &to4;
    mh.msg_namelen = sizeof to4;
    struct in_pktinfo pi = { .ipi_ifindex = (int)ifindex };
    if (udp) {
      memcpy(&pi.ipi_spec_dst, src, 4); /* UDP: the source is this node's (0: the kernel's) */
      c->cmsg_level = IPPROTO_IP; c->cmsg_type = IP_TTL; c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &ttl, sizeof ttl);
      clen += CMSG_SPACE(sizeof(int));
      c = CMSG_NXTHDR(&mh, c);
    } else {
      iov[niov++] = (struct iovec){ head, ip4_header(head, ra, ttl, src, dst, len) };
    }
    c->cmsg_level = IPPROTO_IP; c->cmsg_type = IP_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    clen += CMSG_SPACE(sizeof pi);
  } else {
    memcpy(&to6.sin6_addr, dst, 16);
    mh.msg_name = &to6;
    mh.msg_namelen = sizeof to6;
    struct in6_pktinfo pi = { .ipi6_ifindex = ifindex };
    memcpy(&pi.ipi6_addr, src, 16); /* another node's address too: IPV6_FREEBIND is on */
    c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    clen += CMSG_SPACE(sizeof pi);
    c = CMSG_NXTHDR(&mh, c);
    c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_HOPLIMIT; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &ttl, sizeof ttl);
    clen += CMSG_SPACE(sizeof(int));
    if (ra) {
      /* hop-by-hop header: next header (the kernel's), length 0 (8 bytes), Router Alert
       * (type 5, 2 bytes, value 1: RSVP, RFC 2711), PadN of 0 */
      static const unsigned char hbh[8] = { 0, 0, 5, 2, 0, RA_V6_VALUE, 1, 0 };
      c = CMSG_NXTHDR(&mh, c);
      c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_HOPOPTS; c->cmsg_len = CMSG_LEN(sizeof hbh);
      memcpy(CMSG_DATA(c), hbh, sizeof hbh);
      clen += CMSG_SPACE(sizeof hbh);
    }
  }
  mh.msg_controllen = clen;
  iov[niov++] = (struct iovec){ (void *)msg, len };
  mh.msg_iov = iov;
  mh.msg_iovlen = niov;
  ssize_t w = sendmsg(fd, &mh, 0);
  if (w < 0) {
    char a[INET6_ADDRSTRLEN] = "?";
    int e = errno;
    if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, dst, a, sizeof a)) strcpy(a, "?");
    snprintf(why, sizeof why, "sendmsg to %s%s%s: %s", a, ifname[0] ? " via " : "", ifname, strerror(e));
    result(e, why);
    return;
  }
  result(0, "");
}

/* Reads what stdin has and handles every whole frame in it; returns 0 when stdin closed. */
static int read_frames(void) {
  ssize_t r = read(0, inbuf + inlen, sizeof inbuf - inlen);
  if (r < 0) {
    if (errno == EINTR || errno == EAGAIN) return 1;
    die("stdin: %s", strerror(errno));
  }
  if (r == 0) {
    if (inlen) die("stdin closed in the middle of a frame (%zu bytes)", inlen);
    return 0;
  }
  inlen += (size_t)r;
  size_t at = 0;
  while (inlen - at >= HEAD) {
    uint32_t n = get32(inbuf + at);
    if (n > FRAME_MAX) die("a frame of %u bytes: more than %d (a message is at most %d bytes)", n, FRAME_MAX, MSG_MAX);
    if (n < BODY) die("a frame of %u bytes: less than the %d of a SEND frame's head", n, BODY);
    if (inlen - at < HEAD + n) break;
    const unsigned char *b = inbuf + at + HEAD;
    if (b[0] != T_SEND) die("a frame of type %u (only SEND, 1, comes in)", b[0]);
    send_frame(b, n);
    at += HEAD + n;
  }
  memmove(inbuf, inbuf + at, inlen - at);
  inlen -= at;
  return 1;
}

static int open_socket(int domain, int type, int protocol, const char *what) {
  int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
  if (fd < 0) die("socket(%s): %s%s", what, strerror(errno), type == SOCK_RAW ? " (it needs CAP_NET_RAW)" : "");
  /* A router takes the refreshes of thousands of sessions in bursts: room for 4 MiB of them.
   * SO_RCVBUFFORCE passes net.core.rmem_max with CAP_NET_ADMIN; without it, SO_RCVBUF gives
   * what that limit allows, and a smaller buffer only means more refreshes lost (soft state
   * survives K - 1 of them), so neither failing stops the helper. */
  int room = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof room) < 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &room, sizeof room) < 0)
    fprintf(stderr, "rsvpio: SO_RCVBUF: %s (the default buffer kept)\n", strerror(errno));
  return fd;
}

/* A raw IPv4 socket reads the IP header with each packet: TTL, addresses and options come from
 * there (IP_RECVTTL and IP_RECVOPTS would say the same again); IP_PKTINFO says the interface. */
static int open_raw4(int intercept) {
  int fd = open_socket(AF_INET, SOCK_RAW, IPPROTO_RSVP, "AF_INET, SOCK_RAW, 46");
  setopt(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
  setopt(fd, IPPROTO_IP, IP_HDRINCL, 1, "IP_HDRINCL");
  if (intercept) setopt(fd, IPPROTO_IP, IP_ROUTER_ALERT, 1, "IP_ROUTER_ALERT");
  return fd;
}

static int open_raw6(int intercept) {
  int fd = open_socket(AF_INET6, SOCK_RAW, IPPROTO_RSVP, "AF_INET6, SOCK_RAW, 46");
  setopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
  setopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
  setopt(fd, IPPROTO_IPV6, IPV6_RECVHOPOPTS, 1, "IPV6_RECVHOPOPTS");
  setopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND");
  if (!intercept) return fd;
  /* Linux takes IPV6_ROUTER_ALERT only on an IPPROTO_RAW socket, which reads whole packets; its
   * chain is one for all namespaces unless the socket isolates itself to its own */
  fd6ra = open_socket(AF_INET6, SOCK_RAW, IPPROTO_RAW, "AF_INET6, SOCK_RAW, IPPROTO_RAW");
  setopt(fd6ra, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
  setopt(fd6ra, IPPROTO_IPV6, IPV6_ROUTER_ALERT, RA_V6_VALUE, "IPV6_ROUTER_ALERT");
  setopt(fd6ra, IPPROTO_IPV6, IPV6_ROUTER_ALERT_ISOLATE, 1, "IPV6_ROUTER_ALERT_ISOLATE");
  return fd;
}

/* UDP on port, IPv4, joined to group on every interface that can multicast. */
static int open_udp(unsigned port, const char *group) {
  int fd = open_socket(AF_INET, SOCK_DGRAM, 0, "AF_INET, SOCK_DGRAM");
  setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  setopt(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
  setopt(fd, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = { htonl(INADDR_ANY) } };
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind UDP port %u: %s", port, strerror(errno));
  if (!group) return fd;
  struct ip_mreqn m = { 0 };
  if (inet_pton(AF_INET, group, &m.imr_multiaddr) != 1) die("--join %s: not an IPv4 address", group);
  struct if_nameindex *ifs = if_nameindex();
  if (!ifs) die("if_nameindex: %s", strerror(errno));
  for (struct if_nameindex *i = ifs; i->if_index; i++) {
    m.imr_ifindex = (int)i->if_index;
    /* an interface that is down or cannot multicast refuses: RSVP does not run there */
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) < 0 && errno != ENODEV && errno != EADDRNOTAVAIL && errno != EINVAL)
      die("joining %s on %s: %s", group, i->if_name, strerror(errno));
  }
  if_freenameindex(ifs);
  return fd;
}

int main(int argc, char **argv) {
  int intercept = 0, want4 = 0, want6 = 0;
  long port = -1;
  const char *group = NULL;
  if (argc < 2 || (strcmp(argv[1], "raw") && strcmp(argv[1], "udp"))) die("usage: rsvpio raw [--intercept] [-4] [-6] | rsvpio udp --port P [--join G]");
  udp = !strcmp(argv[1], "udp");
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) die("signal: %s", strerror(errno));
  for (int i = 2; i < argc; i++) {
    if (!udp && !strcmp(argv[i], "--intercept")) intercept = 1;
    else if (!udp && !strcmp(argv[i], "-4")) want4 = 1;
    else if (!udp && !strcmp(argv[i], "-6")) want6 = 1;
    else if (udp && !strcmp(argv[i], "--port") && i + 1 < argc) {
      char *end;
      port = strtol(argv[++i], &end, 10);
      if (*end || port < 0 || port > 65535) die("--port %s: not a port", argv[i]);
    } else if (udp && !strcmp(argv[i], "--join") && i + 1 < argc) group = argv[++i];
    else die("unknown argument %s", argv[i]);
  }
  if (udp && port < 0) die("udp needs --port (0: any)");
  if (!want4 && !want6) want4 = want6 = 1;
  if (udp) fd4 = open_udp((unsigned)port, group);
  else {
    if (want4) fd4 = open_raw4(intercept);
    if (want6) fd6 = open_raw6(intercept);
  }
  unsigned char ready[HEAD + 1] = { 0, 0, 0, 1, T_READY };
  out(ready, sizeof ready);
  flush();
  struct pollfd p[4] = { { 0, POLLIN, 0 }, { fd4, POLLIN, 0 }, { fd6, POLLIN, 0 }, { fd6ra, POLLIN, 0 } };
  for (;;) {
    if (poll(p, 4, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll: %s", strerror(errno));
    }
    /* up to BURST packets a socket per turn: the frames go out in one write */
    for (int k = 0; k < BURST && p[1].revents & POLLIN && receive(fd4, 4, 0); k++) {}
    for (int k = 0; k < BURST && p[2].revents & POLLIN && receive(fd6, 6, 0); k++) {}
    for (int k = 0; k < BURST && p[3].revents & POLLIN && receive(fd6ra, 6, 1); k++) {}
    int open = !(p[0].revents & (POLLIN | POLLHUP | POLLERR)) || read_frames();
    flush();
    if (!open) return 0;
  }
}
