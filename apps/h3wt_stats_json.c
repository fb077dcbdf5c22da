/*
 * h3wt_stats_json: GET /stats and GET /metrics (see h3wt_stats_json.h).
 */
#include "h3wt_stats_json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

typedef struct stat_field {
  const char *name;
  size_t offset;
} stat_field;

#define F(m) {#m, offsetof(h3wt_server_stats, m)}

/* Every uint64_t of h3wt_server_stats, in the header's order; the unit
   test checks that none is missing. */
static const stat_field fields[] = {
    F(connections_current),
    F(connections_total),
    F(handshake_failures),
    F(requests_total),
    F(responses_2xx),
    F(responses_3xx),
    F(responses_4xx),
    F(responses_5xx),
    F(sessions_current),
    F(sessions_total),
    F(sessions_rejected),
    F(sessions_rejected_404),
    F(sessions_rejected_403),
    F(sessions_rejected_429),
    F(sessions_rejected_other),
    F(wt_streams_bidi_peer),
    F(wt_streams_uni_peer),
    F(wt_streams_bidi_local),
    F(wt_streams_uni_local),
    F(wt_streams_rejected_buffered),
    F(datagrams_received),
    F(datagrams_received_dropped),
    F(datagrams_sent),
    F(datagrams_dropped_queue_full),
    F(datagrams_dropped_too_large),
    F(udp_bytes_received),
    F(udp_datagrams_received),
    F(udp_bytes_sent),
    F(udp_datagrams_sent),
    F(udp_send_dropped),
    F(limit_max_connections),
    F(limit_max_handshakes_per_addr),
    F(limit_max_request_body),
    F(limit_max_header_bytes),
    F(limit_max_response_queue),
    F(limit_max_sessions_per_conn),
    F(limit_max_streams_per_session),
    F(limit_max_stream_queue),
    F(limit_max_session_queue),
    F(limit_max_datagram_queue),
    F(datagrams_dropped_oldest),
    F(datagrams_dropped_expired),
    F(liveness_closes),
    F(limit_max_unvalidated_handshakes),
    F(packets_handed_off),
    F(packets_misrouted_dropped),
    F(wt_fc_capsules_sent),
    F(wt_fc_capsules_received),
    F(wt_fc_errors),
    F(wt_fc_data_blocked),
    F(wt_fc_streams_blocked),
    F(udp_rx_ecn_ect0),
    F(udp_rx_ecn_ect1),
    F(udp_rx_ecn_ce),
    F(udp_tx_ecn_ect),
    F(handshakes_resumed),
    F(early_data_accepted),
    F(early_data_rejected),
    F(requests_0rtt),
    F(requests_too_early),
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

#undef F
#define F(m) {#m, offsetof(h3wt_channels_stats, m)}

/* Every uint64_t of h3wt_channels_stats. */
static const stat_field ch_fields[] = {
    F(sessions_current),
    F(channels_current),
    F(subscriptions_current),
    F(subscribes),
    F(recoveries),
    F(recoveries_failed),
    F(publishes_reliable),
    F(publishes_unreliable),
    F(deliveries_reliable),
    F(deliveries_unreliable),
    F(deliveries_unreliable_dropped),
    F(slow_consumers),
    F(presence_dropped),
    F(presence_skipped),
    F(frames_received),
    F(unknown_frames),
    F(errors_sent),
    F(protocol_errors),
    F(datagrams_dropped),
    F(refused_subscribe),
    F(refused_publish),
    F(limit_channels_per_session),
    F(limit_subscribers_per_channel),
    F(limit_message_size),
    F(limit_publish_rate),
    F(broker_publishes),
    F(broker_errors),
    F(broker_round_trips),
    F(broker_rtt_us_sum),
    F(broker_reconnects),
    F(broker_link_up),
    F(broker_queued),
    F(broker_gaps),
};

/* Sets obj[name] for each field of the struct at base.  Returns 0 or -1. */
static int put_fields(json_t *obj, const stat_field *f, size_t n,
                      const void *base) {
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = *(const uint64_t *)((const char *)base + f[i].offset);
    /* JSON integers here are signed 64-bit; no counter gets near 2^63. */
    if (json_object_set_new(obj, f[i].name, json_integer((json_int_t)v))) {
      return -1;
    }
  }
  return 0;
}

size_t h3wt_stats_json_nfields(void) {
  return NFIELDS;
}

#define NCH_FIELDS (sizeof(ch_fields) / sizeof(ch_fields[0]))

int h3wt_stats_gather(h3wt_server *server, h3wt_channels *hub,
                      h3wt_stats_set *out) {
  memset(out, 0, sizeof(*out));
  out->server.version = H3WT_SERVER_STATS_VERSION;
  if (h3wt_server_get_stats(server, &out->server) != 0) {
    return -1;
  }
  if (hub) {
    out->channels.version = H3WT_CHANNELS_STATS_VERSION;
    if (h3wt_channels_get_stats(hub, &out->channels) != 0) {
      return -1;
    }
    out->has_channels = 1;
  }
  return 0;
}

