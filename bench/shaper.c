/*
 * shaper: a UDP relay that behaves like a slow link with a shallow buffer,
 * for measuring how a sender's bursts fare (bench/run.sh --only pacing).
 *
 *   shaper --upstream PORT [--rate-mbit R] [--delay-ms D] [--queue-ms Q]
 *
 * Listens on 127.0.0.1 (an ephemeral port, printed as "listening on
 * 127.0.0.1 port N"); the first client's datagrams go to 127.0.0.1:PORT
 * from a socket of its own, and the answers come back the same way.  In
 * each direction every datagram crosses a bottleneck of R Mbit/s (default
 * 100) with a drop-tail buffer holding Q ms of it (default 5), then D ms
 * of propagation delay (default 10).  A datagram that finds the buffer
 * full is dropped: the loss a burst suffers where pacing spreads the same
 * bytes out.  On SIGTERM or SIGINT it prints one JSON line of counts and
 * exits.  Standard C and Linux only; single-threaded (ppoll with
 * nanosecond timeouts).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 16384
#define MAXLEN 2048

typedef struct pkt {
  uint64_t due; /* leaves the far end of the link */
  size_t len;
  uint8_t data[MAXLEN];
} pkt;

/* One direction of the link. */
typedef struct dir {
  pkt *ring;
  size_t head, n;
  uint64_t busy_until; /* when the bottleneck has sent all it holds */
  uint64_t in, dropped, out, bytes_out;
  int fd; /* what it sends from */
  struct sockaddr_in to;
} dir;

static volatile sig_atomic_t stop;
static double ns_per_byte;
static uint64_t delay_ns, queue_ns;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void enqueue(dir *d, const uint8_t *data, size_t len, uint64_t now) {
  ++d->in;
  uint64_t start = d->busy_until > now ? d->busy_until : now;
  if (start - now > queue_ns || d->n == SLOTS || len > MAXLEN) {
    ++d->dropped; /* the buffer is full */
    return;
  }
  d->busy_until = start + (uint64_t)((double)len * ns_per_byte);
  pkt *p = &d->ring[(d->head + d->n++) % SLOTS];
  p->due = d->busy_until + delay_ns;
  p->len = len;
  memcpy(p->data, data, len);
}

/* Sends what is due; returns the next due time (UINT64_MAX: none). */
static uint64_t release(dir *d, uint64_t now) {
  while (d->n) {
    pkt *p = &d->ring[d->head];
    if (p->due > now) {
      return p->due;
    }
    if (sendto(d->fd, p->data, p->len, 0, (struct sockaddr *)&d->to,
               sizeof(d->to)) >= 0) {
      ++d->out;
      d->bytes_out += p->len;
    }
    d->head = (d->head + 1) % SLOTS;
    --d->n;
  }
  return UINT64_MAX;
}

static int udp_socket(uint16_t port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int sz = 8 << 20;
  if (fd < 0) {
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void usage(void) {
  fprintf(stderr, "usage: shaper --upstream PORT [--rate-mbit R] "
                  "[--delay-ms D] [--queue-ms Q]\n");
  exit(2);
}

int main(int argc, char **argv) {
  double rate_mbit = 100, delay_ms = 10, queue_ms = 5;
  long upstream = 0;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) {
      usage();
    }
    char *end;
    double v = strtod(argv[i + 1], &end);
    if (*end || v < 0) {
      usage();
    }
    if (strcmp(argv[i], "--upstream") == 0) {
      upstream = (long)v;
    } else if (strcmp(argv[i], "--rate-mbit") == 0 && v > 0) {
      rate_mbit = v;
    } else if (strcmp(argv[i], "--delay-ms") == 0) {
      delay_ms = v;
    } else if (strcmp(argv[i], "--queue-ms") == 0) {
      queue_ms = v;
    } else {
      usage();
    }
    ++i;
  }
  if (upstream <= 0 || upstream > 65535) {
    usage();
  }
  ns_per_byte = 8000.0 / rate_mbit; /* 8 bits / (R * 1e6 bit/s) in ns */
  delay_ns = (uint64_t)(delay_ms * 1e6);
  queue_ns = (uint64_t)(queue_ms * 1e6);

  int front = udp_socket(0), back = udp_socket(0);
  if (front < 0 || back < 0) {
    perror("shaper: socket");
    return 1;
  }
  struct sockaddr_in fa;
  socklen_t falen = sizeof(fa);
  getsockname(front, (struct sockaddr *)&fa, &falen);
  printf("shaper: listening on 127.0.0.1 port %u\n", ntohs(fa.sin_port));
  fflush(stdout);

  dir down = {0}, up = {0}; /* down: server -> client */
  down.ring = malloc(SLOTS * sizeof(pkt));
  up.ring = malloc(SLOTS * sizeof(pkt));
  if (!down.ring || !up.ring) {
    return 1;
  }
  up.fd = back;
  up.to.sin_family = AF_INET;
  up.to.sin_port = htons((uint16_t)upstream);
  up.to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  down.fd = front;
  int have_client = 0;

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  uint8_t buf[65536];
  while (!stop) {
    uint64_t now = now_ns();
    uint64_t next = release(&up, now);
    uint64_t n2 = release(&down, now);
    next = n2 < next ? n2 : next;
    struct pollfd pf[2] = {{front, POLLIN, 0}, {back, POLLIN, 0}};
    struct timespec ts, *tsp = NULL;
    if (next != UINT64_MAX) {
      uint64_t wait = next > now ? next - now : 0;
      ts.tv_sec = (time_t)(wait / 1000000000ULL);
      ts.tv_nsec = (long)(wait % 1000000000ULL);
      tsp = &ts;
    }
    if (ppoll(pf, 2, tsp, NULL) < 0) {
      if (errno == EINTR) {
        continue;
      }
      perror("shaper: ppoll");
      break;
    }
    for (;;) {
      struct sockaddr_in from;
      socklen_t fl = sizeof(from);
      ssize_t n = recvfrom(front, buf, sizeof(buf), 0,
                           (struct sockaddr *)&from, &fl);
      if (n < 0) {
        break;
      }
      if (!have_client) {
        down.to = from;
        have_client = 1;
      }
      if (from.sin_port == down.to.sin_port &&
          from.sin_addr.s_addr == down.to.sin_addr.s_addr) {
        enqueue(&up, buf, (size_t)n, now_ns());
      }
    }
    for (;;) {
      ssize_t n = recv(back, buf, sizeof(buf), 0);
      if (n < 0) {
        break;
      }
      if (have_client) {
        enqueue(&down, buf, (size_t)n, now_ns());
      }
    }
  }
  printf("{\"down_in\":%llu,\"down_dropped\":%llu,\"down_bytes\":%llu,"
         "\"up_in\":%llu,\"up_dropped\":%llu,\"rate_mbit\":%g,"
         "\"delay_ms\":%g,\"queue_ms\":%g}\n",
         (unsigned long long)down.in, (unsigned long long)down.dropped,
         (unsigned long long)down.bytes_out, (unsigned long long)up.in,
         (unsigned long long)up.dropped, rate_mbit, delay_ms, queue_ms);
  fflush(stdout);
  free(down.ring);
  free(up.ring);
  close(front);
  close(back);
  return 0;
}
