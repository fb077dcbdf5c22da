/*
 * h3wt_group: what the servers of one h3wt_server_group share, each
 * server being one worker on its own loop thread.
 *
 *  - The UDP sockets: one per worker, all bound to the same address with
 *    SO_REUSEPORT, in worker order, so that the kernel's reuseport group
 *    holds worker i's socket at index i; a classic BPF program attached to
 *    the group returns that index from the connection ID of each packet
 *    (see h3wt_group.c).
 *  - One inbox per worker: packets another worker received for a
 *    connection ID this worker issued (steering off or failed, a client
 *    that moved before the program saw it) are copied there and handled
 *    on the owner's loop as if received.
 *  - The static secret, the connection counts behind max_connections and
 *    max_unvalidated_handshakes, and the per-address handshake rate.
 *
 * Every function here is thread-safe (the group's lock, the inboxes'
 * locks, atomics); of it only h3wt_group_handoff() runs for a packet, and
 * only for one that is another worker's.  The connection IDs say whose
 * they are: h3wt_cid_set_worker() and h3wt_cid_worker() in h3wt_util.h.
 */
#ifndef H3WT_GROUP_H
#define H3WT_GROUP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "h3wt/h3wt.h"
#include "h3wt_util.h"

/* The counts the connection limits are checked against: one server's own,
   or its group's. */
typedef struct h3wt_conn_counts {
  atomic_size_t conns;       /* connections with state */
  atomic_size_t unvalidated; /* of those, handshakes from unproven
                                addresses */
} h3wt_conn_counts;

/* A packet handed over from another worker, handed to the owner's
   callback on its loop thread.  data is borrowed for the call. */
typedef void (*h3wt_group_recv_cb)(void *ud, const struct sockaddr *remote,
                                   const uint8_t *data, size_t len,
                                   uint64_t ts);

uint32_t h3wt_group_workers(const h3wt_server_group *g);

/* The group's secret: the first server to ask sets it from *secret; later
   ones get it in *secret. */
void h3wt_group_secret(h3wt_server_group *g, uint8_t secret[32]);

/* The counts shared by all workers. */
h3wt_conn_counts *h3wt_group_counts(h3wt_server_group *g);

/* The per-address handshake rate shared by all workers (limit: the first
   caller's max_handshakes_per_addr; 0 makes no map).  Returns 1 when the
   address is over it. */
int h3wt_group_handshake_hit(h3wt_server_group *g, uint32_t limit,
                             const struct sockaddr *remote, uint64_t ts);

/* Worker's socket, bound to addr's port (or, when another worker bound
   first, to the port the group got): the first call of the group makes
   and binds every worker's socket, in worker order, and attaches the
   steering program.  *pfd is the caller's from then on (libuv closes
   it).  Returns 0, H3WT_ERR_ADDRESS, H3WT_ERR_IO or
   H3WT_ERR_INVALID_STATE (this worker's socket was taken already). */
int h3wt_group_socket(h3wt_server_group *g, uint32_t worker,
                      const struct sockaddr *addr, const h3wt_logger *log,
                      int *pfd);

/* Worker's inbox on its loop: packets handed over run as cb(ud, ...) on
   that loop's thread.  Returns 0 or H3WT_ERR_NOMEM. */
int h3wt_group_inbox_open(h3wt_server_group *g, uint32_t worker,
                          uv_loop_t *loop, h3wt_group_recv_cb cb, void *ud);
/* On the worker's loop: refuses further packets and closes the async
   handle (close_cb with handle->data = close_data). */
void h3wt_group_inbox_close(h3wt_server_group *g, uint32_t worker,
                            uv_close_cb close_cb, void *close_data);

/* What h3wt_group_handoff() did with a packet. */
enum {
  H3WT_GROUP_TAKEN = 0,
  H3WT_GROUP_FULL = 1,      /* the owner's inbox is full: dropped */
  H3WT_GROUP_TOO_LARGE = 2, /* over an inbox slot: dropped */
  H3WT_GROUP_GONE = 3       /* the owner stopped (or never listened): the
                               caller handles the packet itself */
};

/* Any thread: copies the packet into owner's inbox.  Returns one of the
   above; the caller counts the drops. */
int h3wt_group_handoff(h3wt_server_group *g, uint32_t owner,
                       const struct sockaddr *remote, const uint8_t *data,
                       size_t len);

/* Testing: whether the next h3wt_group_socket() call attaches the steering
   program (default 1), and whether it was attached. */
void h3wt_group_set_steering(h3wt_server_group *g, int on);
int h3wt_group_steering(const h3wt_server_group *g);

#endif /* H3WT_GROUP_H */
