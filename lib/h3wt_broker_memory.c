/*
 * h3wt_broker_memory: the broker in this process's memory (see
 * h3wt_broker.h for the interface, h3wt.h for the public calls).
 *
 * One mutex guards everything: the channels (offsets, epoch, history,
 * watching nodes, members) and every node's mailbox.  A publication takes
 * the lock once: it gets its offset, joins the history, and is appended to
 * the mailbox of every node that watches the channel, all before the lock
 * is let go, so every mailbox receives a channel's messages in offset
 * order whoever published them.  Each node drains its own mailbox on its
 * own loop thread (woken by a uv_async), outside the lock; the publishing
 * node drains its mailbox before publish() returns, so on a single hub a
 * publication is delivered at once, as it always was.
 *
 * The payload is never copied: the history and every mailbox hold
 * references to the publisher's h3wt_buf (its count is atomic).  A
 * mailbox is a ring that grows by doubling; it is long only while its
 * loop is blocked (each entry is 48 bytes).
 *
 * Lock order: a node's events run with no lock held, so they may call
 * back into the broker.  A drain that is already running on a thread is
 * not entered again from inside one of its events: the outer one goes on
 * to the items added meanwhile, in order.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_broker.h"
#include "h3wt_chhist.h"
#include "h3wt_list.h"

typedef struct mb_broker mb_broker;
typedef struct mb_node mb_node;

enum { MB_RELIABLE, MB_UNRELIABLE, MB_JOIN, MB_LEAVE };

typedef struct mb_item {
  int kind;
  h3wt_buf *name; /* the channel's, shared by every item of it */
  h3wt_buf *buf;  /* the payload, or the member's name */
  uint64_t epoch, offset;
} mb_item;

/* A node watching a channel (counted: the hub may watch twice). */
typedef struct mb_watch {
  mb_node *node;
  size_t count;
  struct mb_watch *next;
} mb_watch;

typedef struct mb_member {
  mb_node *node;
  struct mb_member *next;
  h3wt_buf *name;
} mb_member;

typedef struct mb_channel {
  h3wt_buf *name;
  h3wt_chhist hist;
  mb_watch *watch;
  mb_member *members;
  h3wt_name_node hn; /* in b->chans: name is the bytes of c->name */
} mb_channel;

struct mb_node {
  h3wt_bnode base;
  mb_broker *b;
  h3wt_list link; /* b->nodes */
  h3wt_bnode_events ev;
  void *ud;
  uv_async_t async; /* another thread added to the mailbox */
  uv_timer_t sweep; /* ages the history, forgets idle channels */
  int handles;      /* open libuv handles; freed at 0 after detach */
  int detached;
  int draining;
  mb_item *q; /* the mailbox (under b->mu): qlen items from qhead */
  size_t qcap, qhead, qlen;
  h3wt_bnode_stats stats;
};

struct mb_broker {
  h3wt_broker base;
  uv_mutex_t mu;
  h3wt_name_table chans; /* mb_channel by name */
  h3wt_list nodes;
  int private_; /* one hub only: no presence kept */
  /* The history bounds, from the first hub attached. */
  int configured;
  size_t history_size;
  uint64_t history_ttl_ns;
};

/* ---- channels (under b->mu) ----------------------------------------------- */

#define MBCH_OF(n) h3wt_list_entry(n, mb_channel, hn)

static mb_channel *ch_find(mb_broker *b, const char *name, size_t len) {
  h3wt_name_node *n = h3wt_name_table_find(&b->chans, name, len);
  return n ? MBCH_OF(n) : NULL;
}

static uint64_t new_epoch(void) {
  uint64_t e = 0;
  h3wt_random(&e, sizeof(e));
  e &= H3WT_CHHIST_EPOCH_MAX;
  return e ? e : 1;
}

