/*
 * h3wt_channels: publish/subscribe channels over WebTransport sessions (the
 * wire format is docs/channels.md; the codec h3wt_chproto, the history
 * h3wt_chhist).
 *
 * One hub serves one WebTransport route.  Each session of the route opens
 * one bidirectional "channel stream"; its frames are commands, and the
 * hub's replies, deliveries, joins and leaves go back on it, so a
 * subscriber sees them in one order.  Datagrams carry unreliable
 * publications both ways.
 *
 * A published message is copied once into an h3wt_buf; every subscriber's
 * delivery is a small frame head (copied) and a reference to that buffer,
 * and the history holds one more reference.  A subscriber whose channel
 * stream cannot take a delivery (its queue is at max_stream_queue) is cut
 * from that channel with SLOW_CONSUMER rather than buffered without bound;
 * it may subscribe again and recover.
 *
 * Offsets, epochs, history and the members of other hubs are the broker's
 * (h3wt_broker.h): the hub hands every publication to its node and
 * delivers what the node gives back, its own publications included, so a
 * channel behaves the same whether it ends at this hub (the private
 * memory broker), spans the workers of a process (a shared memory broker)
 * or many machines (Redis).  Each subscription remembers the epoch and the
 * last offset it was sent: a message at or below it is one a recovery
 * already sent (dropped), one of another epoch means the broker lost the
 * history (the subscription is cut with BROKER_UNAVAILABLE, and the client
 * subscribes again to be told recovered 0).  While a subscription waits for
 * the broker's history answer, its live messages wait in a bounded list.
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_broker.h"
#include "h3wt_chhist.h"
#include "h3wt_chproto.h"
#include "h3wt_list.h"
#include "h3wt_server.h"
#include "h3wt_util.h"
#include "h3wt_wt.h"

typedef struct ch_channel ch_channel;
typedef struct ch_sess ch_sess;

/* A live message that reached a subscription waiting for its history. */
typedef struct ch_held {
  uint64_t epoch, offset;
  h3wt_buf *buf;
} ch_held;

/* Live messages a subscription holds while it waits for the broker's
   history answer; beyond this it is cut as a slow consumer. */
#define CH_HELD_MAX 1024

/* One session's place in one channel. */
typedef struct ch_sub {
  ch_sess *cs;
  ch_channel *ch;
  uint64_t id;          /* the session's number for it (MESSAGE, datagrams) */
  uint64_t cut;         /* a wire code: to be cut (after the walk) with it */
  int waiting;          /* a history() answer is awaited */
  uint64_t epoch, pos;  /* the epoch and last offset it was sent */
  ch_held *held;        /* while waiting: live messages, in order */
  size_t nheld, capheld;
  h3wt_list in_channel; /* ch->subs */
  h3wt_list in_session; /* cs->subs */
} ch_sub;

struct ch_channel {
  h3wt_channels *hub;
  char *name; /* NUL-terminated copy */
  size_t namelen;
  h3wt_list subs;
  size_t nsubs;
  int watched; /* the node delivers it (from the first subscriber) */
  h3wt_name_node hn; /* in hub->chans, keyed by name */
};

struct ch_sess {
  h3wt_channels *hub;
  h3wt_session *s;
  h3wt_stream *cst; /* the channel stream */
  h3wt_ch_parser parser;
  h3wt_list subs;
  size_t nsubs;
  uint64_t next_sub;
  double tokens; /* publish token bucket */
  uint64_t tokens_ts;
  int closing; /* a protocol error closed the session */
  char member[40];
  size_t memberlen;
};

struct h3wt_channels {
  h3wt_server *server;
  h3wt_bnode *node;        /* on the broker */
  h3wt_broker *own_broker; /* the private one, when settings had none */
  /* Appended to member names when the broker is shared (".3fa9c1"):
     session ids are only unique per server, members must be unique in
     the channel wherever they are.  Empty with a private broker. */
  char tag[8];
  h3wt_channels_settings settings;
  h3wt_channels_handler handler;
  void *ud;
  h3wt_name_table chans; /* ch_channel by name */
  uv_timer_t sweep; /* frees channels with no subscriber and no history */
  int sweep_on;
  h3wt_channels_stats stats;
  const h3wt_logger *log;
};

#define SUB_IN_CH(n) h3wt_list_entry(n, ch_sub, in_channel)
#define SUB_IN_CS(n) h3wt_list_entry(n, ch_sub, in_session)

/* The WebTransport code a protocol error closes the session with ("CH"). */
#define CH_CLOSE_CODE 0x4348u

/* ---- settings -------------------------------------------------------------- */

void h3wt_channels_settings_default(h3wt_channels_settings *s) {
  memset(s, 0, sizeof(*s));
  s->version = H3WT_CHANNELS_SETTINGS_VERSION;
  s->history_size = 100;
  s->history_ttl_ms = 300000;
  s->max_channels_per_session = 64;
  s->max_subscribers_per_channel = 100000;
  s->max_message = 65536;
  s->publish_rate = 100;
  s->publish_burst = 200;
  s->presence_events_max = 1000;
}

/* ---- channels -------------------------------------------------------------- */

#define CH_OF(n) h3wt_list_entry(n, ch_channel, hn)

static ch_channel *channel_find(h3wt_channels *hub, const uint8_t *name,
                                size_t len) {
  h3wt_name_node *n = h3wt_name_table_find(&hub->chans, name, len);
  return n ? CH_OF(n) : NULL;
}

static ch_channel *channel_get(h3wt_channels *hub, const uint8_t *name,
                               size_t len) {
  ch_channel *ch = channel_find(hub, name, len);
  if (ch) {
    return ch;
  }
  ch = calloc(1, sizeof(*ch));
  if (!ch || !(ch->name = malloc(len + 1))) {
    free(ch);
    return NULL;
  }
  memcpy(ch->name, name, len);
  ch->name[len] = '\0';
  ch->namelen = len;
  ch->hub = hub;
  h3wt_list_init(&ch->subs);
  ch->hn.name = ch->name;
  ch->hn.len = len;
  if (h3wt_name_table_insert(&hub->chans, &ch->hn) != 0) {
    free(ch->name);
    free(ch);
    return NULL;
  }
  ++hub->stats.channels_current;
  return ch;
}

static void channel_free(ch_channel *ch) {
  h3wt_channels *hub = ch->hub;
  h3wt_name_table_remove(&hub->chans, &ch->hn);
  assert(h3wt_list_empty(&ch->subs) && !ch->watched);
  --hub->stats.channels_current;
  free(ch->name);
  free(ch);
}

