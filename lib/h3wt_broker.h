/*
 * h3wt_broker: how a channel hub reaches the other hubs of its channels.
 *
 * A broker (public: h3wt_broker, made by h3wt_broker_memory_new() or
 * h3wt_broker_redis_new()) links channel hubs so that a channel spans them:
 * the hubs of the worker threads of one process (memory), or of many
 * processes on many machines (Redis).  Each hub attaches to it once and gets
 * a *node*: the broker's presence on that hub's loop thread.  Every call
 * below is made on that loop thread, and every event and completion
 * callback runs there.
 *
 * What the broker owns, for every channel: the offsets of its reliable
 * messages (1, 2, 3, ... per epoch), the epoch, the history (bounded by
 * count and age), and the members of other nodes.  What the hub owns: its
 * own sessions, their subscriptions and queues.  The hub keeps no history
 * of its own: recovery always asks the broker.
 *
 * Ordering: for each channel, a node delivers reliable messages through
 * events.message in increasing offset order (its own publications
 * included: the hub learns of them there like of anyone's).  A node may
 * skip offsets only across a link loss (events.link up 0 then up 1); the
 * hub then asks history() for what each subscriber missed.
 *
 * Completions: publish(), history() and members() take a callback that is
 * called exactly once for every call that returned 0, possibly before the
 * call returns (the memory broker answers at once), at the latest from
 * detach() (with H3WT_ERR_CLOSED).  A call that returns an error never
 * calls its callback.  Events and completions may call any op of the node
 * again (not detach()).
 *
 * Failures never block the loop: a broker that cannot reach its store
 * fails publish (at once, or with err in the callback after its timeout)
 * with H3WT_ERR_IO, counts it, and reconnects with backoff by itself.
 */
#ifndef H3WT_BROKER_H
#define H3WT_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "h3wt/h3wt.h"
#include "h3wt_util.h"

typedef struct h3wt_bnode h3wt_bnode;

/* One kept message, as history() returns it. */
typedef struct h3wt_bentry {
  uint64_t offset;
  h3wt_buf *buf; /* borrowed for the callback; h3wt_buf_ref() to keep */
} h3wt_bentry;

/* One member of a channel on another node. */
typedef struct h3wt_bmember {
  const char *name; /* not NUL-terminated */
  size_t len;
} h3wt_bmember;

/* What a node tells its hub.  ud is the hub's (attach's ud). */
typedef struct h3wt_bnode_events {
  /* A message of a channel the node watches.  reliable: epoch and offset
     are the broker's (offset >= 1); unreliable: both 0.  buf is borrowed
     for the call (h3wt_buf_ref() to keep). */
  void (*message)(void *ud, const char *ch, size_t chlen, int reliable,
                  uint64_t epoch, uint64_t offset, h3wt_buf *buf);
  /* A member of another node joined (join 1) or left (join 0) a channel
     the node watches; a node that died (its presence expired) has its
     members leave this way. */
  void (*presence)(void *ud, const char *ch, size_t chlen,
                   const char *member, size_t mlen, int join);
  /* The node lost its link to the broker (up 0: messages may be missed
     from now on; publishes fail) or has it back (up 1: the node watches
     again what it watched; the hub asks history() for each subscriber's
     gap).  Never called by the memory broker. */
  void (*link)(void *ud, int up);
} h3wt_bnode_events;

/* err 0: published as (epoch, offset) (unreliable: both 0). */
typedef void (*h3wt_bnode_published_cb)(void *arg, int err, uint64_t epoch,
                                        uint64_t offset);
/* err 0: the channel is at (epoch, last); recovered as h3wt_chhist_recover
   says; e[0..n) the entries, in offset order, of the recovery (recovered
   1) or, when not recovered and limit > 0, the last min(limit, kept) kept
   ones. */
typedef void (*h3wt_bnode_history_cb)(void *arg, int err, int recovered,
                                      uint64_t epoch, uint64_t last,
                                      const h3wt_bentry *e, size_t n);
