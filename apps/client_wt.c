/*
 * client_wt: the WebTransport mode of h3wt-client:
 *
 *   h3wt-client [-k] --wt https://host:port/path [options]
 *
 * Opens --sessions sessions on one connection and runs the same workload on
 * each: paced datagrams with sequence numbers and timestamps (the echo gives
 * the RTT), bidi streams of a deterministic pattern verified byte for byte
 * when they come back, uni streams that must come back on server-opened uni
 * streams, one stream reset whose code must come back mirrored, and reading
 * (printing) whatever the server opens.  When a session's workload is done it
 * is closed with --close-code/--close-reason; when all have ended the
 * connection is closed and a summary printed.
 */
#include "client_wt.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "h3wt/h3wt.h"

#define WT_CHUNK 65536            /* bytes per stream write */
#define WT_DG_LOSS_MS 2000        /* an unanswered datagram is lost after */
#define WT_TICK_MS 1

static const uint8_t wt_dg_magic[4] = {'h', '3', 'd', 'g'};
static const uint8_t wt_uni_magic[8] = {'h', '3', 'w', 't', 'u', 'n', 'i', '1'};

typedef struct wt_app wt_app;

enum { DG_UNSENT, DG_FLIGHT, DG_BACK, DG_LOST };
enum { K_BIDI, K_UNI_OUT, K_PEER, K_UNI_IN, K_SERVER, K_RESET };
enum { U_PENDING, U_OK, U_FAILED };

typedef struct wt_sess {
  wt_app *a;
  int idx;
  h3wt_session *s;
  int ready, ended, closing, cut_short, fatal;
  uint64_t ready_ms;
  size_t max_dgram;
  /* Datagrams. */
  size_t dsize;
  uint8_t *dstate;
  uint64_t *dsent_ns;
  uint16_t *dlen; /* payload size of each datagram */
  size_t max_seen; /* largest h3wt_session_max_datagram() seen */
  uint64_t d_sent, d_back, d_lost, d_inflight, d_oldest, d_dup, d_bad;
  uint64_t d_blocked, d_other;
  uint64_t d_start_ms;
  /* Bidi streams. */
  uint64_t st_opened, st_ok, st_failed, st_cut, st_bytes;
  uint64_t st_first_ns, st_last_ns;
  /* Uni streams. */
  uint64_t uni_opened, uni_ok, uni_failed;
  uint8_t *uni_state;
  /* Reset. */
  int reset_opened, reset_done, reset_has;
  uint32_t reset_back;
  /* Server-opened streams shown (--read-server-streams). */
  uint64_t peer_streams, peer_bytes;
  int read_done;
  /* How it ended. */
  int close_err;
  uint32_t close_code;
  char close_reason[256];
  int status;
} wt_sess;

typedef struct wt_strm {
  wt_sess *ss;
  h3wt_stream *st;
  int kind;
  uint64_t index;
  uint32_t seed;
  uint64_t len; /* to send (ours) or to expect back */
  uint64_t tx, rx;
  int fin_sent, got_fin, done, bad;
  uint64_t bad_off;
  uint8_t bad_got, bad_want;
  uint8_t tag[WT_UNI_TAG];
  size_t taglen;
  char line[512];
  size_t linelen;
} wt_strm;

struct wt_app {
  wt_opts o;
  uv_loop_t *loop;
  h3wt_client *client;
  wt_sess *sess;
  uv_timer_t tick, timeout, linger;
  int closing, closed, timed_out, failed, conn_err;
  double *rtts;
  size_t nrtts;
  uint8_t buf[WT_CHUNK];
};

static void wt_sess_check(wt_sess *ss);

/* The byte at offset off of the pattern with this seed: a mixed 64-bit
   value per 8-byte block, so shifts, swaps and repeats all show. */
static uint64_t wt_pat_block(uint32_t seed, uint64_t block) {
  uint64_t x = (block + 1) * 0x9e3779b97f4a7c15ull ^
               ((uint64_t)seed << 32 | (uint64_t)seed * 0x85ebca6bu);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return x;
}

static void wt_pat_fill(uint32_t seed, uint64_t off, uint8_t *buf,
                        size_t len) {
  uint64_t block = off >> 3, x = wt_pat_block(seed, block);
  for (size_t i = 0; i < len; ++i, ++off) {
    if ((off >> 3) != block) {
      block = off >> 3;
      x = wt_pat_block(seed, block);
    }
    buf[i] = (uint8_t)(x >> ((off & 7) * 8));
  }
}

/* Returns the index of the first byte that differs from the pattern, or
   len. */
static size_t wt_pat_check(uint32_t seed, uint64_t off, const uint8_t *data,
                           size_t len) {
  uint64_t block = off >> 3, x = wt_pat_block(seed, block);
  for (size_t i = 0; i < len; ++i, ++off) {
    if ((off >> 3) != block) {
      block = off >> 3;
      x = wt_pat_block(seed, block);
    }
    if (data[i] != (uint8_t)(x >> ((off & 7) * 8))) {
      return i;
    }
  }
  return len;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}
static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)(v >> 32));
  put32(p + 4, (uint32_t)v);
}
static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* Seeds: bidi stream k of session i, the uni streams, datagram padding. */
static uint32_t wt_seed_bidi(const wt_sess *ss, uint64_t k) {
  return 0x10000000u ^ ((uint32_t)ss->idx << 20) ^ (uint32_t)k;
}
static uint32_t wt_seed_uni(const wt_sess *ss, uint64_t k) {
  return 0x20000000u ^ ((uint32_t)ss->idx << 20) ^ (uint32_t)k;
}
static uint32_t wt_seed_dg(const wt_sess *ss, uint64_t seq) {
  return 0x30000000u ^ ((uint32_t)ss->idx << 20) ^ (uint32_t)seq;
}

/* Printable rendering of peer bytes for one output line. */
static void wt_escape(const uint8_t *s, size_t len, char *out, size_t outlen) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < len && o + 5 < outlen; ++i) {
    if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
      out[o++] = (char)s[i];
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[s[i] >> 4];
      out[o++] = hex[s[i] & 15];
    }
  }
  out[o] = '\0';
}

