/*
 * h3wt_endpoint: the server's QUIC endpoint on one UDP socket.
 *
 * It owns what is about packets and connections, not about requests: the
 * UDP handle, the table of connections keyed by connection ID, Version
 * Negotiation, stateless resets, Retry under load, the connection limit,
 * one libuv timer per connection, and the flush pass that writes every
 * connection marked dirty once before the loop sleeps.  The facade above
 * (h3wt_server) makes each connection's HTTP/3 layer and hears when a
 * connection goes.
 *
 * The endpoint also keeps the "inside a callback" depth: every entry from
 * libuv (a received datagram, a timer, the flush pass) is bracketed by
 * h3wt_ep_enter()/h3wt_ep_leave(), and the facade's settled callback runs
 * when the depth is back at 0, which is where closes asked for from
 * inside callbacks are carried out.
 */
#ifndef H3WT_ENDPOINT_H
#define H3WT_ENDPOINT_H

#include <uv.h>

#include "h3wt_driver.h"
#include "h3wt_group.h"
#include "h3wt_h3.h"
#include "h3wt_list.h"
#include "h3wt_quic.h"
#include "h3wt_udp.h"
#include "h3wt_util.h"

typedef struct h3wt_endpoint h3wt_endpoint;

/* One connection.  The facade's per-connection state hangs off data. */
typedef struct h3wt_ep_conn {
  h3wt_h3_owner owner; /* first: the shared QUIC callbacks find h3 here */
  h3wt_endpoint *ep;
  h3wt_quic_conn *qc;
  h3wt_drv_item item;   /* its timer and place on the dirty list */
  h3wt_list node;       /* in the endpoint's connections */
  int dead;
  int counted; /* its timer's close is awaited by h3wt_ep_close */
  int unvalidated; /* counted in the endpoint's handshakes in progress from
                      addresses no Retry has proven */
  void *data;  /* the facade's */
} h3wt_ep_conn;

typedef struct h3wt_ep_callbacks {
  /* Required.  A new connection (qc set): make its HTTP/3 layer in
     c->owner.h3.  Non-zero drops the connection (and must leave nothing
     behind). */
  int (*conn_open)(h3wt_ep_conn *c, void *ud);
  /* Optional.  In the flush pass, before c is written (deferred work,
     liveness).  It may close c with h3wt_ep_conn_close(). */
  void (*conn_before_write)(h3wt_ep_conn *c, uint64_t ts, void *ud);
  /* Required.  c is going (code: the HTTP/3 code its requests end with):
     let go of what hangs off it.  The endpoint frees h3 and qc after. */
  void (*conn_gone)(h3wt_ep_conn *c, uint64_t code, void *ud);
  /* Required.  After conn_gone: free what conn_open made, the HTTP/3
     layer included (c->owner.h3 = NULL); its last callbacks run here. */
  void (*conn_freed)(h3wt_ep_conn *c, void *ud);
  /* Optional.  A deadline of the facade's for c (ns; UINT64_MAX: none);
     c's timer fires at the earlier of it and QUIC's. */
  uint64_t (*conn_deadline)(h3wt_ep_conn *c, void *ud);
  /* Optional.  The end of each flush pass. */
  void (*after_flush)(void *ud);
  /* Optional.  The depth is back at 0. */
  void (*settled)(void *ud);
} h3wt_ep_callbacks;

typedef struct h3wt_ep_stats {
  uint64_t connections_total;
  uint64_t handshake_failures;
  uint64_t limit_max_connections;       /* Initial packets dropped */
  uint64_t limit_max_handshakes_per_addr; /* Retry packets sent */
  uint64_t limit_max_unvalidated_handshakes; /* of those, for everyone */
  uint64_t packets_handed_off;        /* to the worker that owns them */
  uint64_t packets_misrouted_dropped; /* its inbox could not take them */
} h3wt_ep_stats;

typedef struct h3wt_ep_config {
  uv_loop_t *loop;
  const h3wt_logger *log;
  /* QUIC settings of every connection; the endpoint sets its send and
     CID callbacks. */
  h3wt_quic_config *qcfg;
  uint32_t max_connections;
  uint32_t max_handshakes_per_addr; /* 0: never Retry */
  /* Handshakes in progress from unproven addresses beyond which every new
     Initial gets a Retry, whatever its address (a flood from spoofed
     addresses never trips the per-address rate).  0: never. */
  uint32_t max_unvalidated_handshakes;
  /* A worker of a group (NULL: on its own): its socket is the group's,
     the limits above count the group's connections, and packets for
     another worker's connection IDs go to that worker's inbox. */
  h3wt_server_group *group;
  uint32_t worker;
  const h3wt_ep_callbacks *cbs;
  void *ud;
} h3wt_ep_config;

int h3wt_ep_new(h3wt_endpoint **pep, const h3wt_ep_config *cfg);
/* Binds the socket; returns 0 or H3WT_ERR_ADDRESS/H3WT_ERR_IO. */
int h3wt_ep_listen(h3wt_endpoint *ep, const struct sockaddr *addr);
const struct sockaddr *h3wt_ep_local(const h3wt_endpoint *ep);
/* New connections are refused (a drain): only known ones are served. */
void h3wt_ep_stop_accepting(h3wt_endpoint *ep);

void h3wt_ep_enter(h3wt_endpoint *ep);
void h3wt_ep_leave(h3wt_endpoint *ep);
int h3wt_ep_depth(const h3wt_endpoint *ep);

void h3wt_ep_mark_dirty(h3wt_ep_conn *c);
/* CONNECTION_CLOSE with code and reason now, then frees c.  Only where no
   ngtcp2 or nghttp3 call is on the stack (depth 0, or the facade's
   conn_before_write and after_flush). */
void h3wt_ep_conn_close(h3wt_ep_conn *c, uint64_t code, const char *reason);

/* The connections, for the facade's walks (GOAWAY, drain). */
h3wt_list *h3wt_ep_conns(h3wt_endpoint *ep);
size_t h3wt_ep_nconns(const h3wt_endpoint *ep);
#define h3wt_ep_conn_of(n) h3wt_list_entry(n, h3wt_ep_conn, node)

/* Closes every connection (each gets GOAWAY first if its HTTP/3 layer
   started, then CONNECTION_CLOSE with H3_NO_ERROR), then the libuv
   handles; cb runs once all of them are closed.  Not from inside a
   callback (depth 0). */
void h3wt_ep_close(h3wt_endpoint *ep, void (*cb)(void *ud), void *ud);
/* After the close callback (or before listening). */
void h3wt_ep_del(h3wt_endpoint *ep);

const h3wt_ep_stats *h3wt_ep_stats_get(const h3wt_endpoint *ep);
const h3wt_udp_stats *h3wt_ep_udp_stats(const h3wt_endpoint *ep);

#endif /* H3WT_ENDPOINT_H */
