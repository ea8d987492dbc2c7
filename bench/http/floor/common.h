/* The floor of bench:http: servers with no HTTP work at all. Each reads
 * whatever a connection sent and answers one fixed "hello" response of
 * the size sack's is (130 bytes), so what they cost per request is the
 * kernel's TCP work plus a readiness mechanism. Loopback only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Date: Tue, 24 Nov 2026 03:40:00 GMT\r\n"
    "Connection: keep-alive\r\n"
    "Content-Length: 5\r\n"
    "\r\n"
    "hello";

/* Listens on 127.0.0.1, any free port; prints "LISTENING <port>". */
static int listen_loopback(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  socklen_t len = sizeof a;
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    perror("listen");
    exit(1);
  }
  printf("LISTENING %d\n", ntohs(a.sin_port));
  fflush(stdout);
  return fd;
}

static void no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