/* A channel record nobody is in goes (the broker keeps its history). */
static void channel_maybe_free(ch_channel *ch) {
  if (!ch->nsubs) {
    channel_free(ch);
  }
}

static void sweep_cb(uv_timer_t *t) {
  h3wt_channels *hub = t->data;
  H3WT_NAME_TABLE_FOREACH(n, &hub->chans) {
    channel_maybe_free(CH_OF(n));
  }
}

/* ---- writing to a session ------------------------------------------------- */

static void sub_cut(ch_sub *sub, uint64_t req, uint64_t code,
                    const char *reason, int notify);

/* Writes one frame on cs's channel stream: head (copied) then buf (shared,
   may be NULL).  Returns 0 or the write's error. */
static int cs_write(ch_sess *cs, const uint8_t *head, size_t headlen,
                    h3wt_buf *buf) {
  if (!cs->cst || cs->closing) {
    return H3WT_ERR_INVALID_STATE;
  }
  return h3wt_wt_stream_write_frame(cs->cst, head, headlen, buf);
}

static void send_error(ch_sess *cs, uint64_t req, uint64_t code,
                       const char *text) {
  uint8_t f[320];
  size_t n = h3wt_ch_encode_error(f, sizeof(f), req, code,
                                  (const uint8_t *)text, strlen(text));
  ++cs->hub->stats.errors_sent;
  if (n) {
    cs_write(cs, f, n, NULL);
  }
}

/* A protocol error: the session goes, with the reason in the close. */
static void cs_fail(ch_sess *cs, const char *why) {
  if (cs->closing) {
    return;
  }
  ++cs->hub->stats.protocol_errors;
  H3WT_LOG(cs->hub->log, H3WT_LOG_INFO, "channels",
           "session %" PRIu64 ": %s: closing", h3wt_session_id(cs->s), why);
  cs->closing = 1;
  h3wt_session_close(cs->s, CH_CLOSE_CODE, why);
}

/* ---- presence -------------------------------------------------------------- */

/* JOIN or LEAVE of member to every local subscriber of ch (none in a
   channel over presence_events_max: counted). */
static void presence_frames(ch_channel *ch, const char *member, size_t mlen,
                            int join) {
  h3wt_channels *hub = ch->hub;
  h3wt_list *it = ch->subs.next;
  if (ch->nsubs > hub->settings.presence_events_max) {
    ++hub->stats.presence_skipped;
    return;
  }
  for (; it != &ch->subs; it = it->next) {
    ch_sub *sub = SUB_IN_CH(it);
    uint8_t f[320];
    size_t n = join ? h3wt_ch_encode_join(f, sizeof(f), sub->id,
                                          (const uint8_t *)member, mlen)
                    : h3wt_ch_encode_leave(f, sizeof(f), sub->id,
                                           (const uint8_t *)member, mlen);
    if (n && cs_write(sub->cs, f, n, NULL) == H3WT_ERR_WOULDBLOCK) {
      ++hub->stats.presence_dropped; /* a slow consumer misses it */
    }
  }
}

/* A local session joined or left ch: the local members hear it, the
   broker tells the other hubs, the hooks run. */
static void presence_event(ch_channel *ch, ch_sess *who, int join) {
  h3wt_channels *hub = ch->hub;
  presence_frames(ch, who->member, who->memberlen, join);
  if (join) {
    hub->node->ops->join(hub->node, ch->name, ch->namelen, who->member,
                         who->memberlen);
  } else {
    hub->node->ops->leave(hub->node, ch->name, ch->namelen, who->member,
                          who->memberlen);
  }
  if (join && hub->handler.on_join) {
    hub->handler.on_join(hub, ch->name, who->s, hub->ud);
  } else if (!join && hub->handler.on_leave) {
    hub->handler.on_leave(hub, ch->name, who->s, hub->ud);
  }
}

/* ---- subscriptions --------------------------------------------------------- */

static ch_sub *sub_find_by_channel(ch_sess *cs, const ch_channel *ch) {
  h3wt_list *it;
  for (it = cs->subs.next; it != &cs->subs; it = it->next) {
    if (SUB_IN_CS(it)->ch == ch) {
      return SUB_IN_CS(it);
    }
  }
  return NULL;
}

static ch_sub *sub_find_by_id(ch_sess *cs, uint64_t id) {
  h3wt_list *it;
  for (it = cs->subs.next; it != &cs->subs; it = it->next) {
    if (SUB_IN_CS(it)->id == id) {
      return SUB_IN_CS(it);
    }
  }
  return NULL;
}

static void held_clear(ch_sub *sub) {
  for (size_t i = 0; i < sub->nheld; ++i) {
    h3wt_buf_unref(sub->held[i].buf);
  }
  free(sub->held);
  sub->held = NULL;
  sub->nheld = sub->capheld = 0;
}

/* Ends a subscription: the others hear LEAVE (unless it never joined: it
   was still waiting for its history); the session, if notify,
   UNSUBSCRIBED with code and reason. */
static void sub_cut(ch_sub *sub, uint64_t req, uint64_t code,
                    const char *reason, int notify) {
  ch_channel *ch = sub->ch;
  ch_sess *cs = sub->cs;
  h3wt_channels *hub = cs->hub;
  int joined = !sub->waiting;
  h3wt_list_remove(&sub->in_channel);
  h3wt_list_remove(&sub->in_session);
  --ch->nsubs;
  --cs->nsubs;
  --hub->stats.subscriptions_current;
  if (notify && cs->cst && !cs->closing) {
    /* Past the budget: a slow consumer's queue is full by definition, and
       it must learn why its messages stopped.  Bounded: one per
       subscription, and a session has at most max_channels of those. */
    uint8_t f[320];
    size_t n = h3wt_ch_encode_unsubscribed(f, sizeof(f), req, sub->id, code,
                                           (const uint8_t *)reason,
                                           strlen(reason));
    if (n) {
      h3wt_wt_stream_write_past_budget(cs->cst, f, n);
    }
  }
  held_clear(sub);
  free(sub);
  if (!ch->nsubs && ch->watched) {
    ch->watched = 0;
    hub->node->ops->unwatch(hub->node, ch->name, ch->namelen);
  }
  /* The channel itself stays until the sweep: a hook called below (or
     the caller's loop) may still be using it. */
  if (joined) {
    presence_event(ch, cs, 0);
  }
}

/* Delivers one reliable message to one subscriber.  A full queue marks
   the subscription to be cut (SLOW_CONSUMER); cut_marked() ends it after
   the caller's walk (its LEAVE runs hooks that may change the lists being
   walked).  Returns 1 when it marked sub. */
