/* qosd protocol agent: unconnected datagrams (dgram.c): one SendTo per new destination, its
 * decision kept per destination, and the socket's marks switched to each datagram's. */
#ifndef QOS_DGRAM_H
#define QOS_DGRAM_H

#include <sys/socket.h>

#include "fdtable.h"

/* The datagram socket behind fd, if the agent marks its datagrams. */
struct fdst *qos_dgram_socket(int fd);
/* Marks fd for a datagram to sa; returns 0 to send, or an errno to refuse the send. */
int qos_dgram_before(int fd, struct fdst *s, const struct sockaddr *sa, socklen_t salen);
/* After a datagram to an address on a connected socket: the socket-level mark comes back. */
void qos_dgram_after(int fd, struct fdst *s);
/* Before one datagram to sa on fd: *sp is the datagram socket the agent marks, or NULL.
 * Returns the errno of a DENY, or 0 with errno as it was. */
int qos_dgram_before_send(int fd, const struct sockaddr *sa, socklen_t salen, struct fdst **sp);

#endif
