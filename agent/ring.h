/* qosd protocol agent: a connection's notification ring (docs/protocol.md, src/protocol/note-ring.ts):
 * shared memory the daemon gives a connection with its reply to Ring, in which the thread that
 * owns the connection writes its notifications (a call decided from the cache, Close,
 * Shutdown) as 64-byte records instead of sending lines: the cached path makes no system call
 * to the daemon. The daemon reads the records when it polls and before any line of the
 * process, so they keep their order with the requests. */
#ifndef QOS_RING_H
#define QOS_RING_H

#include <stddef.h>
#include <stdint.h>

#define QOS_RING_LAYOUT 1 /* the record layout below, named in the Ring request */
#define QOS_RING_SLOT 64
#define QOS_RING_MIN_SLOTS 64
#define QOS_RING_MAX_SLOTS 65536
#define QOS_ALIVE_CHECK_MS 50 /* records unread this long: the thread looks at its connection */

enum { QOS_SLOT_FREE = 0, QOS_SLOT_FULL = 1, QOS_SLOT_CLOSED = 2 };
enum { QOS_NOTE_SOCKET = 1, QOS_NOTE_CONNECT = 2, QOS_NOTE_SENDTO = 3, QOS_NOTE_CLOSE = 4, QOS_NOTE_SHUTDOWN = 5 };
/* A Connect or SendTo record that stands for the socket's pending Socket too (decided from the
 * cache under the same generation; family, type and protocol as in a Socket record): a cached
 * connect is two records, not three. */
#define QOS_NOTE_WITH_SOCKET 1

/* One record, as the slot holds it after its state word (src/protocol/note-ring.ts has the same). */
struct qos_note {
	uint8_t kind;    /* QOS_NOTE_* */
	uint8_t family;  /* Socket: the socket's family, type */
	uint8_t type;
	uint8_t afamily; /* Connect, SendTo: the address's family */
	int32_t fd;
	int32_t arg;     /* Socket: protocol; Shutdown: how */
	uint16_t port;   /* host order */
	uint16_t flags;  /* QOS_NOTE_WITH_SOCKET */
	uint32_t shed;   /* records dropped (ring full) just before this one: set by qos_ring_put */
	uint32_t gen_lo; /* Socket, Connect, SendTo: the generation of the cached answer */
	uint32_t gen_hi;
	uint8_t addr[16]; /* network order; IPv4 in the first 4 */
	uint8_t reserved[16];
};

struct qos_ring {
	unsigned char *mem; /* NULL: no ring */
	unsigned slots;
	unsigned head;      /* the next slot to write */
	uint32_t shed;      /* records dropped since the last one written */
	volatile int busy;  /* a record is being written: one from a signal handler is dropped */
};

/* Maps the ring the daemon passed (memfd, closed here either way) if it has the size of slots
 * slots; 0, or -1 (then r has no ring). */
int qos_ring_attach(struct qos_ring *r, int memfd, long slots);
/* Writes n into the next slot: 0 written; 1 the ring is full (n dropped and counted); -1 the
 * daemon let go of the ring (closed: nothing more will be read from it). */
int qos_ring_put(struct qos_ring *r, const struct qos_note *n);
/* Whether the daemon has read the last record written (or none was written yet). */
int qos_ring_caught_up(const struct qos_ring *r);
/* Unmaps the ring (only its own thread, or a forked child, may). */
void qos_ring_detach(struct qos_ring *r);

#endif