static int deliver(ch_sub *sub, uint64_t offset, h3wt_buf *buf) {
  uint8_t head[32];
  size_t n = h3wt_ch_encode_message_head(head, sizeof(head), sub->id, offset,
                                         h3wt_buf_len(buf));
  int rv = n ? cs_write(sub->cs, head, n, buf) : H3WT_ERR_INVALID_ARGUMENT;
  sub->pos = offset;
  if (rv == 0) {
    ++sub->cs->hub->stats.deliveries_reliable;
  } else if (rv == H3WT_ERR_WOULDBLOCK) {
    sub->cut = H3WT_CH_ERR_SLOW_CONSUMER;
    return 1;
  }
  return 0;
}

/* Cuts the subscriptions of ch marked to be cut, one walk per cut: each
   cut's hooks may change the list.  A slow subscriber learns why
   (UNSUBSCRIBED SLOW_CONSUMER, written past the queue's limit: the frame
   check is on the bytes queued before it) and may subscribe again and
   recover; one whose history the broker lost (BROKER_UNAVAILABLE)
   subscribes again to be told recovered 0. */
static void cut_marked(ch_channel *ch) {
  for (;;) {
    ch_sub *sub = NULL;
    h3wt_list *it;
    for (it = ch->subs.next; it != &ch->subs && !sub; it = it->next) {
      if (SUB_IN_CH(it)->cut) {
        sub = SUB_IN_CH(it);
      }
    }
    if (!sub) {
      return;
    }
    int slow = sub->cut == H3WT_CH_ERR_SLOW_CONSUMER;
    if (slow) {
      ++ch->hub->stats.slow_consumers;
    }
    H3WT_LOG(ch->hub->log, H3WT_LOG_INFO, "channels",
             "session %" PRIu64 " %s '%s': unsubscribed",
             h3wt_session_id(sub->cs->s),
             slow ? "too slow for" : "lost the history of", ch->name);
    sub_cut(sub, 0, sub->cut, slow ? "slow consumer" : "history lost", 1);
  }
}

/* Holds a live message for a subscription waiting for its history. */
static void hold(ch_sub *sub, uint64_t epoch, uint64_t offset,
                 h3wt_buf *buf) {
  if (sub->nheld == sub->capheld) {
    size_t cap = sub->capheld ? sub->capheld * 2 : 8;
    ch_held *h = cap <= CH_HELD_MAX ? realloc(sub->held, cap * sizeof(*h))
                                    : NULL;
    if (!h) {
      sub->cut = H3WT_CH_ERR_SLOW_CONSUMER;
      return;
    }
    sub->held = h;
    sub->capheld = cap;
  }
  sub->held[sub->nheld].epoch = epoch;
  sub->held[sub->nheld].offset = offset;
  sub->held[sub->nheld].buf = h3wt_buf_ref(buf);
  ++sub->nheld;
}

/* A reliable message for sub, live or held: sent unless a recovery sent it
   already; another epoch means the broker lost the history.  Returns 1
   when sub is now marked to be cut. */
static int offer(ch_sub *sub, uint64_t epoch, uint64_t offset,
                 h3wt_buf *buf) {
  if (sub->cut) {
    return 1;
  }
  if (epoch != sub->epoch) {
    sub->cut = H3WT_CH_ERR_BROKER_UNAVAILABLE;
    return 1;
  }
  return offset > sub->pos ? deliver(sub, offset, buf) : 0;
}

/* The node's message event: every delivery of the channel, this hub's own
   publications included. */
static void ev_message(void *ud, const char *name, size_t len, int reliable,
                       uint64_t epoch, uint64_t offset, h3wt_buf *buf) {
  h3wt_channels *hub = ud;
  ch_channel *ch = channel_find(hub, (const uint8_t *)name, len);
  h3wt_list *it;
  int cut = 0;
  if (!ch) {
    return;
  }
  if (reliable) {
    for (it = ch->subs.next; it != &ch->subs; it = it->next) {
      ch_sub *sub = SUB_IN_CH(it);
      if (sub->waiting) {
        hold(sub, epoch, offset, buf);
        cut |= sub->cut != 0;
      } else {
        cut |= offer(sub, epoch, offset, buf);
      }
    }
  } else {
    for (it = ch->subs.next; it != &ch->subs; it = it->next) {
      ch_sub *sub = SUB_IN_CH(it);
      uint8_t head[16];
      size_t n = h3wt_ch_encode_dgram_head(head, sizeof(head),
                                           H3WT_CH_DGRAM_DELIVER, sub->id);
      if (sub->waiting) {
        continue; /* not subscribed yet, as far as the client knows */
      }
      if (n && h3wt_wt_send_datagram_head(sub->cs->s, head, n, buf) == 0) {
        ++hub->stats.deliveries_unreliable;
      } else {
        ++hub->stats.deliveries_unreliable_dropped;
      }
    }
  }
  if (cut) {
    cut_marked(ch);
  }
}

/* A member of another hub joined or left: the local members hear it (the
   hooks are for this hub's sessions: they do not run). */
static void ev_presence(void *ud, const char *name, size_t len,
                        const char *member, size_t mlen, int join) {
  h3wt_channels *hub = ud;
  ch_channel *ch = channel_find(hub, (const uint8_t *)name, len);
  if (ch) {
    presence_frames(ch, member, mlen, join);
  }
}

/* What a history() answer is for, found again by ids when it comes (the
   session or the subscription may be gone by then). */
typedef struct ch_pending {
  h3wt_channels *hub;
  uint64_t session; /* h3wt_session_id */
  uint64_t sub;     /* ch_sub id */
  uint64_t req;     /* SUBSCRIBE's, for SUBSCRIBED */
  int gap;          /* after a link loss, not a SUBSCRIBE */
  int recover;      /* the SUBSCRIBE asked to recover */
} ch_pending;

static ch_sess *session_by_id(h3wt_channels *hub, uint64_t id);

/* The broker's history answer for a subscription: SUBSCRIBED and what was
   missed (a SUBSCRIBE), or the missed messages alone (a gap after a link
   loss; if they are gone, the subscription is cut with
   BROKER_UNAVAILABLE), then the live messages held meanwhile. */
