/*
 * h3wt_config: the demo server's settings from a JSON file and the command
 * line (see h3wt_config.h).
 */
#include "h3wt_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#define FIELD(m) offsetof(h3wt_app_config, m), sizeof(((h3wt_app_config *)0)->m)
#define KIB 1024ULL
#define MIB (1024ULL * 1024)
#define GIB (1024ULL * 1024 * 1024)

/* Ranges: what the type can hold, narrowed to what makes sense, so a typo
   (an extra digit, a negative number) is an error and not a surprise.  A
   limit of 0 is allowed where it means "none" or "refuse all" in
   h3wt_server_settings' documentation. */
static const h3wt_config_key keys[] = {
    {"addr", "addr", 'a', H3WT_CONFIG_STRING, 0, 0, "ADDR",
     "listen address (default :: = IPv6 and IPv4)", FIELD(server.host)},
    {"port", "port", 'p', H3WT_CONFIG_UINT, 0, 65535, "PORT",
     "UDP port (default 4433; 0 = ephemeral)", FIELD(server.port)},
    {"cert", "cert", 'c', H3WT_CONFIG_OPT_STRING, 0, 0, "FILE",
     "PEM certificate chain", FIELD(server.cert_file)},
    {"key", "key", 'k', H3WT_CONFIG_OPT_STRING, 0, 0, "FILE",
     "PEM private key", FIELD(server.key_file)},
    {"cert_dir", "cert-dir", 0, H3WT_CONFIG_OPT_STRING, 0, 0, "DIR",
     "where the development certificate is kept\n"
     "(default $H3WT_CERT_DIR or ~/.cache/h3wt)",
     FIELD(cert_dir)},
    {"secret_file", "secret-file", 0, H3WT_CONFIG_OPT_STRING, 0, 0, "FILE",
     "the server's static secret (at least 16 bytes;\n"
     "stateless resets, Retry tokens and session\n"
     "tickets stay valid across restarts; default:\n"
     "random per process)",
     FIELD(secret_file)},
    {"web", "web", 'w', H3WT_CONFIG_STRING, 0, 0, "DIR",
     "folder served for GET (default: web)", FIELD(web_dir)},
    {"log_level", "log-level", 'l', H3WT_CONFIG_LOG_LEVEL, 0, 0, "LEVEL",
     "error|warn|info|debug|trace (default info)", FIELD(server.log_level)},
    {"qlog_dir", "qlog-dir", 'q', H3WT_CONFIG_OPT_STRING, 0, 0, "DIR",
     "write one qlog file per connection", FIELD(server.qlog_dir)},
    {"keylog", "keylog", 0, H3WT_CONFIG_OPT_STRING, 0, 0, "FILE",
     "append TLS secrets (also SSLKEYLOGFILE)", FIELD(server.keylog_file)},
    {"server_name", "server-name", 0, H3WT_CONFIG_STRING, 0, 0, "NAME",
     "the server response header\n"
     "(default h3wt/VERSION)",
     FIELD(server.server_name)},
    {"http", "http", 0, H3WT_CONFIG_BOOL, 0, 1, NULL,
     "the HTTP/1.1 demo page listener on localhost\n"
     "(default on; --no-http turns it off)",
     FIELD(http)},
    {"http_port", "http-port", 0, H3WT_CONFIG_UINT, 0, 65535, "PORT",
     "HTTP/1.1 port of the demo page on localhost\n"
     "(default 8080; 0 = ephemeral)",
     FIELD(http_port)},
    {"wt_origin", "wt-origin", 0, H3WT_CONFIG_OPT_STRING, 0, 0, "ORIGIN",
     "accept WebTransport sessions only from this\n"
     "origin (others get 403; default: any)",
     FIELD(wt_origin)},
    {"channels_token", "channels-token", 0, H3WT_CONFIG_OPT_STRING, 0, 0,
     "TOKEN",
     "/wt/channels accepts only CONNECTs with ?token=TOKEN\n"
     "(default: any session)",
     FIELD(channels_token)},
    {"channels_history_size", "channels-history-size", 0, H3WT_CONFIG_UINT,
     0, 1000000, "N",
     "reliable messages kept per channel for recovery\n"
     "(default 100; 0: none)",
     FIELD(channels.history_size)},
    {"channels_history_ttl", "channels-history-ttl", 0, H3WT_CONFIG_UINT, 0,
     86400000, "MS", "and at most this old (default 300000; 0: no age)",
     FIELD(channels.history_ttl_ms)},
    {"channels_max_per_session", "channels-max-per-session", 0,
     H3WT_CONFIG_UINT, 1, 100000, "N",
     "channels one session may be in (default 64)",
     FIELD(channels.max_channels_per_session)},
    {"channels_max_subscribers", "channels-max-subscribers", 0,
     H3WT_CONFIG_UINT, 1, UINT32_MAX, "N",
     "subscribers per channel (default 100000)",
     FIELD(channels.max_subscribers_per_channel)},
    {"channels_max_message", "channels-max-message", 0, H3WT_CONFIG_UINT, 1,
     16 * MIB, "BYTES", "bytes per publication (default 65536)",
     FIELD(channels.max_message)},
    {"channels_publish_rate", "channels-publish-rate", 0, H3WT_CONFIG_UINT, 0,
     1000000, "N",
     "publications per second per session (default 100;\n"
     "0: no limit)",
     FIELD(channels.publish_rate)},
    {"channels_presence_events_max", "channels-presence-events-max", 0,
     H3WT_CONFIG_UINT, 0, 100000000, "N",
     "send JOIN/LEAVE only in channels of at most N\n"
     "subscribers (default 1000; 0: never)",
     FIELD(channels.presence_events_max)},
    {"channels_publish_burst", "channels-publish-burst", 0, H3WT_CONFIG_UINT,
     1, 1000000, "N", "publications a session may send at once (default 200)",
     FIELD(channels.publish_burst)},
    {"drain_timeout", "drain-timeout", 0, H3WT_CONFIG_UINT, 0, 3600000, "MS",
     "on SIGINT/SIGTERM, let requests and sessions\n"
     "finish for up to MS (default 5000; a second\n"
     "signal stops at once)",
     FIELD(drain_timeout_ms)},
    {"workers", "workers", 0, H3WT_CONFIG_UINT, 1, 1024, "N",
     "threads serving the port together, each with\n"
     "its own loop (default: the number of cores;\n"
     "1: one loop on the main thread)",
     FIELD(workers)},
    {"broker", "broker", 0, H3WT_CONFIG_OPT_STRING, 0, 0, "URL",
     "where /wt/channels' channels meet other servers':\n"
     "redis://[:PASSWORD@]HOST[:PORT][/DB] (or the\n"
     "password in $H3WT_REDIS_PASSWORD), or memory\n"
     "(default: memory, shared by this process's\n"
     "workers)",
     FIELD(broker_url)},
    {"broker_timeout", "broker-timeout", 0, H3WT_CONFIG_UINT, 1, 600000, "MS",
     "a Redis request unanswered this long fails\n"
     "(the publisher is told; default 2000)",
     FIELD(redis.timeout_ms)},
    {"broker_presence_ttl", "broker-presence-ttl", 0, H3WT_CONFIG_UINT, 300,
     86400000, "MS",
     "members of a server that stopped leave the\n"
     "channels within MS (Redis; default 15000)",
     FIELD(redis.presence_ttl_ms)},
    {"idle_timeout", "idle-timeout", 0, H3WT_CONFIG_UINT, 1, 86400000, "MS",
     "close a connection idle this long (default 30000)",
     FIELD(server.idle_timeout_ms)},
    {"max_body", "max-body", 0, H3WT_CONFIG_UINT, 0, INT64_MAX, "BYTES",
     "request body limit; over it: 413 (default 1048576)",
     FIELD(server.max_request_body)},
    {"max_header_bytes", "max-header-bytes", 0, H3WT_CONFIG_UINT, 1, 16 * MIB,
     "BYTES", "request field section limit; over it: 431\n"
              "(default 16384)",
     FIELD(server.max_header_bytes)},
    {"max_connections", "max-connections", 0, H3WT_CONFIG_UINT, 1,
     UINT32_MAX, "N", "connections at once; more are dropped\n"
          "(default 10000)",
     FIELD(server.max_connections)},
    {"max_handshakes_per_addr", "max-handshakes-per-addr", 0,
     H3WT_CONFIG_UINT, 0, UINT32_MAX, "N",
     "new connections per second from one address before\n"
     "the server answers with Retry (default 100;\n"
     "0 = never)",
     FIELD(server.max_handshakes_per_addr)},
    {"max_unvalidated_handshakes", "max-unvalidated-handshakes", 0,
     H3WT_CONFIG_UINT, 0, 4294967295u, "N",
     "handshakes in progress from unproven addresses\n"
     "beyond which every new connection gets a Retry\n"
     "(default 1000; 0 = never)",
     FIELD(server.max_unvalidated_handshakes)},
    {"max_streams_bidi", "max-streams-bidi", 0, H3WT_CONFIG_UINT, 1, 1000000,
     "N", "concurrent peer bidirectional streams per connection\n"
          "(requests, CONNECTs, WebTransport; default 100)",
     FIELD(server.max_streams_bidi)},
    {"max_response_queue", "max-response-queue", 0, H3WT_CONFIG_UINT, 1, GIB,
     "BYTES", "unacknowledged response bytes per request before\n"
              "writes would block (default 262144)",
     FIELD(server.max_response_queue)},
    {"max_sessions_per_conn", "max-sessions-per-conn", 0, H3WT_CONFIG_UINT, 0,
     65535, "N", "WebTransport sessions per connection; over it: 429\n"
                 "(default 16)",
     FIELD(server.max_sessions_per_conn)},
    {"max_streams_per_session", "max-streams-per-session", 0,
     H3WT_CONFIG_UINT, 0, 1000000, "N",
     "concurrent peer streams per session; more are reset\n"
     "(default 256)",
     FIELD(server.max_streams_per_session)},
    {"max_stream_queue", "max-stream-queue", 0, H3WT_CONFIG_UINT, 1, GIB,
     "BYTES", "unacknowledged bytes per WebTransport stream before\n"
              "writes would block (default 262144)",
     FIELD(server.max_stream_queue)},
    {"max_session_queue", "max-session-queue", 0, H3WT_CONFIG_UINT, 0,
     1024 * GIB, "BYTES",
     "unacknowledged bytes per WebTransport session, all\n"
     "streams together (default 1048576; 0 = no budget)",
     FIELD(server.max_session_queue)},
    {"max_datagram_queue", "max-datagram-queue", 0, H3WT_CONFIG_UINT, 0,
     65536, "N", "datagrams queued per connection; more are dropped\n"
                 "(default 256)",
     FIELD(server.max_datagram_queue)},
    {"wt_session_max_data", "wt-session-max-data", 0, H3WT_CONFIG_UINT, 0,
     1024 * GIB, "BYTES",
     "session flow control window (WT_MAX_DATA), on only\n"
     "with clients that announce it too (default\n"
     "16777216; 0 = not offered)",
     FIELD(server.wt_session_max_data)},
    {"orphan_stream_timeout", "orphan-stream-timeout", 0, H3WT_CONFIG_UINT,
     0, 600000, "MS",
     "refuse a WebTransport stream whose session has\n"
     "not appeared after MS (default 1000; 0 = never)",
     FIELD(server.orphan_stream_timeout_ms)},
    {"keep_alive", "keep-alive", 0, H3WT_CONFIG_UINT, 0, 3600000, "MS",
     "PING a connection with sessions after MS without\n"
     "traffic (default 5000; 0 = never)",
     FIELD(server.keep_alive_ms)},
    {"liveness_timeout", "liveness-timeout", 0, H3WT_CONFIG_UINT, 0,
     86400000, "MS",
     "close a connection with sessions that sent nothing\n"
     "for MS (default 15000; 0 = idle timeout only)",
     FIELD(server.liveness_timeout_ms)},
    {"datagram_max_age", "datagram-max-age", 0, H3WT_CONFIG_UINT, 0, 3600000,
     "MS", "discard queued datagrams older than MS\n"
           "(default 0 = no age limit)",
     FIELD(server.datagram_max_age_ms)},
    {"datagram_drop_oldest", "datagram-drop-oldest", 0, H3WT_CONFIG_BOOL, 0,
     1, NULL,
     "when the datagram queue is full, drop the session's\n"
     "oldest datagram instead of the new one (default off)",
     FIELD(server.datagram_drop_oldest)},
    {"early_data", "early-data", 0, H3WT_CONFIG_BOOL, 0, 1, NULL,
     "accept 0-RTT requests from resuming clients\n"
     "(GET, HEAD, OPTIONS; others get 425; default on)",
     FIELD(server.early_data)},
    {"wt_0rtt", "wt-0rtt", 0, H3WT_CONFIG_BOOL, 0, 1, NULL,
     "accept a WebTransport CONNECT sent in 0-RTT\n"
     "(default off: 425 Too Early, as the draft says;\n"
     "the client sends it again after the handshake)",
     FIELD(server.wt_0rtt)},
    {"log_full_paths", "log-full-paths", 0, H3WT_CONFIG_BOOL, 0, 1, NULL,
     "log query values (tokens!) instead of \"...\"\n"
     "(default off)",
     FIELD(server.log_full_paths)},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

_Static_assert(NKEYS <= H3WT_CONFIG_MAX_KEYS, "owned[] too small");

size_t h3wt_config_nkeys(void) {
  return NKEYS;
}

const h3wt_config_key *h3wt_config_key_at(size_t i) {
  return i < NKEYS ? &keys[i] : NULL;
}

int h3wt_config_find(const char *name) {
  for (size_t i = 0; i < NKEYS; ++i) {
    if (strcmp(keys[i].name, name) == 0 || strcmp(keys[i].opt, name) == 0) {
      return (int)i;
    }
  }
  return -1;
}

/* ---- fields --------------------------------------------------------------- */

static void *field(h3wt_app_config *c, const h3wt_config_key *k) {
  return (char *)c + k->offset;
}

static const void *cfield(const h3wt_app_config *c, const h3wt_config_key *k) {
  return (const char *)c + k->offset;
}

static void store_uint(void *f, size_t size, uint64_t v) {
  if (size == 2) {
    uint16_t x = (uint16_t)v;
    memcpy(f, &x, 2);
  } else if (size == 4) {
    uint32_t x = (uint32_t)v;
    memcpy(f, &x, 4);
  } else {
    memcpy(f, &v, 8);
  }
}

static uint64_t load_uint(const void *f, size_t size) {
  if (size == 2) {
    uint16_t x;
    memcpy(&x, f, 2);
    return x;
  }
  if (size == 4) {
    uint32_t x;
    memcpy(&x, f, 4);
    return x;
  }
  uint64_t x;
  memcpy(&x, f, 8);
  return x;
}

/* Replaces the key's string (copied); NULL unsets it. */
static int store_string(h3wt_app_config *c, size_t i, const char *v) {
  char *copy = NULL;
  if (v && !(copy = strdup(v))) {
    return -1;
  }
  free(c->owned[i]);
  c->owned[i] = copy;
  memcpy(field(c, &keys[i]), &copy, sizeof(copy));
  return 0;
}

void h3wt_config_init(h3wt_app_config *c) {
  const char *env;
  memset(c, 0, sizeof(*c));
  h3wt_server_settings_default(&c->server);
  h3wt_channels_settings_default(&c->channels);
  c->server.log_cb = h3wt_log_stderr;
  c->web_dir = "web";
  c->http = 1;
  c->http_port = 8080;
  c->drain_timeout_ms = 5000;
  h3wt_broker_redis_settings_default(&c->redis);
  /* One worker per core the process may use. */
  c->workers = uv_available_parallelism();
  if (c->workers < 1) {
    c->workers = 1;
  } else if (c->workers > 1024) {
    c->workers = 1024;
  }
  /* The environment gives defaults only; the file and options win.  Not
     copied: the environment outlives the config. */
  env = getenv("SSLKEYLOGFILE");
  c->server.keylog_file = env && *env ? env : NULL;
  env = getenv("H3WT_CERT_DIR");
  c->cert_dir = env && *env ? env : NULL;
}

void h3wt_config_free(h3wt_app_config *c) {
  for (size_t i = 0; i < NKEYS; ++i) {
    free(c->owned[i]);
    c->owned[i] = NULL;
  }
}

/* ---- errors ---------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static const char *range_text(const h3wt_config_key *k, char *buf,
                              size_t len) {
  snprintf(buf, len, "an integer from %llu to %llu",
           (unsigned long long)k->min, (unsigned long long)k->max);
  return buf;
}

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
    return "an integer";
  case JSON_REAL:
    return "a number with a fraction or exponent";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
    return "null";
  }
  return "?";
}

static const char *expected(const h3wt_config_key *k, char *buf, size_t len) {
  switch (k->type) {
  case H3WT_CONFIG_STRING:
    return "a string";
  case H3WT_CONFIG_OPT_STRING:
    return "a string or null";
  case H3WT_CONFIG_UINT:
    return range_text(k, buf, len);
  case H3WT_CONFIG_BOOL:
    return "true or false";
  case H3WT_CONFIG_LOG_LEVEL:
    return "a log level (error, warn, info, debug or trace)";
  }
  return "?";
}

/* ---- setting one value ---------------------------------------------------- */

static int set_uint(h3wt_app_config *c, size_t i, uint64_t v) {
  store_uint(field(c, &keys[i]), keys[i].size, v);
  if (field(c, &keys[i]) == (void *)&c->http_port) {
    c->http_port_given = 1;
  }
  return 0;
}

static int set_level(h3wt_app_config *c, size_t i, const char *name) {
  h3wt_log_level lv;
  if (h3wt_log_level_parse(name, &lv) != 0) {
    return -1;
  }
  memcpy(field(c, &keys[i]), &lv, sizeof(lv));
  return 0;
}

static int set_bool(h3wt_app_config *c, size_t i, int v) {
  memcpy(field(c, &keys[i]), &v, sizeof(v));
  return 0;
}

/* A decimal number made of digits only (strtoull alone takes "", " 1",
   "+1" and "-1").  Returns 0, -1 (not a number) or -2 (too large). */
static int parse_uint(const char *text, uint64_t *out) {
  uint64_t v = 0;
  if (!*text) {
    return -1;
  }
  for (const char *p = text; *p; ++p) {
    if (*p < '0' || *p > '9') {
      return -1;
    }
    if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
      return -2;
    }
    v = v * 10 + (uint64_t)(*p - '0');
  }
  *out = v;
  return 0;
}

