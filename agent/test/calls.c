/* Test program: one intercepted call each, as a plain program would make them.
 *   calls serve PORT MSG          bind [::]:PORT (dual stack), listen, accept one client,
 *                                 write MSG, close; prints "listening" once listening
 *   calls mmsg HOST PORT1 PORT2   one unconnected UDP socket, one sendmmsg() of four
 *                                 datagrams: two to PORT1, then two to PORT2 (partial
 *                                 sends are resumed, as a careful program does)
 *   calls tos HOST PORT TOS       TCP: setsockopt(IP_TOS, TOS) itself, connect, send "x"
 * Exit status 0 on success. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int serve(int port, const char *msg)
{
	int l = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((unsigned short)port), .sin6_addr = in6addr_any};
	if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 8) != 0) {
		perror("serve");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	int c = accept(l, NULL, NULL);
	if (c < 0) {
		perror("accept");
		return 1;
	}
	ssize_t n = write(c, msg, strlen(msg));
	close(c);
	close(l);
	return n == (ssize_t)strlen(msg) ? 0 : 1;
}

static int mmsg(const char *host, int p1, int p2)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in d[2] = {{.sin_family = AF_INET, .sin_port = htons((unsigned short)p1)},
				   {.sin_family = AF_INET, .sin_port = htons((unsigned short)p2)}};
	if (inet_pton(AF_INET, host, &d[0].sin_addr) != 1)
		return 2;
	d[1].sin_addr = d[0].sin_addr;
	char payload[4][16];
	struct iovec iov[4];
	struct mmsghdr v[4];
	memset(v, 0, sizeof v);
	for (int i = 0; i < 4; i++) {
		snprintf(payload[i], sizeof payload[i], "datagram %d", i);
		iov[i] = (struct iovec){payload[i], strlen(payload[i])};
		v[i].msg_hdr.msg_name = &d[i / 2];
		v[i].msg_hdr.msg_namelen = sizeof d[0];
		v[i].msg_hdr.msg_iov = &iov[i];
		v[i].msg_hdr.msg_iovlen = 1;
	}
	for (unsigned sent = 0; sent < 4;) {
		int r = sendmmsg(fd, v + sent, 4 - sent, 0);
		if (r <= 0) {
			perror("sendmmsg");
			return 1;
		}
		sent += (unsigned)r;
	}
	close(fd);
	return 0;
}

static int tos(const char *host, int port, int value)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return 2;
	if (setsockopt(fd, IPPROTO_IP, IP_TOS, &value, sizeof value) != 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		perror("tos");
		return 1;
	}
	ssize_t n = write(fd, "x", 1);
	close(fd);
	return n == 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "serve"))
		return serve(atoi(argv[2]), argv[3]);
	if (argc == 5 && !strcmp(argv[1], "mmsg"))
		return mmsg(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "tos"))
		return tos(argv[2], atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: %s serve PORT MSG | mmsg HOST PORT1 PORT2 | tos HOST PORT TOS\n", argv[0]);
	return 2;
}
