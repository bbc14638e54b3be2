/* qosd protocol agent: the per-thread decision cache (cache.h): keys, slots, and dropping every
 * entry when the process forked or changed its credentials. */
#define _GNU_SOURCE
#include "cache.h"

#include "agent.h"

#include <netinet/in.h>
#include <string.h>

static __thread struct centry cache[CACHE_SLOTS];
static __thread unsigned cache_fork_gen, cache_epoch;

int qos_cache_key(struct ckey *k, char call, const struct fdst *s, const struct sockaddr *sa, socklen_t salen)
{
	memset(k, 0, sizeof *k);
	k->call = call;
	k->first = call != 'O' && (s->flags & (F_PENDING | F_DECIDED)) == F_PENDING;
	k->family = s->family;
	k->type = s->type;
	k->proto = s->proto;
	if (!sa)
		return call == 'O' ? 0 : -1;
	if (qos_inet_addr(sa, salen, &k->port, k->addr) != 0)
		return -1;
	k->afamily = (uint8_t)sa->sa_family;
	return 0;
}

static struct centry *cache_slot(const struct ckey *k)
{
	/* A forked child is someone else, and so is a process that changed its uids or gids
	 * (the daemon decided for who it was): their answers are not ours. */
	if (cache_fork_gen != qos_wire_fork_gen() || cache_epoch != qos_creds_epoch()) {
		memset(cache, 0, sizeof cache);
		cache_fork_gen = qos_wire_fork_gen();
		cache_epoch = qos_creds_epoch();
	}
	uint32_t h = 2166136261u;
	const uint8_t *p = (const uint8_t *)k;
	for (size_t i = 0; i < sizeof *k; i++)
		h = (h ^ p[i]) * 16777619u;
	return &cache[h % CACHE_SLOTS];
}

/* The cache entry for k if it holds a valid answer (else NULL); *slot is where k goes. */
struct centry *qos_cache_find(const struct ckey *k, struct centry **slot, unsigned long long *gen)
{
	struct centry *e = *slot = cache_slot(k);
	*gen = qos_wire_generation();
	return *gen && e->gen == *gen && !memcmp(&e->k, k, sizeof *k) ? e : NULL;
}

void qos_cache_store(struct centry *e, const struct ckey *k, const struct answer *a)
{
	e->k = *k;
	e->a = *a;
	e->gen = a->cache_gen;
}
