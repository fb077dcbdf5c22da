/*
 * h3wt_endpoint: the server's QUIC endpoint (see h3wt_endpoint.h).  The
 * timers, the flush pass and the callback depth are h3wt_driver's, shared
 * with the client.
 */
#include "h3wt_endpoint.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct h3wt_endpoint {
  h3wt_ep_config cfg;
  h3wt_quic_callbacks qcbs; /* the facade's, plus send and CIDs */
  h3wt_udp udp;
  int listening;
  int accepting;
  int closing;
  h3wt_driver drv; /* started by h3wt_ep_listen */
  h3wt_driver_callbacks drvcbs;
  h3wt_cidmap cids;
  h3wt_ratemap handshakes; /* per source address; slots NULL: no limit
                              (a group's worker uses the group's) */
  h3wt_list conns;
  size_t nconns; /* this endpoint's */
  /* What max_connections and max_unvalidated_handshakes are checked
     against: own, or the group's (every worker's connections). */
  h3wt_conn_counts own_counts;
  h3wt_conn_counts *counts;
  size_t unvalidated; /* this endpoint's connections with c->unvalidated */
  int inbox_open;     /* a group's worker: its inbox takes packets */
  int pending_closes;
  void (*close_cb)(void *ud);
  void *close_ud;
  h3wt_ep_stats stats;
};

#define LOG(ep) ((ep)->cfg.log)

/* ---- depth ------------------------------------------------------------- */

void h3wt_ep_enter(h3wt_endpoint *ep) {
  h3wt_driver_enter(&ep->drv);
}

void h3wt_ep_leave(h3wt_endpoint *ep) {
  h3wt_driver_leave(&ep->drv);
}

int h3wt_ep_depth(const h3wt_endpoint *ep) {
  return ep->listening ? h3wt_driver_depth(&ep->drv) : 0;
}

static void on_settled(void *ud) {
  h3wt_endpoint *ep = ud;
  if (ep->cfg.cbs->settled) {
    ep->cfg.cbs->settled(ep->cfg.ud);
  }
}

/* ---- connections -------------------------------------------------------- */

void h3wt_ep_mark_dirty(h3wt_ep_conn *c) {
  if (!c->dead) {
    h3wt_drv_mark_dirty(&c->item);
  }
}

static void close_step(h3wt_endpoint *ep) {
  assert(ep->pending_closes > 0);
  if (--ep->pending_closes == 0 && ep->close_cb) {
    ep->close_cb(ep->close_ud);
  }
}

static void conn_timer_closed(uv_handle_t *h) {
  h3wt_ep_conn *c = h->data;
  h3wt_endpoint *ep = c->ep;
  int counted = c->counted;
  free(c);
  if (counted) {
    close_step(ep);
  }
}

/* The handshake's address is proven (or the connection goes): it no
   longer counts against max_unvalidated_handshakes. */
static void conn_validated(h3wt_ep_conn *c) {
  h3wt_endpoint *ep = c->ep;
  assert(c->unvalidated && ep->unvalidated > 0);
  assert(atomic_load(&ep->counts->unvalidated) >= ep->unvalidated);
  c->unvalidated = 0;
  --ep->unvalidated;
  atomic_fetch_sub(&ep->counts->unvalidated, 1);
}

/* Frees a connection: its CIDs leave the map now, its memory once libuv
   has released the timer. */
