/* Bench helper: the floor for any design that asks a daemon. A bare C client and a bare C
 * server (forked) exchange one request line and one reply line over a Unix stream socket,
 * N times; no parsing, no policy. Prints {"ipc_rtt_ns_p50":..,"ipc_rtt_ns_p99":..}.
 * usage: ipc_rtt N */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Reads until a newline arrives; 0 ok, -1 closed. */
static int read_line(int fd)
{
	char buf[512];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0)
			return -1;
		if (memchr(buf, '\n', (size_t)r))
			return 0;
	}
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = argc == 2 ? atoi(argv[1]) : 0;
	if (n <= 0) {
		fprintf(stderr, "usage: %s N\n", argv[0]);
		return 2;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		static const char reply[] = "DSCP 18\n";
		while (read_line(sv[1]) == 0)
			if (write(sv[1], reply, sizeof reply - 1) != sizeof reply - 1)
				break;
		_exit(0);
	}
	close(sv[1]);
	/* The size of an agent's Connect request. */
	static const char req[] = "Connect 4242 0 {/usr/bin/curl -s http://192.0.2.10:8080/} 3 {2 192.0.2.10 8080} {} {}\n";
	long long *s = malloc(sizeof *s * (size_t)n);
	for (int i = -n / 10; i < n; i++) { /* the first tenth warms up */
		long long t0 = now_ns();
		if (write(sv[0], req, sizeof req - 1) != sizeof req - 1 || read_line(sv[0]) != 0)
			return 1;
		if (i >= 0)
			s[i] = now_ns() - t0;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	qsort(s, (size_t)n, sizeof *s, cmp);
	printf("{\"ipc_rtt_ns_p50\":%lld,\"ipc_rtt_ns_p99\":%lld}\n", s[n / 2], s[(long)n * 99 / 100]);
	return 0;
}