static void history_done(void *arg, int err, int recovered, uint64_t epoch,
                         uint64_t last, const h3wt_bentry *e, size_t n) {
  ch_pending *p = arg;
  h3wt_channels *hub = p->hub;
  ch_sess *cs = err == H3WT_ERR_CLOSED ? NULL : session_by_id(hub, p->session);
  ch_sub *sub = cs ? sub_find_by_id(cs, p->sub) : NULL;
  uint64_t req = p->req;
  int gap = p->gap, recover = p->recover;
  free(p);
  if (!sub || !sub->waiting) {
    return;
  }
  ch_channel *ch = sub->ch;
  sub->waiting = 0;
  if (err) {
    ++hub->stats.broker_errors;
  }
  if (gap) {
    ++hub->stats.broker_gaps;
    if (err || !recovered) {
      sub->cut = H3WT_CH_ERR_BROKER_UNAVAILABLE;
      cut_marked(ch);
      return;
    }
  } else {
    if (err) {
      /* No answer: the SUBSCRIBE fails (the client may try again); the
         subscription never was, as far as the client knows. */
      sub->waiting = 1; /* not joined: sub_cut sends no LEAVE */
      sub_cut(sub, req, 0, "", 0);
      send_error(cs, req, H3WT_CH_ERR_BROKER_UNAVAILABLE,
                 "broker unavailable");
      return;
    }
    if (recover && recovered) {
      ++hub->stats.recoveries;
    } else if (recover) {
      ++hub->stats.recoveries_failed;
    }
    uint8_t f[320];
    size_t fl = h3wt_ch_encode_subscribed(
        f, sizeof(f), req, (const uint8_t *)ch->name, ch->namelen, sub->id,
        recovered, epoch, last, n);
    if (fl) {
      cs_write(cs, f, fl, NULL);
    }
    sub->epoch = epoch;
  }
  for (size_t i = 0; i < n && !sub->cut; ++i) {
    deliver(sub, e[i].offset, e[i].buf);
  }
  if (sub->pos < last) {
    sub->pos = last; /* what it was told the channel is at */
  }
  for (size_t i = 0; i < sub->nheld && !sub->cut; ++i) {
    offer(sub, sub->held[i].epoch, sub->held[i].offset, sub->held[i].buf);
  }
  held_clear(sub);
  if (sub->cut) {
    cut_marked(ch); /* the recovery did not fit: it is told, and may retry */
    return;
  }
  if (!gap) {
    presence_event(ch, cs, 1);
  }
}

/* Asks the broker for sub's history (a SUBSCRIBE's, or a gap's from its
   position).  Returns 0 or an error (nothing pending). */
static int ask_history(ch_sub *sub, uint64_t req, int gap, int recover,
                       uint64_t epoch, uint64_t since, uint64_t limit) {
  h3wt_channels *hub = sub->cs->hub;
  ch_pending *p = calloc(1, sizeof(*p));
  if (!p) {
    return H3WT_ERR_NOMEM;
  }
  p->hub = hub;
  p->session = h3wt_session_id(sub->cs->s);
  p->sub = sub->id;
  p->req = req;
  p->gap = gap;
  p->recover = recover;
  sub->waiting = 1;
  int rv = hub->node->ops->history(hub->node, sub->ch->name,
                                   sub->ch->namelen, recover, epoch, since,
                                   limit, history_done, p);
  if (rv != 0) {
    sub->waiting = 0;
    ++hub->stats.broker_errors;
    free(p);
  }
  return rv;
}

/* The node lost its link (up 0) or has it back (up 1): then every
   subscription asks for what it may have missed meanwhile. */
static void ev_link(void *ud, int up) {
  h3wt_channels *hub = ud;
  H3WT_LOG(hub->log, up ? H3WT_LOG_INFO : H3WT_LOG_WARN, "channels",
           "broker link %s", up ? "back: recovering subscriptions" : "lost");
  if (!up) {
    return;
  }
  H3WT_NAME_TABLE_FOREACH(n, &hub->chans) {
    ch_channel *ch = CH_OF(n);
    int cut = 0;
    for (h3wt_list *it = ch->subs.next; it != &ch->subs; it = it->next) {
      ch_sub *sub = SUB_IN_CH(it);
      if (!sub->waiting &&
          ask_history(sub, 0, 1, 1, sub->epoch, sub->pos, 0) != 0) {
        sub->cut = H3WT_CH_ERR_BROKER_UNAVAILABLE;
        cut = 1;
      }
    }
    if (cut) {
      cut_marked(ch);
    }
  }
}

static const h3wt_bnode_events node_events = {
    .message = ev_message,
    .presence = ev_presence,
    .link = ev_link,
};

/* A publication's end, for a PUBLISH with a req: PUBLISHED, or ERROR when
   the broker could not take it. */
typedef struct ch_pubreq {
  h3wt_channels *hub;
  uint64_t session, req;
} ch_pubreq;

static void published_reply(void *arg, int err, uint64_t epoch,
                            uint64_t offset) {
  ch_pubreq *p = arg;
  ch_sess *cs = err == H3WT_ERR_CLOSED ? NULL
                                       : session_by_id(p->hub, p->session);
  if (err) {
    ++p->hub->stats.broker_errors;
  }
  if (cs && err) {
    send_error(cs, p->req, H3WT_CH_ERR_BROKER_UNAVAILABLE,
               "broker unavailable");
  } else if (cs && p->req) {
    uint8_t out[64];
    size_t n = h3wt_ch_encode_published(out, sizeof(out), p->req, epoch,
                                        offset);
    if (n) {
      cs_write(cs, out, n, NULL);
    }
  }
  free(p);
}

/* A publication nobody waits for: only its failure is counted. */
static void published_count(void *arg, int err, uint64_t epoch,
                            uint64_t offset) {
  h3wt_channels *hub = arg;
  if (err) {
    ++hub->stats.broker_errors;
  }
}

/* Hands buf to the broker (cb/arg as its publish).  Returns 0 or an
   error (cb not called). */
static int channel_publish(h3wt_channels *hub, const char *name, size_t len,
                           h3wt_buf *buf, int reliable,
                           h3wt_bnode_published_cb cb, void *arg) {
  int rv = hub->node->ops->publish(hub->node, name, len, buf, reliable,
                                   cb ? cb : published_count,
                                   cb ? arg : hub);
  if (rv != 0) {
    ++hub->stats.broker_errors;
    return rv;
  }
  ++hub->stats.broker_publishes;
  if (reliable) {
    ++hub->stats.publishes_reliable;
  } else {
    ++hub->stats.publishes_unreliable;
  }
  return 0;
}

static int check_name(const uint8_t *name, size_t len) {
  return h3wt_ch_name_valid(name, len) ? 0 : H3WT_ERR_INVALID_ARGUMENT;
}