int h3wt_config_set(h3wt_app_config *c, const char *key, const char *value,
                    char *err, size_t errlen) {
  int i = h3wt_config_find(key);
  char buf[96];
  if (i < 0) {
    return fail(err, errlen, "unknown key '%s' (--help lists them)", key);
  }
  const h3wt_config_key *k = &keys[i];
  /* Messages name the key as the user wrote it (an option or a key). */
  switch (k->type) {
  case H3WT_CONFIG_STRING:
  case H3WT_CONFIG_OPT_STRING:
    if (k->type == H3WT_CONFIG_STRING && !*value) {
      return fail(err, errlen, "%s: must not be empty", key);
    }
    if (store_string(c, (size_t)i, value) != 0) {
      return fail(err, errlen, "%s: out of memory", key);
    }
    return 0;
  case H3WT_CONFIG_UINT: {
    uint64_t v;
    int rv = parse_uint(value, &v);
    if (rv == -1) {
      return fail(err, errlen, "%s: '%s' is not %s", key, value,
                  expected(k, buf, sizeof(buf)));
    }
    if (rv == -2 || v < k->min || v > k->max) {
      return fail(err, errlen, "%s: %s is out of range (%s)", key, value,
                  expected(k, buf, sizeof(buf)));
    }
    return set_uint(c, (size_t)i, v);
  }
  case H3WT_CONFIG_BOOL: {
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t j = 0; j < 4; ++j) {
      if (strcmp(value, yes[j]) == 0) {
        return set_bool(c, (size_t)i, 1);
      }
      if (strcmp(value, no[j]) == 0) {
        return set_bool(c, (size_t)i, 0);
      }
    }
    return fail(err, errlen, "%s: '%s' is not true or false", key, value);
  }
  case H3WT_CONFIG_LOG_LEVEL:
    if (set_level(c, (size_t)i, value) != 0) {
      return fail(err, errlen, "%s: '%s' is not %s", key, value,
                  expected(k, buf, sizeof(buf)));
    }
    return 0;
  }
  return fail(err, errlen, "%s: unsupported type", key);
}

