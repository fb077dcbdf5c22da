/*
 * echo: a WebTransport echo server embedded in a program's own libuv loop,
 * built against an installed h3wt (see examples/README.md).
 *
 *   echo PORT CERT KEY
 *
 * Listens on UDP PORT (0: any free port; the one chosen is printed), makes
 * a development certificate in CERT/KEY unless the one there has more than
 * a day left, and prints its SHA-256 for a page's serverCertificateHashes.
 * WebTransport sessions on /echo get every datagram back, and every
 * bidirectional stream's bytes back on the same stream, then FIN.
 * SIGINT or SIGTERM closes the server, and the program exits 0 once every
 * handle of the loop is closed.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h3wt/h3wt.h>
#include <uv.h>

/* Bytes a stream refused (H3WT_ERR_WOULDBLOCK) wait here until
   on_stream_writable; a peer that keeps sending without reading its echo
   past this much gets its stream reset instead of growing our memory. */
#define PENDING_MAX (1024 * 1024)
#define ERR_OVERLOAD 1 /* the WebTransport code of that reset */

typedef struct pending {
  uint8_t *buf;
  size_t len;
  int fin;  /* the peer finished: finish ours once buf is out */
  int done; /* finished or given up: nothing more to write */
} pending;

/* Resets our side and asks the peer to stop; drops what waits. */
static void give_up(h3wt_stream *st, pending *p) {
  h3wt_stream_reset(st, ERR_OVERLOAD);
  h3wt_stream_stop_sending(st, ERR_OVERLOAD);
  free(p->buf);
  p->buf = NULL;
  p->len = 0;
  p->done = 1;
}

/* Writes as much of data as the stream takes (in pieces, so a refusal
   costs at most one piece).  Returns the bytes taken; *rv is 0,
   H3WT_ERR_WOULDBLOCK (wait for on_stream_writable) or an error. */
static size_t write_some(h3wt_stream *st, const uint8_t *data, size_t len,
                         int *rv) {
  size_t off = 0;
  *rv = 0;
  while (off < len) {
    size_t n = len - off < 16384 ? len - off : 16384;
    *rv = h3wt_stream_write(st, data + off, n);
    if (*rv != 0) {
      break;
    }
    off += n;
  }
  return off;
}

/* Writes what waits, and finishes the stream after the last byte once the
   peer has finished. */
static void flush(h3wt_stream *st, pending *p) {
  int rv;
  size_t n = write_some(st, p->buf, p->len, &rv);
  if (n > 0) {
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
  }
  if (rv == H3WT_ERR_WOULDBLOCK) {
    return;
  }
  if (rv != 0) {
    give_up(st, p);
  } else if (p->fin) {
    h3wt_stream_finish(st);
    p->done = 1;
  }
}

static int on_session_request(h3wt_session *s, void *route_data) {
  (void)s;
  (void)route_data;
  return 200; /* any origin: this is an example */
}

static void on_session_ready(h3wt_session *s, void *route_data) {
  (void)route_data;
  printf("echo: session %" PRIu64 " ready\n", (uint64_t)h3wt_session_id(s));
  fflush(stdout);
}

static void on_stream_open(h3wt_stream *st, void *route_data) {
  (void)route_data;
  if (!h3wt_stream_is_bidi(st)) {
    h3wt_stream_stop_sending(st, 0); /* only bidi streams are echoed */
    return;
  }
  pending *p = calloc(1, sizeof(*p));
  if (!p) {
    h3wt_stream_reset(st, ERR_OVERLOAD);
    h3wt_stream_stop_sending(st, ERR_OVERLOAD);
    return;
  }
  h3wt_stream_set_data(st, p); /* freed in on_stream_close */
}

static void on_stream_data(h3wt_stream *st, const uint8_t *data, size_t len,
                           int fin, void *route_data) {
  pending *p = h3wt_stream_get_data(st);
  (void)route_data;
  if (!p || p->done) {
    return;
  }
  p->fin |= fin;
  if (p->len == 0) { /* nothing waiting: straight to the stream */
    int rv;
    size_t n = write_some(st, data, len, &rv);
    if (rv != 0 && rv != H3WT_ERR_WOULDBLOCK) {
      give_up(st, p);
      return;
    }
    data += n;
    len -= n;
  }
  if (len > 0) {
    /* data is borrowed for this call only: keep a copy of the rest until
       on_stream_writable. */
    uint8_t *b =
        p->len + len <= PENDING_MAX ? realloc(p->buf, p->len + len) : NULL;
    if (!b) {
      give_up(st, p);
      return;
    }
    memcpy(b + p->len, data, len);
    p->buf = b;
    p->len += len;
  }
  if (p->len == 0 && p->fin) {
    h3wt_stream_finish(st);
    p->done = 1;
  }
}

