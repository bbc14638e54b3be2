/* Test program: an application that chooses its own DS field and priority, as a plain program
 * does, one step per argument, printing every call's result so that runs with and without the
 * agent can be compared line by line.
 *   own_mark HOST4 HOST6 STEP...
 * Steps (one socket at a time; a socket step closes the previous one):
 *   udp4 udp6 tcp4 tcp6     a new socket
 *   tos=V tos1=V            setsockopt(IP_TOS) with an int, or with one byte (Linux takes both)
 *   tclass=V prio=V         setsockopt(IPV6_TCLASS), setsockopt(SO_PRIORITY)
 *   connect=F:PORT          connect to HOST4 (F 4) or HOST6 (F 6)
 *   sendto=F:PORT sendmsg=F:PORT sendmmsg=F:PORT   one datagram (sendmmsg: two) to it
 *   send                    send() on the connected socket
 *   get                     print IP_TOS, IPV6_TCLASS (inet6) and SO_PRIORITY as the kernel has them
 * Each step prints "STEP = RESULT errno E" (errno is set to 0 before each call). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *host4, *host6;
static int fd = -1, family;

static socklen_t dest(const char *spec, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	int port = atoi(spec + 2);
	if (spec[0] == '6') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((unsigned short)port);
		inet_pton(AF_INET6, host6, &a->sin6_addr);
		return sizeof *a;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((unsigned short)port);
	inet_pton(AF_INET, host4, &a->sin_addr);
	return sizeof *a;
}

static int opt(int level, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	return getsockopt(fd, level, name, &v, &l) == 0 ? v : -1;
}

static long step(const char *s)
{
	const char *eq = strchr(s, '=');
	const char *arg = eq ? eq + 1 : "";
	size_t n = eq ? (size_t)(eq - s) : strlen(s);
	int v = atoi(arg);
#define is(name) (n == strlen(name) && !strncmp(s, name, n))
	struct sockaddr_storage ss;
	char payload[] = "own mark";
	struct iovec iov = {payload, sizeof payload - 1};
	if (!strcmp(s, "udp4") || !strcmp(s, "udp6") || !strcmp(s, "tcp4") || !strcmp(s, "tcp6")) {
		if (fd >= 0)
			close(fd);
		family = s[3] == '6' ? AF_INET6 : AF_INET;
		fd = socket(family, s[0] == 'u' ? SOCK_DGRAM : SOCK_STREAM, 0);
		return fd >= 0 ? 0 : -1; /* not the number: the agent's own descriptor may shift it */
	}
	if (is("tos")) return setsockopt(fd, IPPROTO_IP, IP_TOS, &v, sizeof v);
	if (is("tos1")) {
		unsigned char b = (unsigned char)v;
		return setsockopt(fd, IPPROTO_IP, IP_TOS, &b, 1);
	}
	if (is("tclass")) return setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &v, sizeof v);
	if (is("prio")) return setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &v, sizeof v);
	if (is("connect")) {
		socklen_t l = dest(arg, &ss);
		return connect(fd, (struct sockaddr *)&ss, l);
	}
	if (is("sendto")) {
		socklen_t l = dest(arg, &ss);
		return sendto(fd, payload, sizeof payload - 1, 0, (struct sockaddr *)&ss, l);
	}
	if (is("sendmsg")) {
		struct msghdr m = {.msg_name = &ss, .msg_namelen = dest(arg, &ss), .msg_iov = &iov, .msg_iovlen = 1};
		return sendmsg(fd, &m, 0);
	}
	if (is("sendmmsg")) {
		struct mmsghdr v2[2];
		memset(v2, 0, sizeof v2);
		socklen_t l = dest(arg, &ss);
		for (int i = 0; i < 2; i++)
			v2[i].msg_hdr = (struct msghdr){.msg_name = &ss, .msg_namelen = l, .msg_iov = &iov, .msg_iovlen = 1};
		return sendmmsg(fd, v2, 2, 0);
	}
	if (is("send")) return send(fd, payload, sizeof payload - 1, 0);
	if (is("get")) {
		printf("get IP_TOS %d", opt(IPPROTO_IP, IP_TOS));
		if (family == AF_INET6)
			printf(" IPV6_TCLASS %d", opt(IPPROTO_IPV6, IPV6_TCLASS));
		printf(" SO_PRIORITY %d\n", opt(SOL_SOCKET, SO_PRIORITY));
		return 0;
	}
	fprintf(stderr, "unknown step %s\n", s);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s HOST4 HOST6 STEP...\n", argv[0]);
		return 2;
	}
	host4 = argv[1];
	host6 = argv[2];
	for (int i = 3; i < argc; i++) {
		errno = 0;
		long r = step(argv[i]);
		int e = errno;
		if (strcmp(argv[i], "get"))
			printf("%s = %ld errno %d\n", argv[i], r, e);
	}
	if (fd >= 0)
		close(fd);
	return 0;
}
