/*
 * client_channels: h3wt-client's channel modes (see client_channels.h).
 *
 * One session to the channels route, one channel stream on it, the codec
 * of the library (lib/h3wt_chproto.c, compiled into this program).  A
 * publisher subscribes first: the hub takes publications only into
 * channels the session is in.
 */
#include "client_channels.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "../lib/h3wt_chproto.h"

typedef struct ch_run_state {
  const ch_opts *o;
  uv_loop_t *loop;
  h3wt_client *client;
  h3wt_session *s;
  h3wt_stream *st;
  h3wt_ch_parser parser;
  uv_timer_t timer, deadline;
  uint64_t sub;      /* our subscription's number */
  int subscribed;
  uint64_t messages; /* received */
  uint64_t history_left; /* history MESSAGE frames still to come */
  uint64_t sent, acked;
  int positioned;    /* epoch and last are known */
  uint64_t epoch, last; /* the channel's, and the last offset seen */
  int status;        /* exit status */
  int closing;
} ch_run_state;

void ch_opts_default(ch_opts *o) {
  memset(o, 0, sizeof(*o));
  o->repeat = 1;
  o->interval_ms = 0;
  o->timeout_s = 30;
}

int ch_parse_since(const char *s, uint64_t *epoch, uint64_t *offset) {
  char *end;
  unsigned long long e = strtoull(s, &end, 10);
  if (end == s || *end != ':') {
    return -1;
  }
  const char *o = end + 1;
  unsigned long long off = strtoull(o, &end, 10);
  if (end == o || *end) {
    return -1;
  }
  *epoch = e;
  *offset = off;
  return 0;
}

