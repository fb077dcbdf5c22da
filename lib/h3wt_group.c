/*
 * h3wt_group: what the workers of a server group share (see h3wt_group.h
 * and h3wt_server_group in h3wt.h).
 */
#include "h3wt_group.h"

#include <assert.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h3wt_udp.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

#define MAX_WORKERS 1024

/* An inbox slot holds one packet: a client's datagrams are at most the
   path MTU (1200 to 1500 bytes on the Internet); a larger one is counted
   as dropped by the worker that could not hand it over. */
#define SLOT_BYTES 1600
/* Packets one inbox holds between two turns of its owner's loop.  Two
   halves: other workers fill one while the owner empties the other
   without holding the lock. */
#define SLOTS 128

typedef struct inbox_slot {
  struct sockaddr_storage remote;
  size_t len;
  uint8_t data[SLOT_BYTES];
} inbox_slot;

typedef struct inbox {
  uv_mutex_t lock;
  uv_async_t async;
  int open;                   /* under lock: packets are taken */
  int fill;                   /* under lock: the half being filled */
  size_t count[2];            /* under lock (count[fill]) */
  inbox_slot (*slots)[SLOTS]; /* [2][SLOTS], made at open, kept to the end */
  h3wt_group_recv_cb cb;
  void *ud;
  uv_close_cb close_cb;
  void *close_data;
} inbox;

struct h3wt_server_group {
  uint32_t workers;
  uv_mutex_t lock; /* the fields below up to counts */
  int have_secret;
  uint8_t secret[32];
  h3wt_ratemap handshakes; /* slots NULL: no limit (or not made yet) */
  int rate_decided;
  int bound;    /* the sockets are made */
  int steer;    /* attach the program at the binding */
  int steering; /* it was attached */
  int *fds;     /* [workers]; -1 once taken by its worker */
  h3wt_conn_counts counts;
  inbox *inboxes; /* [workers] */
};

int h3wt_server_group_new(h3wt_server_group **pg, uint32_t workers) {
  if (!pg || workers < 1 || workers > MAX_WORKERS) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  h3wt_server_group *g = calloc(1, sizeof(*g));
  if (!g) {
    return H3WT_ERR_NOMEM;
  }
  g->workers = workers;
  g->steer = 1;
  g->fds = malloc(workers * sizeof(*g->fds));
  g->inboxes = calloc(workers, sizeof(*g->inboxes));
  if (!g->fds || !g->inboxes || uv_mutex_init(&g->lock) != 0) {
    free(g->fds);
    free(g->inboxes);
    free(g);
    return H3WT_ERR_NOMEM;
  }
  uint32_t i;
  for (i = 0; i < workers; ++i) {
    g->fds[i] = -1;
    if (uv_mutex_init(&g->inboxes[i].lock) != 0) {
      break;
    }
  }
  if (i < workers) {
    while (i-- > 0) {
      uv_mutex_destroy(&g->inboxes[i].lock);
    }
    uv_mutex_destroy(&g->lock);
    free(g->fds);
    free(g->inboxes);
    free(g);
    return H3WT_ERR_NOMEM;
  }
  atomic_init(&g->counts.conns, 0);
  atomic_init(&g->counts.unvalidated, 0);
  *pg = g;
  return 0;
}

void h3wt_server_group_del(h3wt_server_group *g) {
  if (!g) {
    return;
  }
  /* Every server is gone: nothing counts any more, nobody posts. */
  assert(atomic_load(&g->counts.conns) == 0);
  assert(atomic_load(&g->counts.unvalidated) == 0);
  for (uint32_t i = 0; i < g->workers; ++i) {
    assert(!g->inboxes[i].open);
    if (g->fds[i] >= 0) {
      close(g->fds[i]); /* a worker that never listened */
    }
    uv_mutex_destroy(&g->inboxes[i].lock);
    free(g->inboxes[i].slots);
  }
  h3wt_ratemap_free(&g->handshakes);
  uv_mutex_destroy(&g->lock);
  free(g->fds);
  free(g->inboxes);
  free(g);
}

uint32_t h3wt_group_workers(const h3wt_server_group *g) {
  return g->workers;
}

void h3wt_group_secret(h3wt_server_group *g, uint8_t secret[32]) {
  uv_mutex_lock(&g->lock);
  if (g->have_secret) {
    memcpy(secret, g->secret, 32);
  } else {
    memcpy(g->secret, secret, 32);
    g->have_secret = 1;
  }
  uv_mutex_unlock(&g->lock);
}

h3wt_conn_counts *h3wt_group_counts(h3wt_server_group *g) {
  return &g->counts;
}

