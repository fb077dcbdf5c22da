/*
 * h3wt_http1: a small HTTP/1.1 server on libuv TCP, bound to localhost only,
 * that serves the demo page to browsers.
 *
 * Why it exists: a browser reaches HTTP/3 only through Alt-Svc or a
 * force-QUIC flag, but a page on http://localhost is a secure context and
 * may open WebTransport to the HTTP/3 server with serverCertificateHashes.
 * So the demo page comes from here, and GET /config.json tells it the
 * HTTP/3 port and the certificate's SHA-256.
 *
 * It serves GET and HEAD for files below one folder (the same path rules as
 * the HTTP/3 static handler: h3wt_path_resolve), one fixed JSON document at
 * /config.json, and whatever the host's dynamic callback makes per request.  Requests are parsed with llhttp; keep-alive and
 * pipelining work (one request at a time per connection).  Everything a
 * peer controls is bounded: the request head, the body (none is wanted:
 * drained up to a limit), connections, idle time, file size.
 *
 * It runs on the host's loop and follows the libuv rules: h3wt_http1_close()
 * closes every handle and waits for file reads in flight; its callback says
 * when h3wt_http1_del() may run.
 */
#ifndef H3WT_HTTP1_H
#define H3WT_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "h3wt/h3wt.h"

typedef struct h3wt_http1 h3wt_http1;
/* A request waiting for the host's document. */
typedef struct h3wt_http1_later h3wt_http1_later;

typedef struct h3wt_http1_settings {
  const char *web_root;    /* folder served (required) */
  uint16_t port;           /* TCP port; 0 picks an ephemeral one */
  const char *config_json; /* body of GET /config.json (copied); NULL: 404 */
  /* Limits on what a peer controls. */
  size_t max_connections;   /* default 64; more are accepted and closed */
  size_t max_head_bytes;    /* request line + headers; default 8 KiB: 431 */
  size_t max_url_bytes;     /* default 2 KiB: 414 */
  uint64_t max_body_bytes;  /* drained and ignored; over it: 413; 64 KiB */
  uint64_t max_file_bytes;  /* larger files get 500; default 16 MiB */
  uint64_t idle_timeout_ms; /* no request (or a request head not finished)
                               for this long closes; default 15000 */
  h3wt_log_cb log_cb;       /* NULL: quiet */
  void *log_user_data;
  h3wt_log_level log_level;
  /* Optional: documents the host makes per request (the demo server's
     GET /stats, gathered from every worker's loop).  Asked first for
     every GET and HEAD, with the path without its query (NUL-terminated).
     Returns 0 when the path is not the host's (files are served as
     usual), else 1: the host then answers with h3wt_http1_answer(later,
     ...) exactly once, at once or later, on the loop thread; the
     connection waits for it (and so does h3wt_http1_close's callback). */
  int (*dynamic)(const char *path, h3wt_http1_later *later, void *user_data);
  void *dynamic_user_data;
} h3wt_http1_settings;

void h3wt_http1_settings_default(h3wt_http1_settings *s);

/* Creates the listener (not listening yet).  Returns 0,
   H3WT_ERR_INVALID_ARGUMENT or H3WT_ERR_NOMEM. */
int h3wt_http1_new(h3wt_http1 **ph, uv_loop_t *loop,
                   const h3wt_http1_settings *s);

/* Binds 127.0.0.1 and, where the system has it, ::1 (same port) and
   listens.  Returns 0 or H3WT_ERR_ADDRESS (the log says why); on failure
   nothing stays bound. */
int h3wt_http1_listen(h3wt_http1 *h);

/* The bound TCP port, or 0. */
uint16_t h3wt_http1_port(const h3wt_http1 *h);

/* Closes the listeners and every connection.  cb (optional) runs once every
   handle is closed and no file read is in flight; then h3wt_http1_del(). */
void h3wt_http1_close(h3wt_http1 *h, void (*cb)(h3wt_http1 *, void *),
                      void *user_data);

/* The host's document for a request its dynamic callback took: 200 with
   body (malloc'd, taken over; len bytes) and content_type (a static
   string), or 500 when body is NULL.  On the loop thread. */
void h3wt_http1_answer(h3wt_http1_later *later, char *body, size_t len,
                       const char *content_type);

/* Frees it: after the close callback, or if it never listened. */
void h3wt_http1_del(h3wt_http1 *h);

#endif /* H3WT_HTTP1_H */
