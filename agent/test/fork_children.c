/* Test program: connects once, then forks K children; each rewrites its command line to
 * "forkchild-I" (as pre-forking servers do), connects, and prints "child I port P". */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dial.h"

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s HOST PORT K PADDING\n", argv[0]);
		return 2;
	}
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
	inet_pton(AF_INET, argv[1], &dst.sin_addr);
	int k = atoi(argv[3]);
	char *area = argv[0];
	size_t span = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) - area);
	printf("parent port %d\n", dial(&dst));
	fflush(stdout);
	for (int i = 1; i <= k; i++) {
		pid_t p = fork();
		if (p == 0) {
			memset(area, 0, span);
			snprintf(area, span, "forkchild-%d", i);
			int port = dial(&dst);
			printf("child %d port %d\n", i, port);
			fflush(stdout);
			_exit(port > 0 ? 0 : 1);
		}
	}
	int bad = 0, st;
	while (wait(&st) > 0) bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	return bad;
}