/* Subscribes cs to the channel (client command or server call).  req is
   echoed in the reply; recover/epoch/offset and history/limit as in
   SUBSCRIBE.  SUBSCRIBED follows when the broker answers (at once for a
   memory broker).  Returns 0 or a wire error code (the caller answers with
   ERROR). */
static uint64_t do_subscribe(ch_sess *cs, uint64_t req, const uint8_t *name,
                             size_t namelen, int recover, uint64_t epoch,
                             uint64_t since, int history, uint64_t limit) {
  h3wt_channels *hub = cs->hub;
  char cname[H3WT_CH_NAME_MAX + 1];
  if (cs->closing) {
    return H3WT_CH_ERR_FORBIDDEN; /* the session is on its way out */
  }
  if (check_name(name, namelen) != 0) {
    return H3WT_CH_ERR_BAD_CHANNEL;
  }
  memcpy(cname, name, namelen);
  cname[namelen] = '\0';
  ch_channel *ch = channel_find(hub, name, namelen);
  if (ch && sub_find_by_channel(cs, ch)) {
    return H3WT_CH_ERR_ALREADY_SUBSCRIBED;
  }
  if (cs->nsubs >= hub->settings.max_channels_per_session) {
    ++hub->stats.limit_channels_per_session;
    return H3WT_CH_ERR_TOO_MANY_CHANNELS;
  }
  if (hub->handler.on_subscribe) {
    int code = hub->handler.on_subscribe(hub, cs->s, cname, hub->ud);
    if (code != 0) {
      ++hub->stats.refused_subscribe;
      return code > 0 ? (uint64_t)code : H3WT_CH_ERR_FORBIDDEN;
    }
  }
  if (cs->closing) {
    return H3WT_CH_ERR_FORBIDDEN; /* the hook closed it */
  }
  ch = channel_get(hub, name, namelen);
  if (!ch) {
    return H3WT_CH_ERR_FORBIDDEN; /* out of memory: refuse, keep serving */
  }
  if (sub_find_by_channel(cs, ch)) {
    return H3WT_CH_ERR_ALREADY_SUBSCRIBED; /* the hook subscribed it */
  }
  if (ch->nsubs >= hub->settings.max_subscribers_per_channel) {
    ++hub->stats.limit_subscribers_per_channel;
    return H3WT_CH_ERR_CHANNEL_FULL;
  }
  /* Watched before the history is read: every message after the answer's
     last offset then reaches this hub (h3wt_broker.h). */
  if (!ch->watched) {
    if (hub->node->ops->watch(hub->node, ch->name, ch->namelen) != 0) {
      ++hub->stats.broker_errors;
      return H3WT_CH_ERR_BROKER_UNAVAILABLE;
    }
    ch->watched = 1;
  }
  ch_sub *sub = calloc(1, sizeof(*sub));
  if (!sub) {
    return H3WT_CH_ERR_FORBIDDEN;
  }
  sub->cs = cs;
  sub->ch = ch;
  sub->id = ++cs->next_sub;
  h3wt_list_insert_tail(&ch->subs, &sub->in_channel);
  h3wt_list_insert_tail(&cs->subs, &sub->in_session);
  ++ch->nsubs;
  ++cs->nsubs;
  ++hub->stats.subscriptions_current;
  ++hub->stats.subscribes;
  if (limit > hub->settings.history_size) {
    limit = hub->settings.history_size;
  }
  if (ask_history(sub, req, 0, recover, epoch, since, history ? limit : 0) !=
      0) {
    sub->waiting = 1; /* never joined: no LEAVE */
    sub_cut(sub, req, 0, "", 0);
    return H3WT_CH_ERR_BROKER_UNAVAILABLE;
  }
  return 0;
}

/* ---- frames from a session -------------------------------------------------- */

static int take_token(ch_sess *cs) {
  const h3wt_channels_settings *st = &cs->hub->settings;
  uint64_t now = h3wt_now_ns();
  if (!st->publish_rate) {
    return 1;
  }
  cs->tokens += (double)(now - cs->tokens_ts) / 1e9 * st->publish_rate;
  if (cs->tokens > st->publish_burst) {
    cs->tokens = st->publish_burst;
  }
  cs->tokens_ts = now;
  if (cs->tokens < 1) {
    ++cs->hub->stats.limit_publish_rate;
    return 0;
  }
  cs->tokens -= 1;
  return 1;
}

/* A client's publication, reliable (PUBLISH, req for its reply) or not (a
   datagram).  Returns 0 (the reply, if any, follows when the broker has
   it) or a wire error code. */
static uint64_t client_publish(ch_sess *cs, ch_channel *ch,
                               const uint8_t *data, size_t len, int reliable,
                               uint64_t req) {
  h3wt_channels *hub = cs->hub;
  if (len > hub->settings.max_message) {
    ++hub->stats.limit_message_size;
    return H3WT_CH_ERR_TOO_LARGE;
  }
  if (!take_token(cs)) {
    return H3WT_CH_ERR_RATE_LIMITED;
  }
  if (hub->handler.on_publish) {
    int code = hub->handler.on_publish(hub, cs->s, ch->name, data, len,
                                       reliable, hub->ud);
    if (code != 0) {
      ++hub->stats.refused_publish;
      return code > 0 ? (uint64_t)code : H3WT_CH_ERR_FORBIDDEN;
    }
  }
  h3wt_buf *buf;
  ch_pubreq *p = NULL;
  if (reliable && !(p = calloc(1, sizeof(*p)))) {
    return H3WT_CH_ERR_TOO_LARGE;
  }
  if (h3wt_buf_new(&buf, data, len) != 0) {
    free(p);
    return H3WT_CH_ERR_TOO_LARGE;
  }
  if (p) {
    p->hub = hub;
    p->session = h3wt_session_id(cs->s);
    p->req = req;
  }
  int rv = channel_publish(hub, ch->name, ch->namelen, buf, reliable,
                           p ? published_reply : NULL, p);
  h3wt_buf_unref(buf);
  if (rv != 0) {
    free(p);
    return H3WT_CH_ERR_BROKER_UNAVAILABLE;
  }
  return 0;
}

/* The broker's members of the other hubs, for a PRESENCE: MEMBERS with
   this hub's members (those whose subscription is complete) and those. */
