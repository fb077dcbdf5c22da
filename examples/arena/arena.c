/*
 * arena: the skeleton of a realtime game server on h3wt, built against an
 * installed h3wt (see examples/README.md).
 *
 *   arena PORT CERT KEY
 *
 * Players open a WebTransport session to /arena.  A player's datagrams are
 * its input (the last one is kept, at most INPUT_MAX bytes); a
 * unidirectional stream it opens is a chat line (at most CHAT_MAX bytes,
 * complete at FIN).  A 20 Hz uv_timer on the host's loop makes one snapshot
 * of every player's input and sends it to every session as a datagram;
 * each chat line goes to every session (its sender too) on a new
 * unidirectional stream.
 *
 * Snapshots and chat lines go out through shared buffers (h3wt_buf): the
 * bytes are made once, every session's queue holds a reference, and they
 * are freed when the last peer has them.  A tick costs one allocation
 * however many players there are.
 *
 * A snapshot is a text line: "tick N players K" and " ID:INPUT" for each
 * player that sent input (printable bytes only; others become '.').
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h3wt/h3wt.h>
#include <uv.h>

#define PATH "/arena"
#define TICK_MS 50        /* 20 Hz */
#define INPUT_MAX 32      /* bytes of input kept per player */
#define CHAT_MAX 1024     /* a longer chat line is refused */
#define SNAPSHOT_MAX 1200 /* fits a datagram on any path QUIC runs on */
#define ERR_CHAT_TOO_LONG 1

typedef struct player {
  uint8_t input[INPUT_MAX];
  size_t inputlen;
} player;

typedef struct chat_line {
  uint8_t text[CHAT_MAX];
  size_t len;
} chat_line;

typedef struct arena {
  h3wt_server *server;
  uv_timer_t tick;
  uv_signal_t sigint, sigterm;
  uint64_t ticks;
  uint64_t snapshots_sent, snapshots_dropped;
  uint64_t chat_lines, chat_streams;
} arena;

/* ---- sessions ------------------------------------------------------------ */

static int on_session_request(h3wt_session *s, void *route_data) {
  (void)s;
  (void)route_data;
  return 200;
}

static void on_session_ready(h3wt_session *s, void *route_data) {
  player *p = calloc(1, sizeof(*p));
  (void)route_data;
  if (!p) {
    h3wt_session_close(s, 1, "out of memory");
    return;
  }
  h3wt_session_set_data(s, p);
  printf("arena: player %" PRIu64 " joined\n", h3wt_session_id(s));
  fflush(stdout);
}

static void on_session_close(h3wt_session *s, int err, uint32_t code,
                             const char *reason, size_t reasonlen,
                             void *route_data) {
  (void)err;
  (void)code;
  (void)reason;
  (void)reasonlen;
  (void)route_data;
  free(h3wt_session_get_data(s));
}

static void on_datagram(h3wt_session *s, const uint8_t *data, size_t len,
                        void *route_data) {
  player *p = h3wt_session_get_data(s);
  (void)route_data;
  if (p) { /* the newest input wins; the next snapshot carries it */
    p->inputlen = len < INPUT_MAX ? len : INPUT_MAX;
    memcpy(p->input, data, p->inputlen);
  }
}

/* ---- chat: a peer's unidirectional stream, fanned out to everyone -------- */

typedef struct chat_ctx {
  arena *a;
  h3wt_buf *line;
} chat_ctx;

/* Opens a unidirectional stream to one session and queues the line on it:
   the stream takes a reference to the shared buffer, no copy is made. */
static int send_chat(h3wt_session *s, void *ud) {
  chat_ctx *c = ud;
  h3wt_stream *st;
  if (h3wt_session_open_stream(s, 0, &st) != 0) {
    return 0; /* no stream credit (or closing): this player misses it */
  }
  if (h3wt_stream_write_buf(st, c->line) != 0) {
    h3wt_stream_reset(st, 0); /* over its session's queue budget */
    return 0;
  }
  h3wt_stream_finish(st);
  ++c->a->chat_streams;
  return 0; /* go on with the next session */
}