/* ---- the file ------------------------------------------------------------- */

/* Where a key sits in the text: the first `"key"` followed by a colon,
   which in valid JSON can only be an object key.  jansson keeps no
   positions after parsing, so this is how errors about values point into
   the file.  Returns 0 when not found (the key was written with escapes). */
static int key_position(const char *text, const char *key, int *line,
                        int *col) {
  size_t kl = strlen(key);
  int ln = 1, cl = 1;
  for (const char *p = text; *p; ++p) {
    if (*p == '"' && strncmp(p + 1, key, kl) == 0 && p[kl + 1] == '"') {
      const char *q = p + kl + 2;
      while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n') {
        ++q;
      }
      if (*q == ':') {
        *line = ln;
        *col = cl;
        return 1;
      }
    }
    if (*p == '\n') {
      ++ln;
      cl = 1;
    } else {
      ++cl;
    }
  }
  return 0;
}

static int apply_json(h3wt_app_config *c, size_t i, const json_t *v,
                      char *msg, size_t msglen) {
  const h3wt_config_key *k = &keys[i];
  char buf[96];
  switch (k->type) {
  case H3WT_CONFIG_STRING:
  case H3WT_CONFIG_OPT_STRING:
    if (json_is_null(v) && k->type == H3WT_CONFIG_OPT_STRING) {
      return store_string(c, i, NULL) == 0
                 ? 0
                 : fail(msg, msglen, "out of memory");
    }
    if (!json_is_string(v)) {
      break;
    }
    if (k->type == H3WT_CONFIG_STRING && json_string_length(v) == 0) {
      return fail(msg, msglen, "must not be empty");
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
      return fail(msg, msglen, "contains a NUL character");
    }
    return store_string(c, i, json_string_value(v)) == 0
               ? 0
               : fail(msg, msglen, "out of memory");
  case H3WT_CONFIG_UINT:
    if (!json_is_integer(v)) {
      break;
    }
    if (json_integer_value(v) < 0) {
      return fail(msg, msglen, "%lld is negative (expected %s)",
                  (long long)json_integer_value(v),
                  expected(k, buf, sizeof(buf)));
    }
    if ((uint64_t)json_integer_value(v) < k->min ||
        (uint64_t)json_integer_value(v) > k->max) {
      return fail(msg, msglen, "%lld is out of range (expected %s)",
                  (long long)json_integer_value(v),
                  expected(k, buf, sizeof(buf)));
    }
    return set_uint(c, i, (uint64_t)json_integer_value(v));
  case H3WT_CONFIG_BOOL:
    if (!json_is_boolean(v)) {
      break;
    }
    return set_bool(c, i, json_is_true(v));
  case H3WT_CONFIG_LOG_LEVEL:
    if (!json_is_string(v)) {
      break;
    }
    if (set_level(c, i, json_string_value(v)) != 0) {
      return fail(msg, msglen, "\"%s\" is not %s", json_string_value(v),
                  expected(k, buf, sizeof(buf)));
    }
    return 0;
  }
  return fail(msg, msglen, "expected %s, got %s",
              expected(k, buf, sizeof(buf)), json_type_name(v));
}

