/* The agent's message module (msg.c) alone, for src/agent/codec.test.ts, which holds it to the
 * TypeScript codec (src/protocol/).
 *   codec encode [args...]  prints the request lines msg.c builds for a fixed series of calls,
 *                           each group followed by "= nreq"; the command line in them is this
 *                           program's own, so the test chooses it with the arguments.
 *   codec parse             reads reply lines on stdin and prints, one line each, what the agent
 *                           makes of them: "tos prio deny override cache_gen version ring" (deny
 *                           an errno name or -, version -1 if the line is not a VERSION reply,
 *                           ring -1 if not a RING reply).
 *   codec ring FILE SLOTS [ADDR...]
 *                           maps FILE (SLOTS * 64 bytes) as a notification ring (ring.c) and
 *                           writes a fixed series of records into it, with a Cached Connect to
 *                           each ADDR (port 1000 + its index) after them; prints what each write
 *                           returned, one number a line.
 *   codec ntop ADDR         prints ADDR as inet_ntop writes it. */
#define _GNU_SOURCE
#include "../agent.h"
#include "../msg.h"
#include "../ring.h"

#include <fcntl.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* msg.c logs ignored replies through the agent's debug stream (wire.c, not linked here). */
void qos_debug(const char *fmt, ...)
{
	(void)fmt;
}

/* What msg.c and ring.c take from the rest of the agent (creds.c, init.c). */
pid_t qos_self_pid(void) { return getpid(); }
uid_t qos_self_uid(void) { return getuid(); }
struct qos_real qos_real = {.close = close};

/* Prints the lines a builder wrote and how many of them get replies (read after the call). */
static void out(size_t len, const char *buf, const int *nreq)
{
	if (!len) {
		printf("! does not fit\n");
		return;
	}
	fwrite(buf, 1, len, stdout);
	printf("= %d\n", *nreq);
}

static struct sockaddr_in v4(const char *host, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, host, &a.sin_addr);
	return a;
}

static struct sockaddr_in6 v6(const char *host, int port)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	inet_pton(AF_INET6, host, &a.sin6_addr);
	return a;
}

#define SA(a) (const struct sockaddr *)&(a), sizeof(a)

static void encode(void)
{
	char buf[QOS_MAX_MSG];
	int nreq = -1;
	const int one = 1, none = 0;
	const unsigned long long gen = 1795287232097000ULL;
	struct fdst pending = {.flags = F_TRACKED | F_PENDING, .family = AF_INET, .type = SOCK_STREAM, .proto = 0};
	struct fdst reported = {.flags = F_TRACKED | F_REPORTED, .family = AF_INET6, .type = SOCK_STREAM, .proto = 6};
	struct fdst udp = {.flags = F_TRACKED | F_PENDING, .family = AF_INET, .type = SOCK_DGRAM, .proto = 17};
	struct fdst decided = {.flags = F_TRACKED | F_PENDING | F_DECIDED, .family = AF_INET6, .type = SOCK_DGRAM,
			       .proto = 0, .sock_gen = 42};
	struct sockaddr_in a4 = v4("192.0.2.10", 80), peer = v4("10.0.0.1", 5555), dst = v4("192.0.2.9", 5004);
	struct sockaddr_in6 a6 = v6("2001:db8::1", 443), any6 = v6("::", 0), mapped = v6("::ffff:192.0.2.1", 65535);
	int ints[3];

	out(qos_msg_startup(buf, sizeof buf), buf, &one);
	out(qos_msg_ring(buf, sizeof buf), buf, &one);
	out(qos_msg_socket(buf, sizeof buf, 5, &pending), buf, &one);
	out(qos_msg_addr(buf, sizeof buf, "Connect", 5, &pending, SA(a4), &nreq, 0), buf, &nreq);
	out(qos_msg_addr(buf, sizeof buf, "Connect", 6, &reported, SA(a6), &nreq, 0), buf, &nreq);
	out(qos_msg_addr(buf, sizeof buf, "Connect", 6, &reported, SA(mapped), &nreq, 0), buf, &nreq);
	out(qos_msg_addr(buf, sizeof buf, "Bind", 6, &reported, SA(any6), &nreq, 0), buf, &nreq);
	ints[0] = 128;
	out(qos_msg_ints(buf, sizeof buf, "Listen", 3, &pending, 1, ints, &nreq), buf, &nreq);
	ints[0] = -1;
	out(qos_msg_ints(buf, sizeof buf, "Listen", 1048575, &reported, 1, ints, &nreq), buf, &nreq);
	out(qos_msg_accept(buf, sizeof buf, 3, &pending, SA(peer), 7, &nreq), buf, &nreq);
	out(qos_msg_accept(buf, sizeof buf, 3, &reported, NULL, 0, 8, &nreq), buf, &nreq);
	out(qos_msg_addr(buf, sizeof buf, "SendTo", 8, &udp, SA(dst), &nreq, 0), buf, &nreq);
	out(qos_msg_addr(buf, sizeof buf, "SendTo", 9, &decided, SA(a6), &nreq, 0), buf, &nreq);
	ints[0] = 0, ints[1] = 1, ints[2] = 184;
	out(qos_msg_ints(buf, sizeof buf, "SetSockOpt", 4, &reported, 3, ints, &nreq), buf, &nreq);
	ints[0] = 41, ints[1] = 67, ints[2] = 0;
	out(qos_msg_ints(buf, sizeof buf, "SetSockOpt", 4, &udp, 3, ints, &nreq), buf, &nreq);
	ints[0] = 1;
	out(qos_msg_notice(buf, sizeof buf, "Shutdown", 4, 1, ints, NULL), buf, &none);
	out(qos_msg_notice(buf, sizeof buf, "Close", 4, 0, NULL, NULL), buf, &none);
	out(qos_msg_notice(buf, sizeof buf, "Close", 9, 0, NULL, &decided), buf, &none);
	out(qos_msg_cleanup(buf, sizeof buf), buf, &none);
	out(qos_msg_addr(buf, sizeof buf, "Connect", 5, &pending, SA(a4), &nreq, gen), buf, &nreq);
	out(qos_msg_addr(buf, sizeof buf, "SendTo", 8, &udp, SA(dst), &nreq, gen), buf, &nreq);
	out(qos_msg_addr(buf, sizeof buf, "Connect", 9, &decided, SA(a6), &nreq, gen), buf, &nreq);
	/* a line that does not fit is not written at all */
	out(qos_msg_addr(buf, 40, "Connect", 5, &pending, SA(a4), &nreq, 0), buf, &nreq);
}