static mb_channel *ch_get(mb_broker *b, const char *name, size_t len) {
  mb_channel *c = ch_find(b, name, len);
  if (c) {
    return c;
  }
  c = calloc(1, sizeof(*c));
  if (!c || h3wt_buf_new(&c->name, name, len) != 0) {
    free(c);
    return NULL;
  }
  if (h3wt_chhist_init(&c->hist, new_epoch(), b->history_size,
                       b->history_ttl_ns) != 0) {
    h3wt_buf_unref(c->name);
    free(c);
    return NULL;
  }
  c->hn.name = h3wt_buf_data(c->name);
  c->hn.len = len;
  if (h3wt_name_table_insert(&b->chans, &c->hn) != 0) {
    h3wt_chhist_free(&c->hist);
    h3wt_buf_unref(c->name);
    free(c);
    return NULL;
  }
  return c;
}

static void ch_free(mb_broker *b, mb_channel *c) {
  h3wt_name_table_remove(&b->chans, &c->hn);
  h3wt_chhist_free(&c->hist);
  h3wt_buf_unref(c->name);
  free(c);
}

/* A channel goes when nobody watches it, nobody is in it and its history
   is empty (a later one of the same name starts a new epoch, so a
   recovery across the two honestly fails). */
static void ch_maybe_free(mb_broker *b, mb_channel *c, uint64_t ts) {
  if (c->watch || c->members) {
    return;
  }
  h3wt_chhist_trim(&c->hist, ts);
  if (h3wt_chhist_count(&c->hist)) {
    return;
  }
  ch_free(b, c);
}

/* ---- mailboxes ------------------------------------------------------------ */

/* Appends to n's mailbox, taking references.  Under b->mu.  Returns 0 or
   H3WT_ERR_NOMEM (the item is lost for that node: counted). */
static int mbox_put(mb_node *n, int kind, h3wt_buf *name, h3wt_buf *buf,
                    uint64_t epoch, uint64_t offset) {
  if (n->qlen == n->qcap) {
    size_t cap = n->qcap ? n->qcap * 2 : 16;
    mb_item *q = malloc(cap * sizeof(*q));
    if (!q) {
      ++n->stats.errors;
      return H3WT_ERR_NOMEM;
    }
    for (size_t i = 0; i < n->qlen; ++i) {
      q[i] = n->q[(n->qhead + i) % n->qcap];
    }
    free(n->q);
    n->q = q;
    n->qcap = cap;
    n->qhead = 0;
  }
  mb_item *it = &n->q[(n->qhead + n->qlen) % n->qcap];
  it->kind = kind;
  it->name = h3wt_buf_ref(name);
  it->buf = h3wt_buf_ref(buf);
  it->epoch = epoch;
  it->offset = offset;
  ++n->qlen;
  return 0;
}

/* Puts an item in the mailbox of every node watching c except skip;
   wakes the ones on other threads after the lock is let go (*wake). */
static void fan_out(mb_channel *c, mb_node *skip, int kind, h3wt_buf *buf,
                    uint64_t epoch, uint64_t offset) {
  for (mb_watch *w = c->watch; w; w = w->next) {
    if (w->node != skip && !w->node->detached) {
      mbox_put(w->node, kind, c->name, buf, epoch, offset);
    }
  }
}

static void wake_all(mb_broker *b, mb_node *self) {
  h3wt_list *it;
  for (it = b->nodes.next; it != &b->nodes; it = it->next) {
    mb_node *n = h3wt_list_entry(it, mb_node, link);
    if (n != self && n->qlen && !n->detached) {
      uv_async_send(&n->async);
    }
  }
}

/* Delivers n's mailbox on n's loop thread, one item at a time (each taken
   under the lock, delivered outside it). */