static int load(h3wt_app_config *c, const char *text, const char *name,
                char *err, size_t errlen) {
  json_error_t je;
  json_t *doc, *v;
  const char *key;
  char msg[256];
  int line, col;
  /* Duplicate keys would silently let the later one win: refuse them. */
  doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (!doc) {
    return fail(err, errlen, "%s:%d:%d: %s", name, je.line, je.column,
                je.text);
  }
  if (!json_is_object(doc)) {
    json_decref(doc);
    return fail(err, errlen, "%s: the top level must be a JSON object", name);
  }
  json_object_foreach(doc, key, v) {
    int i = h3wt_config_find(key);
    int rv;
    if (i < 0 || strcmp(keys[i].name, key) != 0) {
      /* Only the JSON spelling: "max-body" in a file is a typo. */
      snprintf(msg, sizeof(msg), "unknown key \"%s\"", key);
      rv = -1;
    } else {
      rv = apply_json(c, (size_t)i, v, msg, sizeof(msg));
    }
    if (rv != 0) {
      if (key_position(text, key, &line, &col)) {
        fail(err, errlen, "%s:%d:%d: %s: %s", name, line, col, key, msg);
      } else {
        fail(err, errlen, "%s: %s: %s", name, key, msg);
      }
      json_decref(doc);
      return -1;
    }
  }
  json_decref(doc);
  return 0;
}