/* Writes bytes as a JSON string (quotes included). */
static void json_str(const uint8_t *p, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = p[i];
    if (c == '"' || c == '\\') {
      printf("\\%c", c);
    } else if (c < 0x20) {
      printf("\\u%04x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

static const char *channel(const ch_run_state *r) {
  return r->o->subscribe ? r->o->subscribe : r->o->publish;
}

static void finish(ch_run_state *r, int status) {
  if (r->closing) {
    return;
  }
  r->closing = 1;
  r->status = status;
  fflush(stdout);
  if (r->s && h3wt_session_is_open(r->s)) {
    h3wt_session_close(r->s, 0, "done");
  }
  h3wt_client_close(r->client);
}

static void send_frame(ch_run_state *r, const uint8_t *f, size_t n) {
  if (!n || !r->st || h3wt_stream_write(r->st, f, n) != 0) {
    fprintf(stderr, "h3wt-client: cannot write to the channel stream\n");
    finish(r, 1);
  }
}

static void publish_one(ch_run_state *r) {
  const ch_opts *o = r->o;
  size_t len = strlen(o->data ? o->data : "");
  if (o->unreliable) {
    uint8_t d[1400];
    size_t n = h3wt_ch_encode_dgram_head(d, sizeof(d), H3WT_CH_DGRAM_PUBLISH,
                                         r->sub);
    if (n + len > sizeof(d)) {
      fprintf(stderr, "h3wt-client: --data too long for a datagram\n");
      finish(r, 2);
      return;
    }
    memcpy(d + n, o->data, len);
    int rv = h3wt_session_send_datagram(r->s, d, n + len);
    if (rv != 0) {
      fprintf(stderr, "h3wt-client: datagram: %s\n", h3wt_strerror(rv));
    }
  } else {
    size_t cap = len + strlen(o->publish) + 64;
    uint8_t *f = malloc(cap);
    if (!f) {
      finish(r, 1);
      return;
    }
    size_t n = h3wt_ch_encode_publish(f, cap, r->sent + 100,
                                      (const uint8_t *)o->publish,
                                      strlen(o->publish),
                                      (const uint8_t *)o->data, len);
    send_frame(r, f, n);
    free(f);
  }
  ++r->sent;
}

static void tick(uv_timer_t *t) {
  ch_run_state *r = t->data;
  if (r->closing) {
    uv_timer_stop(t);
    return;
  }
  if (r->sent >= r->o->repeat) {
    /* Only unreliable runs get here, a moment after their last datagram
       (nothing answers those): done. */
    uv_timer_stop(t);
    finish(r, 0);
    return;
  }
  publish_one(r);
  if (r->sent >= r->o->repeat) {
    uv_timer_stop(t);
    if (r->o->unreliable) {
      uv_timer_start(t, tick, 200, 0); /* let the last one leave */
    }
  }
}

static void maybe_done(ch_run_state *r) {
  const ch_opts *o = r->o;
  if (o->publish && r->sent >= o->repeat && r->acked >= o->repeat) {
    finish(r, 0);
  } else if (o->subscribe && o->count && r->messages >= o->count) {
    finish(r, 0);
  }
}

static void send_subscribe(ch_run_state *r);

static int on_frame(uint64_t type, const uint8_t *p, size_t len, void *ud) {
  ch_run_state *r = ud;
  const char *ch = channel(r);
  switch (type) {
  case H3WT_CH_SUBSCRIBED: {
    h3wt_ch_subscribed f;
    if (h3wt_ch_decode_subscribed(p, len, &f) != 0) {
      return 1;
    }
    r->sub = f.sub;
    r->subscribed = 1;
    if (!r->positioned || f.epoch != r->epoch || !f.recovered) {
      /* Not a recovery of what this run saw: from the channel's present,
         less the history that follows. */
      r->last = f.offset - (f.recovered ? 0 : f.missed);
    }
    r->positioned = 1;
    r->epoch = f.epoch;
    printf("{\"event\":\"subscribed\",\"channel\":");
    json_str((const uint8_t *)ch, strlen(ch));
    /* The epoch is a string: it may be past what a JSON number (a
       double) holds exactly. */
    printf(",\"recovered\":%s,\"epoch\":\"%" PRIu64 "\",\"offset\":%" PRIu64
           ",\"missed\":%" PRIu64,
           f.recovered ? "true" : "false", f.epoch, f.offset, f.missed);
    if (r->o->history) {
      /* Not recovered: the missed messages that follow are the history
         asked for (docs/channels.md). */
      r->history_left = f.recovered ? 0 : f.missed;
      printf(",\"history\":%" PRIu64, r->history_left);
    }
    printf("}\n");
    if (r->o->publish) {
      /* Subscribed: now the publications, the first at once. */
      uv_timer_start(&r->timer, tick, 0,
                     (uint64_t)(r->o->interval_ms > 0 ? r->o->interval_ms
                                                      : 1));
    }
    break;
  }
  case H3WT_CH_MESSAGE: {
    h3wt_ch_message f;
    if (h3wt_ch_decode_message(p, len, &f) != 0) {
      return 1;
    }
    if (f.offset > r->last) {
      r->last = f.offset;
    }
    if (r->o->subscribe) {
      ++r->messages;
      printf("{\"event\":\"message\",\"channel\":");
      json_str((const uint8_t *)ch, strlen(ch));
      printf(",\"offset\":%" PRIu64 ",", f.offset);
      if (r->history_left) {
        --r->history_left;
        printf("\"history\":true,");
      }
      printf("\"data\":");
      json_str(f.data, f.datalen);
      printf("}\n");
    }
    break;
  }
  case H3WT_CH_PUBLISHED: {
    h3wt_ch_published f;
    if (h3wt_ch_decode_published(p, len, &f) != 0) {
      return 1;
    }
    ++r->acked;
    printf("{\"event\":\"published\",\"channel\":");
    json_str((const uint8_t *)ch, strlen(ch));
    printf(",\"epoch\":\"%" PRIu64 "\",\"offset\":%" PRIu64 "}\n", f.epoch,
           f.offset);
    break;
  }
  case H3WT_CH_JOIN:
  case H3WT_CH_LEAVE: {
    h3wt_ch_member_event f;
    if ((type == H3WT_CH_JOIN ? h3wt_ch_decode_join(p, len, &f)
                              : h3wt_ch_decode_leave(p, len, &f)) != 0) {
      return 1;
    }
    if (r->o->subscribe) {
      printf("{\"event\":\"%s\",\"channel\":",
             type == H3WT_CH_JOIN ? "join" : "leave");
      json_str((const uint8_t *)ch, strlen(ch));
      printf(",\"member\":");
      json_str(f.member, f.memberlen);
      printf("}\n");
    }
    break;
  }
  case H3WT_CH_UNSUBSCRIBED: {
    h3wt_ch_unsubscribed f;
    if (h3wt_ch_decode_unsubscribed(p, len, &f) != 0) {
      return 1;
    }
    printf("{\"event\":\"unsubscribed\",\"channel\":");
    json_str((const uint8_t *)ch, strlen(ch));
    printf(",\"code\":%" PRIu64 ",\"reason\":", f.code);
    json_str(f.reason, f.reasonlen);
    printf("}\n");
    if (f.req == 0 && f.code == H3WT_CH_ERR_BROKER_UNAVAILABLE &&
        r->positioned) {
      /* The server's broker lost the history we followed: subscribe
         again from our position, to be told what is left (recovered
         false, and the history asked for). */
      fflush(stdout);
      send_subscribe(r);
      break;
    }
    finish(r, 1);
    break;
  }
  case H3WT_CH_ERROR: {
    h3wt_ch_error f;
    if (h3wt_ch_decode_error(p, len, &f) != 0) {
      return 1;
    }
    printf("{\"event\":\"error\",\"code\":%" PRIu64 ",\"name\":\"%s\","
           "\"text\":",
           f.code, h3wt_ch_strerror(f.code));
    json_str(f.text, f.textlen);
    printf("}\n");
    finish(r, 1);
    break;
  }
  default:
    break;
  }
  fflush(stdout);
  maybe_done(r);
  return 0;
}

/* SUBSCRIBE: recover from the position seen on this run, else from
   --since. */
static void send_subscribe(ch_run_state *r) {
  const ch_opts *o = r->o;
  uint8_t f[320];
  const char *ch = channel(r);
  int recover = r->positioned || o->recover;
  size_t n = h3wt_ch_encode_subscribe_ex(
      f, sizeof(f), 1, (const uint8_t *)ch, strlen(ch),
      (recover ? H3WT_CH_FLAG_RECOVER : 0) |
          (o->history ? H3WT_CH_FLAG_HISTORY : 0),
      r->positioned ? r->epoch : o->epoch,
      r->positioned ? r->last : o->offset, o->history_limit);
  send_frame(r, f, n);
}

static void s_ready(h3wt_session *s, void *rd) {
  ch_run_state *r = rd;
  if (h3wt_session_open_stream(s, 1, &r->st) != 0) {
    finish(r, 1);
    return;
  }
  send_subscribe(r);
}

static void s_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                   void *rd) {
  ch_run_state *r = rd;
  if (h3wt_ch_parse(&r->parser, d, n, on_frame, r) != 0 && !r->closing) {
    fprintf(stderr, "h3wt-client: malformed frame from the server\n");
    finish(r, 1);
  }
}

static void s_dgram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  ch_run_state *r = rd;
  uint64_t type, sub;
  const uint8_t *data;
  size_t len;
  if (!r->o->subscribe ||
      h3wt_ch_decode_dgram(d, n, &type, &sub, &data, &len) != 0 ||
      type != H3WT_CH_DGRAM_DELIVER || sub != r->sub) {
    return;
  }
  ++r->messages;
  printf("{\"event\":\"message\",\"channel\":");
  json_str((const uint8_t *)r->o->subscribe, strlen(r->o->subscribe));
  printf(",\"unreliable\":true,\"data\":");
  json_str(data, len);
  printf("}\n");
  fflush(stdout);
  maybe_done(r);
}

static void s_close(h3wt_session *s, int err, uint32_t code,
                    const char *reason, size_t rl, void *rd) {
  ch_run_state *r = rd;
  r->s = NULL;
  r->st = NULL;
  if (!r->closing) {
    fprintf(stderr, "h3wt-client: session closed: %s, code %u reason '%.*s'\n",
            h3wt_strerror(err), code, (int)rl, reason);
    finish(r, 1);
  }
}

static const h3wt_session_handler handler = {
    .on_session_ready = s_ready,
    .on_stream_data = s_data,
    .on_datagram = s_dgram,
    .on_session_close = s_close,
};

static void on_closed(h3wt_client *c, int err, void *ud) {
  ch_run_state *r = ud;
  uv_timer_stop(&r->timer);
  uv_timer_stop(&r->deadline);
  uv_close((uv_handle_t *)&r->timer, NULL);
  uv_close((uv_handle_t *)&r->deadline, NULL);
  if (!r->closing) {
    fprintf(stderr, "h3wt-client: connection closed: %s\n",
            h3wt_strerror(err));
    r->status = 1;
  }
}

static void on_deadline(uv_timer_t *t) {
  ch_run_state *r = t->data;
  /* A subscriber without --count runs until then: that is its end. */
  if (r->o->subscribe && !r->o->count) {
    finish(r, 0);
  } else {
    fprintf(stderr, "h3wt-client: timed out\n");
    finish(r, 1);
  }
}

int ch_run(const ch_opts *o, h3wt_client_settings *s) {
  ch_run_state r;
  h3wt_client_callbacks cbs = {NULL, on_closed};
  int rv;
  memset(&r, 0, sizeof(r));
  r.o = o;
  r.loop = uv_default_loop();
  h3wt_ch_parser_init(&r.parser, H3WT_CH_MAX_FRAME_DEFAULT);
  s->host = o->host;
  s->port = o->port;
  rv = h3wt_client_new(&r.client, r.loop, s, &cbs, &r);
  if (rv != 0) {
    fprintf(stderr, "h3wt-client: %s\n", h3wt_strerror(rv));
    return 1;
  }
  uv_timer_init(r.loop, &r.timer);
  r.timer.data = &r;
  uv_timer_init(r.loop, &r.deadline);
  r.deadline.data = &r;
  uv_timer_start(&r.deadline, on_deadline, (uint64_t)(o->timeout_s * 1000),
                 0);
  rv = h3wt_client_webtransport(r.client, o->path, o->origin, o->headers,
                                o->nheaders, &handler, &r, &r.s);
  if (rv != 0) {
    fprintf(stderr, "h3wt-client: %s\n", h3wt_strerror(rv));
    finish(&r, 1);
  }
  uv_run(r.loop, UV_RUN_DEFAULT);
  h3wt_client_del(r.client);
  uv_run(r.loop, UV_RUN_DEFAULT);
  h3wt_ch_parser_free(&r.parser);
  return r.status;
}
