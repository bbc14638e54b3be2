/* qosd protocol agent: the notification ring's writer (ring.h). One thread writes a ring (the
 * one that owns the connection); the daemon reads it. A slot's state word passes it between
 * them: FREE, the agent's to fill; FULL, the daemon's to read (it sets it FREE after);
 * CLOSED, the daemon stopped reading. No system call once mapped. */
#define _GNU_SOURCE
#include "ring.h"

#include "agent.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(struct qos_note) + 4 == QOS_RING_SLOT, "a record and its state word fill a slot");

int qos_ring_attach(struct qos_ring *r, int memfd, long slots)
{
	*r = (struct qos_ring){0};
	struct stat st;
	int ok = slots >= QOS_RING_MIN_SLOTS && slots <= QOS_RING_MAX_SLOTS && !(slots & (slots - 1)) &&
		 fstat(memfd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == slots * QOS_RING_SLOT;
	void *m = ok ? mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0) : MAP_FAILED;
	QOS_REAL(close, memfd);
	if (m == MAP_FAILED)
		return -1;
	r->mem = m;
	r->slots = (unsigned)slots;
	return 0;
}

int qos_ring_put(struct qos_ring *r, const struct qos_note *n)
{
	if (r->busy) { /* a signal handler interrupted a record being written */
		r->shed++;
		return 1;
	}
	r->busy = 1;
	__asm__ volatile("" ::: "memory");
	unsigned char *slot = r->mem + (size_t)r->head * QOS_RING_SLOT;
	uint32_t *state = (uint32_t *)slot;
	uint32_t s = __atomic_load_n(state, __ATOMIC_ACQUIRE);
	int ret = 0;
	if (s == QOS_SLOT_FREE) {
		struct qos_note rec = *n;
		rec.shed = r->shed;
		memcpy(slot + 4, &rec, sizeof rec);
		__atomic_store_n(state, QOS_SLOT_FULL, __ATOMIC_RELEASE);
		r->shed = 0;
		r->head = (r->head + 1) & (r->slots - 1);
	} else if (s == QOS_SLOT_FULL) {
		r->shed++;
		ret = 1;
	} else {
		ret = -1;
	}
	__asm__ volatile("" ::: "memory");
	r->busy = 0;
	return ret;
}

int qos_ring_caught_up(const struct qos_ring *r)
{
	unsigned last = (r->head + r->slots - 1) & (r->slots - 1);
	return __atomic_load_n((uint32_t *)(r->mem + (size_t)last * QOS_RING_SLOT), __ATOMIC_ACQUIRE) != QOS_SLOT_FULL;
}

void qos_ring_detach(struct qos_ring *r)
{
	if (r->mem)
		munmap(r->mem, (size_t)r->slots * QOS_RING_SLOT);
	*r = (struct qos_ring){0};
}
