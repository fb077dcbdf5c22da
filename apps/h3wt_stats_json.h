/*
 * h3wt_stats_json: h3wt_server_stats as the JSON document of GET /stats
 * (HTTP/3 and the localhost HTTP/1.1 listener).  Keys are the struct's
 * field names, so the C header documents each one.
 */
#ifndef H3WT_STATS_JSON_H
#define H3WT_STATS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt/h3wt.h"

/* The counters of server, plus "server" (the version) and "uptime_ms"
   (since started_ms, a uv_now() value), and when hub is not NULL its
   counters in a "channels" object (keys: h3wt_channels_stats' fields), as
   an indented JSON object (malloc'd), or NULL when out of memory. */
char *h3wt_stats_json(h3wt_server *server, h3wt_channels *hub,
                      uint64_t uptime_ms);

/* For the tests: how many counters the document carries. */
size_t h3wt_stats_json_nfields(void);

/* The same counters in the Prometheus text exposition format (version
   0.0.4): h3wt_build_info{version}, h3wt_uptime_seconds, then one metric
   per field named h3wt_FIELD (h3wt_channels_FIELD for the hub's), gauges
   for the *_current fields and counters (with the _total suffix) for the
   rest; malloc'd, or NULL when out of memory. */
char *h3wt_stats_prometheus(h3wt_server *server, h3wt_channels *hub,
                            uint64_t uptime_ms);

#endif /* H3WT_STATS_JSON_H */
