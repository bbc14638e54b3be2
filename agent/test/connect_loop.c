/* Test program: THREADS threads each connect to HOST:PORT N times (socket, connect, close).
 * Prints "ok=X fail=Y" and exits 0 only if every connect succeeded. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in dst;
static int per_thread;
static _Atomic int ok, fail;

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < per_thread; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) { fail++; continue; }
		if (connect(fd, (struct sockaddr *)&dst, sizeof dst) == 0) ok++;
		else fail++;
		close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s HOST PORT N THREADS\n", argv[0]);
		return 2;
	}
	dst.sin_family = AF_INET;
	dst.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) return 2;
	per_thread = atoi(argv[3]);
	int nt = atoi(argv[4]);
	pthread_t *t = calloc((size_t)nt, sizeof *t);
	for (int i = 0; i < nt; i++) pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < nt; i++) pthread_join(t[i], NULL);
	printf("ok=%d fail=%d\n", ok, fail);
	return fail ? 1 : 0;
}