static void drain(mb_node *n) {
  mb_broker *b = n->b;
  if (n->draining) {
    return; /* the outer drain goes on to what was added */
  }
  n->draining = 1;
  for (;;) {
    mb_item it;
    uv_mutex_lock(&b->mu);
    if (!n->qlen || n->detached) {
      uv_mutex_unlock(&b->mu);
      break;
    }
    it = n->q[n->qhead];
    n->qhead = (n->qhead + 1) % n->qcap;
    --n->qlen;
    uv_mutex_unlock(&b->mu);
    const char *name = (const char *)h3wt_buf_data(it.name);
    size_t len = h3wt_buf_len(it.name);
    switch (it.kind) {
    case MB_RELIABLE:
    case MB_UNRELIABLE:
      if (n->ev.message) {
        n->ev.message(n->ud, name, len, it.kind == MB_RELIABLE, it.epoch,
                      it.offset, it.buf);
      }
      break;
    default:
      if (n->ev.presence) {
        n->ev.presence(n->ud, name, len, (const char *)h3wt_buf_data(it.buf),
                       h3wt_buf_len(it.buf), it.kind == MB_JOIN);
      }
      break;
    }
    h3wt_buf_unref(it.name);
    h3wt_buf_unref(it.buf);
  }
  n->draining = 0;
}

static void on_async(uv_async_t *h) {
  drain(h->data);
}

/* ---- node ops --------------------------------------------------------------- */

#define NODE(x) ((mb_node *)(x))

static int m_publish(h3wt_bnode *bn, const char *name, size_t len,
                     h3wt_buf *buf, int reliable, h3wt_bnode_published_cb cb,
                     void *arg) {
  mb_node *n = NODE(bn);
  mb_broker *b = n->b;
  uint64_t epoch = 0, offset = 0;
  uv_mutex_lock(&b->mu);
  mb_channel *c = reliable ? ch_get(b, name, len) : ch_find(b, name, len);
  if (!c) {
    uv_mutex_unlock(&b->mu);
    if (reliable) {
      ++n->stats.errors;
      return H3WT_ERR_NOMEM;
    }
    ++n->stats.publishes; /* nobody watches it: nobody to hear it */
    if (cb) {
      cb(arg, 0, 0, 0);
    }
    return 0;
  }
  if (reliable) {
    /* The offset advances even when the history cannot keep the message
       (out of memory): a recovery across it then says no. */
    h3wt_chhist_append(&c->hist, buf, h3wt_now_ns(), &offset);
    epoch = h3wt_chhist_epoch(&c->hist);
  }
  fan_out(c, NULL, reliable ? MB_RELIABLE : MB_UNRELIABLE, buf, epoch,
          offset);
  wake_all(b, n);
  uv_mutex_unlock(&b->mu);
  ++n->stats.publishes;
  drain(n);
  if (cb) {
    cb(arg, 0, epoch, offset);
  }
  return 0;
}

static int m_watch(h3wt_bnode *bn, const char *name, size_t len) {
  mb_node *n = NODE(bn);
  mb_broker *b = n->b;
  int rv = 0;
  uv_mutex_lock(&b->mu);
  mb_channel *c = ch_get(b, name, len);
  mb_watch *w = NULL;
  for (w = c ? c->watch : NULL; w && w->node != n; w = w->next) {
  }
  if (!c) {
    rv = H3WT_ERR_NOMEM;
  } else if (w) {
    ++w->count;
  } else if ((w = calloc(1, sizeof(*w))) != NULL) {
    w->node = n;
    w->count = 1;
    w->next = c->watch;
    c->watch = w;
  } else {
    rv = H3WT_ERR_NOMEM;
  }
  uv_mutex_unlock(&b->mu);
  if (rv) {
    ++n->stats.errors;
  }
  return rv;
}

static void m_unwatch(h3wt_bnode *bn, const char *name, size_t len) {
  mb_node *n = NODE(bn);
  mb_broker *b = n->b;
  uv_mutex_lock(&b->mu);
  mb_channel *c = ch_find(b, name, len);
  for (mb_watch **pp = c ? &c->watch : NULL; pp && *pp; pp = &(*pp)->next) {
    if ((*pp)->node == n) {
      mb_watch *w = *pp;
      if (--w->count == 0) {
        *pp = w->next;
        free(w);
      }
      break;
    }
  }
  uv_mutex_unlock(&b->mu);
}