static void wt_fail(wt_app *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void wt_fail(wt_app *a, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "h3wt-client: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  a->failed = 1;
}

static void wt_debug(const wt_app *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void wt_debug(const wt_app *a, const char *fmt, ...) {
  va_list ap;
  if (!a->o.verbose) {
    return;
  }
  fprintf(stderr, "DEBUG h3wt-client: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
}

/* ---- closing ------------------------------------------------------------- */

static void wt_close_conn(wt_app *a) {
  if (a->closing) {
    return;
  }
  a->closing = 1;
  uv_timer_stop(&a->tick);
  uv_timer_stop(&a->linger);
  h3wt_client_close(a->client);
}

static void wt_linger_cb(uv_timer_t *t) {
  wt_close_conn(t->data);
}

/* Every session has ended: give the last close capsules and FINs a moment to
   leave (on_session_close comes before the capsule is even written, and
   nothing says when it is acknowledged), then close.  --linger 0 closes
   right here, from inside on_session_close, as a naive application would. */
static void wt_maybe_done(wt_app *a) {
  for (uint64_t i = 0; i < a->o.sessions; ++i) {
    if (!a->sess[i].ended) {
      return;
    }
  }
  if (a->closing || uv_is_active((uv_handle_t *)&a->linger)) {
    return;
  }
  if (a->o.linger_ms <= 0) {
    wt_close_conn(a);
  } else {
    uv_timer_start(&a->linger, wt_linger_cb, (uint64_t)a->o.linger_ms, 0);
  }
}

static void wt_sess_close(wt_sess *ss, int cut_short) {
  wt_app *a = ss->a;
  int rv;
  if (!ss->ready || ss->closing || ss->ended) {
    return;
  }
  ss->closing = 1;
  ss->cut_short = cut_short;
  wt_debug(a, "s%d: closing the session (code %" PRIu32 ")", ss->idx,
           a->o.close_code);
  rv = h3wt_session_close(ss->s, a->o.close_code, a->o.close_reason);
  if (rv != 0) {
    wt_fail(a, "s%d: h3wt_session_close: %s", ss->idx, h3wt_strerror(rv));
  }
}

/* ---- streams -------------------------------------------------------------- */

static void wt_strm_fail(wt_strm *x, const char *why) {
  wt_sess *ss = x->ss;
  if (x->done) {
    return;
  }
  x->done = 1;
  if (x->kind == K_BIDI) {
    ++ss->st_failed;
    wt_fail(ss->a, "s%d: bidi stream %" PRIu64 " (id %" PRId64 ") failed: %s",
            ss->idx, x->index, x->st ? h3wt_stream_id(x->st) : -1, why);
  } else if (x->kind == K_UNI_OUT || x->kind == K_UNI_IN) {
    if (x->index < ss->a->o.uni && ss->uni_state[x->index] == U_PENDING) {
      ss->uni_state[x->index] = U_FAILED;
      ++ss->uni_failed;
    }
    wt_fail(ss->a, "s%d: uni stream %" PRIu64 " (id %" PRId64 ") failed: %s",
            ss->idx, x->index, x->st ? h3wt_stream_id(x->st) : -1, why);
  } else if (x->kind == K_RESET) {
    ss->reset_done = 1;
    wt_fail(ss->a, "s%d: reset stream failed: %s", ss->idx, why);
  }
}

/* Writes what the stream still has to send, until the library pushes back
   (on_stream_writable resumes) or all is out (then FIN). */
static void wt_pump(wt_strm *x) {
  wt_app *a = x->ss->a;
  while (x->tx < x->len) {
    size_t n = x->len - x->tx < WT_CHUNK ? (size_t)(x->len - x->tx) : WT_CHUNK;
    size_t o = 0;
    if (x->kind == K_UNI_OUT) {
      while (x->tx + o < WT_UNI_TAG && o < n) { /* the tag first */
        a->buf[o] = x->tag[x->tx + o];
        ++o;
      }
      wt_pat_fill(x->seed, x->tx + o - WT_UNI_TAG, a->buf + o, n - o);
    } else {
      wt_pat_fill(x->seed, x->tx, a->buf, n);
    }
    int rv = h3wt_stream_write(x->st, a->buf, n);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      return;
    }
    if (rv != 0) {
      char why[128];
      snprintf(why, sizeof(why), "write at %" PRIu64 ": %s", x->tx,
               h3wt_strerror(rv));
      wt_strm_fail(x, why);
      return;
    }
    x->tx += n;
  }
  if (!x->fin_sent) {
    int rv = h3wt_stream_finish(x->st);
    if (rv != 0) {
      char why[128];
      snprintf(why, sizeof(why), "finish: %s", h3wt_strerror(rv));
      wt_strm_fail(x, why);
      return;
    }
    x->fin_sent = 1;
  }
}

static wt_strm *wt_strm_new(wt_sess *ss, h3wt_stream *st, int kind) {
  wt_strm *x = calloc(1, sizeof(*x));
  if (!x) {
    wt_fail(ss->a, "out of memory");
    return NULL;
  }
  x->ss = ss;
  x->st = st;
  x->kind = kind;
  h3wt_stream_set_data(st, x);
  return x;
}

/* Opens what is still to open; stops at WOULDBLOCK (no stream credit: tried
   again on the next tick). */
static void wt_open_more(wt_sess *ss) {
  wt_app *a = ss->a;
  h3wt_stream *st;
  int rv;
  if (!ss->ready || ss->closing || ss->ended || ss->fatal) {
    return;
  }
  while (ss->st_opened < a->o.streams) {
    rv = h3wt_session_open_stream(ss->s, 1, &st);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      return;
    }
    if (rv != 0) {
      wt_fail(a, "s%d: cannot open a bidi stream: %s", ss->idx,
              h3wt_strerror(rv));
      ++ss->st_failed;
      ++ss->st_opened;
      continue;
    }
    wt_strm *x = wt_strm_new(ss, st, K_BIDI);
    if (!x) {
      h3wt_stream_reset(st, 1);
      ++ss->st_failed;
      ++ss->st_opened;
      continue;
    }
    x->index = ss->st_opened++;
    x->seed = wt_seed_bidi(ss, x->index);
    x->len = a->o.stream_bytes;
    if (!ss->st_first_ns) {
      ss->st_first_ns = uv_hrtime();
    }
    wt_pump(x);
  }
  while (ss->uni_opened < a->o.uni) {
    rv = h3wt_session_open_stream(ss->s, 0, &st);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      return;
    }
    uint64_t k = ss->uni_opened++;
    wt_strm *x = rv == 0 ? wt_strm_new(ss, st, K_UNI_OUT) : NULL;
    if (!x) {
      if (rv == 0) {
        h3wt_stream_reset(st, 1);
      } else {
        wt_fail(a, "s%d: cannot open a uni stream: %s", ss->idx,
                h3wt_strerror(rv));
      }
      ss->uni_state[k] = U_FAILED;
      ++ss->uni_failed;
      continue;
    }
    x->index = k;
    x->seed = wt_seed_uni(ss, k);
    x->len = WT_UNI_TAG + a->o.stream_bytes;
    memcpy(x->tag, wt_uni_magic, 8);
    put32(x->tag + 8, (uint32_t)ss->idx);
    put32(x->tag + 12, (uint32_t)k);
    wt_pump(x);
  }
  if (a->o.reset && !ss->reset_opened) {
    rv = h3wt_session_open_stream(ss->s, 1, &st);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      return;
    }
    ss->reset_opened = 1;
    wt_strm *x = rv == 0 ? wt_strm_new(ss, st, K_RESET) : NULL;
    if (!x) {
      wt_fail(a, "s%d: cannot open the stream to reset: %s", ss->idx,
              h3wt_strerror(rv));
      ss->reset_done = 1;
      return;
    }
    rv = h3wt_stream_write(st, "reset me\n", 9);
    if (rv == 0) {
      rv = h3wt_stream_reset(st, a->o.reset_code);
    }
    if (rv != 0) {
      char why[128];
      snprintf(why, sizeof(why), "write/reset: %s", h3wt_strerror(rv));
      wt_strm_fail(x, why);
    }
    wt_debug(a, "s%d: stream %" PRId64 " reset with code 0x%" PRIx32,
             ss->idx, h3wt_stream_id(st), a->o.reset_code);
  }
}

