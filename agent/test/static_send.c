/* static_send ADDR PORT COUNT [GAP_US [LOCAL_PORT]]: sends COUNT UDP datagrams of 200 bytes
 * (each from a new socket, so a new flow, if STATIC_SEND_NEW_FLOWS is set),
 * each carrying its sequence number, to ADDR (IPv4 or IPv6) PORT. Built with -static: the
 * dynamic loader never runs, so LD_PRELOAD (the agent) cannot reach it. The tests use it as
 * the program only kernel rules can mark. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s ADDR PORT COUNT [GAP_US [LOCAL_PORT]]\n", argv[0]); return 64; }
    struct sockaddr_storage ss; memset(&ss, 0, sizeof ss);
    socklen_t len;
    int port = atoi(argv[2]), local = argc > 5 ? atoi(argv[5]) : 0;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, argv[1], &a4->sin_addr) == 1) { a4->sin_family = AF_INET; a4->sin_port = htons(port); len = sizeof *a4; }
    else if (inet_pton(AF_INET6, argv[1], &a6->sin6_addr) == 1) { a6->sin6_family = AF_INET6; a6->sin6_port = htons(port); len = sizeof *a6; }
    else { fprintf(stderr, "bad address %s\n", argv[1]); return 64; }
    int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 71; }
    if (local) {
        struct sockaddr_storage ls; memset(&ls, 0, sizeof ls);
        ls.ss_family = ss.ss_family;
        if (ss.ss_family == AF_INET) ((struct sockaddr_in *)&ls)->sin_port = htons(local); else ((struct sockaddr_in6 *)&ls)->sin6_port = htons(local);
        if (bind(fd, (struct sockaddr *)&ls, len) < 0) { perror("bind"); return 71; }
    }
    long count = atol(argv[3]), gap = argc > 4 ? atol(argv[4]) : 1000;
    char buf[200]; memset(buf, 'q', sizeof buf);
    int fresh = getenv("STATIC_SEND_NEW_FLOWS") != NULL;
    for (long i = 0; i < count; i++) {
        if (fresh && i > 0) {
            close(fd);
            fd = socket(ss.ss_family, SOCK_DGRAM, 0);
            if (fd < 0) { perror("socket"); return 71; }
            if (local) { /* a source port never used before: a flow conntrack has not seen */
                struct sockaddr_storage ls; memset(&ls, 0, sizeof ls);
                ls.ss_family = ss.ss_family;
                int p = local + (int)(i % 30000);
                if (ss.ss_family == AF_INET) ((struct sockaddr_in *)&ls)->sin_port = htons(p); else ((struct sockaddr_in6 *)&ls)->sin6_port = htons(p);
                if (bind(fd, (struct sockaddr *)&ls, len) < 0) { perror("bind"); return 71; }
            }
        }
        memcpy(buf, &i, sizeof i);
        if (sendto(fd, buf, sizeof buf, 0, (struct sockaddr *)&ss, len) < 0) { perror("sendto"); return 74; }
        if (gap) usleep(gap);
    }
    return 0;
}