static int m_history(h3wt_bnode *bn, const char *name, size_t len,
                     int recover, uint64_t epoch, uint64_t since,
                     uint64_t limit, h3wt_bnode_history_cb cb, void *arg) {
  mb_node *n = NODE(bn);
  mb_broker *b = n->b;
  h3wt_bentry *e = NULL;
  size_t ne = 0;
  int recovered = 0;
  uv_mutex_lock(&b->mu);
  mb_channel *c = ch_get(b, name, len);
  if (!c) {
    uv_mutex_unlock(&b->mu);
    ++n->stats.errors;
    return H3WT_ERR_NOMEM;
  }
  uint64_t now = h3wt_now_ns();
  h3wt_chhist_range r = {0};
  if (recover) {
    recovered = h3wt_chhist_recover(&c->hist, epoch, since, now, &r) ==
                H3WT_CHHIST_RECOVERED;
  }
  if (!recovered && limit) {
    /* The last min(limit, kept): a recovery from last - n, always
       possible since the kept run is contiguous up to the last. */
    h3wt_chhist_trim(&c->hist, now);
    uint64_t k = h3wt_chhist_count(&c->hist);
    k = k < limit ? k : limit;
    if (!k || h3wt_chhist_recover(&c->hist, h3wt_chhist_epoch(&c->hist),
                                  h3wt_chhist_last(&c->hist) - k, now,
                                  &r) != H3WT_CHHIST_RECOVERED) {
      r.count = 0;
    }
  } else if (!recovered) {
    r.count = 0;
  }
  ne = h3wt_chhist_range_count(&r);
  if (ne && !(e = malloc(ne * sizeof(*e)))) {
    uv_mutex_unlock(&b->mu);
    ++n->stats.errors;
    return H3WT_ERR_NOMEM;
  }
  for (size_t i = 0; i < ne; ++i) {
    e[i].buf = h3wt_buf_ref(h3wt_chhist_range_at(&r, i, &e[i].offset));
  }
  uint64_t cur_epoch = h3wt_chhist_epoch(&c->hist);
  uint64_t last = h3wt_chhist_last(&c->hist);
  uv_mutex_unlock(&b->mu);
  cb(arg, 0, recovered, cur_epoch, last, e, ne);
  for (size_t i = 0; i < ne; ++i) {
    h3wt_buf_unref(e[i].buf);
  }
  free(e);
  return 0;
}

static int m_join(h3wt_bnode *bn, const char *name, size_t len,
                  const char *member, size_t mlen) {
  mb_node *n = NODE(bn);
  mb_broker *b = n->b;
  if (b->private_) {
    return 0; /* nobody else to tell or to list it to */
  }
  mb_member *m = calloc(1, sizeof(*m));
  if (!m || h3wt_buf_new(&m->name, member, mlen) != 0) {
    free(m);
    ++n->stats.errors;
    return H3WT_ERR_NOMEM;
  }
  m->node = n;
  uv_mutex_lock(&b->mu);
  mb_channel *c = ch_get(b, name, len);
  if (!c) {
    uv_mutex_unlock(&b->mu);
    h3wt_buf_unref(m->name);
    free(m);
    ++n->stats.errors;
    return H3WT_ERR_NOMEM;
  }
  m->next = c->members;
  c->members = m;
  fan_out(c, n, MB_JOIN, m->name, 0, 0);
  wake_all(b, n);
  uv_mutex_unlock(&b->mu);
  return 0;
}