static void conn_free(h3wt_ep_conn *c, uint64_t code) {
  h3wt_endpoint *ep = c->ep;
  uint8_t cids[20][20];
  size_t lens[20];
  if (c->dead) {
    return;
  }
  c->dead = 1;
  if (!ep->closing && !h3wt_quic_conn_handshake_done(c->qc)) {
    ++ep->stats.handshake_failures;
  }
  if (c->unvalidated) {
    conn_validated(c);
  }
  assert(atomic_load(&ep->counts->conns) >= ep->nconns);
  atomic_fetch_sub(&ep->counts->conns, 1);
  size_t n = h3wt_quic_conn_cids(c->qc, cids, lens, 20);
  for (size_t i = 0; i < n; ++i) {
    if (h3wt_cidmap_find(&ep->cids, cids[i], lens[i]) == c) {
      h3wt_cidmap_remove(&ep->cids, cids[i], lens[i]);
    }
  }
  ep->cfg.cbs->conn_gone(c, code, ep->cfg.ud);
  h3wt_list_remove(&c->node);
  assert(ep->nconns > 0);
  --ep->nconns;
  H3WT_LOG(LOG(ep), H3WT_LOG_DEBUG, "server", "[%s] connection freed",
           h3wt_quic_conn_name(c->qc));
  /* The facade frees the HTTP/3 layer it made (its sessions hear of the
     end there). */
  ep->cfg.cbs->conn_freed(c, ep->cfg.ud);
  assert(!c->owner.h3);
  h3wt_quic_conn_del(c->qc);
  c->qc = NULL;
  if (ep->closing) {
    c->counted = 1;
    ++ep->pending_closes;
  }
  /* Off the dirty list now, its memory once libuv releases the timer. */
  h3wt_drv_item_close(&c->item, conn_timer_closed, c);
}

void h3wt_ep_conn_close(h3wt_ep_conn *c, uint64_t code, const char *reason) {
  uint64_t ts = h3wt_now_ns();
  if (c->dead) {
    return;
  }
  /* GOAWAY first, so a client knows no request was lost silently. */
  if (c->owner.h3 && h3wt_h3_started(c->owner.h3)) {
    h3wt_h3_shutdown(c->owner.h3);
    h3wt_quic_conn_write(c->qc, ts);
  }
  h3wt_quic_conn_close(c->qc, code, reason, ts);
  conn_free(c, code == H3WT_H3_NO_ERROR ? H3WT_H3_REQUEST_CANCELLED : code);
}

/* The connection's timer fired (inside the driver's depth). */
static void on_expired(h3wt_drv_item *it, uint64_t ts, void *ud) {
  h3wt_ep_conn *c = it->data;
  if (h3wt_quic_conn_handle_expiry(c->qc, ts) == H3WT_QUIC_DEAD) {
    conn_free(c, H3WT_H3_REQUEST_CANCELLED);
  } else {
    h3wt_ep_mark_dirty(c);
  }
}

static void conn_schedule(h3wt_ep_conn *c) {
  h3wt_endpoint *ep = c->ep;
  uint64_t exp = h3wt_quic_conn_expiry(c->qc);
  if (ep->cfg.cbs->conn_deadline) {
    uint64_t d = ep->cfg.cbs->conn_deadline(c, ep->cfg.ud);
    if (d < exp) {
      exp = d;
    }
  }
  h3wt_drv_schedule(&c->item, exp);
}

/* The flush pass reached c. */
static int on_flush(h3wt_drv_item *it, uint64_t ts, void *ud) {
  h3wt_endpoint *ep = ud;
  h3wt_ep_conn *c = it->data;
  if (c->dead || ep->closing) {
    return 0;
  }
  if (ep->cfg.cbs->conn_before_write) {
    ep->cfg.cbs->conn_before_write(c, ts, ep->cfg.ud);
    if (c->dead || ep->closing) {
      return 0;
    }
  }
  h3wt_quic_status st = h3wt_quic_conn_write(c->qc, ts);
  if (st == H3WT_QUIC_DEAD) {
    conn_free(c, H3WT_H3_REQUEST_CANCELLED);
    return 0;
  }
  conn_schedule(c);
  return st == H3WT_QUIC_MORE;
}

static void on_after_flush(void *ud) {
  h3wt_endpoint *ep = ud;
  if (ep->cfg.cbs->after_flush && !ep->closing) {
    ep->cfg.cbs->after_flush(ep->cfg.ud);
  }
}

/* ---- QUIC callbacks (owner half) ---------------------------------------- */

static void q_send(h3wt_quic_conn *qc, const struct sockaddr *remote,
                   const uint8_t *data, size_t len, size_t gso, unsigned ecn,
                   void *ud) {
  h3wt_ep_conn *c = ud;
  h3wt_udp_send(&c->ep->udp, remote, data, len, gso, ecn);
}