/* Data on one of our bidi streams: the echo, checked against the pattern. */
static void wt_bidi_data(wt_strm *x, const uint8_t *data, size_t len,
                         int fin) {
  wt_sess *ss = x->ss;
  if (x->done) {
    return;
  }
  if (len) {
    if (x->rx + len > x->len) {
      x->bad = 1;
      x->bad_off = x->len;
    } else if (!x->bad) {
      size_t i = wt_pat_check(x->seed, x->rx, data, len);
      if (i < len) {
        uint8_t want;
        wt_pat_fill(x->seed, x->rx + i, &want, 1);
        x->bad = 1;
        x->bad_off = x->rx + i;
        x->bad_got = data[i];
        x->bad_want = want;
      }
    }
    x->rx += len;
    ss->st_bytes += len;
  }
  if (fin) {
    char why[160];
    x->got_fin = 1;
    if (x->bad && x->bad_off >= x->len) {
      snprintf(why, sizeof(why), "echo longer than the %" PRIu64 " bytes sent",
               x->len);
      wt_strm_fail(x, why);
    } else if (x->bad) {
      snprintf(why, sizeof(why),
               "echo differs at byte %" PRIu64 " (got 0x%02x, want 0x%02x)",
               x->bad_off, x->bad_got, x->bad_want);
      wt_strm_fail(x, why);
    } else if (x->rx != x->len) {
      snprintf(why, sizeof(why),
               "echo ended after %" PRIu64 " of %" PRIu64 " bytes", x->rx,
               x->len);
      wt_strm_fail(x, why);
    } else {
      x->done = 1;
      ++ss->st_ok;
      ss->st_last_ns = uv_hrtime();
    }
    wt_sess_check(ss);
  }
}

/* Complete lines of a server stream to stdout (--read-server-streams). */
static void wt_server_line(wt_strm *x, int force) {
  char esc[2048];
  if (!x->linelen && !force) {
    return;
  }
  wt_escape((const uint8_t *)x->line, x->linelen, esc, sizeof(esc));
  printf("s%d stream %" PRId64 ": %s\n", x->ss->idx, h3wt_stream_id(x->st),
         esc);
  fflush(stdout);
  x->linelen = 0;
}

static void wt_server_data(wt_strm *x, const uint8_t *data, size_t len,
                           int fin) {
  wt_sess *ss = x->ss;
  x->rx += len;
  ss->peer_bytes += len;
  if (ss->a->o.read_secs >= 0 && !ss->read_done) {
    for (size_t i = 0; i < len; ++i) {
      if (data[i] == '\n') {
        wt_server_line(x, 1);
      } else {
        if (x->linelen == sizeof(x->line)) {
          wt_server_line(x, 1);
        }
        x->line[x->linelen++] = (char)data[i];
      }
    }
    if (fin) {
      wt_server_line(x, 0);
      printf("s%d stream %" PRId64 ": end (%" PRIu64 " bytes)\n", ss->idx,
             h3wt_stream_id(x->st), x->rx);
      fflush(stdout);
    }
  }
  if (fin) {
    x->got_fin = 1;
  }
}

/* A server-opened uni stream that carries one of our uni streams back: the
   tag says which, the rest must be the pattern. */
