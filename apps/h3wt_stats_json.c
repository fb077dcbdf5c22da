/*
 * h3wt_stats_json: GET /stats (see h3wt_stats_json.h).
 */
#include "h3wt_stats_json.h"

#include <stddef.h>

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

char *h3wt_stats_json(h3wt_server *server, h3wt_channels *hub,
                      uint64_t uptime_ms) {
  h3wt_server_stats st;
  json_t *doc;
  char *text;
  st.version = H3WT_SERVER_STATS_VERSION;
  if (h3wt_server_get_stats(server, &st) != 0) {
    return NULL;
  }
  doc = json_object();
  if (!doc ||
      json_object_set_new(doc, "server", json_string("h3wt/" H3WT_VERSION)) ||
      json_object_set_new(doc, "uptime_ms", json_integer((json_int_t)uptime_ms))) {
    json_decref(doc);
    return NULL;
  }
  if (put_fields(doc, fields, NFIELDS, &st) != 0) {
    json_decref(doc);
    return NULL;
  }
  if (hub) {
    h3wt_channels_stats cst;
    json_t *ch = json_object();
    cst.version = H3WT_CHANNELS_STATS_V1;
    if (!ch || h3wt_channels_get_stats(hub, &cst) != 0 ||
        put_fields(ch, ch_fields, sizeof(ch_fields) / sizeof(ch_fields[0]),
                   &cst) != 0) {
      json_decref(ch);
      json_decref(doc);
      return NULL;
    }
    if (json_object_set_new(doc, "channels", ch) != 0) { /* takes ch */
      json_decref(doc);
      return NULL;
    }
  }
  text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(doc);
  return text;
}
