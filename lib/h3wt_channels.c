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
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_chhist.h"
#include "h3wt_chproto.h"
#include "h3wt_list.h"
#include "h3wt_server.h"
#include "h3wt_util.h"
#include "h3wt_wt.h"

typedef struct ch_channel ch_channel;
typedef struct ch_sess ch_sess;

/* One session's place in one channel. */
typedef struct ch_sub {
  ch_sess *cs;
  ch_channel *ch;
  uint64_t id;          /* the session's number for it (MESSAGE, datagrams) */
  int slow;             /* a delivery found its queue full: to be cut */
  h3wt_list in_channel; /* ch->subs */
  h3wt_list in_session; /* cs->subs */
} ch_sub;

struct ch_channel {
  h3wt_channels *hub;
  char *name; /* NUL-terminated copy */
  size_t namelen;
  h3wt_list subs;
  size_t nsubs;
  h3wt_chhist hist;
  ch_channel *hnext; /* hash chain */
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
  char member[24];
  size_t memberlen;
};

struct h3wt_channels {
  h3wt_server *server;
  h3wt_channels_settings settings;
  h3wt_channels_handler handler;
  void *ud;
  ch_channel **buckets;
  size_t nbuckets, nchannels;
  uint64_t seed;
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

static uint64_t name_hash(const h3wt_channels *hub, const uint8_t *p,
                          size_t len) {
  /* FNV-1a over a per-hub seed: names come from peers, so the seed keeps
     them from aiming at one chain (the table also grows with its load). */
  uint64_t h = 0xcbf29ce484222325ULL ^ hub->seed;
  for (size_t i = 0; i < len; ++i) {
    h = (h ^ p[i]) * 0x100000001b3ULL;
  }
  return h;
}

static ch_channel *channel_find(h3wt_channels *hub, const uint8_t *name,
                                size_t len) {
  if (!hub->nbuckets) {
    return NULL;
  }
  size_t b = name_hash(hub, name, len) & (hub->nbuckets - 1);
  for (ch_channel *ch = hub->buckets[b]; ch; ch = ch->hnext) {
    if (ch->namelen == len && memcmp(ch->name, name, len) == 0) {
      return ch;
    }
  }
  return NULL;
}

static int channels_grow(h3wt_channels *hub) {
  size_t n = hub->nbuckets ? hub->nbuckets * 2 : 64;
  ch_channel **nb = calloc(n, sizeof(*nb));
  if (!nb) {
    return H3WT_ERR_NOMEM;
  }
  for (size_t i = 0; i < hub->nbuckets; ++i) {
    for (ch_channel *ch = hub->buckets[i], *next; ch; ch = next) {
      next = ch->hnext;
      size_t b = name_hash(hub, (const uint8_t *)ch->name, ch->namelen) &
                 (n - 1);
      ch->hnext = nb[b];
      nb[b] = ch;
    }
  }
  free(hub->buckets);
  hub->buckets = nb;
  hub->nbuckets = n;
  return 0;
}

static uint64_t new_epoch(void) {
  uint64_t e = 0;
  h3wt_random(&e, sizeof(e));
  e &= H3WT_CHHIST_EPOCH_MAX;
  return e ? e : 1;
}

static ch_channel *channel_get(h3wt_channels *hub, const uint8_t *name,
                               size_t len) {
  ch_channel *ch = channel_find(hub, name, len);
  if (ch) {
    return ch;
  }
  if (hub->nchannels + 1 > hub->nbuckets && channels_grow(hub) != 0) {
    return NULL;
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
  if (h3wt_chhist_init(&ch->hist, new_epoch(), hub->settings.history_size,
                       hub->settings.history_ttl_ms * 1000000ULL) != 0) {
    free(ch->name);
    free(ch);
    return NULL;
  }
  size_t b = name_hash(hub, name, len) & (hub->nbuckets - 1);
  ch->hnext = hub->buckets[b];
  hub->buckets[b] = ch;
  ++hub->nchannels;
  ++hub->stats.channels_current;
  return ch;
}

static void channel_free(ch_channel *ch) {
  h3wt_channels *hub = ch->hub;
  size_t b = name_hash(hub, (const uint8_t *)ch->name, ch->namelen) &
             (hub->nbuckets - 1);
  for (ch_channel **pp = &hub->buckets[b]; *pp; pp = &(*pp)->hnext) {
    if (*pp == ch) {
      *pp = ch->hnext;
      break;
    }
  }
  assert(h3wt_list_empty(&ch->subs));
  --hub->nchannels;
  --hub->stats.channels_current;
  h3wt_chhist_free(&ch->hist);
  free(ch->name);
  free(ch);
}

/* A channel nobody is in goes once its history is empty too (a new one
   of the same name starts a new epoch: recovery across it says no). */
static void channel_maybe_free(ch_channel *ch, uint64_t ts) {
  if (ch->nsubs) {
    return;
  }
  h3wt_chhist_trim(&ch->hist, ts);
  if (h3wt_chhist_count(&ch->hist) == 0) {
    channel_free(ch);
  }
}

static void sweep_cb(uv_timer_t *t) {
  h3wt_channels *hub = t->data;
  uint64_t ts = h3wt_now_ns();
  for (size_t i = 0; i < hub->nbuckets; ++i) {
    for (ch_channel *ch = hub->buckets[i], *next; ch; ch = next) {
      next = ch->hnext;
      channel_maybe_free(ch, ts);
    }
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

static void presence_event(ch_channel *ch, ch_sess *who, int join) {
  h3wt_channels *hub = ch->hub;
  h3wt_list *it = ch->subs.next;
  if (ch->nsubs > hub->settings.presence_events_max) {
    ++hub->stats.presence_skipped;
    it = &ch->subs; /* no frames; the hooks still run */
  }
  for (; it != &ch->subs; it = it->next) {
    ch_sub *sub = SUB_IN_CH(it);
    uint8_t f[64];
    size_t n = join ? h3wt_ch_encode_join(f, sizeof(f), sub->id,
                                          (const uint8_t *)who->member,
                                          who->memberlen)
                    : h3wt_ch_encode_leave(f, sizeof(f), sub->id,
                                           (const uint8_t *)who->member,
                                           who->memberlen);
    if (n && cs_write(sub->cs, f, n, NULL) == H3WT_ERR_WOULDBLOCK) {
      ++hub->stats.presence_dropped; /* a slow consumer misses it */
    }
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

/* Ends a subscription: the others hear LEAVE; the session, if notify,
   UNSUBSCRIBED with code and reason. */
static void sub_cut(ch_sub *sub, uint64_t req, uint64_t code,
                    const char *reason, int notify) {
  ch_channel *ch = sub->ch;
  ch_sess *cs = sub->cs;
  h3wt_list_remove(&sub->in_channel);
  h3wt_list_remove(&sub->in_session);
  --ch->nsubs;
  --cs->nsubs;
  --cs->hub->stats.subscriptions_current;
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
  free(sub);
  /* The channel itself stays until the sweep: a hook called below (or
     the caller's loop) may still be using it. */
  presence_event(ch, cs, 0);
}

/* Delivers one reliable message to one subscriber.  A full queue marks
   the subscription slow; cut_slow() ends it after the caller's walk (its
   LEAVE runs hooks that may change the lists being walked). */
/* Returns 1 when it found sub too slow (marked, cut by cut_slow()). */
static int deliver(ch_sub *sub, uint64_t offset, h3wt_buf *buf) {
  uint8_t head[32];
  size_t n = h3wt_ch_encode_message_head(head, sizeof(head), sub->id, offset,
                                         h3wt_buf_len(buf));
  int rv = n ? cs_write(sub->cs, head, n, buf) : H3WT_ERR_INVALID_ARGUMENT;
  if (rv == 0) {
    ++sub->cs->hub->stats.deliveries_reliable;
  } else if (rv == H3WT_ERR_WOULDBLOCK) {
    sub->slow = 1;
    return 1;
  }
  return 0;
}

/* Cuts the subscriptions of ch found too slow, one walk per cut: each
   cut's hooks may change the list.  The subscriber learns why
   (UNSUBSCRIBED SLOW_CONSUMER, written past the queue's limit: the frame
   check is on the bytes queued before it) and may subscribe again and
   recover. */
static void cut_slow(ch_channel *ch) {
  for (;;) {
    ch_sub *slow = NULL;
    h3wt_list *it;
    for (it = ch->subs.next; it != &ch->subs && !slow; it = it->next) {
      if (SUB_IN_CH(it)->slow) {
        slow = SUB_IN_CH(it);
      }
    }
    if (!slow) {
      return;
    }
    ++ch->hub->stats.slow_consumers;
    H3WT_LOG(ch->hub->log, H3WT_LOG_INFO, "channels",
             "session %" PRIu64 " too slow for '%s': unsubscribed",
             h3wt_session_id(slow->cs->s), ch->name);
    sub_cut(slow, 0, H3WT_CH_ERR_SLOW_CONSUMER, "slow consumer", 1);
  }
}

/* Publishes buf to ch: into the history (reliable) and to every
   subscriber.  Returns 0 and the offset (0 for unreliable). */
static int channel_publish(ch_channel *ch, h3wt_buf *buf, int reliable,
                           uint64_t *poffset) {
  h3wt_channels *hub = ch->hub;
  h3wt_list *it, *next;
  uint64_t offset = 0;
  if (reliable) {
    /* The offset advances even if the history cannot keep the message:
       a later recovery across it then says no. */
    h3wt_chhist_append(&ch->hist, buf, h3wt_now_ns(), &offset);
    ++hub->stats.publishes_reliable;
    int slow = 0;
    for (it = ch->subs.next; it != &ch->subs; it = next) {
      next = it->next;
      slow |= deliver(SUB_IN_CH(it), offset, buf);
    }
    if (slow) {
      cut_slow(ch);
    }
  } else {
    ++hub->stats.publishes_unreliable;
    for (it = ch->subs.next; it != &ch->subs; it = it->next) {
      ch_sub *sub = SUB_IN_CH(it);
      uint8_t head[16];
      size_t n = h3wt_ch_encode_dgram_head(head, sizeof(head),
                                           H3WT_CH_DGRAM_DELIVER, sub->id);
      if (n && h3wt_wt_send_datagram_head(sub->cs->s, head, n, buf) == 0) {
        ++hub->stats.deliveries_unreliable;
      } else {
        ++hub->stats.deliveries_unreliable_dropped;
      }
    }
  }
  if (poffset) {
    *poffset = offset;
  }
  return 0;
}

static int check_name(const uint8_t *name, size_t len) {
  return h3wt_ch_name_valid(name, len) ? 0 : H3WT_ERR_INVALID_ARGUMENT;
}

/* Subscribes cs to the channel (client command or server call).  req is
   echoed in the reply; recover/epoch/offset and history/limit as in
   SUBSCRIBE.  Returns 0 or a wire error code (the caller answers with
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

  h3wt_chhist_range range;
  int recovered = 0;
  size_t missed = 0;
  if (recover) {
    recovered = h3wt_chhist_recover(&ch->hist, epoch, since, h3wt_now_ns(),
                                    &range) == H3WT_CHHIST_RECOVERED;
    missed = recovered ? h3wt_chhist_range_count(&range) : 0;
    if (recovered) {
      ++hub->stats.recoveries;
    } else {
      ++hub->stats.recoveries_failed;
    }
  }
  if (history && !recovered) {
    /* "up to limit of the most recent kept messages", the limit capped at
       history_size: the last n kept, taken as a recovery from last - n
       (always possible: the kept run is contiguous up to the last). */
    uint64_t now = h3wt_now_ns();
    h3wt_chhist_trim(&ch->hist, now);
    uint64_t n = h3wt_chhist_count(&ch->hist);
    if (limit > hub->settings.history_size) {
      limit = hub->settings.history_size;
    }
    if (n > limit) {
      n = limit;
    }
    if (n && h3wt_chhist_recover(&ch->hist, h3wt_chhist_epoch(&ch->hist),
                                 h3wt_chhist_last(&ch->hist) - n, now,
                                 &range) == H3WT_CHHIST_RECOVERED) {
      missed = h3wt_chhist_range_count(&range);
    }
  }
  uint8_t f[320];
  size_t n = h3wt_ch_encode_subscribed(
      f, sizeof(f), req, name, namelen, sub->id, recovered,
      h3wt_chhist_epoch(&ch->hist), h3wt_chhist_last(&ch->hist), missed);
  if (n) {
    cs_write(cs, f, n, NULL);
  }
  for (size_t i = 0; i < missed && !sub->slow; ++i) {
    uint64_t off;
    h3wt_buf *b = h3wt_chhist_range_at(&range, i, &off);
    deliver(sub, off, b);
  }
  if (sub->slow) {
    cut_slow(ch); /* the recovery did not fit: it is told, and may retry */
    return 0;
  }
  presence_event(ch, cs, 1);
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

/* A client's publication, reliable (PUBLISH) or not (a datagram).
   Returns 0 or a wire error code. */
static uint64_t client_publish(ch_sess *cs, ch_channel *ch,
                               const uint8_t *data, size_t len, int reliable,
                               uint64_t *offset) {
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
  if (h3wt_buf_new(&buf, data, len) != 0) {
    return H3WT_CH_ERR_TOO_LARGE;
  }
  channel_publish(ch, buf, reliable, offset);
  h3wt_buf_unref(buf);
  return 0;
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
    /* MEMBERS: the head, then each member. */
    size_t listlen = 0, count = 0;
    h3wt_list *it;
    for (it = ch->subs.next; it != &ch->subs; it = it->next) {
      listlen += h3wt_ch_member_size(SUB_IN_CH(it)->cs->memberlen);
      ++count;
    }
    uint8_t *buf = malloc(32 + listlen);
    if (!buf) {
      send_error(cs, f.req, H3WT_CH_ERR_TOO_LARGE, "out of memory");
      return 0;
    }
    size_t n = h3wt_ch_encode_members_head(buf, 32, f.req, sub->id, count,
                                           listlen);
    for (it = ch->subs.next; n && it != &ch->subs; it = it->next) {
      ch_sess *m = SUB_IN_CH(it)->cs;
      n += h3wt_ch_encode_member(buf + n, 32 + listlen - n,
                                 (const uint8_t *)m->member, m->memberlen);
    }
    if (n) {
      cs_write(cs, buf, n, NULL);
    }
    free(buf);
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
    uint64_t offset = 0;
    code = client_publish(cs, ch, f.data, f.datalen, 1, &offset);
    if (code) {
      send_error(cs, f.req, code, h3wt_ch_strerror(code));
    } else if (f.req) {
      uint8_t out[64];
      size_t n = h3wt_ch_encode_published(out, sizeof(out), f.req,
                                          h3wt_chhist_epoch(&ch->hist), offset);
      if (n) {
        cs_write(cs, out, n, NULL);
      }
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
  cs->memberlen = (size_t)snprintf(cs->member, sizeof(cs->member), "%" PRIu64,
                                   h3wt_session_id(s));
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
  if (client_publish(cs, sub->ch, data, datalen, 0, NULL) != 0) {
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
  h3wt_random(&hub->seed, sizeof(hub->seed));
  int rv = h3wt_server_webtransport(server, path, &route_handler, hub);
  if (rv != 0) {
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
  for (size_t i = 0; i < hub->nbuckets; ++i) {
    while (hub->buckets[i]) {
      ch_channel *ch = hub->buckets[i];
      /* Sessions are gone (the server closed first): no subscriber. */
      assert(ch->nsubs == 0);
      channel_free(ch);
    }
  }
  free(hub->buckets);
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

int h3wt_channels_publish_buf(h3wt_channels *hub, const char *channel,
                              h3wt_buf *buf, int reliable, uint64_t *offset) {
  if (!hub || !channel || !buf ||
      check_name((const uint8_t *)channel, strlen(channel)) != 0) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  ch_channel *ch = reliable ? channel_get(hub, (const uint8_t *)channel,
                                          strlen(channel))
                            : channel_find(hub, (const uint8_t *)channel,
                                           strlen(channel));
  if (!ch) {
    if (offset) {
      *offset = 0;
    }
    return reliable ? H3WT_ERR_NOMEM : 0; /* nobody to hear it */
  }
  return channel_publish(ch, buf, reliable, offset);
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
  memcpy(st, &hub->stats, size);
  st->version = version;
  return 0;
}