/* Takes m (of channel c) out and tells the other watchers.  Under b->mu. */
static void member_remove(mb_channel *c, mb_member **pp) {
  mb_member *m = *pp;
  *pp = m->next;
  fan_out(c, m->node, MB_LEAVE, m->name, 0, 0);
  h3wt_buf_unref(m->name);
  free(m);
}

static void m_leave(h3wt_bnode *bn, const char *name, size_t len,
                    const char *member, size_t mlen) {
  mb_node *n = NODE(bn);
  mb_broker *b = n->b;
  uv_mutex_lock(&b->mu);
  mb_channel *c = ch_find(b, name, len);
  for (mb_member **pp = c ? &c->members : NULL; pp && *pp;
       pp = &(*pp)->next) {
    if ((*pp)->node == n && h3wt_buf_len((*pp)->name) == mlen &&
        memcmp(h3wt_buf_data((*pp)->name), member, mlen) == 0) {
      member_remove(c, pp);
      break;
    }
  }
  wake_all(b, n);
  uv_mutex_unlock(&b->mu);
}

static int m_members(h3wt_bnode *bn, const char *name, size_t len,
                     h3wt_bnode_members_cb cb, void *arg) {
  mb_node *n = NODE(bn);
  mb_broker *b = n->b;
  h3wt_bmember *m = NULL;
  h3wt_buf **keep = NULL;
  size_t k = 0, cap = 0;
  int rv = 0;
  uv_mutex_lock(&b->mu);
  mb_channel *c = ch_find(b, name, len);
  for (mb_member *it = c ? c->members : NULL; it; it = it->next) {
    cap += it->node != n;
  }
  if (cap && (!(m = malloc(cap * sizeof(*m))) ||
              !(keep = malloc(cap * sizeof(*keep))))) {
    rv = H3WT_ERR_NOMEM;
  }
  for (mb_member *it = c && !rv ? c->members : NULL; it; it = it->next) {
    if (it->node != n) {
      keep[k] = h3wt_buf_ref(it->name);
      m[k].name = (const char *)h3wt_buf_data(it->name);
      m[k].len = h3wt_buf_len(it->name);
      ++k;
    }
  }
  uv_mutex_unlock(&b->mu);
  if (rv == 0) {
    cb(arg, 0, m, k);
  } else {
    ++n->stats.errors;
  }
  for (size_t i = 0; i < k; ++i) {
    h3wt_buf_unref(keep[i]);
  }
  free(keep);
  free(m);
  return rv;
}

static void m_stats(const h3wt_bnode *bn, h3wt_bnode_stats *out) {
  *out = NODE((h3wt_bnode *)bn)->stats;
  out->link_up = 1;
}

static void handle_closed(uv_handle_t *h) {
  mb_node *n = h->data;
  if (--n->handles == 0) {
    free(n);
  }
}

static void m_detach(h3wt_bnode *bn) {
  mb_node *n = NODE(bn);
  mb_broker *b = n->b;
  uint64_t now = h3wt_now_ns();
  uv_mutex_lock(&b->mu);
  n->detached = 1;
  /* Its members leave, its watches go, its mailbox empties. */
  H3WT_NAME_TABLE_FOREACH(hn, &b->chans) {
    mb_channel *c = MBCH_OF(hn);
    for (mb_member **pp = &c->members; *pp;) {
      if ((*pp)->node == n) {
        member_remove(c, pp);
      } else {
        pp = &(*pp)->next;
      }
    }
    for (mb_watch **pp = &c->watch; *pp;) {
      if ((*pp)->node == n) {
        mb_watch *w = *pp;
        *pp = w->next;
        free(w);
      } else {
        pp = &(*pp)->next;
      }
    }
    ch_maybe_free(b, c, now);
  }
  for (; n->qlen; --n->qlen) {
    mb_item *it = &n->q[n->qhead];
    h3wt_buf_unref(it->name);
    h3wt_buf_unref(it->buf);
    n->qhead = (n->qhead + 1) % n->qcap;
  }
  free(n->q);
  n->q = NULL;
  h3wt_list_remove(&n->link);
  wake_all(b, n);
  uv_mutex_unlock(&b->mu);
  uv_close((uv_handle_t *)&n->async, handle_closed);
  uv_close((uv_handle_t *)&n->sweep, handle_closed);
}

