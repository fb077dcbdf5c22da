/*
 * udp_echo: the physical baseline for h3wt-bench's datagram echo.  Plain
 * UDP, no QUIC, no crypto, the same batching as the library (recvmmsg in,
 * sendmmsg out) and the same load shape as `h3wt-bench dgram`: F flows
 * (one socket each, like one session per connection), W datagrams in flight
 * per flow, P bytes of payload.
 *
 *   udp_echo server [-a ADDR] [-p PORT]
 *       prints "udp_echo: listening on ADDR port N", echoes until killed
 *   udp_echo client -p PORT [-a ADDR] [-s FLOWS] [-w W] [-P BYTES]
 *                   [-d SECS] [--warmup SECS] [--server-pid PID]
 *       prints one JSON line and one human line: echoes/s, RTT p50/p99/p999,
 *       the server's CPU per echo
 *
 * And the physical floor of `h3wt-bench fanout`: a server that sends every
 * datagram it is given to each of N subscribers, with sendmmsg.
 *
 *   udp_echo fanout-server [-a ADDR] [-p PORT]
 *       prints "udp_echo: listening on ADDR port N"; a datagram "S" adds
 *       its sender to the subscribers (answered "A"), any other is sent
 *       to every subscriber as it is, until killed
 *   udp_echo fanout -p PORT [-a ADDR] [-n SUBSCRIBERS] [-r MSG_PER_S]
 *                   [-P BYTES] [-d SECS] [--warmup SECS] [--server-pid PID]
 *       N sockets subscribe, one more publishes R datagrams/s (sequence
 *       number and send time inside); prints the JSON line of `h3wt-bench
 *       fanout`: deliveries/s, latency p50/p99, lost, the server's CPU per
 *       delivered datagram
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "bench_common.h"

#define BATCH 64      /* datagrams per recvmmsg/sendmmsg */
#define MAX_DGRAM 2048
#define HDR 24            /* flow, slot, generation, pad, send time */
#define LOSS_NS 200000000 /* an unanswered datagram is resent after */


static int make_addr(const char *host, uint16_t port,
                     struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    *len = sizeof(*a4);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof(*a6);
    return 0;
  }
  return -1;
}