static void wt_uni_in_data(wt_strm *x, const uint8_t *data, size_t len,
                           int fin) {
  wt_sess *ss = x->ss;
  wt_app *a = ss->a;
  if (x->done) {
    return;
  }
  if (len) {
    uint64_t off = x->rx - WT_UNI_TAG; /* payload offset */
    if (x->rx + len > x->len) {
      x->bad = 1;
      x->bad_off = x->len;
    } else if (!x->bad) {
      size_t i = wt_pat_check(x->seed, off, data, len);
      if (i < len) {
        uint8_t want;
        wt_pat_fill(x->seed, off + i, &want, 1);
        x->bad = 1;
        x->bad_off = x->rx + i;
        x->bad_got = data[i];
        x->bad_want = want;
      }
    }
    x->rx += len;
  }
  if (fin) {
    char why[160];
    x->got_fin = 1;
    if (x->bad) {
      snprintf(why, sizeof(why),
               "answer differs at byte %" PRIu64 " (got 0x%02x, want 0x%02x)",
               x->bad_off, x->bad_got, x->bad_want);
      wt_strm_fail(x, why);
    } else if (x->rx != x->len) {
      snprintf(why, sizeof(why),
               "answer ended after %" PRIu64 " of %" PRIu64 " bytes", x->rx,
               x->len);
      wt_strm_fail(x, why);
    } else {
      x->done = 1;
      ss->uni_state[x->index] = U_OK;
      ++ss->uni_ok;
      wt_debug(a, "s%d: uni stream %" PRIu64 " answered on stream %" PRId64,
               ss->idx, x->index, h3wt_stream_id(x->st));
    }
    wt_sess_check(ss);
  }
}

/* The first bytes of a server-opened stream decide what it is. */
static void wt_peer_data(wt_strm *x, const uint8_t *data, size_t len,
                         int fin) {
  wt_sess *ss = x->ss;
  wt_app *a = ss->a;
  while (x->kind == K_PEER && len > 0) {
    size_t take = WT_UNI_TAG - x->taglen;
    if (take > len) {
      take = len;
    }
    memcpy(x->tag + x->taglen, data, take);
    x->taglen += take;
    data += take;
    len -= take;
    size_t cmp = x->taglen < 8 ? x->taglen : 8;
    if (memcmp(x->tag, wt_uni_magic, cmp) != 0 || a->o.uni == 0 ||
        h3wt_stream_is_bidi(x->st)) {
      x->kind = K_SERVER;
    } else if (x->taglen == WT_UNI_TAG) {
      uint32_t si = get32(x->tag + 8), k = get32(x->tag + 12);
      x->kind = K_UNI_IN;
      x->rx = WT_UNI_TAG;
      if (si != (uint32_t)ss->idx || k >= a->o.uni ||
          ss->uni_state[k] != U_PENDING) {
        char why[128];
        x->index = a->o.uni; /* matches nothing */
        snprintf(why, sizeof(why),
                 "server stream %" PRId64 " answers session %" PRIu32
                 " stream %" PRIu32 " (unknown or answered twice)",
                 h3wt_stream_id(x->st), si, k);
        wt_strm_fail(x, why);
        return;
      }
      x->index = k;
      x->seed = wt_seed_uni(ss, k);
      x->len = WT_UNI_TAG + a->o.stream_bytes;
    }
  }
  if (x->kind == K_SERVER) {
    uint8_t tag[WT_UNI_TAG];
    size_t n = x->taglen;
    memcpy(tag, x->tag, n);
    x->taglen = 0;
    if (n) {
      wt_server_data(x, tag, n, fin && len == 0);
    }
    if (len || (fin && !n)) {
      wt_server_data(x, data, len, fin);
    }
  } else if (x->kind == K_UNI_IN) {
    wt_uni_in_data(x, data, len, fin);
  } else if (fin) {
    /* Ended inside the tag. */
    x->kind = K_SERVER;
    wt_peer_data(x, NULL, 0, fin);
  }
}

/* ---- session callbacks ------------------------------------------------------- */

static void wt_on_ready(h3wt_session *s, void *rd) {
  wt_sess *ss = rd;
  wt_app *a = ss->a;
  ss->ready = 1;
  ss->status = h3wt_session_status(s);
  ss->ready_ms = uv_now(a->loop);
  ss->max_dgram = ss->max_seen = h3wt_session_max_datagram(s);
  wt_debug(a, "s%d: session ready (id %" PRId64 ", status %d, max datagram %zu)",
           ss->idx, h3wt_session_id(s), ss->status, ss->max_dgram);
  if (a->o.datagrams) {
    ss->dsize = a->o.dgram_max ? ss->max_dgram : a->o.dgram_size;
    if (ss->dsize > ss->max_dgram || ss->dsize < WT_DG_HDR) {
      wt_fail(a,
              "s%d: datagram size %zu does not fit: this session takes %zu "
              "to %zu bytes (--dgram-size)",
              ss->idx, ss->dsize, (size_t)WT_DG_HDR, ss->max_dgram);
      ss->fatal = 1;
      wt_sess_close(ss, 1);
      return;
    }
    ss->d_start_ms = uv_now(a->loop);
  }
  wt_open_more(ss);
  wt_sess_check(ss);
}

static void wt_on_stream_open(h3wt_stream *st, void *rd) {
  wt_sess *ss = rd;
  wt_strm *x = wt_strm_new(ss, st, K_PEER);
  ++ss->peer_streams;
  wt_debug(ss->a, "s%d: server opened %s stream %" PRId64, ss->idx,
           h3wt_stream_is_bidi(st) ? "bidi" : "uni", h3wt_stream_id(st));
  if (!x) {
    h3wt_stream_stop_sending(st, 1);
  }
}

static void wt_on_stream_data(h3wt_stream *st, const uint8_t *data,
                              size_t len, int fin, void *rd) {
  wt_strm *x = h3wt_stream_get_data(st);
  (void)rd;
  if (!x) {
    return;
  }
  switch (x->kind) {
  case K_BIDI:
    wt_bidi_data(x, data, len, fin);
    break;
  case K_PEER:
  case K_UNI_IN:
  case K_SERVER:
    wt_peer_data(x, data, len, fin);
    break;
  default: /* K_RESET's echo, if it came before the reset */
    break;
  }
}

