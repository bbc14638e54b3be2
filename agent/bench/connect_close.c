/* Bench helper: the cost of socket() + connect() + close() on loopback TCP, the calls the
 * agent intercepts for every outgoing connection. Run it with and without the agent.
 *   connect_close serve PORT     accept and close forever (run without the agent)
 *   connect_close run PORT N     N timed connects to 127.0.0.1:PORT after N/10 warm-ups;
 *                                prints {"ns_p50":..,"ns_p99":..,"failed":..}
 * The client closes with SO_LINGER 0 (untimed), so N connects leave no TIME_WAIT behind. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static int serve(struct sockaddr_in *a)
{
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(l, (struct sockaddr *)a, sizeof *a) != 0 || listen(l, 4096) != 0) {
		perror("serve");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c >= 0)
			close(c);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (argc == 3 && strcmp(argv[1], "serve") == 0) {
		a.sin_port = htons((unsigned short)atoi(argv[2]));
		return serve(&a);
	}
	int n = argc == 4 && strcmp(argv[1], "run") == 0 ? atoi(argv[3]) : 0;
	if (n <= 0) {
		fprintf(stderr, "usage: %s serve PORT | run PORT N\n", argv[0]);
		return 2;
	}
	a.sin_port = htons((unsigned short)atoi(argv[2]));
	long long *s = malloc(sizeof *s * (size_t)n);
	int failed = 0;
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	for (int i = -n / 10; i < n; i++) {
		long long t0 = now_ns();
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
		long long t1 = now_ns();
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		long long t2 = now_ns();
		if (fd >= 0)
			close(fd);
		long long t3 = now_ns();
		if (!ok)
			failed++;
		if (i >= 0)
			s[i] = (t1 - t0) + (t3 - t2);
	}
	qsort(s, (size_t)n, sizeof *s, cmp);
	printf("{\"ns_p50\":%lld,\"ns_p99\":%lld,\"failed\":%d}\n", s[n / 2], s[(long)n * 99 / 100], failed);
	return failed ? 1 : 0;
}
