/* Bench helper: the least an LD_PRELOAD QoS shim can do, the yardstick for the agent's cached
 * path (issue 18). connect() on an IPv4 socket sets IP_TOS to AF21 and calls the real connect;
 * nothing else. Built as build/bench/libtosshim.so. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *a, socklen_t len)
{
	static connect_fn real;
	if (!real)
		real = (connect_fn)dlsym(RTLD_NEXT, "connect");
	int tos = 18 << 2; /* DSCP AF21, as the benchmark's policy marks */
	if (a && a->sa_family == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
	return real(fd, a, len);
}