static void wt_on_stream_reset(h3wt_stream *st, uint32_t code, int has,
                               void *rd) {
  wt_strm *x = h3wt_stream_get_data(st);
  wt_sess *ss = rd;
  char why[128];
  if (!x) {
    return;
  }
  if (x->kind == K_RESET) {
    ss->reset_done = 1;
    ss->reset_has = has;
    ss->reset_back = code;
    x->done = 1;
    wt_debug(ss->a, "s%d: reset came back: code 0x%" PRIx32 "%s", ss->idx,
             code, has ? "" : " (not a WT code)");
    wt_sess_check(ss);
    return;
  }
  if (has) {
    snprintf(why, sizeof(why), "reset by the server with code 0x%" PRIx32,
             code);
  } else {
    snprintf(why, sizeof(why), "reset by the server (not a WT code)");
  }
  if (x->kind == K_SERVER || x->kind == K_PEER) {
    wt_debug(ss->a, "s%d: server stream %" PRId64 ": %s", ss->idx,
             h3wt_stream_id(st), why);
    return;
  }
  wt_strm_fail(x, why);
  wt_sess_check(ss);
}

static void wt_on_stream_stop_sending(h3wt_stream *st, uint32_t code,
                                      int has, void *rd) {
  wt_strm *x = h3wt_stream_get_data(st);
  char why[128];
  (void)rd;
  if (!x || x->kind == K_RESET) {
    return;
  }
  if (x->kind == K_UNI_OUT && x->fin_sent) {
    return; /* all was sent: the answer decides */
  }
  snprintf(why, sizeof(why), "STOP_SENDING from the server (code 0x%" PRIx32
           "%s)", code, has ? "" : ", not a WT code");
  wt_strm_fail(x, why);
  wt_sess_check(x->ss);
}

static void wt_on_stream_writable(h3wt_stream *st, void *rd) {
  wt_strm *x = h3wt_stream_get_data(st);
  (void)rd;
  if (x && !x->done && (x->kind == K_BIDI || x->kind == K_UNI_OUT)) {
    wt_pump(x);
  }
}

static void wt_on_stream_close(h3wt_stream *st, void *rd) {
  wt_strm *x = h3wt_stream_get_data(st);
  wt_sess *ss = rd;
  if (!x) {
    return;
  }
  h3wt_stream_set_data(st, NULL);
  if (!x->done) {
    if (ss->closing || ss->ended) {
      /* Cut short by the session's end. */
      if (x->kind == K_BIDI) {
        ++ss->st_cut;
      }
      x->done = 1;
    } else if (x->kind == K_BIDI || x->kind == K_UNI_IN ||
               x->kind == K_RESET) {
      wt_strm_fail(x, x->kind == K_RESET ? "closed without a reset back"
                                         : "closed before the end of the echo");
    } else if (x->kind == K_UNI_OUT && (!x->fin_sent || x->tx < x->len)) {
      wt_strm_fail(x, "closed before all was sent");
    } else if (x->kind == K_SERVER && !x->got_fin) {
      wt_server_line(x, 0);
    }
  }
  free(x);
  wt_open_more(ss); /* stream credit may have come back */
  wt_sess_check(ss);
}

static void wt_on_datagram(h3wt_session *s, const uint8_t *d, size_t len,
                           void *rd) {
  wt_sess *ss = rd;
  wt_app *a = ss->a;
  (void)s;
  if (len >= WT_DG_HDR && memcmp(d, wt_dg_magic, 4) == 0 && a->o.datagrams) {
    uint32_t si = get32(d + 4);
    uint64_t seq = get64(d + 8), sent_ns = get64(d + 16);
    if (si != (uint32_t)ss->idx || seq >= ss->d_sent || len != ss->dlen[seq] ||
        sent_ns != ss->dsent_ns[seq] ||
        wt_pat_check(wt_seed_dg(ss, seq), 0, d + WT_DG_HDR,
                     len - WT_DG_HDR) != len - WT_DG_HDR) {
      if (ss->d_bad++ == 0) {
        wt_fail(a,
                "s%d: datagram of %zu bytes is not an echo of ours (session "
                "%" PRIu32 ", seq %" PRIu64 ")",
                ss->idx, len, si, seq);
      }
      return;
    }
    switch (ss->dstate[seq]) {
    case DG_FLIGHT:
      --ss->d_inflight;
      break;
    case DG_LOST: /* late */
      --ss->d_lost;
      break;
    default:
      ++ss->d_dup;
      return;
    }
    ss->dstate[seq] = DG_BACK;
    ++ss->d_back;
    a->rtts[a->nrtts++] = (double)(uv_hrtime() - sent_ns) / 1e6;
    wt_sess_check(ss);
    return;
  }
  ++ss->d_other;
  if (a->o.read_secs >= 0 && !ss->read_done) {
    char esc[4096];
    wt_escape(d, len, esc, sizeof(esc));
    printf("s%d datagram: %s\n", ss->idx, esc);
    fflush(stdout);
  }
}

static const char *wt_err_name(int err) {
  switch (err) {
  case H3WT_SESSION_CLOSED: return "closed";
  case H3WT_SESSION_RESET: return "CONNECT stream reset";
  case H3WT_SESSION_REJECTED: return "rejected";
  case H3WT_SESSION_CONN_LOST: return "connection lost";
  default: return "?";
  }
}

static void wt_on_session_drain(h3wt_session *s, void *rd) {
  wt_sess *ss = rd;
  (void)s;
  printf("session drain: s%d\n", ss->idx);
  fflush(stdout);
}

static void wt_on_session_close(h3wt_session *s, int err, uint32_t code,
                                const char *reason, size_t rl, void *rd) {
  wt_sess *ss = rd;
  wt_app *a = ss->a;
  char esc[sizeof(ss->close_reason)];
  ss->ended = 1;
  ss->close_err = err;
  ss->close_code = code;
  ss->status = h3wt_session_status(s);
  snprintf(ss->close_reason, sizeof(ss->close_reason), "%.*s", (int)rl,
           reason ? reason : "");
  wt_escape((const uint8_t *)ss->close_reason, strlen(ss->close_reason), esc,
            sizeof(esc));
  printf("session closed: err %d code %" PRIu32 " reason '%s'\n", err, code,
         esc);
  fflush(stdout);
  if (err == H3WT_SESSION_REJECTED) {
    wt_fail(a, "s%d: WebTransport session to %s rejected with status %d",
            ss->idx, a->o.path, ss->status);
  } else if (err != H3WT_SESSION_CLOSED) {
    wt_fail(a, "s%d: session ended badly: %s (err %d)", ss->idx,
            wt_err_name(err), err);
  } else if (!ss->closing) {
    wt_fail(a,
            "s%d: the server closed the session (code %" PRIu32
            " reason '%s') before the workload finished",
            ss->idx, code, esc);
  }
  wt_maybe_done(a);
}

