/* Test program: every interposed socket call once, under an agent whose real functions could
 * not be resolved (build/test/libqosagent-unresolved.so, QOS_TEST_UNRESOLVED=all|some).
 *   unresolved
 * Prints one line per call, "name ret errno-name", and exits 0: the agent must fail a call
 * whose real function is missing with ENOSYS, never crash the program. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void show(const char *name, long r)
{
	printf("%s %ld %s\n", name, r, r < 0 ? strerrorname_np(errno) : "-");
	errno = 0;
}

int main(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in l = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	show("socket", fd);
	int tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	show("setsockopt", setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &one, sizeof one));
	show("bind", bind(fd, (struct sockaddr *)&l, sizeof l));
	show("sendto", sendto(fd, "x", 1, 0, (struct sockaddr *)&a, sizeof a));
	struct iovec iov = {.iov_base = "x", .iov_len = 1};
	struct msghdr m = {.msg_name = &a, .msg_namelen = sizeof a, .msg_iov = &iov, .msg_iovlen = 1};
	show("sendmsg", sendmsg(fd, &m, 0));
	struct mmsghdr mm = {.msg_hdr = m};
	show("sendmmsg", sendmmsg(fd, &mm, 1, 0));
	show("connect", connect(fd, (struct sockaddr *)&a, sizeof a));
	show("shutdown", shutdown(fd, SHUT_WR));
	show("listen", listen(tfd, 1));
	show("accept", accept(tfd, NULL, NULL));
	show("accept4", accept4(tfd, NULL, NULL, SOCK_NONBLOCK));
	show("dup2", dup2(1, 100));
	show("dup3", dup3(1, 101, 0));
	show("close", close(tfd));
	return 0;
}
