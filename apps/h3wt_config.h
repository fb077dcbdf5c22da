/*
 * h3wt_config: the demo server's settings, from a JSON file and from the
 * command line.
 *
 * One table of keys drives everything: the JSON file's keys, the long
 * options (the key with '-' for '_': "max_connections" is
 * --max-connections), --set KEY=VALUE, --print-config and the usage text.
 * Values are checked the same way from either source: integers are
 * integers (a JSON number without fraction, or decimal digits on the
 * command line), within the key's range; strings are strings; null unsets
 * an optional string.  Errors name the key, and for the file also the file
 * and the line and column (of the JSON syntax error, or of the key).
 *
 * The precedence is: built-in defaults, then the environment
 * (SSLKEYLOGFILE, H3WT_CERT_DIR), then the file, then the command line,
 * whatever the order of the options.
 */
#ifndef H3WT_CONFIG_H
#define H3WT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt/h3wt.h"

#define H3WT_CONFIG_MAX_KEYS 64

typedef struct h3wt_app_config {
  /* The library's settings; its strings point at built-in constants or at
     owned[] below. */
  h3wt_server_settings server;
  /* The demo server's own options. */
  const char *web_dir;   /* folder served over HTTP/3 and HTTP/1.1 */
  const char *cert_dir;  /* development certificate; NULL: ~/.cache/h3wt */
  const char *wt_origin; /* only this origin may open sessions; NULL: any */
  const char *channels_token; /* /wt/channels wants ?token=this; NULL: any */
  const char *secret_file; /* the server's static secret; NULL: random */
  h3wt_channels_settings channels; /* the /wt/channels hub's limits */
  int http;              /* the HTTP/1.1 demo page listener on localhost */
  uint16_t http_port;
  int http_port_given; /* set by the file or the command line: a busy port
                          is then an error rather than a warning */
  uint64_t drain_timeout_ms;
  uint32_t workers; /* threads, each with a loop and a server of a group */
  const char *broker_url; /* redis://...; NULL or "memory": in process */
  h3wt_broker_redis_settings redis; /* timeout and presence TTL used */
  char *owned[H3WT_CONFIG_MAX_KEYS]; /* string values, by key index */
} h3wt_app_config;

typedef enum h3wt_config_type {
  H3WT_CONFIG_STRING,   /* a string (required: null refused) */
  H3WT_CONFIG_OPT_STRING, /* a string, or null for none */
  H3WT_CONFIG_UINT,     /* a non-negative integer in [min, max] */
  H3WT_CONFIG_BOOL,
  H3WT_CONFIG_LOG_LEVEL /* "error", "warn", "info", "debug", "trace" */
} h3wt_config_type;

typedef struct h3wt_config_key {
  const char *name; /* JSON key */
  const char *opt;  /* long option */
  char short_opt;   /* or 0 */
  h3wt_config_type type;
  uint64_t min, max;
  const char *arg;  /* the option's argument in the usage text */
  const char *help; /* one line */
  size_t offset;    /* of the field in h3wt_app_config */
  size_t size;      /* of that field (integers: 2, 4 or 8 bytes) */
} h3wt_config_key;

/* The keys, in the order of the usage text and --print-config. */
size_t h3wt_config_nkeys(void);
const h3wt_config_key *h3wt_config_key_at(size_t i);
/* Finds a key by JSON name or option name ("max_body", "max-body");
   returns its index or -1. */
int h3wt_config_find(const char *name);

/* Fills c with the defaults and the environment's values. */
void h3wt_config_init(h3wt_app_config *c);
void h3wt_config_free(h3wt_app_config *c);

/* Applies a JSON file: an object whose keys are config keys.  Returns 0,
   or -1 with a message in err ("FILE:LINE:COL: ...", or "FILE: ..." where
   no position is known); on error c may have been partly changed. */
int h3wt_config_load_file(h3wt_app_config *c, const char *path, char *err,
                          size_t errlen);
/* The same from a string (name is used in messages). */
int h3wt_config_load_string(h3wt_app_config *c, const char *text,
                            const char *name, char *err, size_t errlen);

/* Sets key (JSON or option name) from command-line text.  Booleans take
   true/false, yes/no, on/off, 1/0.  Returns 0, or -1 with a message in err
   naming the key. */
int h3wt_config_set(h3wt_app_config *c, const char *key, const char *value,
                    char *err, size_t errlen);

/* The effective configuration as a JSON document (malloc'd, indented), the
   same format the file takes (a password in the broker URL is shown as
   "***"); NULL when out of memory. */
char *h3wt_config_dump(const h3wt_app_config *c);

#endif /* H3WT_CONFIG_H */
