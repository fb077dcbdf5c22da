/*
 * client_wt: the WebTransport mode of h3wt-client (--wt).  It opens
 * sessions on one connection, runs a verified workload on each and prints
 * a summary (see client_wt.c); h3wt-client.c parses the command line into
 * a wt_opts and calls wt_run().
 */
#ifndef CLIENT_WT_H
#define CLIENT_WT_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt/h3wt.h"

/* Sizes the command line checks options against. */
#define WT_DG_HDR 24  /* datagram header: magic, session, seq, send time */
#define WT_UNI_TAG 16 /* uni stream tag: magic, session, index */

typedef struct wt_opts {
  char host[256];
  uint16_t port;
  const char *path;
  const char *origin;
  const h3wt_header *headers; /* -H: extra CONNECT headers */
  size_t nheaders;
  uint64_t datagrams;
  double rate;     /* datagrams per second per session */
  uint64_t window; /* datagrams in flight per session */
  size_t dgram_size;
  int dgram_max; /* --dgram-size max */
  uint64_t max_loss;
  uint64_t streams, stream_bytes, uni;
  double read_secs; /* < 0: no reading */
  uint64_t sessions;
  int reset;
  uint32_t reset_code;
  uint32_t close_code;
  const char *close_reason;
  double close_after; /* < 0: at the end of the workload */
  double linger_ms;   /* after the last session, before the connection */
  double timeout_s;
  int verbose;
} wt_opts;

/* Fills o with the defaults of the --wt options. */
void wt_opts_default(wt_opts *o);

/* Connects with the settings s (host and port taken from o), runs the
   workload and prints the summary.  Returns the exit status: 0 only if
   everything was verified. */
int wt_run(const wt_opts *o, h3wt_client_settings *s);

#endif /* CLIENT_WT_H */