static void on_stream_open(h3wt_stream *st, void *route_data) {
  (void)route_data;
  if (h3wt_stream_is_bidi(st)) { /* players talk on uni streams only */
    h3wt_stream_stop_sending(st, 0);
    h3wt_stream_reset(st, 0);
    return;
  }
  chat_line *c = calloc(1, sizeof(*c));
  if (!c) {
    h3wt_stream_stop_sending(st, 0);
    return;
  }
  h3wt_stream_set_data(st, c); /* freed in on_stream_close */
}

static void on_stream_data(h3wt_stream *st, const uint8_t *data, size_t len,
                           int fin, void *route_data) {
  chat_line *c = h3wt_stream_get_data(st);
  chat_ctx ctx = {.a = route_data};
  if (!c) {
    return;
  }
  if (len > CHAT_MAX - c->len) {
    h3wt_stream_stop_sending(st, ERR_CHAT_TOO_LONG);
    h3wt_stream_set_data(st, NULL);
    free(c);
    return;
  }
  memcpy(c->text + c->len, data, len); /* data is borrowed: copy */
  c->len += len;
  if (!fin || c->len == 0) {
    return;
  }
  /* One buffer for every recipient (refcount 1: ours). */
  if (h3wt_buf_new(&ctx.line, c->text, c->len) == 0) {
    ++ctx.a->chat_lines;
    h3wt_server_foreach_session(ctx.a->server, PATH, send_chat, &ctx);
    h3wt_buf_unref(ctx.line); /* the streams hold their own references */
  }
}

static void on_stream_close(h3wt_stream *st, void *route_data) {
  (void)route_data;
  free(h3wt_stream_get_data(st));
}

static const h3wt_session_handler arena_handler = {
    .on_session_request = on_session_request,
    .on_session_ready = on_session_ready,
    .on_stream_open = on_stream_open,
    .on_stream_data = on_stream_data,
    .on_stream_close = on_stream_close,
    .on_datagram = on_datagram,
    .on_session_close = on_session_close,
};

/* ---- the tick ------------------------------------------------------------ */

typedef struct tick_ctx {
  arena *a;
  char players[SNAPSHOT_MAX - 64]; /* " ID:INPUT" entries */
  size_t len;
  size_t nplayers;
  h3wt_buf *snapshot;
} tick_ctx;

static int add_player(h3wt_session *s, void *ud) {
  tick_ctx *t = ud;
  player *p = h3wt_session_get_data(s);
  char entry[32 + INPUT_MAX];
  int n;
  ++t->nplayers;
  if (!p || p->inputlen == 0) {
    return 0;
  }
  n = snprintf(entry, sizeof(entry), " %" PRIu64 ":", h3wt_session_id(s));
  for (size_t i = 0; i < p->inputlen; ++i) {
    uint8_t b = p->input[i];
    entry[n++] = b >= 0x20 && b < 0x7f ? (char)b : '.';
  }
  if (t->len + (size_t)n <= sizeof(t->players)) {
    memcpy(t->players + t->len, entry, (size_t)n);
    t->len += (size_t)n;
  } /* else full: that input waits for a tick with room */
  return 0;
}

static int send_snapshot(h3wt_session *s, void *ud) {
  tick_ctx *t = ud;
  /* The datagram queue takes its own reference.  A full queue drops this
     snapshot (counted): the next one follows in TICK_MS anyway. */
  if (h3wt_session_send_datagram_buf(s, t->snapshot) == 0) {
    ++t->a->snapshots_sent;
  } else {
    ++t->a->snapshots_dropped;
  }
  return 0;
}