static int q_cid_added(h3wt_quic_conn *qc, const uint8_t *cid, size_t len,
                       void *ud) {
  h3wt_ep_conn *c = ud;
  return h3wt_cidmap_insert(&c->ep->cids, cid, len, c);
}

static void q_cid_removed(h3wt_quic_conn *qc, const uint8_t *cid, size_t len,
                          void *ud) {
  h3wt_ep_conn *c = ud;
  if (h3wt_cidmap_find(&c->ep->cids, cid, len) == c) {
    h3wt_cidmap_remove(&c->ep->cids, cid, len);
  }
}

/* ---- UDP input ----------------------------------------------------------- */

/* A packet with no connection: Retry, the connection limit, or a new
   connection.  Returns it, or NULL when the packet was answered or
   dropped. */
static h3wt_ep_conn *conn_accept(h3wt_endpoint *ep,
                                 const struct sockaddr *remote,
                                 const uint8_t *data, size_t len,
                                 uint64_t ts) {
  const struct sockaddr *local = (const struct sockaddr *)&ep->udp.local;
  uint8_t out[1500];
  int proven = 0;
  /* A group's workers share the rate (under its lock: only packets that
     would open a connection come here). */
  int per_addr =
      ep->cfg.group
          ? h3wt_group_handshake_hit(ep->cfg.group,
                                     ep->cfg.max_handshakes_per_addr, remote,
                                     ts)
          : ep->handshakes.slots &&
                h3wt_ratemap_hit(&ep->handshakes, remote, ts);
  size_t unvalidated = atomic_load(&ep->counts->unvalidated);
  int for_all = ep->cfg.max_unvalidated_handshakes &&
                unvalidated >= ep->cfg.max_unvalidated_handshakes;
  if (per_addr || for_all) {
    /* Over the rate for this address, or too many handshakes in progress
       from unproven addresses: no state until the client proves the
       address is its own by answering a Retry (RFC 9000 8.1.2). */
    ssize_t n = h3wt_quic_write_retry(out, sizeof(out), ep->cfg.qcfg, remote,
                                      data, len, ts);
    if (n < 0) {
      return NULL;
    }
    if (n > 0) {
      h3wt_udp_send(&ep->udp, remote, out, (size_t)n, 0, 0);
      ++ep->stats.limit_max_handshakes_per_addr;
      if (!per_addr) {
        ++ep->stats.limit_max_unvalidated_handshakes;
      }
      if (LOG(ep)->level >= H3WT_LOG_DEBUG) {
        char addr[64];
        h3wt_addr_format(remote, addr, sizeof(addr));
        if (per_addr) {
          H3WT_LOG(LOG(ep), H3WT_LOG_DEBUG, "server",
                   "Retry sent to %s (over %u handshakes/s)", addr,
                   ep->cfg.max_handshakes_per_addr);
        } else {
          H3WT_LOG(LOG(ep), H3WT_LOG_DEBUG, "server",
                   "Retry sent to %s (%zu unproven handshakes in progress)",
                   addr, unvalidated);
        }
      }
      return NULL;
    }
    /* n == 0: this Initial answers a Retry; its token is checked below
       (h3wt_quic_conn_server_new refuses a bad one). */
    proven = 1;
  }
  /* Taken before the connection exists, so two workers cannot both take
     the last slot; given back on every way out below. */
  if (atomic_fetch_add(&ep->counts->conns, 1) >= ep->cfg.max_connections) {
    atomic_fetch_sub(&ep->counts->conns, 1);
    ++ep->stats.limit_max_connections;
    H3WT_LOG(LOG(ep), H3WT_LOG_WARN, "server",
             "connection limit (%u) reached: new connection dropped",
             ep->cfg.max_connections);
    return NULL;
  }
  h3wt_ep_conn *c = calloc(1, sizeof(*c));
  if (!c) {
    atomic_fetch_sub(&ep->counts->conns, 1);
    return NULL;
  }
  c->ep = ep;
  h3wt_list_init(&c->node);

  if (h3wt_quic_conn_server_new(&c->qc, ep->cfg.qcfg, local, remote, data,
                                len, ts, c) != 0) {
    free(c);
    atomic_fetch_sub(&ep->counts->conns, 1);
    return NULL;
  }
  if (ep->cfg.cbs->conn_open(c, ep->cfg.ud) != 0) {
    /* conn_free() expects a linked connection: undo by hand. */
    uint8_t cids[4][20];
    size_t lens[4], n = h3wt_quic_conn_cids(c->qc, cids, lens, 4);
    for (size_t i = 0; i < n; ++i) {
      h3wt_cidmap_remove(&ep->cids, cids[i], lens[i]);
    }
    h3wt_quic_conn_del(c->qc); /* conn_open left nothing behind */
    free(c);
    atomic_fetch_sub(&ep->counts->conns, 1);
    return NULL;
  }
  h3wt_drv_item_init(&ep->drv, &c->item, c);
  h3wt_list_insert_head(&ep->conns, &c->node);
  ++ep->nconns;
  if (!proven) {
    c->unvalidated = 1;
    ++ep->unvalidated;
    atomic_fetch_add(&ep->counts->unvalidated, 1);
  }
  ++ep->stats.connections_total;
  if (LOG(ep)->level >= H3WT_LOG_DEBUG) {
    char addr[64];
    h3wt_addr_format(remote, addr, sizeof(addr));
    H3WT_LOG(LOG(ep), H3WT_LOG_DEBUG, "server",
             "[%s] new connection from %s (%zu open)",
             h3wt_quic_conn_name(c->qc), addr, ep->nconns);
  }
  return c;
}

