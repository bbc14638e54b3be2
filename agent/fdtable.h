/* qosd protocol agent: what it knows about each descriptor, in a two-level table whose chunks
 * are allocated on first use; lookups take no lock, changes take the descriptor's stripe lock. */
#ifndef QOS_FDTABLE_H
#define QOS_FDTABLE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

enum {
	F_TRACKED = 1,  /* an AF_INET/AF_INET6 socket we follow */
	F_PENDING = 2,  /* its Socket message is not yet sent (it goes with the first control call) */
	F_REPORTED = 4, /* the daemon has heard of it */
	F_IGNORED = 8,  /* known not to be an inet socket */
	F_APP_TOS = 16, /* the application chose its own DS field */
	F_APP_PRIO = 32,
	F_CONNECTED = 64, /* a datagram socket with a default destination (connect) */
	F_DECIDED = 128, /* with F_PENDING: decided at socket() from the cache; its Socket goes out
			  * as a Cached notification (sock_gen) with the next message about it */
	F_FRESH = 256,   /* the daemon has heard only its Socket: the next call is a first call */
};

#define DC_SLOTS 8
struct dest {
	uint8_t used;
	uint8_t family;
	uint16_t port;
	uint8_t addr[16];
	int16_t tos;  /* the SendTo decision's; -1: the socket-level mark */
	int16_t prio; /* -1: the socket-level priority */
	uint8_t override; /* it says OVERRIDE: it replaces the application's own mark */
	int deny;
};

struct fdst {
	uint16_t flags;
	uint8_t family;
	uint8_t type;
	int16_t proto;
	int16_t base_tos, cur_tos;   /* socket-level mark, and what is set now (-1 none) */
	int16_t base_prio, cur_prio;
	uint8_t dc_next;
	struct dest *dc;             /* unconnected datagram destinations already decided */
	unsigned long long sock_gen; /* F_DECIDED: the generation its Socket was decided under */
};

#define QOS_FD_CHUNK 1024
#define QOS_FD_NCHUNKS 1024 /* descriptors up to 1,048,576; beyond that calls pass straight through */
extern struct fdst *_Atomic qos_fd_chunks[QOS_FD_NCHUNKS];
#define QOS_FD_NSTRIPES 64
extern pthread_mutex_t qos_fd_stripes[QOS_FD_NSTRIPES];

struct fdst *qos_fd_chunk_new(unsigned ci);

/* The state of fd (NULL if out of range, or not yet allocated and !create). Inline: every
 * interposed call looks a descriptor up, most of them to find it untracked. */
static inline struct fdst *fdst_get(int fd, int create)
{
	if (fd < 0 || (unsigned)fd >= QOS_FD_CHUNK * QOS_FD_NCHUNKS)
		return NULL;
	unsigned ci = (unsigned)fd / QOS_FD_CHUNK;
	struct fdst *c = qos_fd_chunks[ci];
	if (!c) {
		if (!create)
			return NULL;
		c = qos_fd_chunk_new(ci);
		if (!c)
			return NULL;
	}
	return &c[(unsigned)fd % QOS_FD_CHUNK];
}

/* The lock that guards fd's state. */
static inline pthread_mutex_t *stripe(int fd) { return &qos_fd_stripes[(unsigned)fd % QOS_FD_NSTRIPES]; }

/* Forgets everything about s (its destinations freed). Caller holds the stripe lock. */
void qos_fd_reset(struct fdst *s);
/* Starts following s as a new inet socket of that kind. Caller holds the stripe lock. */
void qos_fd_track(struct fdst *s, int family, int type, int proto, uint8_t flags);
/* The state of fd if it is an inet socket (learnt from the kernel once if not seen created). */
struct fdst *qos_fd_tracked(int fd);
/* Calls fn for every descriptor in [first, last] the table holds state for. */
void qos_fd_each(unsigned first, unsigned last, void (*fn)(int fd));

void qos_fd_init(void);
void qos_fd_atfork_prepare(void);
void qos_fd_atfork_parent(void);
void qos_fd_atfork_child(void);

#endif