static const h3wt_session_handler wt_handler = {
    .on_session_ready = wt_on_ready,
    .on_stream_open = wt_on_stream_open,
    .on_stream_data = wt_on_stream_data,
    .on_stream_reset = wt_on_stream_reset,
    .on_stream_stop_sending = wt_on_stream_stop_sending,
    .on_stream_writable = wt_on_stream_writable,
    .on_stream_close = wt_on_stream_close,
    .on_datagram = wt_on_datagram,
    .on_session_drain = wt_on_session_drain,
    .on_session_close = wt_on_session_close,
};

/* ---- pacing and progress --------------------------------------------------- */

static int wt_dg_done(const wt_sess *ss) {
  return ss->d_sent == ss->a->o.datagrams && ss->d_inflight == 0;
}

static void wt_dg_send(wt_sess *ss) {
  wt_app *a = ss->a;
  uint64_t now = uv_now(a->loop);
  uint64_t due = (uint64_t)((double)(now - ss->d_start_ms) * a->o.rate /
                            1000.0) + 1;
  uint64_t now_ns = uv_hrtime();
  /* Lost: unanswered for WT_DG_LOSS_MS. */
  while (ss->d_oldest < ss->d_sent &&
         (ss->dstate[ss->d_oldest] != DG_FLIGHT ||
          now_ns - ss->dsent_ns[ss->d_oldest] >
              (uint64_t)WT_DG_LOSS_MS * 1000000u)) {
    if (ss->dstate[ss->d_oldest] == DG_FLIGHT) {
      ss->dstate[ss->d_oldest] = DG_LOST;
      --ss->d_inflight;
      ++ss->d_lost;
    }
    ++ss->d_oldest;
  }
  if (due > a->o.datagrams) {
    due = a->o.datagrams;
  }
  while (ss->d_sent < due && ss->d_inflight < a->o.window) {
    uint64_t seq = ss->d_sent;
    size_t max = h3wt_session_max_datagram(ss->s);
    if (max > ss->max_seen) {
      ss->max_seen = max;
    }
    if (a->o.dgram_max && max >= WT_DG_HDR) {
      ss->dsize = max; /* follows the path MTU as it is discovered */
    }
    if (ss->dsize > max) {
      wt_fail(a, "s%d: the maximum datagram payload shrank to %zu (below %zu)",
              ss->idx, max, ss->dsize);
      ss->fatal = 1;
      wt_sess_close(ss, 1);
      return;
    }
    memcpy(a->buf, wt_dg_magic, 4);
    put32(a->buf + 4, (uint32_t)ss->idx);
    put64(a->buf + 8, seq);
    now_ns = uv_hrtime();
    put64(a->buf + 16, now_ns);
    wt_pat_fill(wt_seed_dg(ss, seq), 0, a->buf + WT_DG_HDR,
                ss->dsize - WT_DG_HDR);
    int rv = h3wt_session_send_datagram(ss->s, a->buf, ss->dsize);
    if (rv == H3WT_ERR_DGRAM_DROPPED) {
      ++ss->d_blocked; /* the queue is full: this one again later */
      return;
    }
    if (rv != 0) {
      wt_fail(a, "s%d: datagram %" PRIu64 ": %s", ss->idx, seq,
              h3wt_strerror(rv));
      ss->fatal = 1;
      wt_sess_close(ss, 1);
      return;
    }
    ss->dsent_ns[seq] = now_ns;
    ss->dlen[seq] = (uint16_t)ss->dsize;
    ss->dstate[seq] = DG_FLIGHT;
    ++ss->d_sent;
    ++ss->d_inflight;
  }
}

/* Closes the session when all its work is done (and read time is over). */
static void wt_sess_check(wt_sess *ss) {
  wt_app *a = ss->a;
  if (!ss->ready || ss->closing || ss->ended) {
    return;
  }
  if (!wt_dg_done(ss) || ss->st_ok + ss->st_failed < a->o.streams ||
      ss->uni_ok + ss->uni_failed < a->o.uni ||
      (a->o.reset && !ss->reset_done) ||
      (a->o.read_secs >= 0 && !ss->read_done)) {
    return;
  }
  wt_sess_close(ss, 0);
}

static void wt_tick(uv_timer_t *t) {
  wt_app *a = t->data;
  uint64_t now = uv_now(a->loop);
  for (uint64_t i = 0; i < a->o.sessions; ++i) {
    wt_sess *ss = &a->sess[i];
    if (!ss->ready || ss->closing || ss->ended) {
      continue;
    }
    if (a->o.close_after >= 0 &&
        now - ss->ready_ms >= (uint64_t)(a->o.close_after * 1000)) {
      wt_sess_close(ss, 1);
      continue;
    }
    if (a->o.read_secs >= 0 && !ss->read_done &&
        now - ss->ready_ms >= (uint64_t)(a->o.read_secs * 1000)) {
      ss->read_done = 1;
    }
    if (a->o.datagrams) {
      wt_dg_send(ss);
    }
    wt_open_more(ss);
    wt_sess_check(ss);
  }
}

static void wt_status(const wt_app *a, FILE *f) {
  for (uint64_t i = 0; i < a->o.sessions; ++i) {
    const wt_sess *ss = &a->sess[i];
    fprintf(f, "h3wt-client:   s%d: %s", ss->idx,
            ss->ended ? "ended" : ss->closing ? "closing"
                                : ss->ready   ? "ready"
                                              : "not ready");
    if (a->o.datagrams) {
      fprintf(f, "; datagrams %" PRIu64 " sent, %" PRIu64 " back, %" PRIu64
              " in flight",
              ss->d_sent, ss->d_back, ss->d_inflight);
    }
    if (a->o.streams) {
      fprintf(f, "; streams %" PRIu64 " opened, %" PRIu64 " ok, %" PRIu64
              " failed, %" PRIu64 " bytes back",
              ss->st_opened, ss->st_ok, ss->st_failed, ss->st_bytes);
    }
    if (a->o.uni) {
      fprintf(f, "; uni %" PRIu64 " opened, %" PRIu64 " answered",
              ss->uni_opened, ss->uni_ok);
    }
    if (a->o.reset) {
      fprintf(f, "; reset %s", ss->reset_done ? "done" : "pending");
    }
    fprintf(f, "\n");
  }
}