static void big_buffers(int fd) {
  int sz = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

/* The server's socket, bound and announced ("listening on ... port N",
   which run.sh waits for).  Returns it, or minus the exit status. */
static int listen_socket(const char *host, uint16_t port) {
  struct sockaddr_storage ss;
  socklen_t sslen;
  int fd;
  if (make_addr(host, port, &ss, &sslen) != 0) {
    fprintf(stderr, "udp_echo: bad address %s\n", host);
    return -2;
  }
  fd = socket(ss.ss_family, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
    fprintf(stderr, "udp_echo: bind %s port %u: %s\n", host, port,
            strerror(errno));
    return -1;
  }
  big_buffers(fd);
  sslen = sizeof(ss);
  getsockname(fd, (struct sockaddr *)&ss, &sslen);
  port = ntohs(ss.ss_family == AF_INET
                   ? ((struct sockaddr_in *)&ss)->sin_port
                   : ((struct sockaddr_in6 *)&ss)->sin6_port);
  printf("udp_echo: listening on %s port %u\n", host, port);
  fflush(stdout);
  return fd;
}

/* One recvmmsg of up to BATCH datagrams into bufs, their senders in
   peers.  Returns the count, or -1 with errno. */
static int recv_batch(int fd, uint8_t bufs[][MAX_DGRAM], struct mmsghdr *msgs,
                      struct iovec *iov, struct sockaddr_storage *peers) {
  for (int i = 0; i < BATCH; ++i) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = MAX_DGRAM;
    memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_name = &peers[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  return recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
}

/* ---- server ----------------------------------------------------------------- */

static int run_server(const char *host, uint16_t port) {
  static uint8_t bufs[BATCH][MAX_DGRAM];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage peers[BATCH];
  int fd;

  fd = listen_socket(host, port);
  if (fd < 0) {
    return -fd;
  }

  for (;;) {
    int n = recv_batch(fd, bufs, msgs, iov, peers);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      fprintf(stderr, "udp_echo: recvmmsg: %s\n", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      iov[i].iov_len = msgs[i].msg_len;
    }
    for (int off = 0; off < n;) {
      int s = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
      if (s < 0) {
        if (errno == EINTR) {
          continue;
        }
        break; /* dropped, like a full socket buffer would */
      }
      off += s;
    }
  }
}

/* ---- client ----------------------------------------------------------------- */

typedef struct slot {
  uint64_t sent_ns; /* 0: not in flight */
  uint32_t gen;
} slot;

typedef struct flow {
  int fd;
  slot *slots;
} flow;

typedef struct client {
  uint32_t nflows, window;
  size_t payload;
  flow *flows;
  uint8_t tx[BATCH][MAX_DGRAM];
  struct iovec txiov[BATCH];
  struct mmsghdr txmsg[BATCH];
  int ntx;
  int measuring;
  uint64_t echoes, lost, stale;
  bench_hist hist;
} client;

static void tx_flush(client *c, flow *f) {
  for (int off = 0; off < c->ntx;) {
    int s = sendmmsg(f->fd, c->txmsg + off, (unsigned)(c->ntx - off), 0);
    if (s < 0) {
      if (errno == EINTR) {
        continue;
      }
      break; /* the loss timer resends */
    }
    off += s;
  }
  c->ntx = 0;
}

/* Queues datagram (flow, slot) into the send batch. */
static void tx_slot(client *c, flow *f, uint32_t fi, uint32_t si) {
  slot *s = &f->slots[si];
  uint8_t *p;
  if (c->ntx == BATCH) {
    tx_flush(c, f);
  }
  p = c->tx[c->ntx];
  s->gen++;
  s->sent_ns = bench_now_ns();
  bench_put32(p, fi);
  bench_put32(p + 4, si);
  bench_put32(p + 8, s->gen);
  bench_put32(p + 12, 0);
  bench_put64(p + 16, s->sent_ns);
  c->txiov[c->ntx].iov_len = c->payload;
  ++c->ntx;
}

static void rx_flow(client *c, uint32_t fi) {
  static uint8_t bufs[BATCH][MAX_DGRAM];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  flow *f = &c->flows[fi];
  for (;;) {
    for (int i = 0; i < BATCH; ++i) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = MAX_DGRAM;
      memset(&msgs[i], 0, sizeof(msgs[i]));
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(f->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) {
      break;
    }
    uint64_t now = bench_now_ns();
    for (int i = 0; i < n; ++i) {
      const uint8_t *p = bufs[i];
      if (msgs[i].msg_len < HDR || bench_get32(p) != fi ||
          bench_get32(p + 4) >= c->window) {
        ++c->stale;
        continue;
      }
      uint32_t si = bench_get32(p + 4);
      slot *s = &f->slots[si];
      if (bench_get32(p + 8) != s->gen || s->sent_ns == 0 ||
          bench_get64(p + 16) != s->sent_ns) {
        ++c->stale; /* an echo of a datagram already given up on */
        continue;
      }
      if (c->measuring) {
        ++c->echoes;
        bench_hist_add(&c->hist, now - s->sent_ns);
      }
      tx_slot(c, f, fi, si);
    }
    tx_flush(c, f);
    if (n < BATCH) {
      break;
    }
  }
}

static void usage(FILE *f) {
  fprintf(f,
          "Usage: udp_echo server [-a ADDR] [-p PORT]\n"
          "       udp_echo client -p PORT [-a ADDR] [-s FLOWS] [-w WINDOW]\n"
          "                [-P PAYLOAD] [-d SECS] [--warmup SECS]\n"
          "                [--server-pid PID] [--label TEXT]\n"
          "       udp_echo fanout-server [-a ADDR] [-p PORT]\n"
          "       udp_echo fanout -p PORT [-n SUBSCRIBERS] [-r MSG_PER_S] ...\n"
          "                (udp_echo fanout --help)\n"
          "  -a, --addr ADDR     server address (default 127.0.0.1)\n"
          "  -p, --port PORT     server port (server: default 0, ephemeral)\n"
          "  -s, --flows F       sockets, each its own flow (default 8)\n"
          "  -w, --window W      datagrams in flight per flow (default 16)\n"
          "  -P, --payload B     payload bytes, >= %d (default 64)\n"
          "  -d, --duration S    measured seconds (default 10)\n"
          "      --warmup S      seconds before measuring (default 1)\n"
          "      --server-pid P  report the server's CPU time per echo\n",
          HDR);
}

static int run_client(int argc, char **argv) {
  static const struct option opts[] = {
      {"addr", required_argument, 0, 'a'},
      {"port", required_argument, 0, 'p'},
      {"flows", required_argument, 0, 's'},
      {"window", required_argument, 0, 'w'},
      {"payload", required_argument, 0, 'P'},
      {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'W'},
      {"server-pid", required_argument, 0, 'S'},
      {"label", required_argument, 0, 'L'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *host = "127.0.0.1", *label = "udp";
  long port = 0, pid = 0;
  double duration = 10, warmup = 1;
  static client c;
  int o;

  c.nflows = 8;
  c.window = 16;
  c.payload = 64;
  while ((o = getopt_long(argc, argv, "a:p:s:w:P:d:h", opts, NULL)) != -1) {
    switch (o) {
    case 'a':
      host = optarg;
      break;
    case 'p':
      port = strtol(optarg, NULL, 10);
      break;
    case 's':
      c.nflows = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    case 'w':
      c.window = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    case 'P':
      c.payload = strtoul(optarg, NULL, 10);
      break;
    case 'd':
      duration = strtod(optarg, NULL);
      break;
    case 'W':
      warmup = strtod(optarg, NULL);
      break;
    case 'S':
      pid = strtol(optarg, NULL, 10);
      break;
    case 'L':
      label = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (port <= 0 || port > 65535 || c.nflows < 1 || c.window < 1 ||
      c.payload < HDR || c.payload > MAX_DGRAM || duration <= 0) {
    usage(stderr);
    return 2;
  }

  struct sockaddr_storage ss;
  socklen_t sslen;
  if (make_addr(host, (uint16_t)port, &ss, &sslen) != 0) {
    fprintf(stderr, "udp_echo: bad address %s\n", host);
    return 2;
  }
  c.flows = calloc(c.nflows, sizeof(*c.flows));
  struct pollfd *pfds = calloc(c.nflows, sizeof(*pfds));
  if (!c.flows || !pfds) {
    return 1;
  }
  for (int i = 0; i < BATCH; ++i) {
    memset(c.tx[i], 0x5a, sizeof(c.tx[i]));
    c.txiov[i].iov_base = c.tx[i];
    c.txmsg[i].msg_hdr.msg_iov = &c.txiov[i];
    c.txmsg[i].msg_hdr.msg_iovlen = 1;
  }
  for (uint32_t i = 0; i < c.nflows; ++i) {
    flow *f = &c.flows[i];
    f->fd = socket(ss.ss_family, SOCK_DGRAM, 0);
    f->slots = calloc(c.window, sizeof(*f->slots));
    if (f->fd < 0 || !f->slots ||
        connect(f->fd, (struct sockaddr *)&ss, sslen) != 0) {
      fprintf(stderr, "udp_echo: socket: %s\n", strerror(errno));
      return 1;
    }
    big_buffers(f->fd);
    pfds[i].fd = f->fd;
    pfds[i].events = POLLIN;
  }

  uint64_t start = bench_now_ns();
  uint64_t t_measure = start + (uint64_t)(warmup * 1e9);
  uint64_t t_end = t_measure + (uint64_t)(duration * 1e9);
  uint64_t next_loss_check = start + 10000000;
  bench_snap a = {0}, b = {0};
  for (uint32_t fi = 0; fi < c.nflows; ++fi) {
    for (uint32_t si = 0; si < c.window; ++si) {
      tx_slot(&c, &c.flows[fi], fi, si);
    }
    tx_flush(&c, &c.flows[fi]);
  }
  for (;;) {
    uint64_t now = bench_now_ns();
    if (!c.measuring && now >= t_measure) {
      c.measuring = 1;
      bench_snap_take(&a, pid);
    }
    if (now >= t_end) {
      bench_snap_take(&b, pid);
      break;
    }
    if (now >= next_loss_check) {
      next_loss_check = now + 10000000;
      for (uint32_t fi = 0; fi < c.nflows; ++fi) {
        flow *f = &c.flows[fi];
        for (uint32_t si = 0; si < c.window; ++si) {
          if (f->slots[si].sent_ns && now - f->slots[si].sent_ns > LOSS_NS) {
            if (c.measuring) {
              ++c.lost;
            }
            tx_slot(&c, f, fi, si);
          }
        }
        tx_flush(&c, f);
      }
    }
    int n = poll(pfds, c.nflows, 5);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "udp_echo: poll: %s\n", strerror(errno));
      return 1;
    }
    for (uint32_t fi = 0; n > 0 && fi < c.nflows; ++fi) {
      if (pfds[fi].revents & POLLIN) {
        rx_flow(&c, fi);
      }
    }
  }

  double secs = (double)(b.wall_ns - a.wall_ns) / 1e9;
  double rate = secs > 0 ? (double)c.echoes / secs : 0;
  bench_json j;
  bench_json_begin(&j);
  bench_json_str(&j, "mode", "dgram");
  bench_json_str(&j, "target", label);
  bench_json_int(&j, "flows", c.nflows);
  bench_json_int(&j, "window", c.window);
  bench_json_int(&j, "payload", c.payload);
  bench_json_int(&j, "ops", c.echoes);
  bench_json_str(&j, "unit", "echo");
  bench_json_num(&j, "rate", rate);
  bench_json_int(&j, "lost", c.lost);
  bench_json_num(&j, "rtt_p50_us", bench_hist_quantile(&c.hist, 0.5) / 1e3);
  bench_json_num(&j, "rtt_p99_us", bench_hist_quantile(&c.hist, 0.99) / 1e3);
  bench_json_num(&j, "rtt_p999_us",
                 bench_hist_quantile(&c.hist, 0.999) / 1e3);
  bench_json_cpu(&j, &a, &b, (double)c.echoes);
  bench_json_int(&j, "errors", 0);
  bench_json_end(&j, stdout);
  printf("%s dgram: %.0f echoes/s (%u flows x %u in flight, %zu B), rtt p50 "
         "%.1f us p99 %.1f us p999 %.1f us, lost %" PRIu64,
         label, rate, c.nflows, c.window, c.payload,
         bench_hist_quantile(&c.hist, 0.5) / 1e3,
         bench_hist_quantile(&c.hist, 0.99) / 1e3,
         bench_hist_quantile(&c.hist, 0.999) / 1e3, c.lost);
  if (a.server_cpu_us >= 0 && b.server_cpu_us >= 0 && c.echoes) {
    printf(", server CPU %.2f us/echo",
           (double)(b.server_cpu_us - a.server_cpu_us) / (double)c.echoes);
  }
  printf("\n");
  for (uint32_t fi = 0; fi < c.nflows; ++fi) {
    close(c.flows[fi].fd);
    free(c.flows[fi].slots);
  }
  free(c.flows);
  free(pfds);
  return c.echoes > 0 ? 0 : 1;
}

/* ---- fan-out ---------------------------------------------------------------
 * The same work the channel hub does for an unreliable publication, minus
 * QUIC: take one datagram in, send it to every subscriber.  sendmmsg takes
 * at most UIO_MAXIOV messages a call; every message points at the same
 * bytes. */

#define FO_HDR 16 /* sequence number, send time */
#define FO_SUB_MAX 100000

static int run_fanout_server(const char *host, uint16_t port) {
  static uint8_t bufs[BATCH][MAX_DGRAM];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage peers[BATCH];
  struct sockaddr_storage *subs = calloc(FO_SUB_MAX, sizeof(*subs));
  socklen_t *sublen = calloc(FO_SUB_MAX, sizeof(*sublen));
  struct mmsghdr *out = calloc(UIO_MAXIOV, sizeof(*out));
  struct iovec one;
  size_t nsubs = 0;
  int fd;

  if (!subs || !sublen || !out) {
    return 1;
  }
  fd = listen_socket(host, port);
  if (fd < 0) {
    return -fd;
  }

  for (;;) {
    int n = recv_batch(fd, bufs, msgs, iov, peers);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      fprintf(stderr, "udp_echo: recvmmsg: %s\n", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      if (msgs[i].msg_len == 1 && bufs[i][0] == 'S') {
        /* A subscribe, maybe resent: added once, answered each time. */
        size_t k;
        for (k = 0; k < nsubs; ++k) {
          if (sublen[k] == msgs[i].msg_hdr.msg_namelen &&
              memcmp(&subs[k], &peers[i], sublen[k]) == 0) {
            break;
          }
        }
        if (k == nsubs && nsubs < FO_SUB_MAX) {
          memcpy(&subs[nsubs], &peers[i], msgs[i].msg_hdr.msg_namelen);
          sublen[nsubs++] = msgs[i].msg_hdr.msg_namelen;
        }
        sendto(fd, "A", 1, 0, (struct sockaddr *)&peers[i],
               msgs[i].msg_hdr.msg_namelen);
        continue;
      }
      one.iov_base = bufs[i];
      one.iov_len = msgs[i].msg_len;
      for (size_t off = 0; off < nsubs;) {
        size_t m = nsubs - off < UIO_MAXIOV ? nsubs - off : UIO_MAXIOV;
        for (size_t k = 0; k < m; ++k) {
          memset(&out[k], 0, sizeof(out[k]));
          out[k].msg_hdr.msg_name = &subs[off + k];
          out[k].msg_hdr.msg_namelen = sublen[off + k];
          out[k].msg_hdr.msg_iov = &one;
          out[k].msg_hdr.msg_iovlen = 1;
        }
        int s = sendmmsg(fd, out, (unsigned)m, 0);
        if (s < 0) {
          if (errno == EINTR) {
            continue;
          }
          break; /* dropped, as a full socket buffer would */
        }
        off += (size_t)s;
      }
    }
  }
}

typedef struct fo_sub {
  int fd;
  uint64_t next, got;
  int acked;
} fo_sub;

static void fo_usage(FILE *f) {
  fprintf(f,
          "Usage: udp_echo fanout -p PORT [-a ADDR] [-n SUBSCRIBERS]\n"
          "                [-r MSG_PER_S] [-P PAYLOAD] [-d SECS]\n"
          "                [--warmup SECS] [--server-pid PID] [--label T]\n"
          "  -n, --count N       subscriber sockets (default 1000)\n"
          "  -r, --rate R        datagrams published per second (100)\n"
          "  -P, --payload B     payload bytes, >= %d (default 64)\n",
          FO_HDR);
}

static int run_fanout_client(int argc, char **argv) {
  static const struct option opts[] = {
      {"addr", required_argument, 0, 'a'},
      {"port", required_argument, 0, 'p'},
      {"count", required_argument, 0, 'n'},
      {"rate", required_argument, 0, 'r'},
      {"payload", required_argument, 0, 'P'},
      {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'W'},
      {"server-pid", required_argument, 0, 'S'},
      {"label", required_argument, 0, 'L'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *host = "127.0.0.1", *label = "udp";
  long port = 0, pid = 0;
  double duration = 10, warmup = 1, rate = 100;
  uint32_t nsubs = 1000;
  size_t payload = 64;
  static bench_hist hist;
  int o;

  while ((o = getopt_long(argc, argv, "a:p:n:r:P:d:h", opts, NULL)) != -1) {
    switch (o) {
    case 'a':
      host = optarg;
      break;
    case 'p':
      port = strtol(optarg, NULL, 10);
      break;
    case 'n':
      nsubs = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    case 'r':
      rate = strtod(optarg, NULL);
      break;
    case 'P':
      payload = strtoul(optarg, NULL, 10);
      break;
    case 'd':
      duration = strtod(optarg, NULL);
      break;
    case 'W':
      warmup = strtod(optarg, NULL);
      break;
    case 'S':
      pid = strtol(optarg, NULL, 10);
      break;
    case 'L':
      label = optarg;
      break;
    case 'h':
      fo_usage(stdout);
      return 0;
    default:
      fo_usage(stderr);
      return 2;
    }
  }
  if (port <= 0 || port > 65535 || nsubs < 1 || nsubs > FO_SUB_MAX ||
      rate <= 0 || payload < FO_HDR || payload > MAX_DGRAM || duration <= 0) {
    fo_usage(stderr);
    return 2;
  }
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (make_addr(host, (uint16_t)port, &ss, &sslen) != 0) {
    fprintf(stderr, "udp_echo: bad address %s\n", host);
    return 2;
  }
  fo_sub *subs = calloc(nsubs, sizeof(*subs));
  int ep = epoll_create1(0);
  int pub = socket(ss.ss_family, SOCK_DGRAM, 0);
  if (!subs || ep < 0 || pub < 0 ||
      connect(pub, (struct sockaddr *)&ss, sslen) != 0) {
    fprintf(stderr, "udp_echo: %s\n", strerror(errno));
    return 1;
  }
  for (uint32_t i = 0; i < nsubs; ++i) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    subs[i].fd = socket(ss.ss_family, SOCK_DGRAM, 0);
    if (subs[i].fd < 0 ||
        connect(subs[i].fd, (struct sockaddr *)&ss, sslen) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev) != 0) {
      fprintf(stderr, "udp_echo: subscriber socket %u: %s\n", i,
              strerror(errno));
      return 1;
    }
    big_buffers(subs[i].fd);
  }

  /* Subscribe every socket; resend to the ones not answered yet. */
  uint32_t nacked = 0;
  uint64_t give_up = bench_now_ns() + 10000000000ull;
  while (nacked < nsubs) {
    struct epoll_event evs[256];
    if (bench_now_ns() > give_up) {
      fprintf(stderr, "udp_echo: %u of %u subscribed after 10 s\n", nacked,
              nsubs);
      return 1;
    }
    for (uint32_t i = 0; i < nsubs; ++i) {
      if (!subs[i].acked) {
        send(subs[i].fd, "S", 1, 0);
      }
    }
    int n;
    while ((n = epoll_wait(ep, evs, 256, 100)) > 0) {
      for (int k = 0; k < n; ++k) {
        fo_sub *sb = &subs[evs[k].data.u32];
        char c;
        while (recv(sb->fd, &c, 1, MSG_DONTWAIT) == 1) {
          if (c == 'A' && !sb->acked) {
            sb->acked = 1;
            ++nacked;
          }
        }
      }
      if (nacked == nsubs) {
        break;
      }
    }
  }

  static uint8_t tx[MAX_DGRAM];
  static uint8_t bufs[BATCH][MAX_DGRAM];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct epoll_event evs[256];
  uint64_t start = bench_now_ns();
  uint64_t t_measure = start + (uint64_t)(warmup * 1e9);
  uint64_t t_end = t_measure + (uint64_t)(duration * 1e9);
  uint64_t t_drain = 0, published = 0, delivered = 0, reordered = 0;
  uint64_t lost = 0;
  int measuring = 0;
  bench_snap a = {0}, b = {0};
  memset(tx, 0x5a, sizeof(tx));
  for (;;) {
    uint64_t now = bench_now_ns();
    if (!measuring && now >= t_measure && !t_drain) {
      measuring = 1;
      bench_snap_take(&a, pid);
    }
    if (!t_drain && now >= t_end) {
      bench_snap_take(&b, pid);
      measuring = 0;
      t_drain = now + 1000000000ull; /* the last ones: at most 1 s */
    }
    if (t_drain) {
      uint32_t i;
      for (i = 0; i < nsubs && subs[i].got >= published; ++i) {
      }
      if (i == nsubs || now >= t_drain) {
        break;
      }
    } else {
      uint64_t due = (uint64_t)((double)(now - start) * rate / 1e9) + 1;
      while (published < due) {
        bench_put64(tx, published);
        bench_put64(tx + 8, bench_now_ns());
        if (send(pub, tx, payload, 0) == (ssize_t)payload) {
          ++published;
        } else if (errno != EINTR) {
          ++published; /* gone: counted as lost by every subscriber */
        }
      }
    }
    /* Sleep until the next publication is due (1 ms granularity). */
    uint64_t next = start + (uint64_t)((double)(published) * 1e9 / rate);
    int wait_ms = t_drain ? 5
                          : next > now ? (int)((next - now) / 1000000) : 0;
    int n = epoll_wait(ep, evs, 256, wait_ms);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "udp_echo: epoll_wait: %s\n", strerror(errno));
      return 1;
    }
    for (int k = 0; k < n; ++k) {
      fo_sub *sb = &subs[evs[k].data.u32];
      for (;;) {
        for (int i = 0; i < BATCH; ++i) {
          iov[i].iov_base = bufs[i];
          iov[i].iov_len = MAX_DGRAM;
          memset(&msgs[i], 0, sizeof(msgs[i]));
          msgs[i].msg_hdr.msg_iov = &iov[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int m = recvmmsg(sb->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (m <= 0) {
          break;
        }
        uint64_t t = bench_now_ns();
        for (int i = 0; i < m; ++i) {
          if (msgs[i].msg_len != payload) {
            continue;
          }
          uint64_t seq = bench_get64(bufs[i]);
          ++sb->got;
          if (seq < sb->next) {
            ++reordered;
          } else {
            sb->next = seq + 1;
          }
          if (measuring) {
            ++delivered;
            bench_hist_add(&hist, t - bench_get64(bufs[i] + 8));
          }
        }
        if (m < BATCH) {
          break;
        }
      }
    }
  }
  for (uint32_t i = 0; i < nsubs; ++i) {
    lost += subs[i].got < published ? published - subs[i].got : 0;
  }

  double secs = (double)(b.wall_ns - a.wall_ns) / 1e9;
  double drate = secs > 0 ? (double)delivered / secs : 0;
  bench_json j;
  bench_json_begin(&j);
  bench_json_str(&j, "mode", "fanout");
  bench_json_str(&j, "target", label);
  bench_json_int(&j, "subscribers", nsubs);
  bench_json_int(&j, "conns", nsubs);
  bench_json_int(&j, "per_conn", 1);
  bench_json_str(&j, "delivery", "udp");
  bench_json_num(&j, "msg_rate", rate);
  bench_json_int(&j, "payload", payload);
  bench_json_int(&j, "published", published);
  bench_json_int(&j, "ops", delivered);
  bench_json_str(&j, "unit", "delivery");
  bench_json_num(&j, "rate", drate);
  bench_json_num(&j, "lat_p50_us", bench_hist_quantile(&hist, 0.5) / 1e3);
  bench_json_num(&j, "lat_p99_us", bench_hist_quantile(&hist, 0.99) / 1e3);
  bench_json_num(&j, "lat_p999_us", bench_hist_quantile(&hist, 0.999) / 1e3);
  bench_json_num(&j, "lat_max_us", (double)hist.max / 1e3);
  bench_json_int(&j, "violations", 0);
  bench_json_int(&j, "lost", lost);
  bench_json_int(&j, "reordered", reordered);
  bench_json_int(&j, "blocked", 0);
  bench_json_cpu(&j, &a, &b, (double)delivered);
  bench_json_int(&j, "errors", 0);
  bench_json_end(&j, stdout);
  printf("%s fanout: %.0f deliveries/s (%u subscribers, %g msg/s, %zu B), "
         "latency p50 %.2f ms p99 %.2f ms, lost %" PRIu64,
         label, drate, nsubs, rate, payload,
         bench_hist_quantile(&hist, 0.5) / 1e6,
         bench_hist_quantile(&hist, 0.99) / 1e6, lost);
  if (a.server_cpu_us >= 0 && b.server_cpu_us >= 0 && delivered) {
    printf(", server CPU %.2f us/delivery",
           (double)(b.server_cpu_us - a.server_cpu_us) / (double)delivered);
  }
  printf("\n");
  for (uint32_t i = 0; i < nsubs; ++i) {
    close(subs[i].fd);
  }
  close(pub);
  close(ep);
  free(subs);
  return delivered > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(argv[1], "server") == 0 ||
      strcmp(argv[1], "fanout-server") == 0) {
    const char *host = "127.0.0.1";
    long port = 0;
    for (int i = 2; i < argc; ++i) {
      if ((!strcmp(argv[i], "-a") || !strcmp(argv[i], "--addr")) &&
          i + 1 < argc) {
        host = argv[++i];
      } else if ((!strcmp(argv[i], "-p") || !strcmp(argv[i], "--port")) &&
                 i + 1 < argc) {
        port = strtol(argv[++i], NULL, 10);
      } else {
        usage(stderr);
        return 2;
      }
    }
    if (port < 0 || port > 65535) {
      usage(stderr);
      return 2;
    }
    return argv[1][0] == 'f' ? run_fanout_server(host, (uint16_t)port)
                             : run_server(host, (uint16_t)port);
  }
  if (strcmp(argv[1], "client") == 0) {
    return run_client(argc - 1, argv + 1);
  }
  if (strcmp(argv[1], "fanout") == 0) {
    return run_fanout_client(argc - 1, argv + 1);
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  usage(stderr);
  return 2;
}
