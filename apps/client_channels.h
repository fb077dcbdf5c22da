/*
 * client_channels: h3wt-client's channel modes (docs/channels.md), for
 * driving channels from a shell:
 *
 *   h3wt-client -k --subscribe CHANNEL [--since EPOCH:OFFSET] [--history N]
 *               [--count N] URL
 *   h3wt-client -k --publish CHANNEL -d TEXT [--unreliable]
 *               [--repeat N] [--interval MS] URL
 *
 * Every event is one JSON line on stdout (README, "Channels from a
 * shell").
 */
#ifndef CLIENT_CHANNELS_H
#define CLIENT_CHANNELS_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt/h3wt.h"

typedef struct ch_opts {
  char host[256];
  uint16_t port;
  const char *path;
  const char *origin;
  const h3wt_header *headers; /* -H: extra CONNECT headers */
  size_t nheaders;
  const char *subscribe; /* the channel, or NULL */
  const char *publish;   /* the channel, or NULL */
  int recover;           /* --since given */
  uint64_t epoch, offset;
  int history;           /* --history given: SUBSCRIBE's history bit */
  uint64_t history_limit;
  uint64_t count;    /* subscriber: stop after this many messages (0: never) */
  const char *data;  /* publisher: the text */
  int unreliable;
  uint64_t repeat;   /* publisher: how many */
  double interval_ms;
  double timeout_s;
  int verbose;
} ch_opts;

void ch_opts_default(ch_opts *o);
/* Parses "EPOCH:OFFSET".  Returns 0 or -1. */
int ch_parse_since(const char *s, uint64_t *epoch, uint64_t *offset);
/* Runs the mode; returns the process exit status (0: done as asked). */
int ch_run(const ch_opts *o, h3wt_client_settings *s);

#endif /* CLIENT_CHANNELS_H */