static const h3wt_bnode_ops memory_ops = {
    .publish = m_publish,
    .watch = m_watch,
    .unwatch = m_unwatch,
    .history = m_history,
    .join = m_join,
    .leave = m_leave,
    .members = m_members,
    .stats = m_stats,
    .detach = m_detach,
};

/* Every second, on each node's loop: ages the histories and forgets the
   channels nobody uses any more.  Any node's sweep covers them all. */
static void sweep_cb(uv_timer_t *t) {
  mb_node *n = t->data;
  mb_broker *b = n->b;
  uint64_t now = h3wt_now_ns();
  uv_mutex_lock(&b->mu);
  H3WT_NAME_TABLE_FOREACH(hn, &b->chans) {
    ch_maybe_free(b, MBCH_OF(hn), now);
  }
  uv_mutex_unlock(&b->mu);
}

/* ---- the broker --------------------------------------------------------------- */

static int memory_attach(h3wt_broker *base, const h3wt_battach *a,
                         h3wt_bnode **pnode) {
  mb_broker *b = (mb_broker *)base;
  mb_node *n = calloc(1, sizeof(*n));
  if (!n) {
    return H3WT_ERR_NOMEM;
  }
  n->base.ops = &memory_ops;
  n->b = b;
  n->ev = *a->events;
  n->ud = a->ud;
  if (uv_async_init(a->loop, &n->async, on_async) != 0) {
    free(n);
    return H3WT_ERR_IO;
  }
  n->async.data = n;
  uv_timer_init(a->loop, &n->sweep);
  n->sweep.data = n;
  n->handles = 2;
  /* Neither keeps the loop alive: the hub's sessions do. */
  uv_unref((uv_handle_t *)&n->async);
  uv_timer_start(&n->sweep, sweep_cb, 1000, 1000);
  uv_unref((uv_handle_t *)&n->sweep);
  uv_mutex_lock(&b->mu);
  if (!b->configured) {
    b->configured = 1;
    b->history_size = a->history_size;
    b->history_ttl_ns = a->history_ttl_ms * 1000000ULL;
  }
  h3wt_list_insert_tail(&b->nodes, &n->link);
  uv_mutex_unlock(&b->mu);
  *pnode = &n->base;
  return 0;
}

static void memory_del(h3wt_broker *base) {
  mb_broker *b = (mb_broker *)base;
  assert(h3wt_list_empty(&b->nodes));
  H3WT_NAME_TABLE_FOREACH(hn, &b->chans) {
    assert(!MBCH_OF(hn)->watch && !MBCH_OF(hn)->members);
    ch_free(b, MBCH_OF(hn));
  }
  h3wt_name_table_free(&b->chans);
  uv_mutex_destroy(&b->mu);
  free(b);
}

static const h3wt_broker_kind memory_kind = {"memory", memory_attach,
                                             memory_del};

int h3wt_broker_memory_new(h3wt_broker **pbroker) {
  if (!pbroker) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  mb_broker *b = calloc(1, sizeof(*b));
  if (!b) {
    return H3WT_ERR_NOMEM;
  }
  if (uv_mutex_init(&b->mu) != 0) {
    free(b);
    return H3WT_ERR_NOMEM;
  }
  b->base.kind = &memory_kind;
  h3wt_list_init(&b->nodes);
  h3wt_name_table_init(&b->chans);
  b->history_size = 100;
  b->history_ttl_ns = 300000 * 1000000ULL;
  *pbroker = &b->base;
  return 0;
}

void h3wt_broker_memory_private(h3wt_broker *broker) {
  ((mb_broker *)broker)->private_ = 1;
}
