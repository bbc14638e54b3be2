/* For test and bench programs that speak to the daemon as the agent does (docs/protocol.md,
 * "Notification ring"): the reply to a Ring request with the ring's descriptor, and a record
 * written into the ring. Include after <stdint.h>, <sys/socket.h>, <sys/mman.h>, <stdlib.h>,
 * <string.h>, <unistd.h>. */
#ifndef QOS_TAKE_RING_H
#define QOS_TAKE_RING_H

/* The reply to Ring, with the ring's descriptor: the ring mapped (its slot count in *slots),
 * or NULL (none given); *lines counts the newlines read with it. */
static inline unsigned char *take_ring(int fd, long *slots, int *lines)
{
	char buf[256];
	union {
		char c[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec v = {buf, sizeof buf - 1};
	struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1, .msg_control = u.c, .msg_controllen = sizeof u.c};
	ssize_t r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	*lines = 0;
	*slots = 0;
	if (r <= 0)
		return NULL;
	buf[r] = '\0';
	for (ssize_t i = 0; i < r; i++)
		*lines += buf[i] == '\n';
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	if (!h || h->cmsg_type != SCM_RIGHTS || strncmp(buf, "RING ", 5) != 0)
		return NULL;
	int rfd;
	memcpy(&rfd, CMSG_DATA(h), sizeof rfd);
	*slots = atol(buf + 5);
	unsigned char *ring = *slots > 0 ? mmap(NULL, (size_t)*slots * 64, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0) : MAP_FAILED;
	close(rfd);
	return ring == MAP_FAILED ? NULL : ring;
}

/* A record of kind (4: Close) about descriptor fd in the next slot, as agent/ring.c writes one;
 * 1 written, 0 if that slot is still unread. */
static inline int ring_record(unsigned char *ring, long slots, long *next, int kind, int fd)
{
	unsigned char *slot = ring + (*next % slots) * 64;
	if (__atomic_load_n((uint32_t *)slot, __ATOMIC_ACQUIRE) != 0)
		return 0;
	memset(slot + 4, 0, 60);
	slot[4] = (unsigned char)kind;
	int32_t d = fd;
	memcpy(slot + 8, &d, 4);
	__atomic_store_n((uint32_t *)slot, 1, __ATOMIC_RELEASE);
	++*next;
	return 1;
}

#endif