static void on_tick(uv_timer_t *timer) {
  arena *a = timer->data;
  tick_ctx t = {.a = a};
  char text[SNAPSHOT_MAX];
  int n;
  ++a->ticks;
  h3wt_server_foreach_session(a->server, PATH, add_player, &t);
  if (t.nplayers == 0) {
    return;
  }
  n = snprintf(text, 64, "tick %" PRIu64 " players %zu", a->ticks, t.nplayers);
  memcpy(text + n, t.players, t.len);
  /* One buffer, refcount 1 (ours), for every player's datagram queue. */
  if (h3wt_buf_new(&t.snapshot, text, (size_t)n + t.len) != 0) {
    return;
  }
  h3wt_server_foreach_session(a->server, PATH, send_snapshot, &t);
  h3wt_buf_unref(t.snapshot);
}

/* ---- the host program ---------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum) {
  arena *a = h->data;
  printf("arena: signal %d, closing\n", signum);
  fflush(stdout);
  /* The loop ends once every handle is closed: ours and the server's. */
  uv_close((uv_handle_t *)&a->tick, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  h3wt_server_close(a->server, NULL, NULL);
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  h3wt_server_settings s;
  uint8_t hash[32];
  arena a = {0};
  char err[256], *end;
  int rv;

  if (argc != 4) {
    fprintf(stderr, "usage: %s PORT CERT KEY\n", argv[0]);
    return 2;
  }
  unsigned long port = strtoul(argv[1], &end, 10);
  if (*argv[1] == '\0' || *end != '\0' || port > 65535) {
    fprintf(stderr, "arena: bad port '%s'\n", argv[1]);
    return 2;
  }
  /* A development certificate, remade when it has a day or less left. */
  if (h3wt_cert_seconds_left(argv[2]) <= 24 * 3600) {
    rv = h3wt_devcert_make(argv[2], argv[3], err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "arena: cannot make a certificate: %s (%s)\n", err,
              h3wt_strerror(rv));
      return 1;
    }
  }
  if (h3wt_cert_sha256(argv[2], hash) != 0) {
    fprintf(stderr, "arena: cannot read %s\n", argv[2]);
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
    rv = h3wt_server_webtransport(a.server, PATH, &arena_handler, &a);
  }
  if (rv == 0) {
    rv = h3wt_server_listen(a.server);
  }
  if (rv != 0) {
    fprintf(stderr, "arena: cannot start: %s\n", h3wt_strerror(rv));
    if (a.server) {
      h3wt_server_close(a.server, NULL, NULL);
      uv_run(loop, UV_RUN_DEFAULT);
      h3wt_server_del(a.server);
    }
    uv_loop_close(loop);
    return 1;
  }

  uv_timer_init(loop, &a.tick);
  uv_signal_init(loop, &a.sigint);
  uv_signal_init(loop, &a.sigterm);
  a.tick.data = a.sigint.data = a.sigterm.data = &a;
  uv_timer_start(&a.tick, on_tick, TICK_MS, TICK_MS);
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);

  printf("arena: certificate sha256 ");
  for (int i = 0; i < 32; ++i) {
    printf("%02x", hash[i]);
  }
  printf("\narena: listening on port %u, WebTransport at %s, %d Hz\n",
         (unsigned)h3wt_server_port(a.server), PATH, 1000 / TICK_MS);
  fflush(stdout);

  uv_run(loop, UV_RUN_DEFAULT); /* the host's loop: h3wt never runs it */

  h3wt_server_del(a.server);
  rv = uv_loop_close(loop);
  printf("arena: %" PRIu64 " ticks, %" PRIu64 " snapshots sent (%" PRIu64
         " dropped), %" PRIu64 " chat lines to %" PRIu64 " streams\n",
         a.ticks, a.snapshots_sent, a.snapshots_dropped, a.chat_lines,
         a.chat_streams);
  printf("arena: stopped%s\n", rv == 0 ? "" : " (handles left open)");
  return rv == 0 ? 0 : 1;
}
