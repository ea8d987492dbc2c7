/* The floor with io_uring: a receive submission per connection; each
 * completion queues the response's send and the next receive, and one
 * io_uring_enter per loop turn submits them all and waits. */
#include "common.h"
#include <liburing.h>

#define MAX_FD 4096
static char bufs[MAX_FD][2048];
enum { ACCEPT = 1, RECV = 2, SEND = 3 };

static void queue(struct io_uring *ring, int kind, int fd) {
  struct io_uring_sqe *s = io_uring_get_sqe(ring);
  if (kind == RECV) {
    io_uring_prep_recv(s, fd, bufs[fd], sizeof bufs[fd], 0);
  } else {
    io_uring_prep_send(s, fd, RESPONSE, sizeof RESPONSE - 1, MSG_NOSIGNAL);
    s->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }
  s->user_data = ((__u64)kind << 32) | (unsigned)fd;
}

int main(void) {
  int lfd = listen_loopback();
  struct io_uring ring;
  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
  if (io_uring_queue_init_params(1024, &ring, &p) < 0) {
    fprintf(stderr, "io_uring_queue_init_params failed\n");
    return 1;
  }
  struct io_uring_sqe *s = io_uring_get_sqe(&ring);
  io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
  s->user_data = (__u64)ACCEPT << 32;
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      int kind = (int)(cqe->user_data >> 32);
      int fd = (int)(cqe->user_data & 0xffffffff);
      seen++;
      if (kind == ACCEPT) {
        if (cqe->res < 0) continue;
        if (cqe->res >= MAX_FD) {
          close(cqe->res);
          continue;
        }
        no_delay(cqe->res);
        queue(&ring, RECV, cqe->res);
      } else if (kind == RECV) {
        if (cqe->res <= 0) {
          close(fd);
          continue;
        }
        queue(&ring, SEND, fd);
        queue(&ring, RECV, fd);
      } else if (cqe->res < 0) {
        close(fd);
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