/* handed: the packet came from another worker's inbox (it is ours
   whatever its connection ID says: never handed on again). */
static void on_packet(h3wt_endpoint *ep, const struct sockaddr *remote,
                      const uint8_t *data, size_t len, unsigned ecn,
                      uint64_t ts, int handed) {
  const struct sockaddr *local = (const struct sockaddr *)&ep->udp.local;
  h3wt_quic_pkt_info pi;
  uint8_t out[1500];
  int rv = h3wt_quic_decode(data, len, &pi);
  if (rv < 0) {
    H3WT_LOG(LOG(ep), H3WT_LOG_TRACE, "udp", "dropped %zu bytes: not QUIC",
             len);
    return;
  }
  if (rv == 1) {
    /* RFC 9000 6.1 / 14.1: answer an unknown version only for a datagram
       as large as an Initial must be, so VN cannot amplify. */
    if (pi.long_header && len >= 1200) {
      ssize_t n = h3wt_quic_write_version_negotiation(out, sizeof(out), &pi);
      if (n > 0) {
        h3wt_udp_send(&ep->udp, remote, out, (size_t)n, 0, 0);
      }
    }
    return;
  }
  h3wt_ep_conn *c = h3wt_cidmap_find(&ep->cids, pi.dcid, pi.dcidlen);
  if (!c && ep->cfg.group && !handed) {
    /* Not a connection of ours: if the ID is another worker's (or, for a
       client's first Initials, the worker its random ID spreads it to),
       that worker handles it, with the client's address kept so its
       answer, from a socket with the same local address, reaches the
       client as ours would. */
    uint32_t owner = h3wt_cid_worker(pi.dcid, pi.dcidlen,
                                     h3wt_group_workers(ep->cfg.group));
    int hv = owner != UINT32_MAX && owner != ep->cfg.worker
                 ? h3wt_group_handoff(ep->cfg.group, owner, remote, data,
                                      len)
                 : H3WT_GROUP_GONE;
    if (hv == H3WT_GROUP_TAKEN) {
      ++ep->stats.packets_handed_off;
      return;
    }
    if (hv != H3WT_GROUP_GONE) {
      ++ep->stats.packets_misrouted_dropped;
      H3WT_LOG(LOG(ep), H3WT_LOG_DEBUG, "udp",
               "packet of %zu bytes for worker %u dropped: %s", len, owner,
               hv == H3WT_GROUP_FULL ? "its inbox is full"
                                     : "too large for its inbox");
      return;
    }
    /* Ours, or the owner stopped (its connections are gone): this worker
       answers, with a stateless reset the client accepts (the group
       shares the secret) or a new connection (a Retry token checked with
       the same secret). */
  }
  if (!c) {
    if (!pi.long_header) {
      /* A short-header packet for a connection we do not know (we
         restarted, or it timed out): tell the peer with a stateless
         reset so it need not wait for its idle timeout. */
      size_t n = h3wt_quic_write_stateless_reset(
          out, sizeof(out), ep->cfg.qcfg->static_secret, pi.dcid,
          pi.dcidlen, len);
      if (n) {
        h3wt_udp_send(&ep->udp, remote, out, n, 0, 0);
      }
      return;
    }
    if (!ep->accepting) {
      return;
    }
    c = conn_accept(ep, remote, data, len, ts);
    if (!c) {
      return;
    }
  }
  if (c->dead) {
    return;
  }
  if (h3wt_quic_conn_read(c->qc, local, remote, data, len, ecn, ts) ==
      H3WT_QUIC_DEAD) {
    conn_free(c, H3WT_H3_REQUEST_CANCELLED);
    return;
  }
  if (c->unvalidated && h3wt_quic_conn_handshake_done(c->qc)) {
    conn_validated(c); /* the peer answered: its address is its own */
  }
  h3wt_ep_mark_dirty(c);
}

