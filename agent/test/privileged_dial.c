/* Test program: one TCP connect from a program the kernel runs in secure mode (AT_SECURE:
 * a setuid/setgid copy of it, or one with file capabilities), where the agent arrives through
 * /etc/ld.so.preload only.
 *   privileged_dial HOST PORT
 * Prints "secure=S euid=E agent=A port=P": S the AT_SECURE flag, A 1 if the agent is loaded
 * in this process, P the connection's local port (to find its packets in a capture); or, if
 * connect failed, "... connect: <error>" and exits 1. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "dial.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
		return 2;
	}
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1)
		return 2;
	/* qos_ask is one of the agent's exported functions: present only if it was preloaded */
	printf("secure=%lu euid=%d agent=%d ", getauxval(AT_SECURE), (int)geteuid(),
	       dlsym(RTLD_DEFAULT, "qos_ask") != NULL);
	int port = dial(&dst);
	if (port < 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	printf("port=%d\n", port);
	return 0;
}
