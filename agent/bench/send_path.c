/* Bench helper: the data path. N small send()s on a connected UDP socket to a socket of our
 * own on loopback (never read: the kernel drops what does not fit, send() still succeeds).
 * Run with and without the agent: it must not touch send(). Prints
 * {"sends":N,"ns":..,"cpu_ns":..,"sends_per_s":..} (cpu_ns: this process's user + system time,
 * which a noisy neighbour on the VM does not inflate as it does wall time).
 * usage: send_path N */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long cpu_ns(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000LL + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000LL;
}

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc == 2 ? atol(argv[1]) : 0;
	if (n <= 0) {
		fprintf(stderr, "usage: %s N\n", argv[0]);
		return 2;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int rx = socket(AF_INET, SOCK_DGRAM, 0);
	int tx = socket(AF_INET, SOCK_DGRAM, 0);
	if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(rx, (struct sockaddr *)&a, &al) != 0 || connect(tx, (struct sockaddr *)&a, sizeof a) != 0) {
		perror("send_path");
		return 1;
	}
	char msg[32] = "qosd send path benchmark";
	for (long i = 0; i < n / 10; i++) /* warm up */
		send(tx, msg, sizeof msg, 0);
	long long t0 = now_ns(), c0 = cpu_ns();
	long failed = 0;
	for (long i = 0; i < n; i++)
		if (send(tx, msg, sizeof msg, 0) != (ssize_t)sizeof msg)
			failed++;
	long long el = now_ns() - t0, cpu = cpu_ns() - c0;
	printf("{\"sends\":%ld,\"failed\":%ld,\"ns\":%lld,\"cpu_ns\":%lld,\"sends_per_s\":%.0f}\n", n, failed, el, cpu,
	       n * 1e9 / (double)el);
	return failed ? 1 : 0;
}