static void on_datagram(h3wt_udp *udp, const struct sockaddr *remote,
                        const uint8_t *data, size_t len, unsigned ecn,
                        uint64_t ts, void *user_data) {
  h3wt_endpoint *ep = user_data;
  if (ep->closing) {
    return; /* the rest of a receive batch after a close */
  }
  h3wt_ep_enter(ep);
  on_packet(ep, remote, data, len, ecn, ts, 0);
  h3wt_ep_leave(ep);
}

/* A packet another worker received for one of our connection IDs (on
   this loop's thread, from the group's inbox). */
static void on_handed(void *ud, const struct sockaddr *remote,
                      const uint8_t *data, size_t len, uint64_t ts) {
  h3wt_endpoint *ep = ud;
  if (ep->closing) {
    return;
  }
  h3wt_ep_enter(ep);
  /* The inbox keeps no ECN mark: Not-ECT (at worst the peer's ECN
     validation fails and it sends unmarked, as without ECN). */
  on_packet(ep, remote, data, len, 0, ts, 1);
  h3wt_ep_leave(ep);
}

/* ---- lifecycle ----------------------------------------------------------- */

int h3wt_ep_new(h3wt_endpoint **pep, const h3wt_ep_config *cfg) {
  uint8_t key[16];
  h3wt_endpoint *ep = calloc(1, sizeof(*ep));
  if (!ep) {
    return H3WT_ERR_NOMEM;
  }
  ep->cfg = *cfg;
  ep->accepting = 1;
  h3wt_list_init(&ep->conns);
  atomic_init(&ep->own_counts.conns, 0);
  atomic_init(&ep->own_counts.unvalidated, 0);
  ep->counts =
      cfg->group ? h3wt_group_counts(cfg->group) : &ep->own_counts;
  assert(!cfg->group || cfg->worker < h3wt_group_workers(cfg->group));
  if (h3wt_random(key, sizeof(key)) != 0 ||
      h3wt_cidmap_init(&ep->cids, key) != 0) {
    h3wt_ep_del(ep);
    return H3WT_ERR_NOMEM;
  }
  if (cfg->max_handshakes_per_addr && !cfg->group &&
      (h3wt_random(key, sizeof(key)) != 0 ||
       h3wt_ratemap_init(&ep->handshakes, 4096, cfg->max_handshakes_per_addr,
                         key) != 0)) {
    h3wt_ep_del(ep);
    return H3WT_ERR_NOMEM;
  }
  /* The facade's QUIC callbacks, with the endpoint's owner half. */
  ep->qcbs = *cfg->qcfg->cbs;
  ep->qcbs.send = q_send;
  ep->qcbs.cid_added = q_cid_added;
  ep->qcbs.cid_removed = q_cid_removed;
  ep->cfg.qcfg->cbs = &ep->qcbs;
  *pep = ep;
  return 0;
}