int h3wt_group_handshake_hit(h3wt_server_group *g, uint32_t limit,
                             const struct sockaddr *remote, uint64_t ts) {
  int hit = 0;
  uv_mutex_lock(&g->lock);
  if (!g->rate_decided) {
    /* Made by the first packet that would open a connection, with the
       limit of the worker that saw it (the workers share their
       settings); no memory could be found: no rate limit, as with 0. */
    uint8_t key[16];
    g->rate_decided = 1;
    if (limit && h3wt_random(key, sizeof(key)) == 0) {
      h3wt_ratemap_init(&g->handshakes, 4096, limit, key);
    }
  }
  if (g->handshakes.slots) {
    hit = h3wt_ratemap_hit(&g->handshakes, remote, ts);
  }
  uv_mutex_unlock(&g->lock);
  return hit;
}

/* ---- the sockets and the steering program -------------------------------- */

/* Steering (classic BPF, run by the kernel on each datagram that reaches
   the reuseport group; offset 0 is the UDP payload): the destination
   connection ID starts at byte 1 of a short-header packet (RFC 9000
   17.3) and at byte 6 of a long-header one (17.2: flags, 4 bytes of
   version, the DCID length); its first 4 bytes modulo the number of
   workers are the index of a socket in the group, which is the worker's
   as the sockets were bound in worker order.  A client's first Initials
   carry a DCID the client chose at random, which spreads new connections
   over the workers; every later packet carries one of ours.  A packet
   too short for the load makes the program return 0 (worker 0), and an
   index past the group's sockets makes the kernel fall back to its
   4-tuple hash: either way the receiving worker hands it over if it is
   not its own. */
static int attach_steering(h3wt_server_group *g, int fd,
                           const h3wt_logger *log) {
  struct sock_filter code[] = {
      /* A = the first byte */
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
      /* the long-header bit: skip 2 when set, else fall through */
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x80, 2, 0),
      /* short header: A = the 4 bytes at 1 (network order) */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 1),
      BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0),
      /* long header: A = the 4 bytes at 6 */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 6),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, g->workers),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  struct sock_fprog prog;
  /* Zeroed whole: the padding after len goes to the kernel too. */
  memset(&prog, 0, sizeof(prog));
  prog.len = (unsigned short)(sizeof(code) / sizeof(code[0]));
  prog.filter = code;
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog,
                 sizeof(prog)) != 0) {
    H3WT_LOG(log, H3WT_LOG_WARN, "udp",
             "steering program not attached (%s): packets that reach the "
             "wrong worker are handed over, at a cost",
             strerror(errno));
    return 0;
  }
  return 1;
}

static socklen_t addr_len(const struct sockaddr *sa) {
  return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
}

/* SO_REUSEPORT lets any socket of the same user join the port: another
   server process started on a busy port would silently share its packets.
   A plain socket (no reuse) bound first finds the port busy; it is closed
   before the workers' sockets bind.  Port 0 needs no check: the kernel
   picks a port nobody uses. */
static int port_taken(const struct sockaddr *addr, const h3wt_logger *log) {
  if ((addr->sa_family == AF_INET6
           ? ((const struct sockaddr_in6 *)addr)->sin6_port
           : ((const struct sockaddr_in *)addr)->sin_port) == 0) {
    return 0;
  }
  int fd = h3wt_udp_socket(addr, 0, log); /* logs why it could not bind */
  if (fd < 0) {
    return 1;
  }
  close(fd);
  return 0;
}

/* Under the lock: every worker's socket, bound in worker order (the
   kernel keeps a reuseport group's sockets in the order they were bound,
   and the steering program's answer is an index into that order). */
static int bind_all(h3wt_server_group *g, const struct sockaddr *addr,
                    const h3wt_logger *log) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  memcpy(&ss, addr, addr_len(addr));
  if (port_taken(addr, log)) {
    return H3WT_ERR_ADDRESS;
  }
  for (uint32_t i = 0; i < g->workers; ++i) {
    int fd = h3wt_udp_socket((struct sockaddr *)&ss, 1, log);
    if (fd < 0) {
      goto fail;
    }
    g->fds[i] = fd;
    if (i == 0) {
      /* Port 0: the others take the port the first one got. */
      socklen_t len = sizeof(ss);
      getsockname(fd, (struct sockaddr *)&ss, &len);
    }
  }
  g->steering =
      g->workers > 1 && g->steer && attach_steering(g, g->fds[0], log);
  g->bound = 1;
  return 0;
fail:
  for (uint32_t i = 0; i < g->workers; ++i) {
    if (g->fds[i] >= 0) {
      close(g->fds[i]);
      g->fds[i] = -1;
    }
  }
  return H3WT_ERR_ADDRESS;
}