/* err 0: m[0..n) the members of other nodes. */
typedef void (*h3wt_bnode_members_cb)(void *arg, int err,
                                      const h3wt_bmember *m, size_t n);

typedef struct h3wt_bnode_stats {
  uint64_t publishes;    /* accepted by publish() */
  uint64_t errors;       /* publish/history/members/watch that failed */
  uint64_t round_trips;  /* completed requests to a remote store */
  uint64_t reconnects;   /* link regained */
  uint64_t link_up;      /* gauge: 1 when the link is up */
  uint64_t queued;       /* gauge: requests waiting for the link */
  uint64_t rtt_us_sum;   /* sum of round trip times, microseconds */
} h3wt_bnode_stats;

typedef struct h3wt_bnode_ops {
  /* Publishes buf (the node takes its own reference if it keeps it) to
     the channel: reliable ones get the next offset, join the history and
     reach every watching node in order; unreliable ones reach the
     watching nodes at most once, are never kept.  cb may be NULL. */
  int (*publish)(h3wt_bnode *n, const char *ch, size_t chlen, h3wt_buf *buf,
                 int reliable, h3wt_bnode_published_cb cb, void *arg);
  /* Starts / stops delivering the channel's messages and presence to this
     node.  Called once per channel with local subscribers (on the first),
     unwatch on the last leaving.  Counted: watch twice needs unwatch
     twice. */
  int (*watch)(h3wt_bnode *n, const char *ch, size_t chlen);
  void (*unwatch)(h3wt_bnode *n, const char *ch, size_t chlen);
  /* The recovery rule of docs/channels.md.  recover: (epoch, since) as in
     SUBSCRIBE; limit: the history asked for when not recovered (0: none).
     Every message after `last` of the answer reaches a node that watched
     the channel before calling history() through events.message (the
     node makes sure of it), so the hub drops offsets <= what it sent. */
  int (*history)(h3wt_bnode *n, const char *ch, size_t chlen, int recover,
                 uint64_t epoch, uint64_t since, uint64_t limit,
                 h3wt_bnode_history_cb cb, void *arg);
  /* Presence of this node's members (the hub calls join once per member
     per channel, leave once).  The broker tells other watching nodes. */
  int (*join)(h3wt_bnode *n, const char *ch, size_t chlen, const char *member,
              size_t mlen);
  void (*leave)(h3wt_bnode *n, const char *ch, size_t chlen,
                const char *member, size_t mlen);
  /* The members of the channel on other nodes. */
  int (*members)(h3wt_bnode *n, const char *ch, size_t chlen,
                 h3wt_bnode_members_cb cb, void *arg);
  void (*stats)(const h3wt_bnode *n, h3wt_bnode_stats *out);
  /* Leaves the broker: pending completions are called (H3WT_ERR_CLOSED),
     this node's members leave, no event follows.  Frees the node once its
     libuv handles are closed (the loop must run). */
  void (*detach)(h3wt_bnode *n);
} h3wt_bnode_ops;

struct h3wt_bnode {
  const h3wt_bnode_ops *ops;
};

/* What the hub tells the broker it attaches to. */
typedef struct h3wt_battach {
  uv_loop_t *loop;
  const h3wt_logger *log;
  const h3wt_bnode_events *events;
  void *ud;
  /* The hub's settings that are the broker's to keep. */
  size_t history_size;
  uint64_t history_ttl_ms;
} h3wt_battach;

/* Every broker kind implements attach. */
typedef struct h3wt_broker_kind {
  const char *name; /* "memory", "redis" */
  int (*attach)(h3wt_broker *b, const h3wt_battach *a, h3wt_bnode **pnode);
  void (*del)(h3wt_broker *b);
} h3wt_broker_kind;

/* The head of every broker object. */
struct h3wt_broker {
  const h3wt_broker_kind *kind;
};

/* Marks a memory broker as private to the one hub that made it: nobody
   else can attach, so the members of other nodes are always none and
   join/leave keep nothing (a subscription then costs the broker
   nothing). */
void h3wt_broker_memory_private(h3wt_broker *broker);

#endif /* H3WT_BROKER_H */
