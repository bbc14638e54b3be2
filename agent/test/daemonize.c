/* Test program: connects, then daemonises the hard way (fork, setsid, closes every
 * descriptor by MODE: "close" loop, raw "syscall" close, or "close_range"), reopens
 * /dev/null on 0-2 and a file over the agent's old descriptor numbers, connects again
 * and writes the local ports of both connections to OUTFILE. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dial.h"

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s HOST PORT MODE OUTFILE\n", argv[0]);
		return 2;
	}
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
	inet_pton(AF_INET, argv[1], &dst.sin_addr);
	const char *mode = argv[3], *out = argv[4];
	int before = dial(&dst);
	pid_t p = fork();
	if (p < 0) return 1;
	if (p > 0) {
		int st;
		waitpid(p, &st, 0);
		return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	setsid();
	if (!strcmp(mode, "close")) {
		for (int fd = 0; fd < 1024; fd++) close(fd);
	} else if (!strcmp(mode, "syscall")) {
		for (int fd = 0; fd < 1024; fd++) syscall(SYS_close, fd);
	} else {
		close_range(0, ~0u, 0);
	}
	open("/dev/null", O_RDONLY);
	open("/dev/null", O_WRONLY);
	open("/dev/null", O_WRONLY);
	/* Take the low numbers the agent may have used, with files of our own. */
	char junkpath[4096];
	snprintf(junkpath, sizeof junkpath, "%s.junk", out);
	int junk[8];
	for (int i = 0; i < 8; i++) junk[i] = open(junkpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
	int after = dial(&dst);
	/* Our files must still be ours: nothing of the agent's was written into them. */
	off_t size = lseek(junk[0], 0, SEEK_END);
	if (size != 0) after = -2;
	FILE *f = fopen(out, "w");
	if (!f) return 1;
	fprintf(f, "%d %d\n", before, after);
	fclose(f);
	return after > 0 ? 0 : 1;
}