static void parse(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[n - 1] = '\0';
		int version = qos_parse_version(line);
		long ring = qos_parse_ring(line);
		struct decision d;
		qos_parse_reply(line, &d);
		const char *deny = d.deny ? strerrorname_np(d.deny) : "-";
		printf("%d %d %s %d %llu %d %ld\n", d.tos, d.prio, deny ? deny : "?", d.override, d.cache_gen, version, ring);
	}
	free(line);
}

static struct qos_note note(uint8_t kind, int fd, unsigned long long gen)
{
	struct qos_note n = {.kind = kind, .fd = fd, .gen_lo = (uint32_t)gen, .gen_hi = (uint32_t)(gen >> 32)};
	return n;
}

static struct qos_note to(struct qos_note n, const char *host, int port)
{
	n.afamily = strchr(host, ':') ? AF_INET6 : AF_INET;
	inet_pton(n.afamily, host, n.addr);
	n.port = (uint16_t)port;
	return n;
}

static int ring(int argc, char **argv)
{
	int fd = open(argv[2], O_RDWR);
	struct qos_ring r;
	if (fd < 0 || qos_ring_attach(&r, fd, atol(argv[3])) != 0)
		return fprintf(stderr, "cannot map %s as a ring of %s slots\n", argv[2], argv[3]), 1;
	const unsigned long long gen = 1795287232097000ULL;
	struct qos_note n[6];
	n[0] = note(QOS_NOTE_SOCKET, 5, gen);
	n[0].family = AF_INET, n[0].type = SOCK_STREAM, n[0].arg = 0;
	n[1] = to(note(QOS_NOTE_CONNECT, 5, gen), "192.0.2.10", 80);
	n[2] = note(QOS_NOTE_SOCKET, 8, 42);
	n[2].family = AF_INET6, n[2].type = SOCK_DGRAM, n[2].arg = 17;
	n[3] = to(note(QOS_NOTE_SENDTO, 8, 42), "2001:db8::1", 443);
	n[4] = note(QOS_NOTE_SHUTDOWN, 5, 0);
	n[4].arg = 1;
	n[5] = note(QOS_NOTE_CLOSE, 5, 0);
	for (int i = 0; i < 6; i++)
		printf("%d\n", qos_ring_put(&r, &n[i]));
	/* a Connect that carries its socket's Socket */
	struct qos_note both = to(note(QOS_NOTE_CONNECT, 6, gen), "2001:db8::2", 8443);
	both.flags = QOS_NOTE_WITH_SOCKET, both.family = AF_INET6, both.type = SOCK_STREAM, both.arg = 6;
	printf("%d\n", qos_ring_put(&r, &both));
	for (int i = 4; i < argc; i++) {
		struct qos_note c = to(note(QOS_NOTE_CONNECT, 100 + i, gen), argv[i], 1000 + i - 4);
		printf("%d\n", qos_ring_put(&r, &c));
	}
	qos_ring_detach(&r);
	return 0;
}

/* The text inet_ntop makes of an address (what the agent's lines carry). */
static int ntop(const char *host)
{
	int fam = strchr(host, ':') ? AF_INET6 : AF_INET;
	unsigned char a[16];
	char out[INET6_ADDRSTRLEN];
	if (inet_pton(fam, host, a) != 1 || !inet_ntop(fam, a, out, sizeof out))
		return 1;
	printf("%s\n", out);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "ntop"))
		return ntop(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "ring"))
		return ring(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "encode"))
		encode();
	else if (argc >= 2 && !strcmp(argv[1], "parse"))
		parse();
	else
		return fprintf(stderr, "usage: codec encode [args...] | codec parse | codec ring FILE SLOTS [ADDR...]\n"), 2;
	return 0;
}