int h3wt_config_load_string(h3wt_app_config *c, const char *text,
                            const char *name, char *err, size_t errlen) {
  return load(c, text, name, err, errlen);
}

int h3wt_config_load_file(h3wt_app_config *c, const char *path, char *err,
                          size_t errlen) {
  /* Read whole (bounded: a config file is small) so that errors about
     values can point at their key's line. */
  enum { MAX_FILE = 1 << 20 };
  FILE *f = fopen(path, "rb");
  char *text;
  size_t n;
  int rv;
  if (!f) {
    return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
  }
  text = malloc(MAX_FILE + 1);
  if (!text) {
    fclose(f);
    return fail(err, errlen, "%s: out of memory", path);
  }
  n = fread(text, 1, MAX_FILE + 1, f);
  if (ferror(f)) {
    rv = fail(err, errlen, "%s: read error", path);
  } else if (n > MAX_FILE) {
    rv = fail(err, errlen, "%s: larger than %d bytes", path, MAX_FILE);
  } else {
    text[n] = '\0';
    rv = memchr(text, '\0', n)
             ? fail(err, errlen, "%s: contains a NUL byte", path)
             : load(c, text, path, err, errlen);
  }
  free(text);
  fclose(f);
  return rv;
}

/* ---- dump ---------------------------------------------------------------- */

