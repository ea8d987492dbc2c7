/* The floor with epoll: one recv and one send per request. */
#include "common.h"
#include <sys/epoll.h>

int main(void) {
  int lfd = listen_loopback();
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event ready[256];
  char buf[4096];
  for (;;) {
    int n = epoll_wait(ep, ready, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = ready[i].data.fd;
      if (fd == lfd) {
        int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0) continue;
        no_delay(c);
        struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.fd = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
        continue;
      }
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN)) {
        close(fd);
        continue;
      }
      if (r > 0) send(fd, RESPONSE, sizeof RESPONSE - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
  }
}