static void members_reply(void *arg, int err, const h3wt_bmember *m,
                          size_t nm) {
  ch_pending *p = arg;
  h3wt_channels *hub = p->hub;
  ch_sess *cs = err == H3WT_ERR_CLOSED ? NULL : session_by_id(hub, p->session);
  ch_sub *sub = cs ? sub_find_by_id(cs, p->sub) : NULL;
  uint64_t req = p->req;
  free(p);
  if (!sub) {
    return;
  }
  if (err) {
    ++hub->stats.broker_errors;
    send_error(cs, req, H3WT_CH_ERR_BROKER_UNAVAILABLE, "broker unavailable");
    return;
  }
  ch_channel *ch = sub->ch;
  size_t listlen = 0, count = 0;
  h3wt_list *it;
  for (it = ch->subs.next; it != &ch->subs; it = it->next) {
    if (!SUB_IN_CH(it)->waiting) {
      listlen += h3wt_ch_member_size(SUB_IN_CH(it)->cs->memberlen);
      ++count;
    }
  }
  for (size_t i = 0; i < nm; ++i) {
    listlen += h3wt_ch_member_size(m[i].len);
  }
  count += nm;
  uint8_t *buf = malloc(32 + listlen);
  if (!buf) {
    send_error(cs, req, H3WT_CH_ERR_TOO_LARGE, "out of memory");
    return;
  }
  size_t n = h3wt_ch_encode_members_head(buf, 32, req, sub->id, count,
                                         listlen);
  for (it = ch->subs.next; n && it != &ch->subs; it = it->next) {
    ch_sess *mc = SUB_IN_CH(it)->cs;
    if (!SUB_IN_CH(it)->waiting) {
      n += h3wt_ch_encode_member(buf + n, 32 + listlen - n,
                                 (const uint8_t *)mc->member, mc->memberlen);
    }
  }
  for (size_t i = 0; n && i < nm; ++i) {
    n += h3wt_ch_encode_member(buf + n, 32 + listlen - n,
                               (const uint8_t *)m[i].name, m[i].len);
  }
  if (n) {
    cs_write(cs, buf, n, NULL);
  }
  free(buf);
}

static int on_frame(uint64_t type, const uint8_t *p, size_t len, void *ud) {
  ch_sess *cs = ud;
  h3wt_channels *hub = cs->hub;
  int rv;
  uint64_t code;
  if (cs->closing) {
    return 1;
  }
  ++hub->stats.frames_received;
  switch (type) {
  case H3WT_CH_SUBSCRIBE: {
    h3wt_ch_subscribe f;
    rv = h3wt_ch_decode_subscribe(p, len, &f);
    if (rv == H3WT_CH_PARSE_BAD_NAME) {
      send_error(cs, f.req, H3WT_CH_ERR_BAD_CHANNEL, "bad channel name");
      return 0;
    }
    if (rv != 0) {
      cs_fail(cs, "malformed SUBSCRIBE");
      return 1;
    }
    code = do_subscribe(cs, f.req, f.name, f.namelen, f.recover, f.epoch,
                        f.offset, f.history, f.limit);
    if (code) {
      send_error(cs, f.req, code, h3wt_ch_strerror(code));
    }
    return 0;
  }
  case H3WT_CH_UNSUBSCRIBE:
  case H3WT_CH_PRESENCE: {
    h3wt_ch_chanreq f;
    rv = type == H3WT_CH_UNSUBSCRIBE ? h3wt_ch_decode_unsubscribe(p, len, &f)
                                     : h3wt_ch_decode_presence(p, len, &f);
    if (rv == H3WT_CH_PARSE_BAD_NAME) {
      send_error(cs, f.req, H3WT_CH_ERR_BAD_CHANNEL, "bad channel name");
      return 0;
    }
    if (rv != 0) {
      cs_fail(cs, "malformed frame");
      return 1;
    }
    ch_channel *ch = channel_find(hub, f.name, f.namelen);
    ch_sub *sub = ch ? sub_find_by_channel(cs, ch) : NULL;
    if (!sub) {
      send_error(cs, f.req, H3WT_CH_ERR_NOT_SUBSCRIBED, "not subscribed");
      return 0;
    }
    if (type == H3WT_CH_UNSUBSCRIBE) {
      sub_cut(sub, f.req, 0, "", 1);
      return 0;
    }
    /* MEMBERS when the broker has the other hubs' (at once for a memory
       broker). */
    ch_pending *pm = calloc(1, sizeof(*pm));
    if (!pm) {
      send_error(cs, f.req, H3WT_CH_ERR_TOO_LARGE, "out of memory");
      return 0;
    }
    pm->hub = hub;
    pm->session = h3wt_session_id(cs->s);
    pm->sub = sub->id;
    pm->req = f.req;
    if (hub->node->ops->members(hub->node, ch->name, ch->namelen,
                                members_reply, pm) != 0) {
      free(pm);
      ++hub->stats.broker_errors;
      send_error(cs, f.req, H3WT_CH_ERR_BROKER_UNAVAILABLE,
                 "broker unavailable");
    }
    return 0;
  }
  case H3WT_CH_PUBLISH: {
    h3wt_ch_publish f;
    rv = h3wt_ch_decode_publish(p, len, &f);
    if (rv == H3WT_CH_PARSE_BAD_NAME) {
      send_error(cs, f.req, H3WT_CH_ERR_BAD_CHANNEL, "bad channel name");
      return 0;
    }
    if (rv != 0) {
      cs_fail(cs, "malformed PUBLISH");
      return 1;
    }
    /* Only into channels the session is in: a client cannot make the
       server keep history for names nobody subscribed to. */
    ch_channel *ch = channel_find(hub, f.name, f.namelen);
    if (!ch || !sub_find_by_channel(cs, ch)) {
      send_error(cs, f.req, H3WT_CH_ERR_NOT_SUBSCRIBED, "not subscribed");
      return 0;
    }
    code = client_publish(cs, ch, f.data, f.datalen, 1, f.req);
    if (code) {
      send_error(cs, f.req, code, h3wt_ch_strerror(code));
    }
    return 0;
  }
  default:
    ++hub->stats.unknown_frames;
    send_error(cs, 0, H3WT_CH_ERR_UNKNOWN_COMMAND, "unknown command");
    return 0;
  }
}

/* ---- the route's session callbacks ------------------------------------------ */

static h3wt_channels *HUB(void *rd) {
  return rd;
}

static int s_request(h3wt_session *s, void *rd) {
  h3wt_channels *hub = HUB(rd);
  return hub->handler.on_connect ? hub->handler.on_connect(hub, s, hub->ud)
                                 : 200;
}

