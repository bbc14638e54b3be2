/* Test program: a client of the agent socket that asks for a notification ring itself and
 * writes into it what it is told (a hostile or broken agent):
 *   ring_client SOCKET garbage N   N records of an unknown kind
 *   ring_client SOCKET close FIRST LAST
 *                                  Close records for descriptors FIRST..LAST (not its own)
 * Prints "ring N" once mapped, then "written K". With garbage it then waits until the daemon
 * closes the connection (at most 30 s) and prints "closed" (or "open"); with close it exits,
 * closing its connection (the daemon reads the ring one last time then). */
#define _GNU_SOURCE
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "take_ring.h"

int main(int argc, char **argv)
{
	if (argc < 4)
		return fprintf(stderr, "usage: ring_client SOCKET garbage N | close FIRST LAST\n"), 2;
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0)
		return perror("connect"), 1;
	char req[128];
	int n = snprintf(req, sizeof req, "Ring %d %d ring_client 1\n", (int)getpid(), (int)getuid());
	if (write(s, req, (size_t)n) != n)
		return perror("write"), 1;
	long slots;
	int lines;
	unsigned char *ring = take_ring(s, &slots, &lines);
	if (!ring)
		return fprintf(stderr, "no ring\n"), 1;
	printf("ring %ld\n", slots);
	long written = 0;
	int garbage = !strcmp(argv[2], "garbage");
	long first = garbage ? 0 : atol(argv[3]), last = garbage ? atol(argv[3]) - 1 : atol(argv[4]);
	for (long i = first; i <= last && written < slots; i++)
		if (!ring_record(ring, slots, &written, garbage ? 99 : 4 /* an unknown kind, or Close */, (int)i))
			break;
	printf("written %ld\n", written);
	fflush(stdout);
	if (!garbage)
		return 0;
	struct pollfd p = {.fd = s, .events = POLLIN};
	char sink[256];
	for (int t = 0; t < 300; t++) {
		if (poll(&p, 1, 100) > 0 && read(s, sink, sizeof sink) <= 0) {
			printf("closed\n");
			return 0;
		}
	}
	printf("open\n");
	return 0;
}