static void on_stream_writable(h3wt_stream *st, void *route_data) {
  pending *p = h3wt_stream_get_data(st);
  (void)route_data;
  if (p && !p->done) {
    flush(st, p);
  }
}

static void on_stream_close(h3wt_stream *st, void *route_data) {
  pending *p = h3wt_stream_get_data(st);
  (void)route_data;
  if (p) {
    free(p->buf);
    free(p);
  }
}

static void on_datagram(h3wt_session *s, const uint8_t *data, size_t len,
                        void *route_data) {
  (void)route_data;
  /* Queued or dropped (a full queue, like the network, may drop them). */
  h3wt_session_send_datagram(s, data, len);
}

static const h3wt_session_handler echo_handler = {
    .on_session_request = on_session_request,
    .on_session_ready = on_session_ready,
    .on_stream_open = on_stream_open,
    .on_stream_data = on_stream_data,
    .on_stream_writable = on_stream_writable,
    .on_stream_close = on_stream_close,
    .on_datagram = on_datagram,
};

/* ---- the host program ---------------------------------------------------- */

typedef struct app {
  h3wt_server *server;
  uv_signal_t sigint, sigterm;
} app;

static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  printf("echo: signal %d, closing\n", signum);
  fflush(stdout);
  /* The loop ends once every handle is closed: ours and the server's. */
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  h3wt_server_close(a->server, NULL, NULL);
}

/* Reuses the certificate while it has more than a day left, else makes a
   new one (browsers take 14 days at most for serverCertificateHashes). */
static int ensure_cert(const char *cert, const char *key) {
  char err[256];
  int rv;
  if (h3wt_cert_seconds_left(cert) > 24 * 3600) {
    return 0;
  }
  rv = h3wt_devcert_make(cert, key, err, sizeof(err));
  if (rv != 0) {
    fprintf(stderr, "echo: cannot make a certificate: %s (%s)\n", err,
            h3wt_strerror(rv));
  }
  return rv;
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  h3wt_server_settings s;
  uint8_t hash[32];
  app a = {0};
  char *end;
  int rv;

  if (argc != 4) {
    fprintf(stderr, "usage: %s PORT CERT KEY\n", argv[0]);
    return 2;
  }
  unsigned long port = strtoul(argv[1], &end, 10);
  if (*argv[1] == '\0' || *end != '\0' || port > 65535) {
    fprintf(stderr, "echo: bad port '%s'\n", argv[1]);
    return 2;
  }
  if (ensure_cert(argv[2], argv[3]) != 0 ||
      h3wt_cert_sha256(argv[2], hash) != 0) {
    return 1;
  }

  h3wt_server_settings_default(&s);
  s.port = (uint16_t)port;
  s.cert_file = argv[2];
  s.key_file = argv[3];
  s.log_cb = h3wt_log_stderr;
  s.log_level = H3WT_LOG_WARN;
  rv = h3wt_server_new(&a.server, loop, &s);
  if (rv == 0) {
    rv = h3wt_server_webtransport(a.server, "/echo", &echo_handler, NULL);
  }
  if (rv == 0) {
    rv = h3wt_server_listen(a.server);
  }
  if (rv != 0) {
    fprintf(stderr, "echo: cannot start: %s\n", h3wt_strerror(rv));
    if (a.server) {
      h3wt_server_close(a.server, NULL, NULL);
      uv_run(loop, UV_RUN_DEFAULT);
      h3wt_server_del(a.server);
    }
    uv_loop_close(loop);
    return 1;
  }

  uv_signal_init(loop, &a.sigint);
  uv_signal_init(loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);

  printf("echo: certificate sha256 ");
  for (int i = 0; i < 32; ++i) {
    printf("%02x", hash[i]);
  }
  printf("\necho: listening on port %u, WebTransport at /echo\n",
         (unsigned)h3wt_server_port(a.server));
  fflush(stdout);

  uv_run(loop, UV_RUN_DEFAULT); /* the host's loop: h3wt never runs it */

  h3wt_server_del(a.server);
  rv = uv_loop_close(loop);
  printf("echo: stopped%s\n", rv == 0 ? "" : " (handles left open)");
  return rv == 0 ? 0 : 1;
}