static void wt_on_timeout(uv_timer_t *t) {
  wt_app *a = t->data;
  a->timed_out = 1;
  wt_fail(a, "timed out after %g s; where things stood:", a->o.timeout_s);
  wt_status(a, stderr);
  if (a->closing) {
    /* on_closed never came: nothing more to wait for. */
    fprintf(stderr, "h3wt-client: the connection does not close; giving up\n");
    exit(1);
  }
  wt_close_conn(a);
  uv_timer_start(&a->timeout, wt_on_timeout, 5000, 0);
}

static void wt_on_connected(h3wt_client *c, void *ud) {
  wt_app *a = ud;
  (void)c;
  wt_debug(a, "connected");
}

static int wt_all_ended(const wt_app *a) {
  for (uint64_t i = 0; i < a->o.sessions; ++i) {
    if (!a->sess[i].ended) {
      return 0;
    }
  }
  return 1;
}

static void wt_on_closed(h3wt_client *c, int err, void *ud) {
  wt_app *a = ud;
  (void)c;
  a->closed = 1;
  if (err) {
    a->conn_err = err;
    wt_fail(a, "connection failed: %s", h3wt_strerror(err));
  } else if (!a->closing && !wt_all_ended(a)) {
    /* A clean close after every session ended is the server winding down
       (after a drain, say); before that it cut the workload short. */
    wt_fail(a, "the connection closed unexpectedly");
  }
  uv_close((uv_handle_t *)&a->tick, NULL);
  uv_close((uv_handle_t *)&a->timeout, NULL);
  uv_close((uv_handle_t *)&a->linger, NULL);
}

static int wt_cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static void wt_pct(const double *v, size_t n, double q, char *out,
                   size_t outlen) {
  if (n == 0) {
    snprintf(out, outlen, "n/a");
    return;
  }
  size_t k = (size_t)(q * (double)n + 0.999999); /* nearest rank */
  if (k < 1) {
    k = 1;
  }
  if (k > n) {
    k = n;
  }
  snprintf(out, outlen, "%.3f", v[k - 1]);
}

/* Prints the summary; returns the exit status. */
static int wt_report(wt_app *a) {
  const wt_opts *o = &a->o;
  uint64_t ready = 0, dsent = 0, dback = 0, dlost = 0, dbad = 0, ddup = 0;
  uint64_t sok = 0, sfail = 0, scut = 0, sbytes = 0, uok = 0, ufail = 0;
  uint64_t first = 0, last = 0, want_d = 0, want_s = 0, want_u = 0;
  size_t maxd = 0;
  int bad = a->failed;

  for (uint64_t i = 0; i < o->sessions; ++i) {
    wt_sess *ss = &a->sess[i];
    ready += ss->ready;
    if (ss->ready && (maxd == 0 || ss->max_seen < maxd)) {
      maxd = ss->max_seen;
    }
    dsent += ss->d_sent;
    dback += ss->d_back;
    dbad += ss->d_bad;
    ddup += ss->d_dup;
    sok += ss->st_ok;
    sfail += ss->st_failed;
    scut += ss->st_cut;
    sbytes += ss->st_bytes;
    uok += ss->uni_ok;
    ufail += ss->uni_failed;
    if (ss->st_first_ns && (!first || ss->st_first_ns < first)) {
      first = ss->st_first_ns;
    }
    if (ss->st_last_ns > last) {
      last = ss->st_last_ns;
    }
    if (ss->cut_short) {
      /* Closed on purpose (--close-after) before the work was done: what
         was still in flight is neither lost nor failed. */
      dlost += ss->d_lost;
      want_d += ss->d_back + ss->d_lost;
      want_s += ss->st_ok + ss->st_failed;
      want_u += ss->uni_ok + ss->uni_failed;
    } else {
      dlost += ss->d_lost + ss->d_inflight; /* unanswered at the end */
      want_d += o->datagrams;
      want_s += o->streams;
      want_u += o->uni;
    }
  }
  printf("sessions: %" PRIu64 " ready\n", ready);
  if (ready < o->sessions) {
    fprintf(stderr,
            "h3wt-client: %" PRIu64 " of %" PRIu64
            " sessions never became ready\n",
            o->sessions - ready, o->sessions);
    bad = 1;
  }
  if (o->datagrams) {
    char p50[32], p99[32], p999[32];
    qsort(a->rtts, a->nrtts, sizeof(double), wt_cmp_double);
    wt_pct(a->rtts, a->nrtts, 0.50, p50, sizeof(p50));
    wt_pct(a->rtts, a->nrtts, 0.99, p99, sizeof(p99));
    wt_pct(a->rtts, a->nrtts, 0.999, p999, sizeof(p999));
    printf("datagrams: sent %" PRIu64 ", received %" PRIu64 ", lost %" PRIu64
           ", rtt p50 %s ms, p99 %s ms, p999 %s ms, max payload %zu\n",
           dsent, dback, dlost, p50, p99, p999, maxd);
    if (dback + dlost < want_d) {
      fprintf(stderr,
              "h3wt-client: only %" PRIu64 " of %" PRIu64
              " datagrams were sent and accounted for\n",
              dback + dlost, want_d);
      bad = 1;
    }
    if (dlost > o->max_loss) {
      fprintf(stderr,
              "h3wt-client: %" PRIu64 " datagrams lost (allowed: %" PRIu64
              ", --max-loss)\n",
              dlost, o->max_loss);
      bad = 1;
    }
    if (dbad || ddup) {
      fprintf(stderr,
              "h3wt-client: %" PRIu64 " datagrams came back wrong, %" PRIu64
              " twice\n",
              dbad, ddup);
      bad = 1;
    }
  }
  if (o->streams) {
    printf("streams: %" PRIu64 " ok, %" PRIu64 " failed, bytes %" PRIu64 "\n",
           sok, sfail, sbytes);
    if (scut) {
      printf("streams: %" PRIu64 " cut short by the session close\n", scut);
    }
    if (sok && last > first) {
      double secs = (double)(last - first) / 1e9;
      printf("stream time: %.3f s, %.1f MB/s echoed\n", secs,
             (double)sbytes / 1e6 / secs);
    }
    if (sfail || sok < want_s) {
      fprintf(stderr,
              "h3wt-client: %" PRIu64 " of %" PRIu64
              " streams echoed correctly\n",
              sok, want_s);
      bad = 1;
    }
  }
  if (o->uni) {
    printf("uni: %" PRIu64 " ok, %" PRIu64 " failed\n", uok, ufail);
    if (ufail || uok < want_u) {
      fprintf(stderr,
              "h3wt-client: %" PRIu64 " of %" PRIu64
              " uni streams answered correctly\n",
              uok, want_u);
      bad = 1;
    }
  }
  if (o->reset) {
    for (uint64_t i = 0; i < o->sessions; ++i) {
      wt_sess *ss = &a->sess[i];
      if (!ss->ready) {
        continue;
      }
      if (ss->reset_done && ss->reset_has) {
        printf("reset: sent 0x%" PRIx32 ", received 0x%" PRIx32 "\n",
               o->reset_code, ss->reset_back);
      } else {
        printf("reset: sent 0x%" PRIx32 ", received none\n", o->reset_code);
      }
      if (ss->cut_short && !ss->reset_done) {
        continue;
      }
      if (!ss->reset_done || !ss->reset_has ||
          ss->reset_back != o->reset_code) {
        fprintf(stderr,
                "h3wt-client: s%d: the reset came back %s (sent 0x%" PRIx32
                ")\n",
                ss->idx,
                !ss->reset_done  ? "never"
                : !ss->reset_has ? "without a WebTransport code"
                                 : "with another code",
                o->reset_code);
        bad = 1;
      }
    }
  }
  return bad ? 1 : 0;
}