static void s_ready(h3wt_session *s, void *rd) {
  h3wt_channels *hub = HUB(rd);
  ch_sess *cs = calloc(1, sizeof(*cs));
  if (!cs) {
    h3wt_session_close(s, CH_CLOSE_CODE, "out of memory");
    return;
  }
  cs->hub = hub;
  cs->s = s;
  h3wt_list_init(&cs->subs);
  h3wt_ch_parser_init(&cs->parser,
                      hub->settings.max_message + H3WT_CH_NAME_MAX + 64);
  cs->tokens = hub->settings.publish_burst;
  cs->tokens_ts = h3wt_now_ns();
  cs->memberlen = (size_t)snprintf(cs->member, sizeof(cs->member),
                                   "%" PRIu64 "%s", h3wt_session_id(s),
                                   hub->tag);
  h3wt_session_set_data(s, cs);
  ++hub->stats.sessions_current;
}

static void s_stream_open(h3wt_stream *st, void *rd) {
  ch_sess *cs = h3wt_session_get_data(h3wt_stream_session(st));
  if (!cs) {
    return;
  }
  if (cs->cst || !h3wt_stream_is_bidi(st) || h3wt_stream_is_local(st)) {
    /* docs/channels.md: one channel stream; anything else is refused. */
    h3wt_stream_reset(st, H3WT_CH_ERR_BAD_FRAME);
    h3wt_stream_stop_sending(st, H3WT_CH_ERR_BAD_FRAME);
    return;
  }
  cs->cst = st;
}

static void s_stream_data(h3wt_stream *st, const uint8_t *data, size_t len,
                          int fin, void *rd) {
  ch_sess *cs = h3wt_session_get_data(h3wt_stream_session(st));
  if (!cs || st != cs->cst || cs->closing) {
    return;
  }
  int rv = h3wt_ch_parse(&cs->parser, data, len, on_frame, cs);
  if (rv != 0 && !cs->closing) {
    cs_fail(cs, rv == H3WT_CH_PARSE_TOO_LARGE ? "frame too large"
                                              : "malformed frame");
    return;
  }
  if (fin && !cs->closing) {
    if (!h3wt_ch_parser_idle(&cs->parser)) {
      cs_fail(cs, "channel stream ended inside a frame");
      return;
    }
    h3wt_stream_finish(st); /* the client is done: so are we */
  }
}

static void s_stream_close(h3wt_stream *st, void *rd) {
  ch_sess *cs = h3wt_session_get_data(h3wt_stream_session(st));
  if (cs && st == cs->cst) {
    cs->cst = NULL;
  }
}

static void s_datagram(h3wt_session *s, const uint8_t *d, size_t len,
                       void *rd) {
  ch_sess *cs = h3wt_session_get_data(s);
  uint64_t type, subid;
  const uint8_t *data;
  size_t datalen;
  if (!cs || cs->closing) {
    return;
  }
  if (h3wt_ch_decode_dgram(d, len, &type, &subid, &data, &datalen) != 0 ||
      type != H3WT_CH_DGRAM_PUBLISH) {
    ++cs->hub->stats.datagrams_dropped;
    return;
  }
  ch_sub *sub = sub_find_by_id(cs, subid);
  if (!sub) {
    ++cs->hub->stats.datagrams_dropped;
    return;
  }
  if (sub->waiting || client_publish(cs, sub->ch, data, datalen, 0, 0) != 0) {
    ++cs->hub->stats.datagrams_dropped;
  }
}

static void s_close(h3wt_session *s, int err, uint32_t code,
                    const char *reason, size_t reasonlen, void *rd) {
  ch_sess *cs = h3wt_session_get_data(s);
  if (!cs) {
    return;
  }
  /* Leaves every channel: the others hear LEAVE. */
  cs->closing = 1;
  while (!h3wt_list_empty(&cs->subs)) {
    sub_cut(SUB_IN_CS(cs->subs.next), 0, 0, "", 0);
  }
  h3wt_ch_parser_free(&cs->parser);
  --cs->hub->stats.sessions_current;
  h3wt_session_set_data(s, NULL);
  free(cs);
}

static const h3wt_session_handler route_handler = {
    .on_session_request = s_request,
    .on_session_ready = s_ready,
    .on_stream_open = s_stream_open,
    .on_stream_data = s_stream_data,
    .on_stream_close = s_stream_close,
    .on_datagram = s_datagram,
    .on_session_close = s_close,
};

/* ---- the public calls ------------------------------------------------------ */

static size_t channels_settings_size(int version) {
  return version == H3WT_CHANNELS_SETTINGS_V1
             ? offsetof(h3wt_channels_settings, broker)
         : version == H3WT_CHANNELS_SETTINGS_V2 ? sizeof(h3wt_channels_settings)
                                               : 0;
}

static size_t channels_handler_size(int version) {
  return version == H3WT_CHANNELS_HANDLER_V1 ? sizeof(h3wt_channels_handler)
                                             : 0;
}

int h3wt_channels_new_versioned(h3wt_channels **phub, h3wt_server *server,
                                const char *path,
                                const h3wt_channels_settings *settings,
                                int handler_version,
                                const h3wt_channels_handler *handler,
                                void *ud) {
  size_t hsize = channels_handler_size(handler_version);
  if (!phub || !server || !path || (handler && !hsize) ||
      (settings && !channels_settings_size(settings->version))) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  h3wt_channels *hub = calloc(1, sizeof(*hub));
  if (!hub) {
    return H3WT_ERR_NOMEM;
  }
  hub->server = server;
  hub->ud = ud;
  hub->log = h3wt_server_logger(server);
  h3wt_channels_settings_default(&hub->settings);
  if (settings) {
    memcpy(&hub->settings, settings, channels_settings_size(settings->version));
    hub->settings.version = H3WT_CHANNELS_SETTINGS_VERSION;
  }
  if (handler) {
    memcpy(&hub->handler, handler, hsize);
  }
  h3wt_name_table_init(&hub->chans);
  h3wt_broker *broker = hub->settings.broker;
  if (!broker) {
    if (h3wt_broker_memory_new(&hub->own_broker) != 0) {
      free(hub);
      return H3WT_ERR_NOMEM;
    }
    h3wt_broker_memory_private(hub->own_broker);
  }
  h3wt_battach at = {
      .loop = h3wt_server_loop(server),
      .log = hub->log,
      .events = &node_events,
      .ud = hub,
      .history_size = hub->settings.history_size,
      .history_ttl_ms = hub->settings.history_ttl_ms,
  };
  if (broker) {
    uint8_t r[3];
    h3wt_random(r, sizeof(r));
    hub->tag[0] = '.';
    h3wt_hex(r, sizeof(r), hub->tag + 1);
  }
  broker = broker ? broker : hub->own_broker;
  int rv = broker->kind->attach(broker, &at, &hub->node);
  if (rv == 0) {
    rv = h3wt_server_webtransport(server, path, &route_handler, hub);
    if (rv != 0) {
      hub->node->ops->detach(hub->node);
    }
  }
  if (rv != 0) {
    h3wt_broker_del(hub->own_broker);
    free(hub);
    return rv;
  }
  uv_timer_init(h3wt_server_loop(server), &hub->sweep);
  hub->sweep.data = hub;
  uv_timer_start(&hub->sweep, sweep_cb, 1000, 1000);
  uv_unref((uv_handle_t *)&hub->sweep); /* the hub alone keeps no loop up */
  hub->sweep_on = 1;
  *phub = hub;
  return 0;
}

