/* Bench helper: THREADS agent-like clients, each with its own connection to the daemon,
 * ask as fast as they can for DURATION_MS: per iteration a pipelined Socket + Connect pair
 * (two decisions, one round trip, as the agent's connect()) and a Close notification. As
 * the agent does, each connection asks for a notification ring first and writes its Close
 * notifications there (a line when the ring is full, or when the daemon gives none).
 * Prints one JSON object: decisions, decisions_per_s, and the pair round trip p50/p99/max.
 * usage: daemon_load SOCKET THREADS DURATION_MS */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../test/take_ring.h"

#define MAX_SAMPLES (1 << 20)

static const char *path;
static long long duration_ns;
static _Atomic long long decisions, errors;
static long long *samples;
static _Atomic long nsamples;

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Reads until `want` newlines arrived; 0 ok, -1 closed or error reply. It waits for them as
 * the agent does (agent/wire.c, recv_line): a receive that does not block, then poll() for
 * POLLIN. (A thread blocked in read() instead is woken each time the daemon reads its request,
 * since freeing the request's bytes signals write space on the same wait queue; poll() for
 * POLLIN is not, and a program under the agent never blocks in read() on this socket.) */
static int read_lines(int fd, int want)
{
	char buf[4096];
	int bad = 0;
	while (want > 0) {
		ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, 10000) < 0 && errno != EINTR)
				return -1;
			continue;
		}
		if (r <= 0)
			return -1;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] == '\n')
				want--;
		if (memmem(buf, (size_t)r, "ERROR", 5))
			bad = 1;
	}
	return bad ? -1 : 0;
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(long)arg * 2654435761u + 1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strncpy(a.sun_path, path, sizeof a.sun_path - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		errors++;
		return NULL;
	}
	char msg[512];
	int pid = getpid();
	unsigned uid = getuid();
	int n = snprintf(msg, sizeof msg, "Ring %d %u {} 1\nStartup %d %u daemon_load 1\n", pid, uid, pid, uid);
	long slots = 0, next = 0;
	int got = 0;
	unsigned char *ring = NULL;
	if (write(fd, msg, (size_t)n) != n || ((ring = take_ring(fd, &slots, &got)), got < 2 && read_lines(fd, 2 - got) != 0)) {
		errors++;
		close(fd);
		return NULL;
	}
	long long end = now_ns() + duration_ns;
	for (int sock = 100;; sock = sock == 1000 ? 100 : sock + 1) {
		long long t0 = now_ns();
		if (t0 >= end)
			break;
		seed = seed * 1103515245u + 12345u;
		unsigned r = seed >> 8;
		/* Destinations spread over private networks and the whole port range, so that the
		 * policy's port index and network rules both come into play. */
		n = snprintf(msg, sizeof msg,
			     "Socket %d %u daemon_load 2 1 6 %d\n"
			     "Connect %d %u daemon_load %d {2 %u.%u.%u.%u %u} {} {}\n",
			     pid, uid, sock, pid, uid, sock, r & 1 ? 172 : 10, r & 1 ? 16 + (r >> 1) % 16 : (r >> 1) % 8,
			     (r >> 5) & 255, (r >> 13) & 255, 1000 + (seed >> 3) % 64000);
		if (write(fd, msg, (size_t)n) != n || read_lines(fd, 2) != 0) {
			errors++;
			break;
		}
		long long t1 = now_ns();
		decisions += 2;
		long i = nsamples++;
		if (i < MAX_SAMPLES)
			samples[i] = t1 - t0;
		if (ring && ring_record(ring, slots, &next, 4 /* Close */, sock))
			continue;
		n = snprintf(msg, sizeof msg, "Close %d %u daemon_load %d\n", pid, uid, sock);
		if (write(fd, msg, (size_t)n) != n) {
			errors++;
			break;
		}
	}
	close(fd);
	if (ring)
		munmap(ring, (size_t)slots * 64);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s SOCKET THREADS DURATION_MS\n", argv[0]);
		return 2;
	}
	path = argv[1];
	int nt = atoi(argv[2]);
	duration_ns = atoll(argv[3]) * 1000000LL;
	if (nt <= 0 || duration_ns <= 0)
		return 2;
	samples = malloc(sizeof *samples * MAX_SAMPLES);
	pthread_t *t = calloc((size_t)nt, sizeof *t);
	long long t0 = now_ns();
	for (int i = 0; i < nt; i++)
		pthread_create(&t[i], NULL, worker, (void *)(long)i);
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
	long long el = now_ns() - t0;
	long ns = nsamples < MAX_SAMPLES ? nsamples : MAX_SAMPLES;
	qsort(samples, (size_t)ns, sizeof *samples, cmp);
	printf("{\"threads\":%d,\"elapsed_ns\":%lld,\"decisions\":%lld,\"errors\":%lld,"
	       "\"decisions_per_s\":%.0f,\"pair_rtt_ns_p50\":%lld,\"pair_rtt_ns_p99\":%lld,"
	       "\"pair_rtt_ns_max\":%lld}\n",
	       nt, el, (long long)decisions, (long long)errors, decisions * 1e9 / (double)el,
	       ns ? samples[ns / 2] : 0, ns ? samples[ns * 99 / 100] : 0, ns ? samples[ns - 1] : 0);
	return errors ? 1 : 0;
}
