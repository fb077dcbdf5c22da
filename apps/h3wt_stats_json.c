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
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

size_t h3wt_stats_json_nfields(void) {
  return NFIELDS;
}

char *h3wt_stats_json(h3wt_server *server, uint64_t uptime_ms) {
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
  for (size_t i = 0; i < NFIELDS; ++i) {
    uint64_t v = *(const uint64_t *)((const char *)&st + fields[i].offset);
    /* JSON integers here are signed 64-bit; no counter gets near 2^63. */
    if (json_object_set_new(doc, fields[i].name,
                            json_integer((json_int_t)v)) != 0) {
      json_decref(doc);
      return NULL;
    }
  }
  text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(doc);
  return text;
}
