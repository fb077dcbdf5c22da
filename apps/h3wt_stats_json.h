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

/* One worker's counters: its server's and, when it has one, its channel
   hub's.  Filled on the worker's loop thread (h3wt_stats_gather), then
   read anywhere. */
typedef struct h3wt_stats_set {
  h3wt_server_stats server;
  h3wt_channels_stats channels;
  int has_channels;
} h3wt_stats_set;

/* Copies server's and hub's (may be NULL) counters into *out; on the
   server's loop thread.  Returns 0 or -1. */
int h3wt_stats_gather(h3wt_server *server, h3wt_channels *hub,
                      h3wt_stats_set *out);

/* The JSON document of GET /stats for n workers' counters: "server" (the
   version), "uptime_ms", every counter added up over the workers, the
   hubs' added up in a "channels" object (keys: h3wt_channels_stats'
   fields) when the first worker has a hub, and a "workers" array with
   each worker's counters under the same keys; indented, malloc'd, or NULL
   when out of memory. */
char *h3wt_stats_json(const h3wt_stats_set *workers, size_t n,
                      uint64_t uptime_ms);

/* For the tests: how many counters the document carries. */
size_t h3wt_stats_json_nfields(void);

/* The totals in the Prometheus text exposition format (version 0.0.4):
   h3wt_build_info{version}, h3wt_uptime_seconds, then one
   metric per field named h3wt_FIELD (h3wt_channels_FIELD for the hubs'),
   gauges for the *_current fields and counters (with the _total suffix)
   for the rest; malloc'd, or NULL when out of memory. */
char *h3wt_stats_prometheus(const h3wt_stats_set *workers, size_t n,
                            uint64_t uptime_ms);

#endif /* H3WT_STATS_JSON_H */