static void hub_free(uv_handle_t *h) {
  h3wt_channels *hub = h->data;
  H3WT_NAME_TABLE_FOREACH(n, &hub->chans) {
    /* Sessions are gone (the server closed first): no subscriber. */
    assert(CH_OF(n)->nsubs == 0);
    channel_free(CH_OF(n));
  }
  /* Pending answers are called now (closed): they only free themselves. */
  hub->node->ops->detach(hub->node);
  h3wt_broker_del(hub->own_broker);
  h3wt_name_table_free(&hub->chans);
  free(hub);
}

void h3wt_channels_del(h3wt_channels *hub) {
  if (!hub) {
    return;
  }
  uv_close((uv_handle_t *)&hub->sweep, hub_free);
}

static ch_sess *session_of(h3wt_channels *hub, h3wt_session *s) {
  ch_sess *cs = s ? h3wt_session_get_data(s) : NULL;
  return cs && cs->hub == hub ? cs : NULL;
}

static ch_sess *session_by_id(h3wt_channels *hub, uint64_t id) {
  return session_of(hub, h3wt_server_find_session(hub->server, id));
}

/* A C publication's answer: its offset, when it comes before publish
   returns (a memory broker); otherwise only a failure is counted. */
typedef struct ch_cpub {
  h3wt_channels *hub;
  int returned; /* h3wt_channels_publish_buf() has returned: free here */
  int done, err;
  uint64_t offset;
} ch_cpub;

static void c_published(void *arg, int err, uint64_t epoch, uint64_t offset) {
  ch_cpub *p = arg;
  if (err) {
    ++p->hub->stats.broker_errors;
  }
  if (p->returned) {
    free(p);
    return;
  }
  p->done = 1;
  p->err = err;
  p->offset = offset;
}

int h3wt_channels_publish_buf(h3wt_channels *hub, const char *channel,
                              h3wt_buf *buf, int reliable, uint64_t *offset) {
  if (offset) {
    *offset = 0;
  }
  if (!hub || !channel || !buf ||
      check_name((const uint8_t *)channel, strlen(channel)) != 0) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  ch_cpub *p = calloc(1, sizeof(*p));
  if (!p) {
    return H3WT_ERR_NOMEM;
  }
  p->hub = hub;
  int rv = channel_publish(hub, channel, strlen(channel), buf, reliable,
                           c_published, p);
  if (rv != 0) {
    free(p);
    return rv;
  }
  if (!p->done) {
    p->returned = 1; /* the answer frees it */
    return 0;
  }
  rv = p->err;
  if (offset) {
    *offset = p->offset;
  }
  free(p);
  return rv;
}

int h3wt_channels_publish(h3wt_channels *hub, const char *channel,
                          const void *data, size_t len, int reliable,
                          uint64_t *offset) {
  h3wt_buf *buf;
  if (h3wt_buf_new(&buf, data, len) != 0) {
    return H3WT_ERR_NOMEM;
  }
  int rv = h3wt_channels_publish_buf(hub, channel, buf, reliable, offset);
  h3wt_buf_unref(buf);
  return rv;
}

int h3wt_channels_subscribe(h3wt_channels *hub, h3wt_session *s,
                            const char *channel) {
  ch_sess *cs = session_of(hub, s);
  if (!cs || !channel) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  uint64_t code = do_subscribe(cs, 0, (const uint8_t *)channel, strlen(channel),
                               0, 0, 0, 0, 0);
  return code == 0 ? 0
         : code == H3WT_CH_ERR_BAD_CHANNEL ? H3WT_ERR_INVALID_ARGUMENT
         : code == H3WT_CH_ERR_ALREADY_SUBSCRIBED ? H3WT_ERR_INVALID_STATE
                                                  : H3WT_ERR_TOO_LARGE;
}

int h3wt_channels_unsubscribe(h3wt_channels *hub, h3wt_session *s,
                              const char *channel) {
  ch_sess *cs = session_of(hub, s);
  ch_channel *ch = channel ? channel_find(hub, (const uint8_t *)channel,
                                          strlen(channel))
                           : NULL;
  ch_sub *sub = cs && ch ? sub_find_by_channel(cs, ch) : NULL;
  if (!sub) {
    return H3WT_ERR_NOT_FOUND;
  }
  sub_cut(sub, 0, 0, "unsubscribed by the server", 1);
  return 0;
}

size_t h3wt_channels_members(h3wt_channels *hub, const char *channel,
                             void (*cb)(h3wt_session *s, void *ud),
                             void *ud) {
  ch_channel *ch = channel ? channel_find(hub, (const uint8_t *)channel,
                                          strlen(channel))
                           : NULL;
  size_t n = 0;
  if (!ch) {
    return 0;
  }
  h3wt_list *it;
  for (it = ch->subs.next; it != &ch->subs; it = it->next) {
    ++n;
    if (cb) {
      cb(SUB_IN_CH(it)->cs->s, ud);
    }
  }
  return n;
}

int h3wt_channels_get_stats(const h3wt_channels *hub,
                            h3wt_channels_stats *st) {
  size_t size = !st ? 0
                : st->version == H3WT_CHANNELS_STATS_V1
                    ? offsetof(h3wt_channels_stats, broker_publishes)
                : st->version == H3WT_CHANNELS_STATS_V2 ? sizeof(*st)
                                                        : 0;
  if (!hub || !size) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  int version = st->version;
  h3wt_channels_stats all = hub->stats;
  h3wt_bnode_stats bs;
  hub->node->ops->stats(hub->node, &bs);
  all.broker_round_trips = bs.round_trips;
  all.broker_rtt_us_sum = bs.rtt_us_sum;
  all.broker_reconnects = bs.reconnects;
  all.broker_link_up = bs.link_up;
  all.broker_queued = bs.queued;
  memcpy(st, &all, size);
  st->version = version;
  return 0;
}
