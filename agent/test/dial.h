/* Shared by the agent's test programs: one TCP connection to dst, closed at once;
 * returns the local port it used (to find its packets in a capture), or -1. */
#ifndef QOS_TEST_DIAL_H
#define QOS_TEST_DIAL_H
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

static int dial(struct sockaddr_in *dst)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)dst, sizeof *dst) != 0) return -1;
	struct sockaddr_in me;
	socklen_t l = sizeof me;
	getsockname(fd, (struct sockaddr *)&me, &l);
	close(fd);
	return ntohs(me.sin_port);
}
#endif
