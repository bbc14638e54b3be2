/* Test program: a root process that connects, drops to another user and connects again, as
 * a server does after binding its privileged port.
 *   drop_privileges libc|raw HOST PORT1 PORT2 UID GID
 * libc: the main thread and a second thread each connect to PORT1 twice as root (the second
 *   time the agent answers from its cache); the main thread then sets every gid and uid to
 *   GID/UID with setresgid, setgroups and setresuid (glibc changes every thread's), and both
 *   threads connect to PORT1 (cached as root before) and then to PORT2.
 * raw: the same in the main thread only, with the raw system calls instead of libc's (they
 *   change only the calling thread); after the drop it connects to PORT2, then PORT1.
 * Prints "<root|user> <main|thread> <port>" per connect, the connection's local port, and
 * exits 0 if every connect succeeded. */
#define _GNU_SOURCE
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "dial.h"

static struct sockaddr_in dst1, dst2;
static pthread_barrier_t dropped, dialled;
static _Atomic int failed;

static void report(const char *who, const char *thread, struct sockaddr_in *dst)
{
	int port = dial(dst);
	if (port < 0)
		failed = 1;
	printf("%s %s %d\n", who, thread, port);
	fflush(stdout);
}

static void *second(void *arg)
{
	(void)arg;
	report("root", "thread", &dst1);
	report("root", "thread", &dst1);
	pthread_barrier_wait(&dialled);
	pthread_barrier_wait(&dropped);
	report("user", "thread", &dst1);
	report("user", "thread", &dst2);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 7 || (strcmp(argv[1], "libc") && strcmp(argv[1], "raw"))) {
		fprintf(stderr, "usage: %s libc|raw HOST PORT1 PORT2 UID GID\n", argv[0]);
		return 2;
	}
	int raw = !strcmp(argv[1], "raw");
	dst1.sin_family = dst2.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[2], &dst1.sin_addr) != 1)
		return 2;
	dst2.sin_addr = dst1.sin_addr;
	dst1.sin_port = htons((unsigned short)atoi(argv[3]));
	dst2.sin_port = htons((unsigned short)atoi(argv[4]));
	uid_t uid = (uid_t)atol(argv[5]);
	gid_t gid = (gid_t)atol(argv[6]);
	pthread_t t;
	pthread_barrier_init(&dropped, NULL, 2);
	pthread_barrier_init(&dialled, NULL, 2);
	if (!raw)
		pthread_create(&t, NULL, second, NULL);
	report("root", "main", &dst1);
	report("root", "main", &dst1);
	if (!raw)
		pthread_barrier_wait(&dialled);
	int r = raw ? (int)(syscall(SYS_setresgid, gid, gid, gid) | syscall(SYS_setgroups, 0, NULL) |
			    syscall(SYS_setresuid, uid, uid, uid))
		    : setresgid(gid, gid, gid) | setgroups(0, NULL) | setresuid(uid, uid, uid);
	if (r != 0 || getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
		perror("dropping privileges");
		return 1;
	}
	if (raw) {
		report("user", "main", &dst2);
		report("user", "main", &dst1);
		return failed;
	}
	pthread_barrier_wait(&dropped);
	report("user", "main", &dst1);
	report("user", "main", &dst2);
	pthread_join(t, NULL);
	return failed;
}