int wt_run(const wt_opts *o, h3wt_client_settings *s) {
  wt_app *a = calloc(1, sizeof(*a));
  h3wt_client_callbacks cbs = {wt_on_connected, wt_on_closed};
  int rv, code;

  if (!a) {
    fprintf(stderr, "h3wt-client: out of memory\n");
    return 1;
  }
  a->o = *o;
  a->sess = calloc(o->sessions, sizeof(*a->sess));
  a->rtts = calloc(o->sessions * o->datagrams + 1, sizeof(double));
  if (!a->sess || !a->rtts) {
    fprintf(stderr, "h3wt-client: out of memory\n");
    free(a->sess);
    free(a->rtts);
    free(a);
    return 1;
  }
  for (uint64_t i = 0; i < o->sessions; ++i) {
    wt_sess *ss = &a->sess[i];
    ss->a = a;
    ss->idx = (int)i;
    ss->dstate = calloc(o->datagrams + 1, 1);
    ss->dsent_ns = calloc(o->datagrams + 1, sizeof(uint64_t));
    ss->dlen = calloc(o->datagrams + 1, sizeof(uint16_t));
    ss->uni_state = calloc(o->uni + 1, 1);
    if (!ss->dstate || !ss->dsent_ns || !ss->dlen || !ss->uni_state) {
      fprintf(stderr, "h3wt-client: out of memory\n");
      return 1;
    }
  }
  s->host = o->host;
  s->port = o->port;
  a->loop = uv_default_loop();
  rv = h3wt_client_new(&a->client, a->loop, s, &cbs, a);
  if (rv != 0) {
    fprintf(stderr, "h3wt-client: cannot connect to %s: %s\n", o->host,
            h3wt_strerror(rv));
    if (a->client) {
      uv_run(a->loop, UV_RUN_DEFAULT);
      h3wt_client_del(a->client);
    }
    return 1;
  }
  uv_timer_init(a->loop, &a->tick);
  uv_timer_init(a->loop, &a->timeout);
  uv_timer_init(a->loop, &a->linger);
  a->tick.data = a->timeout.data = a->linger.data = a;
  for (uint64_t i = 0; i < o->sessions; ++i) {
    rv = h3wt_client_webtransport(a->client, o->path, o->origin, o->headers,
                                  o->nheaders, &wt_handler, &a->sess[i],
                                  &a->sess[i].s);
    if (rv != 0) {
      wt_fail(a, "cannot open WebTransport session %" PRIu64 ": %s", i,
              h3wt_strerror(rv));
      a->sess[i].ended = 1;
    }
  }
  uv_timer_start(&a->timeout, wt_on_timeout, (uint64_t)(o->timeout_s * 1000),
                 0);
  uv_timer_start(&a->tick, wt_tick, WT_TICK_MS, WT_TICK_MS);
  wt_maybe_done(a); /* every session failed to open */
  uv_run(a->loop, UV_RUN_DEFAULT);
  h3wt_client_del(a->client);
  rv = uv_loop_close(a->loop);
  if (rv != 0) {
    wt_fail(a, "loop not empty at exit: %s", uv_strerror(rv));
  }
  code = wt_report(a);
  for (uint64_t i = 0; i < o->sessions; ++i) {
    free(a->sess[i].dstate);
    free(a->sess[i].dsent_ns);
    free(a->sess[i].dlen);
    free(a->sess[i].uni_state);
  }
  free(a->sess);
  free(a->rtts);
  free(a);
  return code;
}

void wt_opts_default(wt_opts *o) {
  memset(o, 0, sizeof(*o));
  o->rate = 1000;
  o->window = 32;
  o->dgram_size = 64;
  o->stream_bytes = 1000;
  o->sessions = 1;
  o->read_secs = -1;
  o->close_after = -1;
  o->linger_ms = 100;
  o->close_reason = "";
}
