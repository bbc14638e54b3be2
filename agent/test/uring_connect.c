/* Test program: a TCP socket made with libc's socket() but connected behind libc's back, as
 * io_uring programs and some runtimes do; the agent sees the socket() and the close(), never
 * the connect.
 *   uring_connect uring|syscall HOST PORT
 * uring: IORING_OP_CONNECT through raw io_uring_setup/io_uring_enter (no liburing);
 * syscall: syscall(SYS_connect). Then write()s "x" and closes. Prints the connect's result. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One IORING_OP_CONNECT on a fresh ring; returns its result (0 or -errno). */
static int uring_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int ring = (int)syscall(SYS_io_uring_setup, 4, &p);
	if (ring < 0) {
		int e = errno;
		fprintf(stderr, "io_uring_setup: %s (io_uring off: sysctl kernel.io_uring_disabled, or a seccomp filter)\n", strerror(e));
		return -e;
	}
	size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	char *cq = (p.features & IORING_FEAT_SINGLE_MMAP) ? sq
		   : mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof *sqes, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		return -ENOMEM;
	if ((p.features & IORING_FEAT_SINGLE_MMAP) && cq_size > sq_size) {
		munmap(sq, sq_size);
		sq = cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
		if (sq == MAP_FAILED)
			return -ENOMEM;
	}
	_Atomic unsigned *sq_tail = (void *)(sq + p.sq_off.tail);
	unsigned *sq_mask = (void *)(sq + p.sq_off.ring_mask);
	unsigned *sq_array = (void *)(sq + p.sq_off.array);
	_Atomic unsigned *cq_head = (void *)(cq + p.cq_off.head);
	_Atomic unsigned *cq_tail = (void *)(cq + p.cq_off.tail);
	unsigned *cq_mask = (void *)(cq + p.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (void *)(cq + p.cq_off.cqes);

	unsigned tail = atomic_load(sq_tail), idx = tail & *sq_mask;
	struct io_uring_sqe *e = &sqes[idx];
	memset(e, 0, sizeof *e);
	e->opcode = IORING_OP_CONNECT;
	e->fd = fd;
	e->addr = (unsigned long)sa;
	e->off = len; /* addr2: the address length */
	sq_array[idx] = idx;
	atomic_store(sq_tail, tail + 1);
	if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -errno;
	unsigned head = atomic_load(cq_head);
	if (head == atomic_load(cq_tail))
		return -EIO;
	int res = cqes[head & *cq_mask].res;
	atomic_store(cq_head, head + 1);
	close(ring);
	return res;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "uring") && strcmp(argv[1], "syscall"))) {
		fprintf(stderr, "usage: %s uring|syscall HOST PORT\n", argv[0]);
		return 2;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3]))};
	if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1)
		return 2;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	int r;
	if (!strcmp(argv[1], "uring")) {
		r = uring_connect(fd, (struct sockaddr *)&a, sizeof a);
	} else {
		r = (int)syscall(SYS_connect, fd, (struct sockaddr *)&a, sizeof a);
		if (r < 0)
			r = -errno;
	}
	printf("connect = %d\n", r);
	if (r == 0 && write(fd, "x", 1) != 1)
		printf("write failed: %s\n", strerror(errno));
	close(fd);
	return r == 0 ? 0 : 1;
}