int h3wt_ep_listen(h3wt_endpoint *ep, const struct sockaddr *addr) {
  int rv;
  if (ep->cfg.group) {
    int fd;
    rv = h3wt_group_socket(ep->cfg.group, ep->cfg.worker, addr, LOG(ep), &fd);
    if (rv == 0) {
      rv = h3wt_udp_open_fd(&ep->udp, ep->cfg.loop, fd, LOG(ep), on_datagram,
                            ep);
    }
  } else {
    rv = h3wt_udp_open(&ep->udp, ep->cfg.loop, addr, LOG(ep), on_datagram,
                       ep);
  }
  if (rv != 0) {
    return rv;
  }
  if (ep->cfg.group) {
    rv = h3wt_group_inbox_open(ep->cfg.group, ep->cfg.worker, ep->cfg.loop,
                               on_handed, ep);
    if (rv != 0) {
      h3wt_udp_close(&ep->udp, NULL, NULL);
      return rv;
    }
    ep->inbox_open = 1;
  }
  ep->drvcbs.flush = on_flush;
  ep->drvcbs.expired = on_expired;
  ep->drvcbs.after_flush = on_after_flush;
  ep->drvcbs.settled = on_settled;
  h3wt_driver_init(&ep->drv, ep->cfg.loop, &ep->drvcbs, ep, 1);
  ep->listening = 1;
  return 0;
}

const struct sockaddr *h3wt_ep_local(const h3wt_endpoint *ep) {
  return ep->listening ? (const struct sockaddr *)&ep->udp.local : NULL;
}

void h3wt_ep_stop_accepting(h3wt_endpoint *ep) {
  ep->accepting = 0;
  /* A pass runs soon, so after_flush sees the idle connections. */
  if (ep->listening) {
    h3wt_driver_wake(&ep->drv);
  }
}

h3wt_list *h3wt_ep_conns(h3wt_endpoint *ep) {
  return &ep->conns;
}

size_t h3wt_ep_nconns(const h3wt_endpoint *ep) {
  return ep->nconns;
}

static void handle_closed(uv_handle_t *h) {
  close_step(h->data);
}

void h3wt_ep_close(h3wt_endpoint *ep, void (*cb)(void *ud), void *ud) {
  assert(h3wt_ep_depth(ep) == 0);
  if (ep->closing) {
    return;
  }
  ep->closing = 1;
  ep->accepting = 0;
  ep->close_cb = cb;
  ep->close_ud = ud;
  ep->pending_closes = 1; /* held until the end of this function */
  while (!h3wt_list_empty(&ep->conns)) {
    h3wt_ep_conn_close(h3wt_ep_conn_of(ep->conns.next), H3WT_H3_NO_ERROR,
                       "server shutting down");
  }
  if (ep->listening) {
    ep->pending_closes += 1 + h3wt_driver_close(&ep->drv, handle_closed, ep);
    h3wt_udp_close(&ep->udp, handle_closed, ep);
    if (ep->inbox_open) {
      /* Other workers' packets for us are dropped (and counted) from
         now on. */
      ep->inbox_open = 0;
      ++ep->pending_closes;
      h3wt_group_inbox_close(ep->cfg.group, ep->cfg.worker, handle_closed,
                             ep);
    }
  }
  close_step(ep);
}

void h3wt_ep_del(h3wt_endpoint *ep) {
  if (!ep) {
    return;
  }
  h3wt_cidmap_free(&ep->cids);
  h3wt_ratemap_free(&ep->handshakes);
  free(ep);
}

const h3wt_ep_stats *h3wt_ep_stats_get(const h3wt_endpoint *ep) {
  return &ep->stats;
}

const h3wt_udp_stats *h3wt_ep_udp_stats(const h3wt_endpoint *ep) {
  return &ep->udp.stats;
}
