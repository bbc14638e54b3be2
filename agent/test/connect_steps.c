/* Test program: connects to HOST:PORT as told on stdin, one command a line, and answers each
 * with "done" once it is carried out (so a test can act on the daemon between steps):
 *   c K   K times socket, connect, close
 *   o K   K connections opened and kept
 *   x     every kept connection closed
 * Exits 0 at end of input if every connect succeeded, else 1. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_KEPT 4096

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: connect_steps HOST PORT (commands on stdin)\n");
		return 2;
	}
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1)
		return fprintf(stderr, "bad address %s\n", argv[1]), 2;
	static int kept[MAX_KEPT];
	int nkept = 0, failed = 0;
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		char cmd = line[0];
		int k = atoi(line + 1);
		for (int i = 0; (cmd == 'c' || cmd == 'o') && i < k; i++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
				failed++;
				if (fd >= 0)
					close(fd);
				continue;
			}
			if (cmd == 'o' && nkept < MAX_KEPT)
				kept[nkept++] = fd;
			else
				close(fd);
		}
		if (cmd == 'x')
			while (nkept > 0)
				close(kept[--nkept]);
		printf("done %d\n", failed);
		fflush(stdout);
	}
	return failed ? 1 : 0;
}