/* The broker URL as it may be shown: a password in it becomes "***"
   (--print-config output ends up in terminals, logs and bug reports).
   Writes into buf (len bytes) and returns it, or returns url unchanged. */
static const char *url_shown(const char *url, char *buf, size_t len) {
  const char *scheme = strstr(url, "://");
  const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
  if (!at) {
    return url;
  }
  snprintf(buf, len, "%.*s:***%s", (int)(scheme + 3 - url), url, at);
  return buf;
}

char *h3wt_config_dump(const h3wt_app_config *c) {
  static const char *levels[] = {"error", "warn", "info", "debug", "trace"};
  json_t *doc = json_object();
  char *text;
  if (!doc) {
    return NULL;
  }
  for (size_t i = 0; i < NKEYS; ++i) {
    const h3wt_config_key *k = &keys[i];
    const void *f = cfield(c, k);
    json_t *v = NULL;
    switch (k->type) {
    case H3WT_CONFIG_STRING:
    case H3WT_CONFIG_OPT_STRING: {
      const char *s;
      char shown[512];
      memcpy(&s, f, sizeof(s));
      if (s && strcmp(k->name, "broker") == 0) {
        s = url_shown(s, shown, sizeof(shown));
      }
      v = s ? json_string(s) : json_null();
      break;
    }
    case H3WT_CONFIG_UINT:
      v = json_integer((json_int_t)load_uint(f, k->size));
      break;
    case H3WT_CONFIG_BOOL: {
      int b;
      memcpy(&b, f, sizeof(b));
      v = json_boolean(b);
      break;
    }
    case H3WT_CONFIG_LOG_LEVEL: {
      h3wt_log_level lv;
      memcpy(&lv, f, sizeof(lv));
      v = json_string((unsigned)lv < 5 ? levels[lv] : "info");
      break;
    }
    }
    if (!v || json_object_set_new(doc, k->name, v) != 0) {
      json_decref(doc);
      return NULL;
    }
  }
  text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(doc);
  return text;
}