/* Adds the fields of the struct at from into the one at to. */
static void add_fields(void *to, const void *from, const stat_field *f,
                       size_t n) {
  for (size_t i = 0; i < n; ++i) {
    *(uint64_t *)((char *)to + f[i].offset) +=
        *(const uint64_t *)((const char *)from + f[i].offset);
  }
}

/* The workers' counters added up. */
static void total(const h3wt_stats_set *w, size_t n, h3wt_stats_set *sum) {
  memset(sum, 0, sizeof(*sum));
  sum->has_channels = n > 0 && w[0].has_channels;
  for (size_t i = 0; i < n; ++i) {
    add_fields(&sum->server, &w[i].server, fields, NFIELDS);
    add_fields(&sum->channels, &w[i].channels, ch_fields, NCH_FIELDS);
  }
}

/* One set's counters into obj (and its "channels" object).  Returns 0 or
   -1. */
static int put_set(json_t *obj, const h3wt_stats_set *set) {
  if (put_fields(obj, fields, NFIELDS, &set->server) != 0) {
    return -1;
  }
  if (set->has_channels) {
    json_t *ch = json_object();
    if (!ch || put_fields(ch, ch_fields, NCH_FIELDS, &set->channels) != 0) {
      json_decref(ch);
      return -1;
    }
    if (json_object_set_new(obj, "channels", ch) != 0) { /* takes ch */
      return -1;
    }
  }
  return 0;
}

char *h3wt_stats_json(const h3wt_stats_set *workers, size_t n,
                      uint64_t uptime_ms) {
  h3wt_stats_set sum;
  json_t *doc, *arr;
  char *text;
  total(workers, n, &sum);
  doc = json_object();
  if (!doc ||
      json_object_set_new(doc, "server", json_string("h3wt/" H3WT_VERSION)) ||
      json_object_set_new(doc, "uptime_ms",
                          json_integer((json_int_t)uptime_ms)) ||
      put_set(doc, &sum) != 0) {
    json_decref(doc);
    return NULL;
  }
  /* Each worker under the same keys, in worker order. */
  arr = json_array();
  if (!arr || json_object_set_new(doc, "workers", arr) != 0) {
    json_decref(doc);
    return NULL;
  }
  for (size_t i = 0; i < n; ++i) {
    json_t *w = json_object();
    if (!w || put_set(w, &workers[i]) != 0 || json_array_append_new(arr, w)) {
      json_decref(w);
      json_decref(doc);
      return NULL;
    }
  }
  text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(doc);
  return text;
}

/* ---- GET /metrics: the Prometheus text format ---------------------------- */

typedef struct out_buf {
  char *p;
  size_t len, cap;
  int failed;
} out_buf;

static void outf(out_buf *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void outf(out_buf *o, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    if (o->failed) {
      return;
    }
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      o->failed = 1;
      return;
    }
    if ((size_t)n < o->cap - o->len) {
      o->len += (size_t)n;
      return;
    }
    size_t cap = o->cap * 2 + (size_t)n;
    char *p = realloc(o->p, cap);
    if (!p) {
      o->failed = 1;
      return;
    }
    o->p = p;
    o->cap = cap;
  }
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* One metric per field: *_current (and the broker's link and queue) are
   gauges, the rest counters (named
   with _total, as the format's convention asks). */
static void put_metrics(out_buf *o, const char *prefix, const stat_field *f,
                        size_t n, const void *base) {
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = *(const uint64_t *)((const char *)base + f[i].offset);
    int gauge = ends_with(f[i].name, "_current") ||
                strcmp(f[i].name, "broker_link_up") == 0 ||
                strcmp(f[i].name, "broker_queued") == 0;
    const char *suffix = gauge || ends_with(f[i].name, "_total") ? "" : "_total";
    outf(o, "# TYPE %s%s%s %s\n%s%s%s %" PRIu64 "\n", prefix, f[i].name,
         suffix, gauge ? "gauge" : "counter", prefix, f[i].name, suffix, v);
  }
}

char *h3wt_stats_prometheus(const h3wt_stats_set *workers, size_t n,
                            uint64_t uptime_ms) {
  h3wt_stats_set sum;
  out_buf o = {malloc(8192), 0, 8192, 0};
  if (!o.p) {
    return NULL;
  }
  total(workers, n, &sum);
  outf(&o, "# TYPE h3wt_build_info gauge\nh3wt_build_info{version=\"%s\"} 1\n",
       H3WT_VERSION);
  outf(&o, "# TYPE h3wt_uptime_seconds gauge\nh3wt_uptime_seconds %" PRIu64
           ".%03u\n",
       uptime_ms / 1000, (unsigned)(uptime_ms % 1000));
  put_metrics(&o, "h3wt_", fields, NFIELDS, &sum.server);
  if (sum.has_channels) {
    put_metrics(&o, "h3wt_channels_", ch_fields, NCH_FIELDS, &sum.channels);
  }
  if (o.failed) {
    free(o.p);
    return NULL;
  }
  return o.p;
}