int h3wt_group_socket(h3wt_server_group *g, uint32_t worker,
                      const struct sockaddr *addr, const h3wt_logger *log,
                      int *pfd) {
  int rv = 0;
  assert(worker < g->workers);
  uv_mutex_lock(&g->lock);
  if (!g->bound) {
    rv = bind_all(g, addr, log);
  }
  if (rv == 0) {
    if (g->fds[worker] < 0) {
      rv = H3WT_ERR_INVALID_STATE; /* two servers with one index */
    } else {
      *pfd = g->fds[worker];
      g->fds[worker] = -1;
    }
  }
  uv_mutex_unlock(&g->lock);
  return rv;
}

void h3wt_group_set_steering(h3wt_server_group *g, int on) {
  uv_mutex_lock(&g->lock);
  g->steer = on;
  uv_mutex_unlock(&g->lock);
}

int h3wt_group_steering(const h3wt_server_group *g) {
  h3wt_server_group *mg = (h3wt_server_group *)g;
  uv_mutex_lock(&mg->lock);
  int on = g->steering;
  uv_mutex_unlock(&mg->lock);
  return on;
}

/* ---- the inboxes --------------------------------------------------------- */

/* On the owner's loop: swaps the halves under the lock, then hands every
   packet of the full half to the owner without it, so the other workers
   never wait for the owner's QUIC work. */
static void inbox_drain(uv_async_t *a) {
  inbox *ib = a->data;
  uv_mutex_lock(&ib->lock);
  int half = ib->fill;
  size_t n = ib->count[half];
  ib->fill = !half;
  uv_mutex_unlock(&ib->lock);
  uint64_t ts = h3wt_now_ns();
  for (size_t i = 0; i < n; ++i) {
    inbox_slot *s = &ib->slots[half][i];
    ib->cb(ib->ud, (const struct sockaddr *)&s->remote, s->data, s->len, ts);
  }
  uv_mutex_lock(&ib->lock);
  ib->count[half] = 0;
  uv_mutex_unlock(&ib->lock);
}

int h3wt_group_inbox_open(h3wt_server_group *g, uint32_t worker,
                          uv_loop_t *loop, h3wt_group_recv_cb cb, void *ud) {
  inbox *ib = &g->inboxes[worker];
  assert(worker < g->workers);
  if (!ib->slots) {
    ib->slots = malloc(2 * sizeof(*ib->slots));
    if (!ib->slots) {
      return H3WT_ERR_NOMEM;
    }
  }
  if (uv_async_init(loop, &ib->async, inbox_drain) != 0) {
    return H3WT_ERR_NOMEM;
  }
  ib->async.data = ib;
  /* Packets in flight are the sockets' business, not the inbox's: it does
     not keep the loop alive. */
  uv_unref((uv_handle_t *)&ib->async);
  ib->cb = cb;
  ib->ud = ud;
  uv_mutex_lock(&ib->lock);
  ib->open = 1;
  ib->fill = 0;
  ib->count[0] = ib->count[1] = 0;
  uv_mutex_unlock(&ib->lock);
  return 0;
}

static void inbox_closed(uv_handle_t *h) {
  inbox *ib = h->data;
  if (ib->close_cb) {
    h->data = ib->close_data;
    ib->close_cb(h);
  }
}

void h3wt_group_inbox_close(h3wt_server_group *g, uint32_t worker,
                            uv_close_cb close_cb, void *close_data) {
  inbox *ib = &g->inboxes[worker];
  uv_mutex_lock(&ib->lock);
  assert(ib->open);
  ib->open = 0;
  uv_mutex_unlock(&ib->lock);
  /* What is queued is dropped with the connections it was for. */
  ib->close_cb = close_cb;
  ib->close_data = close_data;
  uv_close((uv_handle_t *)&ib->async, inbox_closed);
}

int h3wt_group_handoff(h3wt_server_group *g, uint32_t owner,
                       const struct sockaddr *remote, const uint8_t *data,
                       size_t len) {
  inbox *ib = &g->inboxes[owner];
  assert(owner < g->workers);
  if (len > SLOT_BYTES) {
    return H3WT_GROUP_TOO_LARGE;
  }
  uv_mutex_lock(&ib->lock);
  size_t *n = &ib->count[ib->fill];
  if (!ib->open) {
    uv_mutex_unlock(&ib->lock);
    return H3WT_GROUP_GONE;
  }
  if (*n == SLOTS) {
    uv_mutex_unlock(&ib->lock);
    return H3WT_GROUP_FULL;
  }
  inbox_slot *s = &ib->slots[ib->fill][*n];
  memcpy(&s->remote, remote, addr_len(remote));
  memcpy(s->data, data, len);
  s->len = len;
  ++*n;
  /* Under the lock, so the owner's close cannot come between. */
  uv_async_send(&ib->async);
  uv_mutex_unlock(&ib->lock);
  return 0;
}
