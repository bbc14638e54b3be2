/* Test program: one TCP connect from a program the kernel runs in secure mode (AT_SECURE:
 * a setuid/setgid copy of it, or one with file capabilities), where the agent arrives through
 * /etc/ld.so.preload only.
 *   privileged_dial HOST PORT
 * Prints "secure=S euid=E agent=A port=P": S the AT_SECURE flag, A 1 if the agent is loaded
 * in this process, P the connection's local port (to find its packets in a capture); or, if
 * connect failed, "... connect: <error>" and exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "dial.h"

/* Whether libqosagent.so is among the loaded objects: the agent exports only the libc
 * functions it interposes, so it is found by name, not by one of its symbols. */
static int agent_object(struct dl_phdr_info *info, size_t size, void *data)
{
	return info->dlpi_name && strstr(info->dlpi_name, "libqosagent") != NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
		return 2;
	}
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1)
		return 2;
	printf("secure=%lu euid=%d agent=%d ", getauxval(AT_SECURE), (int)geteuid(),
	       dl_iterate_phdr(agent_object, NULL));
	int port = dial(&dst);
	if (port < 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	printf("port=%d\n", port);
	return 0;
}
