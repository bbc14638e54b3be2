/* qosd protocol agent: the decision cache, per thread, as the daemon sees one connection per
 * thread. A first call on a fresh socket (Socket still pending) depends only on who asks, the
 * socket's kind and the address: when the daemon says so (CACHE gen), the same call on
 * another fresh socket reuses the outcome while the daemon's published generation is
 * unchanged, and the daemon is only told (Cached), not asked. */
#ifndef QOS_CACHE_H
#define QOS_CACHE_H

#include <stdint.h>
#include <sys/socket.h>

#include "fdtable.h"
#include "msg.h"

#define CACHE_SLOTS 64
struct ckey {
	char call; /* first letter of the call: 'C'onnect, 'B'ind, 'S'endTo; 'O' a Socket alone */
	uint8_t first; /* the Socket went with the call (its answer holds the Socket's decision) */
	uint8_t family, type, afamily;
	int16_t proto;
	uint16_t port;
	uint8_t addr[16];
};
struct centry {
	struct ckey k;
	unsigned long long gen; /* 0: empty */
	struct answer a;
};
/* Makes the key of a call ('C'onnect, 'B'ind, 'S'endTo; 'O' a Socket alone) on s to sa;
 * -1 if the call cannot be cached (no inet address). */
int qos_cache_key(struct ckey *k, char call, const struct fdst *s, const struct sockaddr *sa, socklen_t salen);
/* The entry for k if it holds a valid answer (else NULL); *slot is where k goes, *gen the
 * daemon's published generation now. */
struct centry *qos_cache_find(const struct ckey *k, struct centry **slot, unsigned long long *gen);
/* Keeps answer a for k in slot e, valid while the daemon publishes a->cache_gen. */
void qos_cache_store(struct centry *e, const struct ckey *k, const struct answer *a);

#endif
