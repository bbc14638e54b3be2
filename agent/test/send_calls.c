/* Test program: datagram sends as programs make them, each printing what the program sees
 * (return value, errno, the kernel's msg_len of each message), so that runs with and without
 * the agent, and with no daemon, can be compared line by line.
 *   send_calls HOST PORT_A PORT_B
 * Every case uses UDP over IPv4 to HOST; A and B are two destinations. errno is set to 0
 * before each call and printed after it, success included. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MANY 1030 /* more than the kernel's UIO_MAXIOV (1024) messages in one sendmmsg */

static struct sockaddr_in a, b, shortname;
static char payload[] = "datagram";
static struct iovec iov = {payload, sizeof payload - 1};
static struct mmsghdr v[MANY];

/* 'A', 'B', 'n' (no address), 's' (an address too short: EINVAL) */
static void msg(unsigned i, char to)
{
	memset(&v[i], 0, sizeof v[i]);
	v[i].msg_hdr.msg_iov = &iov;
	v[i].msg_hdr.msg_iovlen = 1;
	if (to == 'n')
		return;
	v[i].msg_hdr.msg_name = to == 'A' ? &a : to == 'B' ? &b : &shortname;
	v[i].msg_hdr.msg_namelen = to == 's' ? 4 : sizeof a;
}

static void report(const char *what, long r, int e, unsigned n)
{
	printf("%s: %ld errno %d lens", what, r, e);
	unsigned long sum = 0, nonzero = 0;
	for (unsigned i = 0; i < n; i++) {
		if (i < 8)
			printf(" %u", v[i].msg_len);
		sum += v[i].msg_len;
		nonzero += v[i].msg_len != 0;
	}
	printf(" (%lu sent, %lu bytes)\n", nonzero, sum);
}

/* One sendmmsg of the messages spelt by to ("ABAB") on fd. */
static void mmsg(const char *what, int fd, const char *to, int flags)
{
	unsigned n = (unsigned)strlen(to);
	for (unsigned i = 0; i < n; i++)
		msg(i, to[i]);
	errno = 0;
	int r = sendmmsg(fd, v, n, flags);
	report(what, r, errno, n);
}

static int udp(void) { return socket(AF_INET, SOCK_DGRAM, 0); }

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s HOST PORT_A PORT_B\n", argv[0]);
		return 2;
	}
	a.sin_family = b.sin_family = shortname.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1)
		return 2;
	b.sin_addr = shortname.sin_addr = a.sin_addr;
	a.sin_port = htons((unsigned short)atoi(argv[2]));
	b.sin_port = shortname.sin_port = htons((unsigned short)atoi(argv[3]));

	int fd = udp();
	mmsg("sendmmsg ABAB", fd, "ABAB", 0);
	mmsg("sendmmsg AABB MSG_DONTWAIT", fd, "AABB", MSG_DONTWAIT);
	mmsg("sendmmsg A, short address, B", fd, "AsB", 0);
	mmsg("sendmmsg short address, A", fd, "sA", 0);
	mmsg("sendmmsg no address, A (unconnected)", fd, "nA", 0);
	mmsg("sendmmsg none", fd, "", 0);

	char many[MANY + 1];
	for (unsigned i = 0; i < MANY; i++)
		many[i] = i % 2 ? 'B' : 'A';
	many[MANY] = '\0';
	mmsg("sendmmsg 1030 alternating", fd, many, 0);

	errno = 0;
	long r = sendto(fd, payload, sizeof payload - 1, MSG_DONTWAIT | MSG_CONFIRM, (struct sockaddr *)&b, sizeof b);
	report("sendto B MSG_DONTWAIT|MSG_CONFIRM", r, errno, 0);
	errno = 0;
	r = sendto(fd, payload, sizeof payload - 1, 0, (struct sockaddr *)&shortname, 4);
	report("sendto short address", r, errno, 0);
	errno = 0;
	r = sendto(fd, payload, sizeof payload - 1, 0, NULL, 0);
	report("sendto no address (unconnected)", r, errno, 0);
	struct msghdr m = {.msg_name = &a, .msg_namelen = sizeof a, .msg_iov = &iov, .msg_iovlen = 1};
	errno = 0;
	r = sendmsg(fd, &m, 0);
	report("sendmsg A", r, errno, 0);
	close(fd);

	/* A connected socket: datagrams without an address go to A, one with B's to B. */
	fd = udp();
	errno = 0;
	r = connect(fd, (struct sockaddr *)&a, sizeof a);
	report("connect A", r, errno, 0);
	mmsg("sendmmsg connected: -, -, B, -", fd, "nnBn", 0);
	errno = 0;
	r = sendto(fd, payload, sizeof payload - 1, 0, (struct sockaddr *)&b, sizeof b);
	report("sendto connected: B", r, errno, 0);
	errno = 0;
	r = send(fd, payload, sizeof payload - 1, 0);
	report("send connected", r, errno, 0);
	close(fd);

	int p[2];
	if (pipe(p) != 0)
		return 1;
	mmsg("sendmmsg on a pipe", p[1], "A", 0);
	errno = 0;
	r = sendto(p[1], payload, sizeof payload - 1, 0, (struct sockaddr *)&a, sizeof a);
	report("sendto on a pipe", r, errno, 0);
	return 0;
}
