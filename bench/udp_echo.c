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
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

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

/* ---- server ----------------------------------------------------------------- */

static int run_server(const char *host, uint16_t port) {
  static uint8_t bufs[BATCH][MAX_DGRAM];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage peers[BATCH], ss;
  socklen_t sslen;
  int fd;

  if (make_addr(host, port, &ss, &sslen) != 0) {
    fprintf(stderr, "udp_echo: bad address %s\n", host);
    return 2;
  }
  fd = socket(ss.ss_family, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
    fprintf(stderr, "udp_echo: bind %s port %u: %s\n", host, port,
            strerror(errno));
    return 1;
  }
  big_buffers(fd);
  sslen = sizeof(ss);
  getsockname(fd, (struct sockaddr *)&ss, &sslen);
  port = ntohs(ss.ss_family == AF_INET
                   ? ((struct sockaddr_in *)&ss)->sin_port
                   : ((struct sockaddr_in6 *)&ss)->sin6_port);
  printf("udp_echo: listening on %s port %u\n", host, port);
  fflush(stdout);

  for (;;) {
    for (int i = 0; i < BATCH; ++i) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = MAX_DGRAM;
      memset(&msgs[i], 0, sizeof(msgs[i]));
      msgs[i].msg_hdr.msg_name = &peers[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
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

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(argv[1], "server") == 0) {
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
    return run_server(host, (uint16_t)port);
  }
  if (strcmp(argv[1], "client") == 0) {
    return run_client(argc - 1, argv + 1);
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  usage(stderr);
  return 2;
}
