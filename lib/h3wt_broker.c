/*
 * h3wt_broker: what every broker kind shares: h3wt_broker_del() and the
 * Redis broker's settings defaults (defined whether or not this library
 * was built with hiredis, so a host can fill its settings either way).
 * Without hiredis, h3wt_broker_redis_new() exists too and says so.
 */
#include <string.h>

#include "h3wt_broker.h"

void h3wt_broker_del(h3wt_broker *broker) {
  if (broker) {
    broker->kind->del(broker);
  }
}

void h3wt_broker_redis_settings_default(h3wt_broker_redis_settings *settings) {
  memset(settings, 0, sizeof(*settings));
  settings->version = H3WT_BROKER_REDIS_SETTINGS_VERSION;
  settings->url = "redis://127.0.0.1:6379";
  settings->prefix = "h3wt:";
  settings->presence_ttl_ms = 15000;
  settings->timeout_ms = 2000;
  settings->max_queued = 1000;
  settings->reconnect_min_ms = 100;
  settings->reconnect_max_ms = 5000;
}

#ifndef H3WT_HAVE_HIREDIS
int h3wt_broker_redis_new(h3wt_broker **pbroker,
                          const h3wt_broker_redis_settings *settings) {
  (void)settings;
  if (pbroker) {
    *pbroker = NULL;
  }
  /* No logger exists before a hub attaches: the code is the message
     (h3wt_strerror), and the build said it (CMake: "hiredis not found"). */
  return H3WT_ERR_INVALID_STATE;
}
#endif
