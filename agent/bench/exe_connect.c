/* Bench helper of `qos bench ebpf`: connect+close in a loop, as a static program (no agent can
 * reach it: only the cgroup eBPF programs decide its sockets, by its executable file).
 *   exe_connect ADDRESS PORT N   N timed socket+connect+close to ADDRESS:PORT (IPv4) after N/10
 *                                untimed warm-ups; prints {"elapsed_ns":..,"connects":N,
 *                                "failed":..,"tos":[FIRST,LAST]}, FIRST and LAST the IP_TOS
 *                                of an untimed connect before and after the loop (getsockopt:
 *                                what a cgroup program set on the socket, 0 if nothing did)
 * Each socket is closed with SO_LINGER 0 (a reset, no TIME_WAIT): tens of thousands of
 * connects from one namespace would otherwise run out of ports. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static const struct linger reset = {.l_onoff = 1, .l_linger = 0};

/* One connect+close; the socket's IP_TOS after connect in *tos if asked. 0 on success. */
static int once(const struct sockaddr_in *a, int *tos)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	int r = connect(fd, (const struct sockaddr *)a, sizeof *a);
	if (r == 0 && tos) {
		socklen_t len = sizeof *tos;
		if (getsockopt(fd, IPPROTO_IP, IP_TOS, tos, &len) != 0)
			r = -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	long n = argc == 4 ? atol(argv[3]) : 0;
	if (n <= 0 || inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
		fprintf(stderr, "usage: %s ADDRESS PORT N\n", argv[0]);
		return 2;
	}
	a.sin_port = htons((unsigned short)atoi(argv[2]));
	int first = -1, last = -1;
	if (once(&a, &first) != 0) {
		perror("connect");
		return 1;
	}
	for (long i = 0; i < n / 10; i++)
		once(&a, NULL);
	long failed = 0;
	long long t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (once(&a, NULL) != 0)
			failed++;
	long long elapsed = now_ns() - t0;
	if (once(&a, &last) != 0)
		failed++;
	printf("{\"elapsed_ns\":%lld,\"connects\":%ld,\"failed\":%ld,\"tos\":[%d,%d]}\n", elapsed, n, failed, first, last);
	return failed ? 1 : 0;
}
