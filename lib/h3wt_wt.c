/*
 * h3wt_wt: WebTransport sessions and streams (see h3wt_wt.h).
 *
 * Session states, one line each:
 *   REQUESTED  CONNECT received (server) or sent (client), no answer yet
 *   READY      accepted: streams and datagrams flow
 *   CLOSED     a close capsule or FIN was sent or received, or the CONNECT
 *              stream ended; the application has been (or is about to be)
 *              told; only the CONNECT stream's last bytes still move
 *
 * Session flow control (draft "Flow Control"), one line per state:
 *   FC_UNDECIDED  the peer's SETTINGS are not read yet: nothing enforced
 *   FC_OFF        one side offered no WT_INITIAL_* setting (every browser
 *                 today): nothing enforced, flow-control capsules ignored
 *   FC_ON         both offered: the peer's limits are respected, ours
 *                 enforced (WT_FLOW_CONTROL_ERROR resets the session)
 * The counters (bytes and streams each way, and the credit we grant) run
 * in every state, so a session whose peer SETTINGS arrive after it began
 * (they may: a CONNECT can overtake them) agrees with its peer once on.
 * Credit goes out as bytes arrive, not as the application reads them:
 * a paused stream holds its QUIC stream window, never the session's.
 */
#include "h3wt_wt.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_quic.h"
#include "h3wt_wt_dgram.h"


enum { S_REQUESTED, S_READY, S_CLOSED };

typedef struct pending {
  int kind; /* H3WT_SUD_PENDING */
  size_t len;
  uint8_t buf[16]; /* signal + session ID: two varints, 16 bytes at most */
} pending;

struct h3wt_stream {
  int kind; /* H3WT_SUD_WT: first, this is ngtcp2's stream user data */
  h3wt_wt_conn *wt;
  h3wt_session *session; /* NULL while waiting for its session */
  int64_t session_id;
  uint64_t orphan_since; /* when it began waiting for its session */
  int64_t id;
  int bidi, local;
  void *user_data;
  h3wt_sendq out;      /* to send (local streams: our header first) */
  h3wt_sendq early;    /* received before the session was ready */
  int early_fin;
  int fin_queued;      /* finish() was called */
  int fin_sent;
  int write_shut;      /* no more writes: reset, or peer's STOP_SENDING */
  int read_done;
  int want_writable;
  int blocked;
  int in_writeq;
  int64_t send_order;  /* higher first (h3wt_stream_set_send_order) */
  int closed;          /* QUIC closed it, or the session went */
  int quic_closed;     /* QUIC's stream is gone (no more callbacks) */
  int deferred;        /* on the deferred list */
  int opened_notified; /* on_stream_open was called */
  size_t hdr_len;      /* local streams: signal + session ID bytes */
  int reset_pending;   /* reset once the header is out */
  uint64_t reset_code;
  size_t last_len;     /* what the last writev handed out */
  int last_fin;
  int frame_pass;      /* writing the body of a frame already admitted */
  int stop_notify;     /* the peer's STOP_SENDING, to tell */
  int stop_notified;
  uint64_t stop_code;  /* its code (H3 space), when known */
  int stop_has_code;
  int reset_by_us;     /* h3wt_stream_reset() was called */
  int paused;          /* h3wt_stream_pause_reading: hold, no credit */
  int resume_queued;   /* on the session's resume list */
  h3wt_sendq held;     /* bytes received while paused */
  int held_fin;
  size_t held_credit;  /* flow-control credit not yet returned */
  int fc_blocked;      /* waits for the peer's WT_MAX_DATA */
  uint64_t rx_bytes;   /* body bytes received (session flow control) */
  size_t rx_hdr_len;   /* peer streams: signal + session ID received */
  int rx_stopped;      /* we stopped reading: later bytes are dropped */
  int rx_final_known;  /* FIN delivered or RESET_STREAM: all counted */
  h3wt_list wnode;                  /* in the write queue */
  h3wt_list node;                   /* session's (or orphan) list */
  h3wt_stream *dnext;               /* deferred list */
  h3wt_stream *rnext;               /* resume list */
};

struct h3wt_session {
  h3wt_wt_conn *wt;
  int64_t id;      /* the CONNECT stream */
  uint64_t uid;    /* h3wt_session_id() */
  int state;
  int status;
  int app_pending; /* answered later: the application holds it */
  int answered;    /* server: accepted or rejected */
  void *facade;    /* the server's request behind it */
  const h3wt_session_handler *handler; /* = &hcopy */
  h3wt_session_handler hcopy;
  void *route_data;
  void *user_data;
  char *path, *authority, *origin;
  h3wt_header *headers;
  size_t nheaders, headers_cap;
  h3wt_sendq capq;
  int capq_fin;
  h3wt_capsule_parser cp;
  uint32_t close_code;
  char *close_reason;
  size_t close_reasonlen;
  int close_err;
  int notified;       /* on_session_close called (or never will be) */
  int stream_gone;    /* the CONNECT stream is closed */
  int deferred;
  uint32_t peer_streams; /* concurrent peer-opened streams */
  uint64_t queued;       /* unacknowledged bytes of all its streams */
  int budget_wait;       /* a stream waits for the session budget */
  int counted;           /* in stats->sessions_current */
  h3wt_list streams;
  h3wt_list node; /* in wt->sessions */
  h3wt_session *dnext;
  char **protocols; /* offered (WT-Available-Protocols) */
  size_t nprotocols;
  char *protocol; /* selected (server) or answered (client) */
  int dgram_drop_oldest;
  uint64_t dgram_max_age_ns;
  size_t dgrams_queued;
  uint64_t liveness_ms;
  int want_streams_bidi, want_streams_uni;
  h3wt_stream *resume; /* streams whose reading resumed */
  h3wt_list rnode;      /* in the registry's list */
  h3wt_session *hnext;  /* the registry's hash chain */
  int registered;
  /* Session flow control: FC_* above.  [1] bidi, [0] uni. */
  int fc;
  uint64_t rx_data, rx_max_data;       /* peer's body bytes; our limit */
  uint64_t rx_unknown; /* at most this many more (stopped streams) */
  uint64_t rx_streams[2], rx_max_streams[2];
  uint64_t tx_data, tx_max_data;       /* ours; the peer's limit */
  uint64_t tx_streams[2], tx_max_streams[2];
  uint64_t data_blocked_at;            /* limit + 1 a WT_DATA_BLOCKED named */
  uint64_t streams_blocked_at[2];      /* the same for WT_STREAMS_BLOCKED */
  int fc_streams_credit;               /* bit b: WT_MAX_STREAMS to send */
};

enum { FC_UNDECIDED, FC_OFF, FC_ON };

struct h3wt_wt_conn {
  h3wt_h3_conn *h3;
  h3wt_wt_limits limits;
  const h3wt_logger *log;
  int server;
  h3wt_list sessions;
  size_t nsessions;
  h3wt_list orphans; /* streams whose session is not ready (yet) */
  size_t norphans;
  h3wt_list wq;      /* streams with something to write, in turn */
  h3wt_stream *writing;           /* returned by the last writev */
  h3wt_wt_dgramq dgrams;          /* to send */
  h3wt_dgramq early_dgrams;       /* received before their session */
  h3wt_stream *dstreams;          /* deferred stream closes */
  h3wt_session *dsessions;        /* deferred session closes */
  h3wt_wt_stats *stats;           /* limits.stats, or own */
  h3wt_wt_registry *reg;          /* limits.registry, or ownreg */
  /* Only when the limits bring none (a server's are shared by all its
     connections: not kept per idle connection). */
  h3wt_wt_stats *own;
  h3wt_wt_registry *ownreg;
  int resume_pending; /* some session has streams to resume */
  int stop_pending;   /* some stream has a STOP_SENDING to tell */
  int fc_pending;     /* some session has WT_MAX_STREAMS to send */
};

#define LOGID(wt) h3wt_quic_conn_name(h3wt_h3_quic((wt)->h3))

#define SESS_OF(n) h3wt_list_entry(n, h3wt_session, node)
#define STREAM_OF(n) h3wt_list_entry(n, h3wt_stream, node)
/* for (each session s of wt): the body may close sessions (they stay
   linked until the deferred pass) but not unlink them. */
#define FOR_SESSIONS(s, wt)                                                    \
  for (h3wt_list *s##_it_ = (wt)->sessions.next;                              \
       s##_it_ != &(wt)->sessions && ((s) = SESS_OF(s##_it_), 1);             \
       s##_it_ = s##_it_->next)
#define FOR_STREAMS(st, head)                                                  \
  for (h3wt_list *st##_it_ = (head)->next;                                    \
       st##_it_ != (head) && ((st) = STREAM_OF(st##_it_), 1);                 \
       st##_it_ = st##_it_->next)

void h3wt_wt_limits_default(h3wt_wt_limits *l) {
  l->max_sessions = 16;
  l->max_streams_per_session = 256;
  l->max_stream_queue = 256 * 1024;
  l->max_session_queue = 1024 * 1024;
  l->max_datagram_queue = 256;
  l->max_orphan_streams = 16;
  l->max_orphan_bytes = 16 * 1024;
  l->orphan_timeout_ns = 1000000000ull;
  l->stats = NULL;
  l->session_max_data = 16 * 1024 * 1024;
}

static h3wt_quic_conn *QC(const h3wt_wt_conn *wt) {
  return h3wt_h3_quic(wt->h3);
}

static int is_bidi(int64_t id) {
  return (id & 0x2) == 0;
}

static int is_local(const h3wt_wt_conn *wt, int64_t id) {
  /* Bit 0: 0 client-initiated, 1 server-initiated (RFC 9000 2.1). */
  return (int)(id & 0x1) == (wt->server ? 1 : 0);
}

/* ---- lifecycle ----------------------------------------------------------- */

int h3wt_wt_conn_new(h3wt_wt_conn **pwt, h3wt_h3_conn *h3,
                     const h3wt_wt_limits *limits, const h3wt_logger *log,
                     int server) {
  h3wt_wt_conn *wt = calloc(1, sizeof(*wt));
  if (!wt) {
    return H3WT_ERR_NOMEM;
  }
  wt->h3 = h3;
  wt->limits = *limits;
  wt->log = log;
  wt->server = server;
  if (!limits->stats) {
    wt->own = calloc(1, sizeof(*wt->own));
  }
  if (!limits->registry) {
    wt->ownreg = calloc(1, sizeof(*wt->ownreg));
  }
  if ((!limits->stats && !wt->own) || (!limits->registry && !wt->ownreg)) {
    free(wt->own);
    free(wt->ownreg);
    free(wt);
    return H3WT_ERR_NOMEM;
  }
  wt->stats = limits->stats ? limits->stats : wt->own;
  wt->reg = limits->registry ? limits->registry : wt->ownreg;
  h3wt_list_init(&wt->sessions);
  h3wt_list_init(&wt->orphans);
  h3wt_list_init(&wt->wq);
  h3wt_wt_dgramq_init(&wt->dgrams, limits->max_datagram_queue,
                      limits->max_datagram_queue * 1500);
  h3wt_dgramq_init(&wt->early_dgrams, 16, 16 * 1500);
  *pwt = wt;
  return 0;
}

static void stream_free(h3wt_stream *st) {
  /* Bytes never acknowledged (a reset, a lost connection) leave the
     session's budget with the stream.  A stream never outlives its
     session (sessions wait for their streams in the deferred pass). */
  if (st->session) {
    assert(st->session->queued >= st->out.unacked);
    st->session->queued -= st->out.unacked;
  }
  assert(!st->in_writeq && !st->resume_queued);
  h3wt_sendq_free(&st->out);
  h3wt_sendq_free(&st->early);
  h3wt_sendq_free(&st->held);
  free(st);
}

static void registry_remove(h3wt_session *s);
static void run_resumes(h3wt_wt_conn *wt);
static void run_fc_credit(h3wt_wt_conn *wt);
static int fc_on(h3wt_session *s);
static void run_stop_notifications(h3wt_wt_conn *wt);
static void stream_data(h3wt_stream *st, const uint8_t *data, size_t len,
                        int fin);

static void session_free(h3wt_session *s) {
  assert(h3wt_list_empty(&s->streams)); /* none outlives its session */
  if (s->counted) {
    --s->wt->stats->sessions_current;
  }
  registry_remove(s);
  h3wt_wt_dgramq_forget(&s->wt->dgrams, s);
  for (size_t i = 0; i < s->nprotocols; ++i) {
    free(s->protocols[i]);
  }
  free(s->protocols);
  free(s->protocol);
  for (size_t i = 0; i < s->nheaders; ++i) {
    free((void *)s->headers[i].name);
  }
  free(s->headers);
  free(s->path);
  free(s->authority);
  free(s->origin);
  free(s->close_reason);
  h3wt_sendq_free(&s->capq);
  h3wt_capsule_parser_free(&s->cp);
  free(s);
}

static void unlink_session(h3wt_session *s) {
  assert(h3wt_list_linked(&s->node));
  h3wt_list_remove(&s->node);
  --s->wt->nsessions;
}

static void unlink_stream(h3wt_stream *st) {
  if (!h3wt_list_linked(&st->node)) {
    return;
  }
  h3wt_list_remove(&st->node);
  if (!st->session) {
    --st->wt->norphans;
  }
}

/* Into its session's list, or the orphans' while it has none. */
static void link_stream(h3wt_stream *st) {
  assert(!h3wt_list_linked(&st->node));
  h3wt_list_insert_head(st->session ? &st->session->streams
                                    : &st->wt->orphans,
                        &st->node);
  if (!st->session) {
    ++st->wt->norphans;
    st->orphan_since = h3wt_now_ns();
  }
}

uint64_t h3wt_wt_orphan_deadline(const h3wt_wt_conn *wt) {
  uint64_t d = UINT64_MAX;
  h3wt_stream *st;
  if (!wt->limits.orphan_timeout_ns) {
    return d;
  }
  FOR_STREAMS(st, &wt->orphans) { /* at most max_orphan_streams */
    if (!st->closed && st->orphan_since + wt->limits.orphan_timeout_ns < d) {
      d = st->orphan_since + wt->limits.orphan_timeout_ns;
    }
  }
  return d;
}

static void wq_remove(h3wt_wt_conn *wt, h3wt_stream *st) {
  if (!st->in_writeq) {
    return;
  }
  h3wt_list_remove(&st->wnode);
  st->in_writeq = 0;
  if (wt->writing == st) {
    wt->writing = NULL;
  }
}

/* Appends st to the write queue unless it is there or cannot write.
   Returns 1 when it was appended. */
static int wq_append(h3wt_wt_conn *wt, h3wt_stream *st) {
  if (st->in_writeq || st->blocked || st->write_shut || st->closed ||
      st->fc_blocked) {
    return 0;
  }
  assert(!st->deferred && st->wt == wt);
  st->in_writeq = 1;
  /* The queue runs from the highest send order to the lowest; a stream
     goes behind those of its own order (round robin among equals).  From
     the tail: most streams share the default order. */
  h3wt_list *at = wt->wq.prev;
  while (at != &wt->wq &&
         h3wt_list_entry(at, h3wt_stream, wnode)->send_order < st->send_order) {
    at = at->prev;
  }
  h3wt_list_insert_after(at, &st->wnode);
  return 1;
}

static void wq_add(h3wt_wt_conn *wt, h3wt_stream *st) {
  if (wq_append(wt, st)) {
    h3wt_h3_want_write(wt->h3);
  }
}

/* Marks a stream finished for us: it leaves every queue now, and its
   on_stream_close runs (and memory goes) in the deferred pass. */
static void stream_defer_close(h3wt_stream *st) {
  h3wt_wt_conn *wt = st->wt;
  if (st->deferred) {
    return;
  }
  st->closed = 1;
  st->deferred = 1;
  wq_remove(wt, st);
  assert(!st->in_writeq && wt->writing != st);
  if (st->session && !st->local && st->session->peer_streams) {
    h3wt_session *s = st->session;
    --s->peer_streams;
    /* A closed stream makes room for another (draft: "endpoints
       repeatedly send new WT_MAX_STREAMS capsules with increasing Maximum
       Streams values as streams are opened"); sent from the deferred
       pass, one capsule for all the streams that closed meanwhile. */
    ++s->rx_max_streams[st->bidi];
    if (s->state == S_READY && fc_on(s)) {
      s->fc_streams_credit |= 1 << st->bidi;
      wt->fc_pending = 1;
    }
  }
  st->dnext = wt->dstreams;
  wt->dstreams = st;
  h3wt_h3_want_write(wt->h3);
}

static void session_defer_close(h3wt_session *s, int err) {
  h3wt_wt_conn *wt = s->wt;
  assert(s->registered || !s->uid);
  if (s->state == S_CLOSED && s->deferred) {
    return;
  }
  int was_ready = s->state == S_READY;
  s->state = S_CLOSED;
  if (!s->close_err) {
    s->close_err = err;
  }
  /* Every stream of a closed session is reset with WT_SESSION_GONE
     (draft: "the endpoint MUST reset ... with WT_SESSION_GONE"). */
  h3wt_stream *st;
  FOR_STREAMS(st, &s->streams) {
    if (!st->closed) {
      h3wt_quic_shutdown_stream(QC(wt), st->id, H3WT_WT_SESSION_GONE);
      stream_defer_close(st);
    }
  }
  if (!s->deferred) {
    s->deferred = 1;
    if (!was_ready && wt->server && !s->app_pending) {
      /* A server session that was never accepted: nothing to tell.  A
         client always hears how its request ended, and so does a server
         application that holds a session it has not answered yet. */
      s->notified = 1;
    }
    s->dnext = wt->dsessions;
    wt->dsessions = s;
  }
  h3wt_h3_want_write(wt->h3);
}

void h3wt_wt_run_deferred(h3wt_wt_conn *wt) {
  if (wt->resume_pending) {
    run_resumes(wt);
  }
  if (wt->fc_pending) {
    run_fc_credit(wt);
  }
  if (wt->stop_pending) {
    run_stop_notifications(wt);
  }
  /* Streams first: their session's on_session_close comes after them. */
  while (wt->dstreams) {
    h3wt_stream *st = wt->dstreams;
    wt->dstreams = st->dnext;
    h3wt_session *s = st->session;
    assert(st->deferred && st->closed);
    if (s && st->stop_notify && !st->stop_notified && st->opened_notified &&
        s->state == S_READY && s->handler->on_stream_stop_sending) {
      /* The peer's STOP_SENDING, learnt as the stream closed: before its
         close, as it happened. */
      uint32_t wc = 0;
      int has = st->stop_has_code && h3wt_wt_code_from_h3(st->stop_code, &wc);
      st->stop_notified = 1;
      s->handler->on_stream_stop_sending(st, wc, has, s->route_data);
    }
    unlink_stream(st);
    if (s && st->opened_notified && s->handler->on_stream_close) {
      s->handler->on_stream_close(st, s->route_data);
    }
    if (!st->quic_closed) {
      /* QUIC still has the stream (reset, not yet acknowledged): its
         later events must not find freed memory. */
      h3wt_quic_set_stream_data(QC(wt), st->id, NULL);
    }
    stream_free(st);
  }
  while (wt->dsessions) {
    h3wt_session *s = wt->dsessions;
    if (!h3wt_list_empty(&s->streams)) {
      /* Streams of this session still closing: wait for them. */
      h3wt_stream *st;
  FOR_STREAMS(st, &s->streams) {
        if (!st->deferred) {
          stream_defer_close(st);
        }
      }
      h3wt_wt_run_deferred(wt);
      continue;
    }
    /* Off the list before the callback: one that closes another session
       puts that one at the head, which a pop after it would skip. */
    wt->dsessions = s->dnext;
    s->dnext = NULL;
    if (!s->notified) {
      s->notified = 1;
      if (s->handler->on_session_close) {
        s->handler->on_session_close(
            s, s->close_err, s->close_code,
            s->close_reason ? s->close_reason : "", s->close_reasonlen,
            s->route_data);
      }
    }
    /* The memory stays while the CONNECT stream still moves bytes
       (h3wt_wt_session_stream_closed puts it back on the list). */
    if (!s->stream_gone) {
      continue;
    }
    unlink_session(s);
    session_free(s);
  }
}

void h3wt_wt_conn_lost(h3wt_wt_conn *wt) {
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    if (s->state != S_CLOSED) {
      session_defer_close(s, H3WT_SESSION_CONN_LOST);
    }
  }
  h3wt_wt_run_deferred(wt);
}

void h3wt_wt_conn_del(h3wt_wt_conn *wt) {
  if (!wt) {
    return;
  }
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    s->stream_gone = 1;
    if (s->state != S_CLOSED) {
      session_defer_close(s, H3WT_SESSION_CONN_LOST);
    } else if (!s->deferred) {
      s->deferred = 1;
      s->dnext = wt->dsessions;
      wt->dsessions = s;
    }
  }
  while (!h3wt_list_empty(&wt->orphans)) {
    h3wt_stream *st = STREAM_OF(wt->orphans.next);
    unlink_stream(st);
    stream_free(st);
  }
  h3wt_wt_run_deferred(wt);
  while (!h3wt_list_empty(&wt->sessions)) {
    h3wt_session *left = SESS_OF(wt->sessions.next);
    unlink_session(left);
    session_free(left);
  }
  h3wt_wt_dgramq_free(&wt->dgrams);
  h3wt_dgramq_free(&wt->early_dgrams);
  assert(wt->nsessions == 0 && wt->norphans == 0);
  if (wt->ownreg) {
    h3wt_wt_registry_free(wt->ownreg);
    free(wt->ownreg);
  }
  free(wt->own);
  free(wt);
}

/* ---- session flow control ------------------------------------------------- */

/* Queues a flow-control capsule on the session's CONNECT stream. */
static void fc_send(h3wt_session *s, uint64_t type, uint64_t v) {
  uint8_t buf[24];
  if (s->state != S_READY || s->capq_fin) {
    return;
  }
  size_t n = h3wt_capsule_varint(buf, type, v);
  if (h3wt_sendq_append(&s->capq, buf, n) != 0) {
    return; /* out of memory: the next grant carries a larger value */
  }
  ++s->wt->stats->fc_capsules_sent;
  h3wt_h3_resume(s->wt->h3, s->id);
  h3wt_h3_want_write(s->wt->h3);
}

static uint64_t min_u64(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

/* Our data limit is kept a window ahead of what arrived: a grant when
   half of it or less is left (as QUIC stacks do for MAX_DATA). */
static void fc_grant_data(h3wt_session *s) {
  uint64_t window = s->wt->limits.session_max_data;
  /* Grants go by the most the peer may have used (what we never learnt
     of stopped streams included, fc_stream_closed), so it never waits on
     credit it spent where we could not see; errors go by what we saw
     (fc_received), so it is never wrongly accused.  Over the limit is
     possible only while flow control was not yet on (nothing was
     enforced then): credit resumes from where the bytes are. */
  uint64_t used = s->rx_data + s->rx_unknown;
  /* "<=": a window of 1 byte must still move. */
  if (used > s->rx_max_data || s->rx_max_data - used <= window / 2) {
    s->rx_max_data = used + window;
    if (s->fc == FC_ON) {
      fc_send(s, H3WT_CAPSULE_MAX_DATA, s->rx_max_data);
    }
  }
}

/* Is flow control on for s?  Decided once the session is established and
   the peer's SETTINGS are known ("Flow control is enabled when both
   endpoints declare their intent to use flow control"). */
static int fc_on(h3wt_session *s) {
  h3wt_peer_fc pf;
  if (s->fc != FC_UNDECIDED) {
    return s->fc == FC_ON;
  }
  if (!s->wt->limits.session_max_data) {
    s->fc = FC_OFF; /* we did not offer it */
    return 0;
  }
  if (s->state != S_READY || !h3wt_h3_peer_fc(s->wt->h3, &pf)) {
    return 0; /* not yet */
  }
  if (!pf.max_data && !pf.max_streams_bidi && !pf.max_streams_uni) {
    s->fc = FC_OFF;
    return 0;
  }
  s->fc = FC_ON;
  s->tx_max_data = pf.max_data;
  s->tx_max_streams[1] = min_u64(pf.max_streams_bidi, H3WT_MAX_STREAMS_LIMIT);
  s->tx_max_streams[0] = min_u64(pf.max_streams_uni, H3WT_MAX_STREAMS_LIMIT);
  H3WT_LOG(s->wt->log, H3WT_LOG_DEBUG, "wt",
           "[%s/%lld] session flow control on: peer grants %llu bytes, "
           "%llu bidi and %llu uni streams",
           LOGID(s->wt), (long long)s->id, (unsigned long long)pf.max_data,
           (unsigned long long)s->tx_max_streams[1],
           (unsigned long long)s->tx_max_streams[0]);
  /* Credit that accrued while undecided goes out now. */
  if (s->rx_max_data > s->wt->limits.session_max_data) {
    fc_send(s, H3WT_CAPSULE_MAX_DATA, s->rx_max_data);
  }
  for (int b = 0; b < 2; ++b) {
    if (s->rx_max_streams[b] > s->wt->limits.max_streams_per_session) {
      s->fc_streams_credit |= 1 << b;
      s->wt->fc_pending = 1;
    }
  }
  return 1;
}

/* "close the WebTransport session with a WT_FLOW_CONTROL_ERROR error
   code": the CONNECT stream is reset with it, the session's streams with
   WT_SESSION_GONE.  Returns 1 (a capsule callback's "stop"). */
static int fc_error(h3wt_session *s, const char *why) {
  H3WT_LOG(s->wt->log, H3WT_LOG_INFO, "wt",
           "[%s/%lld] session flow control: %s: session reset", LOGID(s->wt),
           (long long)s->id, why);
  ++s->wt->stats->fc_errors;
  h3wt_h3_reset_stream(s->wt->h3, s->id, H3WT_WT_FLOW_CONTROL_ERROR);
  session_defer_close(s, H3WT_SESSION_RESET);
  return 1;
}

/* n more body bytes of st arrived (or a reset's final size said so).
   Returns -1 when that closed the session. */
static int fc_received(h3wt_stream *st, uint64_t n) {
  h3wt_session *s = st->session;
  st->rx_bytes += n;
  if (!s || s->state != S_READY) {
    return 0; /* an orphan's bytes count when it is adopted */
  }
  s->rx_data += n;
  /* "If an endpoint receives Stream Body data in excess of this limit, it
     MUST close the WebTransport session with a WT_FLOW_CONTROL_ERROR
     error code." */
  if (fc_on(s) && s->rx_data > s->rx_max_data) {
    fc_error(s, "data over our WT_MAX_DATA");
    return -1;
  }
  fc_grant_data(s);
  return 0;
}

/* QUIC is done with st.  A stream we stopped reading whose final size
   never reached us (its sender's FIN came after our STOP_SENDING, and
   ngtcp2 drops such bytes without a word) may have carried up to our
   stream window more than we saw; its sender counted them, so credit
   must allow for them, or the two sides drift apart by such streams
   until the sender stalls. */
static void fc_stream_closed(h3wt_stream *st) {
  h3wt_session *s = st->session;
  if (!s || s->state != S_READY || !st->rx_stopped || st->rx_final_known ||
      (st->local && !st->bidi)) {
    return;
  }
  st->rx_final_known = 1;
  s->rx_unknown += h3wt_quic_stream_window(QC(s->wt));
  fc_grant_data(s);
}

/* A peer stream joined s (on arrival, or adopted with what it brought).
   Returns -1 when it closed the session. */
static int fc_peer_stream(h3wt_session *s, h3wt_stream *st) {
  ++s->rx_streams[st->bidi];
  s->rx_data += st->rx_bytes;
  /* "If an endpoint receives an incoming stream for a session that would
     exceed the advertised Maximum Streams value, it MUST close the
     WebTransport session with a WT_FLOW_CONTROL_ERROR error code." */
  if (fc_on(s) && s->rx_streams[st->bidi] > s->rx_max_streams[st->bidi]) {
    fc_error(s, st->bidi ? "bidi streams over our WT_MAX_STREAMS"
                         : "uni streams over our WT_MAX_STREAMS");
    return -1;
  }
  if (fc_on(s) && s->rx_data > s->rx_max_data) {
    fc_error(s, "data over our WT_MAX_DATA");
    return -1;
  }
  fc_grant_data(s);
  return 0;
}

/* WT_MAX_STREAMS for the sessions whose peer streams closed. */
static void run_fc_credit(h3wt_wt_conn *wt) {
  h3wt_session *s;
  wt->fc_pending = 0;
  FOR_SESSIONS(s, wt) {
    if (s->fc_streams_credit & 2) {
      fc_send(s, H3WT_CAPSULE_MAX_STREAMS_BIDI, s->rx_max_streams[1]);
    }
    if (s->fc_streams_credit & 1) {
      fc_send(s, H3WT_CAPSULE_MAX_STREAMS_UNI, s->rx_max_streams[0]);
    }
    s->fc_streams_credit = 0;
  }
}

/* The peer raised its data limit: streams held for it write again. */
static void fc_unblock(h3wt_session *s) {
  h3wt_stream *st;
  FOR_STREAMS(st, &s->streams) {
    if (st->fc_blocked) {
      st->fc_blocked = 0;
      if (st->out.unread || (st->fin_queued && !st->fin_sent)) {
        wq_add(s->wt, st);
      }
    }
  }
}

/* A flow-control capsule from the peer.  Returns 0, -1 (malformed) or 1
   (the session was closed). */
static int on_fc_capsule(h3wt_session *s, uint64_t type, const uint8_t *v,
                         size_t len) {
  uint64_t x;
  if (s->state != S_READY) {
    return 0;
  }
  if (type == H3WT_CAPSULE_MAX_STREAM_DATA ||
      type == H3WT_CAPSULE_STREAM_DATA_BLOCKED) {
    /* Not flow-control capsules over HTTP/3 but prohibited ones, so not
       ignored when flow control is off: "Endpoints MUST treat receipt of
       a WT_MAX_STREAM_DATA or a WT_STREAM_DATA_BLOCKED capsule as a
       session error." */
    return fc_error(s, "WT_MAX_STREAM_DATA or WT_STREAM_DATA_BLOCKED");
  }
  if (!fc_on(s)) {
    /* "if flow control is not enabled, an endpoint MUST ignore receipt of
       any flow control capsules" */
    return 0;
  }
  ++s->wt->stats->fc_capsules_received;
  if (h3wt_capsule_varint_value(v, len, &x) != 0) {
    return -1;
  }
  int b = type == H3WT_CAPSULE_MAX_STREAMS_BIDI ||
          type == H3WT_CAPSULE_STREAMS_BLOCKED_BIDI;
  switch (type) {
  case H3WT_CAPSULE_MAX_DATA:
    /* "If an endpoint receives a WT_MAX_DATA capsule with a Maximum Data
       value that does not increase the Maximum Data value previously
       received, it MUST close the WebTransport session" */
    if (x <= s->tx_max_data) {
      return fc_error(s, "WT_MAX_DATA does not increase");
    }
    s->tx_max_data = x;
    fc_unblock(s);
    return 0;
  case H3WT_CAPSULE_MAX_STREAMS_BIDI:
  case H3WT_CAPSULE_MAX_STREAMS_UNI:
    if (x > H3WT_MAX_STREAMS_LIMIT) {
      return fc_error(s, "WT_MAX_STREAMS over 2^60");
    }
    if (x <= s->tx_max_streams[b]) {
      return fc_error(s, "WT_MAX_STREAMS does not increase");
    }
    s->tx_max_streams[b] = x;
    int *want = b ? &s->want_streams_bidi : &s->want_streams_uni;
    if (*want) {
      *want = 0;
      if (s->handler->on_streams_available) {
        s->handler->on_streams_available(s, b, s->route_data);
      }
    }
    return 0;
  case H3WT_CAPSULE_STREAMS_BLOCKED_BIDI:
  case H3WT_CAPSULE_STREAMS_BLOCKED_UNI:
    if (x > H3WT_MAX_STREAMS_LIMIT) {
      return fc_error(s, "WT_STREAMS_BLOCKED over 2^60");
    }
    return 0;
  default:
    /* WT_DATA_BLOCKED: a hint only; credit already goes out as bytes
       arrive. */
    return 0;
  }
}

const h3wt_wt_stats *h3wt_wt_conn_stats(const h3wt_wt_conn *wt) {
  return wt->stats;
}

/* ---- the registry ----------------------------------------------------------- */

static size_t bucket_of(const h3wt_wt_registry *reg, uint64_t id) {
  /* Ids are sequential: a multiplicative hash spreads them. */
  return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 17) & (reg->nbuckets - 1);
}

static int registry_add(h3wt_wt_registry *reg, h3wt_session *s) {
  if (reg->count + 1 > reg->nbuckets) {
    size_t n = reg->nbuckets ? reg->nbuckets * 2 : 64;
    h3wt_session **nb = calloc(n, sizeof(*nb));
    if (!nb) {
      return H3WT_ERR_NOMEM;
    }
    h3wt_session **old = reg->buckets;
    size_t oldn = reg->nbuckets;
    reg->buckets = nb;
    reg->nbuckets = n;
    for (size_t i = 0; i < oldn; ++i) {
      for (h3wt_session *x = old[i], *next; x; x = next) {
        next = x->hnext;
        size_t b = bucket_of(reg, x->uid);
        x->hnext = nb[b];
        nb[b] = x;
      }
    }
    free(old);
  }
  if (!reg->list.next) {
    h3wt_list_init(&reg->list); /* the registry is zeroed memory at first */
  }
  reg->next_id += reg->id_step ? reg->id_step : 1;
  s->uid = reg->next_id;
  size_t b = bucket_of(reg, s->uid);
  s->hnext = reg->buckets[b];
  reg->buckets[b] = s;
  h3wt_list_insert_tail(&reg->list, &s->rnode);
  ++reg->count;
  s->registered = 1;
  return 0;
}

static void registry_remove(h3wt_session *s) {
  h3wt_wt_registry *reg = s->wt->reg;
  if (!s->registered) {
    return;
  }
  s->registered = 0;
  for (h3wt_session **pp = &reg->buckets[bucket_of(reg, s->uid)]; *pp;
       pp = &(*pp)->hnext) {
    if (*pp == s) {
      *pp = s->hnext;
      break;
    }
  }
  h3wt_list_remove(&s->rnode);
  s->hnext = NULL;
  --reg->count;
}

void h3wt_wt_registry_free(h3wt_wt_registry *reg) {
  assert(reg->count == 0);
  free(reg->buckets);
  reg->buckets = NULL;
  reg->nbuckets = 0;
}

h3wt_session *h3wt_wt_registry_find(const h3wt_wt_registry *reg,
                                    uint64_t id) {
  if (!reg->nbuckets) {
    return NULL;
  }
  for (h3wt_session *s = reg->buckets[bucket_of(reg, id)]; s; s = s->hnext) {
    if (s->uid == id) {
      return s->state == S_CLOSED ? NULL : s;
    }
  }
  return NULL;
}

size_t h3wt_wt_registry_foreach(h3wt_wt_registry *reg, const char *path,
                                int (*cb)(h3wt_session *s, void *ud),
                                void *ud) {
  size_t n = 0, plen = path ? strlen(path) : 0;
  /* Sessions leave the list only in the deferred pass, never from inside
     cb, so the next pointer stays valid whatever cb closes. */
  if (!reg->list.next) {
    return 0; /* no session ever */
  }
  for (h3wt_list *it = reg->list.next, *next; it != &reg->list; it = next) {
    h3wt_session *s = h3wt_list_entry(it, h3wt_session, rnode);
    next = it->next;
    if (s->state != S_READY) {
      continue;
    }
    if (path && (strncmp(s->path, path, plen) != 0 ||
                 (s->path[plen] != '\0' && s->path[plen] != '?'))) {
      continue;
    }
    ++n;
    if (cb(s, ud) != 0) {
      break;
    }
  }
  return n;
}

/* ---- sessions ------------------------------------------------------------- */

static h3wt_session *find_session(const h3wt_wt_conn *wt, int64_t id) {
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    if (s->id == id) {
      return s;
    }
  }
  return NULL;
}

size_t h3wt_wt_session_count(const h3wt_wt_conn *wt) {
  return wt->nsessions;
}

void h3wt_wt_drain_all(h3wt_wt_conn *wt) {
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    if (s->state == S_READY) {
      h3wt_session_drain(s);
    }
  }
}

void h3wt_wt_close_all(h3wt_wt_conn *wt, uint32_t code, const char *reason) {
  /* Closing moves nothing in this list (frees are deferred). */
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    if (s->state == S_READY) {
      h3wt_session_close(s, code, reason);
    }
  }
}

int h3wt_wt_session_new(h3wt_wt_conn *wt, int64_t stream_id,
                        const h3wt_session_handler *handler, void *route_data,
                        const char *path, const char *authority,
                        const char *origin, h3wt_session **ps) {
  h3wt_session *s = calloc(1, sizeof(*s));
  if (!s) {
    return H3WT_ERR_NOMEM;
  }
  h3wt_list_init(&s->streams);
  h3wt_list_init(&s->node);
  h3wt_list_init(&s->rnode);
  s->wt = wt;
  s->id = stream_id;
  s->hcopy = *handler;
  s->handler = &s->hcopy;
  s->route_data = route_data;
  s->dgram_drop_oldest = wt->limits.dgram_drop_oldest;
  s->dgram_max_age_ns = wt->limits.dgram_max_age_ms * 1000000ULL;
  /* What our SETTINGS granted every session (h3wt_wt_settings). */
  s->rx_max_data = wt->limits.session_max_data;
  s->rx_max_streams[0] = s->rx_max_streams[1] =
      wt->limits.max_streams_per_session;
  s->path = strdup(path ? path : "");
  s->authority = strdup(authority ? authority : "");
  s->origin = strdup(origin ? origin : "");
  h3wt_sendq_init(&s->capq);
  /* Known capsules are small (a close carries at most 1024 bytes of
     reason); a bigger one is malformed. */
  h3wt_capsule_parser_init(&s->cp, 4 + H3WT_CLOSE_REASON_MAX);
  if (!s->path || !s->authority || !s->origin ||
      registry_add(wt->reg, s) != 0) {
    session_free(s);
    return H3WT_ERR_NOMEM;
  }
  h3wt_list_insert_head(&wt->sessions, &s->node);
  ++wt->nsessions;
  *ps = s;
  return 0;
}

static int add_protocol(const char *p, size_t len, void *ud) {
  h3wt_session *s = ud;
  if (s->nprotocols >= H3WT_MAX_PROTOCOLS) {
    return 0; /* a bounded list: the rest is not offered */
  }
  char **np = realloc(s->protocols, (s->nprotocols + 1) * sizeof(*np));
  if (!np) {
    return -1;
  }
  s->protocols = np;
  np[s->nprotocols] = strndup(p, len);
  if (!np[s->nprotocols]) {
    return -1;
  }
  ++s->nprotocols;
  return 0;
}

static void session_header_seen(h3wt_session *s, const h3wt_header *h) {
  if (h->namelen == 22 &&
      memcmp(h->name, "wt-available-protocols", 22) == 0 &&
      !s->nprotocols) {
    /* A malformed list offers nothing (draft: "MUST be ignored"), and
       what was parsed before the error is dropped with it. */
    if (h3wt_sf_string_list_parse(h->value, h->valuelen, add_protocol, s) !=
        0) {
      for (size_t i = 0; i < s->nprotocols; ++i) {
        free(s->protocols[i]);
      }
      s->nprotocols = 0;
    }
  }
}

int h3wt_wt_session_add_header(h3wt_session *s, const h3wt_header *h) {
  session_header_seen(s, h);
  return h3wt_headers_append(&s->headers, &s->nheaders, &s->headers_cap,
                             h->name, h->namelen, h->value, h->valuelen);
}

void h3wt_wt_session_take_headers(h3wt_session *s, h3wt_header **hs,
                                  size_t *n, size_t *cap) {
  assert(s->nheaders == 0);
  for (size_t i = 0; i < *n; ++i) {
    session_header_seen(s, &(*hs)[i]);
  }
  free(s->headers);
  s->headers = *hs;
  s->nheaders = *n;
  s->headers_cap = *cap;
  *hs = NULL;
  *n = *cap = 0;
}

void h3wt_wt_session_set_pending(h3wt_session *s, int on) {
  s->app_pending = on;
}
int h3wt_wt_session_answered(const h3wt_session *s) {
  return s->answered;
}
void h3wt_wt_session_set_answered(h3wt_session *s) {
  s->answered = 1;
}
void h3wt_wt_session_set_facade(h3wt_session *s, void *facade) {
  s->facade = facade;
}
void *h3wt_wt_session_facade(const h3wt_session *s) {
  return s->facade;
}
int h3wt_wt_session_is_server(const h3wt_session *s) {
  return s->wt->server;
}
int h3wt_wt_session_set_protocol(h3wt_session *s, const char *proto,
                                 size_t len) {
  char *p = strndup(proto, len);
  if (!p) {
    return H3WT_ERR_NOMEM;
  }
  free(s->protocol);
  s->protocol = p;
  return 0;
}
h3wt_wt_conn *h3wt_wt_session_conn(const h3wt_session *s) {
  return s->wt;
}
h3wt_h3_conn *h3wt_wt_h3(const h3wt_wt_conn *wt) {
  return wt->h3;
}

static void stream_deliver_early(h3wt_stream *st);

static void adopt_orphans(h3wt_session *s) {
  h3wt_wt_conn *wt = s->wt;
  for (h3wt_list *it = wt->orphans.next, *next; it != &wt->orphans;
       it = next) {
    h3wt_stream *st = STREAM_OF(it);
    next = it->next;
    if (st->session_id != s->id || st->closed) {
      continue;
    }
    unlink_stream(st);
    st->session = s;
    link_stream(st);
    ++s->peer_streams;
    if (fc_peer_stream(s, st) != 0) {
      break; /* the session is closed, this stream with it */
    }
    st->opened_notified = 1;
    if (s->handler->on_stream_open) {
      s->handler->on_stream_open(st, s->route_data);
    }
    stream_deliver_early(st);
    if (st->quic_closed && !st->closed) {
      stream_defer_close(st); /* it had ended before it was adopted */
    }
  }
}

static void deliver_datagram(h3wt_session *s, const uint8_t *data,
                             size_t len) {
  if (s->handler->on_datagram) {
    s->handler->on_datagram(s, data, len, s->route_data);
  }
}

void h3wt_wt_session_ready(h3wt_session *s) {
  h3wt_wt_conn *wt = s->wt;
  if (s->state != S_REQUESTED) {
    return;
  }
  s->state = S_READY;
  s->counted = 1;
  ++wt->stats->sessions_current;
  ++wt->stats->sessions_total;
  /* The path without its query: query values may carry tokens. */
  H3WT_LOG(wt->log, H3WT_LOG_INFO, "wt", "[%s/%lld] session ready %.*s",
           LOGID(wt), (long long)s->id, (int)strcspn(s->path, "?"), s->path);
  if (s->handler->on_session_ready) {
    s->handler->on_session_ready(s, s->route_data);
  }
  if (s->state != S_READY) {
    return; /* closed from on_session_ready */
  }
  adopt_orphans(s);
  /* Datagrams that overtook the answer. */
  size_t n = wt->early_dgrams.count;
  for (size_t i = 0; i < n && s->state == S_READY; ++i) {
    size_t len;
    const uint8_t *d = h3wt_dgramq_front(&wt->early_dgrams, &len);
    uint64_t qsid;
    size_t k = h3wt_varint_decode(d, len, &qsid);
    if (k && (int64_t)(qsid * 4) == s->id) {
      deliver_datagram(s, d + k, len - k);
      h3wt_dgramq_pop(&wt->early_dgrams);
    } else {
      /* Not ours: keep it, rotating it to the back. */
      uint8_t tmp[1500];
      if (len <= sizeof(tmp)) {
        memcpy(tmp, d, len);
        h3wt_dgramq_pop(&wt->early_dgrams);
        h3wt_dgramq_push(&wt->early_dgrams, NULL, 0, tmp, len);
      } else {
        h3wt_dgramq_pop(&wt->early_dgrams);
      }
    }
  }
}

/* Resets a stream that waited for a session that will not come. */
static void reject_stream(h3wt_stream *st, uint64_t code) {
  ++st->wt->stats->streams_refused_buffered;
  if (!st->quic_closed) {
    h3wt_quic_shutdown_stream(QC(st->wt), st->id, code);
  }
  stream_defer_close(st);
}

void h3wt_wt_expire_orphans(h3wt_wt_conn *wt, uint64_t ts) {
  h3wt_stream *st;
  if (!wt->limits.orphan_timeout_ns) {
    return;
  }
  FOR_STREAMS(st, &wt->orphans) {
    if (!st->closed && !st->session &&
        ts >= st->orphan_since + wt->limits.orphan_timeout_ns) {
      H3WT_LOG(wt->log, H3WT_LOG_INFO, "wt",
               "[%s/%lld] no session %lld after %llu ms: stream refused",
               LOGID(wt), (long long)st->id, (long long)st->session_id,
               (unsigned long long)(wt->limits.orphan_timeout_ns / 1000000));
      reject_stream(st, H3WT_WT_BUFFERED_STREAM_REJECTED); /* counted */
    }
  }
}

void h3wt_wt_session_rejected(h3wt_session *s, int status) {
  h3wt_wt_conn *wt = s->wt;
  h3wt_stream *st;
  FOR_STREAMS(st, &wt->orphans) {
    if (st->session_id == s->id && !st->closed) {
      reject_stream(st, H3WT_WT_BUFFERED_STREAM_REJECTED);
    }
  }
  s->status = status;
  session_defer_close(s, H3WT_SESSION_REJECTED);
  if (!wt->server) {
    /* The client tells its application that the server said no. */
    s->notified = 0;
  }
}

void h3wt_wt_session_discard(h3wt_session *s) {
  s->state = S_CLOSED;
  s->notified = 1;
  s->stream_gone = 1;
  if (!s->deferred) {
    s->deferred = 1;
    s->dnext = s->wt->dsessions;
    s->wt->dsessions = s;
  }
  h3wt_h3_want_write(s->wt->h3);
}

void h3wt_wt_session_set_status(h3wt_session *s, int status) {
  s->status = status;
}

void h3wt_wt_session_set_stream(h3wt_session *s, int64_t stream_id) {
  s->id = stream_id;
}

int64_t h3wt_wt_session_stream(const h3wt_session *s) {
  return s->id;
}

static int on_capsule(uint64_t type, const uint8_t *v, size_t len, void *ud) {
  h3wt_session *s = ud;
  if (h3wt_capsule_is_flow_control(type)) {
    return on_fc_capsule(s, type, v, len);
  }
  if (type == H3WT_CAPSULE_DRAIN_SESSION) {
    if (s->state == S_READY && s->handler->on_session_drain) {
      s->handler->on_session_drain(s, s->route_data);
    }
    return 0;
  }
  /* WT_CLOSE_SESSION: a 32-bit code then a UTF-8 message. */
  if (len < 4) {
    return -1;
  }
  if (s->state == S_CLOSED) {
    return 0;
  }
  s->close_code = ((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) |
                  ((uint32_t)v[2] << 8) | v[3];
  s->close_reason = malloc(len - 4 + 1);
  if (s->close_reason) {
    memcpy(s->close_reason, v + 4, len - 4);
    s->close_reason[len - 4] = '\0';
    s->close_reasonlen = len - 4;
  }
  H3WT_LOG(s->wt->log, H3WT_LOG_INFO, "wt",
           "[%s/%lld] peer closed the session: code %u reason '%.*s'",
           LOGID(s->wt), (long long)s->id, s->close_code,
           (int)(len - 4 > 200 ? 200 : len - 4), (const char *)v + 4);
  /* Answer with our FIN (no capsule of our own). */
  s->capq_fin = 1;
  h3wt_h3_resume(s->wt->h3, s->id);
  session_defer_close(s, H3WT_SESSION_CLOSED);
  return 0;
}

int h3wt_wt_session_recv(h3wt_session *s, const uint8_t *data, size_t len) {
  int rv = h3wt_capsule_parse(&s->cp, data, len, h3wt_capsule_known,
                              on_capsule, s);
  if (rv != 0 && s->state != S_CLOSED) {
    /* A malformed capsule: the draft makes it H3_MESSAGE_ERROR on the
       CONNECT stream, which ends the session. */
    H3WT_LOG(s->wt->log, H3WT_LOG_INFO, "wt",
             "[%s/%lld] malformed capsule: session reset", LOGID(s->wt),
             (long long)s->id);
    h3wt_h3_reset_stream(s->wt->h3, s->id, H3WT_H3_MESSAGE_ERROR);
    session_defer_close(s, H3WT_SESSION_RESET);
  }
  return 0;
}

void h3wt_wt_session_recv_fin(h3wt_session *s) {
  if (s->state == S_CLOSED) {
    return;
  }
  if (!h3wt_capsule_parser_at_boundary(&s->cp)) {
    h3wt_h3_reset_stream(s->wt->h3, s->id, H3WT_H3_MESSAGE_ERROR);
    session_defer_close(s, H3WT_SESSION_RESET);
    return;
  }
  /* A FIN without a close capsule is a close with code 0 and no reason. */
  s->capq_fin = 1;
  h3wt_h3_resume(s->wt->h3, s->id);
  session_defer_close(s, H3WT_SESSION_CLOSED);
}

void h3wt_wt_session_stream_closed(h3wt_session *s, int reset) {
  s->stream_gone = 1;
  if (s->state != S_CLOSED) {
    session_defer_close(s, reset ? H3WT_SESSION_RESET : H3WT_SESSION_CLOSED);
  } else if (!s->deferred) {
    s->deferred = 1;
    s->dnext = s->wt->dsessions;
    s->wt->dsessions = s;
  } else {
    /* Already told; put it back on the list so its memory goes. */
    int listed = 0;
    for (h3wt_session *d = s->wt->dsessions; d; d = d->dnext) {
      listed |= d == s;
    }
    if (!listed) {
      s->dnext = s->wt->dsessions;
      s->wt->dsessions = s;
    }
  }
  h3wt_h3_want_write(s->wt->h3);
}

ssize_t h3wt_wt_session_read_capsules(h3wt_session *s, h3wt_vec *vec,
                                      size_t veccnt, int *eof) {
  size_t n = h3wt_sendq_read(&s->capq, vec, veccnt);
  if (s->capq_fin && s->capq.unread == 0) {
    *eof = 1;
    return (ssize_t)n;
  }
  return n ? (ssize_t)n : H3WT_ERR_WOULDBLOCK;
}

void h3wt_wt_session_capsules_acked(h3wt_session *s, uint64_t n) {
  h3wt_sendq_ack(&s->capq, n);
}

/* ---- the public session API ------------------------------------------------ */

const char *h3wt_session_path(const h3wt_session *s) {
  return s->path;
}
const char *h3wt_session_origin(const h3wt_session *s) {
  return s->origin;
}
const char *h3wt_session_authority(const h3wt_session *s) {
  return s->authority;
}
const char *h3wt_session_header(const h3wt_session *s, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < s->nheaders; ++i) {
    if (s->headers[i].namelen == nl &&
        memcmp(s->headers[i].name, name, nl) == 0) {
      return s->headers[i].value;
    }
  }
  return NULL;
}
const struct sockaddr *h3wt_session_peer(const h3wt_session *s) {
  return h3wt_quic_conn_remote(QC(s->wt));
}
uint64_t h3wt_session_id(const h3wt_session *s) {
  return s->uid;
}
int64_t h3wt_session_stream_id(const h3wt_session *s) {
  return s->id;
}
int h3wt_session_is_open(const h3wt_session *s) {
  return s->state == S_READY;
}
size_t h3wt_session_headers(const h3wt_session *s,
                            const h3wt_header **headers) {
  *headers = s->headers;
  return s->nheaders;
}
size_t h3wt_session_protocols(const h3wt_session *s,
                              const char *const **protocols) {
  *protocols = (const char *const *)s->protocols;
  return s->nprotocols;
}
int h3wt_session_select_protocol(h3wt_session *s, const char *protocol) {
  if (!s->wt->server || s->answered) {
    return H3WT_ERR_INVALID_STATE;
  }
  for (size_t i = 0; protocol && i < s->nprotocols; ++i) {
    if (strcmp(s->protocols[i], protocol) == 0) {
      return h3wt_wt_session_set_protocol(s, protocol, strlen(protocol));
    }
  }
  return H3WT_ERR_NOT_FOUND;
}
const char *h3wt_session_protocol(const h3wt_session *s) {
  return s->protocol;
}

/* What a call on a session that cannot carry traffic returns: closing is
   an ordinary race with the peer, not a caller bug. */
static int not_open(const h3wt_session *s) {
  return s->state == S_CLOSED ? H3WT_ERR_SESSION_CLOSING
                              : H3WT_ERR_INVALID_STATE;
}
void h3wt_session_set_data(h3wt_session *s, void *data) {
  s->user_data = data;
}
void *h3wt_session_get_data(const h3wt_session *s) {
  return s->user_data;
}
int h3wt_session_status(const h3wt_session *s) {
  return s->status;
}

static h3wt_stream *stream_new(h3wt_wt_conn *wt, int64_t id,
                               int64_t session_id) {
  h3wt_stream *st = calloc(1, sizeof(*st));
  if (!st) {
    return NULL;
  }
  h3wt_list_init(&st->node);
  h3wt_list_init(&st->wnode);
  st->kind = H3WT_SUD_WT;
  st->wt = wt;
  st->id = id;
  st->session_id = session_id;
  st->bidi = is_bidi(id);
  st->local = is_local(wt, id);
  h3wt_sendq_init(&st->out);
  h3wt_sendq_init(&st->early);
  return st;
}

int h3wt_session_open_stream(h3wt_session *s, int bidi, h3wt_stream **pst) {
  h3wt_wt_conn *wt = s->wt;
  uint8_t hdr[16], *p = hdr;
  int64_t id;
  int rv;
  if (s->state != S_READY) {
    return not_open(s);
  }
  bidi = bidi != 0;
  if (fc_on(s) && s->tx_streams[bidi] >= s->tx_max_streams[bidi]) {
    /* "An endpoint MUST NOT open more streams than permitted by the
       current stream limit set by its peer."  on_streams_available
       follows its WT_MAX_STREAMS; WT_STREAMS_BLOCKED tells it, once per
       limit. */
    ++wt->stats->fc_streams_blocked;
    if (bidi) {
      s->want_streams_bidi = 1;
    } else {
      s->want_streams_uni = 1;
    }
    if (s->streams_blocked_at[bidi] != s->tx_max_streams[bidi] + 1) {
      s->streams_blocked_at[bidi] = s->tx_max_streams[bidi] + 1;
      fc_send(s,
              bidi ? H3WT_CAPSULE_STREAMS_BLOCKED_BIDI
                   : H3WT_CAPSULE_STREAMS_BLOCKED_UNI,
              s->tx_max_streams[bidi]);
    }
    return H3WT_ERR_WOULDBLOCK;
  }
  h3wt_stream *st = stream_new(wt, 0, s->id);
  if (!st) {
    return H3WT_ERR_NOMEM;
  }
  rv = bidi ? h3wt_quic_open_bidi_stream(QC(wt), &id, st)
            : h3wt_quic_open_uni_stream(QC(wt), &id, st);
  if (rv != 0) {
    stream_free(st);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      /* on_streams_available when the peer grants more. */
      if (bidi) {
        s->want_streams_bidi = 1;
      } else {
        s->want_streams_uni = 1;
      }
    }
    return rv;
  }
  st->id = id;
  st->bidi = bidi;
  st->local = 1;
  st->session = s;
  st->opened_notified = 1;
  /* The stream's first bytes name its kind and session (draft 4.2, 4.3). */
  p = h3wt_varint_encode(p, bidi ? H3WT_WT_STREAM_BIDI : H3WT_WT_STREAM_UNI);
  p = h3wt_varint_encode(p, (uint64_t)s->id);
  st->hdr_len = (size_t)(p - hdr);
  if (h3wt_sendq_append(&st->out, hdr, st->hdr_len) != 0) {
    h3wt_quic_shutdown_stream(QC(wt), id, H3WT_H3_INTERNAL_ERROR);
    h3wt_quic_set_stream_data(QC(wt), id, NULL);
    stream_free(st);
    return H3WT_ERR_NOMEM;
  }
  s->queued += st->hdr_len;
  ++s->tx_streams[bidi];
  if (bidi) {
    ++wt->stats->streams_bidi_local;
  } else {
    ++wt->stats->streams_uni_local;
  }
  link_stream(st);
  wq_add(wt, st);
  *pst = st;
  return 0;
}

static int send_datagram(h3wt_session *s, const uint8_t *head, size_t headlen,
                         h3wt_buf *buf, const void *data, size_t len) {
  h3wt_wt_conn *wt = s->wt;
  uint8_t prefix[H3WT_WT_DGRAM_PREFIX_MAX];
  if (s->state != S_READY) {
    return not_open(s);
  }
  if (headlen > H3WT_WT_DGRAM_PREFIX_MAX - 8) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  if (headlen + len > h3wt_session_max_datagram(s)) {
    ++wt->stats->dgrams_dropped_too_large;
    return H3WT_ERR_TOO_LARGE;
  }
  /* RFC 9297 2.1: the Quarter Stream ID, then the payload (which starts
     with the caller's header, if any). */
  uint8_t *p = h3wt_varint_encode(prefix, (uint64_t)s->id / 4);
  if (headlen) {
    memcpy(p, head, headlen);
    p += headlen;
  }
  uint64_t ts = h3wt_now_ns();
  int rv = h3wt_wt_dgramq_push(&wt->dgrams, s, prefix, (size_t)(p - prefix),
                               buf, data, len, ts);
  if (rv != 0 && s->dgram_drop_oldest && s->dgrams_queued &&
      h3wt_wt_dgramq_drop_oldest(&wt->dgrams, s)) {
    /* Fresh state beats stale state: the session's oldest goes. */
    --s->dgrams_queued;
    ++wt->stats->dgrams_dropped_full;
    ++wt->stats->dgrams_dropped_oldest;
    rv = h3wt_wt_dgramq_push(&wt->dgrams, s, prefix, (size_t)(p - prefix),
                             buf, data, len, ts);
  }
  if (rv == 0) {
    ++s->dgrams_queued;
    h3wt_h3_want_write(wt->h3);
  } else {
    ++wt->stats->dgrams_dropped_full;
  }
  return rv;
}

int h3wt_session_send_datagram(h3wt_session *s, const void *data,
                               size_t len) {
  return send_datagram(s, NULL, 0, NULL, data, len);
}

int h3wt_session_send_datagram_buf(h3wt_session *s, h3wt_buf *buf) {
  return send_datagram(s, NULL, 0, buf, NULL, h3wt_buf_len(buf));
}

int h3wt_wt_send_datagram_head(h3wt_session *s, const uint8_t *head,
                               size_t headlen, h3wt_buf *buf) {
  return send_datagram(s, head, headlen, buf, NULL, h3wt_buf_len(buf));
}

size_t h3wt_session_datagram_queue(const h3wt_session *s) {
  return s->dgrams_queued;
}

int h3wt_session_set_datagram_policy(h3wt_session *s, int drop_oldest,
                                     uint64_t max_age_ms) {
  s->dgram_drop_oldest = drop_oldest != 0;
  s->dgram_max_age_ns = max_age_ms * 1000000ULL;
  return 0;
}

int h3wt_session_set_liveness(h3wt_session *s, uint64_t timeout_ms) {
  if (s->state == S_CLOSED) {
    return H3WT_ERR_SESSION_CLOSING;
  }
  s->liveness_ms = timeout_ms;
  h3wt_h3_want_write(s->wt->h3); /* the owner re-arms its timer */
  return 0;
}

uint64_t h3wt_wt_liveness_ms(const h3wt_wt_conn *wt) {
  uint64_t m = 0;
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    if (s->state == S_READY && s->liveness_ms &&
        (!m || s->liveness_ms < m)) {
      m = s->liveness_ms;
    }
  }
  return m;
}

int h3wt_session_close_connection(h3wt_session *s, uint64_t h3_error_code,
                                  const char *reason) {
  if (s->stream_gone && s->state == S_CLOSED) {
    return H3WT_ERR_SESSION_CLOSING;
  }
  h3wt_h3_request_close(s->wt->h3, h3_error_code, reason);
  return 0;
}

int h3wt_session_get_transport(const h3wt_session *s,
                               h3wt_transport_info *info) {
  if (!info || info->version < 1 ||
      info->version > H3WT_TRANSPORT_INFO_VERSION) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  if (s->stream_gone && s->state == S_CLOSED) {
    return H3WT_ERR_SESSION_CLOSING;
  }
  int version = info->version;
  memset(info, 0, sizeof(*info));
  info->version = version;
  h3wt_quic_transport_info(QC(s->wt), info, h3wt_now_ns());
  info->max_datagram = h3wt_session_max_datagram(s);
  info->datagram_queue = s->dgrams_queued;
  return 0;
}

size_t h3wt_session_max_datagram(const h3wt_session *s) {
  size_t m = h3wt_quic_max_datagram_payload(QC(s->wt));
  size_t q = h3wt_varint_len((uint64_t)s->id / 4);
  return m > q ? m - q : 0;
}

int h3wt_session_close(h3wt_session *s, uint32_t code, const char *reason) {
  uint8_t buf[16 + H3WT_CLOSE_REASON_MAX];
  size_t rl = reason ? strlen(reason) : 0;
  if (s->state != S_READY) {
    return not_open(s);
  }
  size_t n = h3wt_capsule_close_session(buf, code, reason, rl);
  if (h3wt_sendq_append(&s->capq, buf, n) != 0) {
    return H3WT_ERR_NOMEM;
  }
  s->close_code = code;
  /* What went on the wire (the capsule's own length field is a varint
     of 4 + this, not of the whole capsule: the two differ in size for
     reasons of 57 to 59 bytes). */
  s->close_reasonlen = h3wt_close_reason_len(reason ? reason : "", rl);
  s->close_reason = malloc(s->close_reasonlen + 1);
  if (s->close_reason) {
    memcpy(s->close_reason, reason ? reason : "", s->close_reasonlen);
    s->close_reason[s->close_reasonlen] = '\0';
  } else {
    s->close_reasonlen = 0;
  }
  /* The capsule, then FIN; no STOP_SENDING on the CONNECT stream first, or
     browsers lose the code and reason. */
  s->capq_fin = 1;
  h3wt_h3_resume(s->wt->h3, s->id);
  H3WT_LOG(s->wt->log, H3WT_LOG_INFO, "wt",
           "[%s/%lld] closing the session: code %u reason '%s'",
           LOGID(s->wt), (long long)s->id, code, s->close_reason ? s->close_reason : "");
  session_defer_close(s, H3WT_SESSION_CLOSED);
  return 0;
}

int h3wt_session_drain(h3wt_session *s) {
  uint8_t buf[16];
  if (s->state != S_READY) {
    return not_open(s);
  }
  size_t n = h3wt_capsule_empty(buf, H3WT_CAPSULE_DRAIN_SESSION);
  if (h3wt_sendq_append(&s->capq, buf, n) != 0) {
    return H3WT_ERR_NOMEM;
  }
  h3wt_h3_resume(s->wt->h3, s->id);
  h3wt_h3_want_write(s->wt->h3);
  return 0;
}

/* ---- the public stream API ---------------------------------------------------- */

h3wt_session *h3wt_stream_session(const h3wt_stream *st) {
  return st->session;
}
int64_t h3wt_stream_id(const h3wt_stream *st) {
  return st->id;
}
int h3wt_stream_is_bidi(const h3wt_stream *st) {
  return st->bidi;
}
int h3wt_stream_is_local(const h3wt_stream *st) {
  return st->local;
}
void h3wt_stream_set_data(h3wt_stream *st, void *data) {
  st->user_data = data;
}
void *h3wt_stream_get_data(const h3wt_stream *st) {
  return st->user_data;
}

static void unref_buf(void *data, void *ud) {
  (void)data;
  h3wt_buf_unref(ud);
}

static int can_write(const h3wt_stream *st) {
  if (st->session && st->session->state == S_CLOSED) {
    /* The session's close took its streams with it: a race with the
       peer, not a caller bug. */
    return H3WT_ERR_SESSION_CLOSING;
  }
  if (st->closed || st->write_shut || st->fin_queued || st->reset_pending ||
      (!st->bidi && !st->local)) {
    return H3WT_ERR_INVALID_STATE;
  }
  if (!st->session || st->session->state != S_READY) {
    return H3WT_ERR_SESSION_CLOSING;
  }
  return 0;
}

static int session_full(const h3wt_session *s) {
  size_t max = s->wt->limits.max_session_queue;
  return max && s->queued >= max;
}

/* Below half the budget: room enough that waking writers is worth it
   (the same hysteresis as the per-stream limit). */
static int session_roomy(const h3wt_session *s) {
  size_t max = s->wt->limits.max_session_queue;
  return !max || s->queued < max / 2;
}

static int stream_write(h3wt_stream *st, h3wt_buf *buf, const void *data,
                        size_t len) {
  int rv = can_write(st);
  h3wt_session *s = st->session; /* set: can_write checked it */
  if (rv != 0) {
    return rv;
  }
  if (st->frame_pass) {
    /* The rest of a frame whose head was accepted. */
  } else if (st->out.unacked >= st->wt->limits.max_stream_queue) {
    st->want_writable = 1;
    ++st->wt->stats->wouldblock_stream;
    return H3WT_ERR_WOULDBLOCK;
  } else if (session_full(s)) {
    /* The session as a whole holds its budget: this stream waits for acks
       on any of them (the sweep in h3wt_wt_stream_acked). */
    st->want_writable = 1;
    s->budget_wait = 1;
    ++st->wt->stats->wouldblock_session;
    return H3WT_ERR_WOULDBLOCK;
  }
  if (len == 0) {
    return 0;
  }
  if (buf) {
    /* Zero copy: the queue points into the shared buffer and drops its
       reference once the peer acknowledged the bytes. */
    rv = h3wt_sendq_append_owned(&st->out, (void *)h3wt_buf_data(buf), len,
                                 unref_buf, h3wt_buf_ref(buf));
    if (rv != 0) {
      h3wt_buf_unref(buf);
    }
  } else {
    rv = h3wt_sendq_append(&st->out, data, len);
  }
  if (rv == 0) {
    s->queued += len;
    wq_add(st->wt, st);
  }
  return rv;
}

int h3wt_stream_write(h3wt_stream *st, const void *data, size_t len) {
  return stream_write(st, NULL, data, len);
}

int h3wt_wt_stream_write_past_budget(h3wt_stream *st, const uint8_t *data,
                                     size_t len) {
  st->frame_pass = 1;
  int rv = stream_write(st, NULL, data, len);
  st->frame_pass = 0;
  return rv;
}

int h3wt_wt_stream_write_frame(h3wt_stream *st, const uint8_t *head,
                               size_t headlen, h3wt_buf *buf) {
  size_t len = buf ? h3wt_buf_len(buf) : 0;
  if (len == 0) {
    return stream_write(st, NULL, head, headlen);
  }
  /* One budget check for both pieces, and one queue entry: a frame is
     queued whole or not at all, or the reader would see half a frame. */
  h3wt_session *s = st->session;
  int rv = stream_write(st, NULL, NULL, 0);
  if (rv != 0) {
    return rv;
  }
  rv = h3wt_sendq_append_framed(&st->out, head, headlen,
                                (void *)h3wt_buf_data(buf), len, unref_buf,
                                h3wt_buf_ref(buf));
  if (rv != 0) {
    h3wt_buf_unref(buf);
    return rv;
  }
  s->queued += headlen + len;
  wq_add(st->wt, st);
  return 0;
}

int h3wt_stream_write_buf(h3wt_stream *st, h3wt_buf *buf) {
  return stream_write(st, buf, NULL, h3wt_buf_len(buf));
}

int h3wt_stream_set_send_order(h3wt_stream *st, int64_t order) {
  if (st->closed || st->write_shut || (!st->bidi && !st->local)) {
    return H3WT_ERR_INVALID_STATE;
  }
  st->send_order = order;
  if (st->in_writeq && st->wt->writing != st) {
    /* Take its new place now. */
    wq_remove(st->wt, st);
    wq_append(st->wt, st);
  }
  return 0;
}

int64_t h3wt_stream_send_order(const h3wt_stream *st) {
  return st->send_order;
}

int h3wt_stream_finish(h3wt_stream *st) {
  int rv = can_write(st);
  if (rv != 0) {
    return rv;
  }
  st->fin_queued = 1;
  wq_add(st->wt, st);
  return 0;
}

static size_t written_bytes(const h3wt_stream *st) {
  return (size_t)(st->out.total - st->out.unread);
}

int h3wt_stream_reset(h3wt_stream *st, uint32_t code) {
  if (st->closed || st->write_shut || st->reset_pending ||
      (!st->bidi && !st->local)) {
    return H3WT_ERR_INVALID_STATE;
  }
  st->reset_by_us = 1;
  if (written_bytes(st) < st->hdr_len) {
    /* A reset that overtakes the stream's header leaves the peer unable
       to tell which session the stream was for: send the header first
       (the draft's RESET_STREAM_AT exists for this; ngtcp2 1.11 has no
       support for it). */
    st->reset_pending = 1;
    st->reset_code = h3wt_wt_code_to_h3(code);
    wq_add(st->wt, st);
    return 0;
  }
  st->write_shut = 1;
  wq_remove(st->wt, st);
  h3wt_quic_shutdown_stream_write(QC(st->wt), st->id, h3wt_wt_code_to_h3(code));
  h3wt_h3_want_write(st->wt->h3);
  return 0;
}

int h3wt_stream_stop_sending(h3wt_stream *st, uint32_t code) {
  if (st->closed || st->read_done || (!st->bidi && st->local)) {
    return H3WT_ERR_INVALID_STATE;
  }
  st->read_done = 1;
  st->rx_stopped = 1;
  h3wt_quic_shutdown_stream_read(QC(st->wt), st->id,
                                 h3wt_wt_code_to_h3(code));
  h3wt_h3_want_write(st->wt->h3);
  return 0;
}

int h3wt_stream_pause_reading(h3wt_stream *st) {
  if (st->closed || st->read_done || (!st->bidi && st->local)) {
    return H3WT_ERR_INVALID_STATE;
  }
  st->paused = 1;
  return 0;
}

int h3wt_stream_resume_reading(h3wt_stream *st) {
  h3wt_session *s = st->session;
  if (st->closed || (!st->bidi && st->local)) {
    return H3WT_ERR_INVALID_STATE;
  }
  if (!st->paused) {
    return 0;
  }
  st->paused = 0;
  if (s && !st->resume_queued &&
      (st->held.unread || st->held_fin || st->held_credit)) {
    /* Delivered from the deferred pass, not from inside this call: the
       caller may be inside on_stream_data of this very stream. */
    st->resume_queued = 1;
    st->rnext = s->resume;
    s->resume = st;
    st->wt->resume_pending = 1;
    h3wt_h3_want_write(st->wt->h3);
  }
  return 0;
}

/* Delivers what paused streams held, and returns its credit. */
static void run_resumes(h3wt_wt_conn *wt) {
  wt->resume_pending = 0;
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    while (s->resume) {
      h3wt_stream *st = s->resume;
      s->resume = st->rnext;
      st->rnext = NULL;
      st->resume_queued = 0;
      if (st->closed) {
        continue;
      }
      h3wt_vec v[8];
      size_t n, total;
      /* Peek and consume piece by piece: a callback may pause again, and
         what it did not get stays held. */
      while (!st->paused && !st->closed &&
             (n = h3wt_sendq_peek(&st->held, v, 8, &total)) > 0) {
        for (size_t i = 0; i < n && !st->closed && !st->paused; ++i) {
          h3wt_sendq_consume(&st->held, v[i].len);
          int last = st->held.unread == 0;
          stream_data(st, v[i].base, v[i].len, last && st->held_fin);
        }
      }
      if (st->paused) {
        continue; /* paused again from a callback: the rest waits */
      }
      if (st->held_fin && !st->read_done && !st->closed) {
        stream_data(st, NULL, 0, 1);
      }
      h3wt_sendq_free(&st->held);
      h3wt_sendq_init(&st->held);
      if (st->held_credit && !st->quic_closed) {
        h3wt_quic_consume(QC(wt), st->id, st->held_credit);
      }
      st->held_credit = 0;
    }
  }
}

/* ---- receiving ------------------------------------------------------------------ */

static void stream_data(h3wt_stream *st, const uint8_t *data, size_t len,
                        int fin) {
  h3wt_session *s = st->session;
  if (st->read_done) {
    return;
  }
  if (fin) {
    st->read_done = 1;
  }
  if (s && s->state == S_READY && s->handler->on_stream_data) {
    s->handler->on_stream_data(st, data, len, fin, s->route_data);
  }
}

static void stream_deliver_early(h3wt_stream *st) {
  h3wt_vec v[8];
  size_t n;
  while ((n = h3wt_sendq_read(&st->early, v, 8)) > 0 && !st->closed) {
    for (size_t i = 0; i < n; ++i) {
      int last = i == n - 1 && st->early.unread == 0;
      stream_data(st, v[i].base, v[i].len, last && st->early_fin);
    }
  }
  if (st->early_fin && !st->read_done && !st->closed) {
    stream_data(st, NULL, 0, 1);
  }
  h3wt_sendq_free(&st->early);
}

/* A peer stream announced its session: attach it, or park it until the
   session is ready (bounded), or refuse it. */
static int attach_peer_stream(h3wt_wt_conn *wt, int64_t id, uint64_t sid,
                              h3wt_stream **pst, uint64_t *h3err) {
  /* The session ID is the CONNECT stream's: a client-initiated bidi
     stream.  Anything else is H3_ID_ERROR (draft 4.2). */
  if ((sid & 0x3) != 0) {
    *h3err = 0x108; /* H3_ID_ERROR */
    return -1;
  }
  h3wt_session *s = find_session(wt, (int64_t)sid);
  h3wt_stream *st = NULL;
  if (s && s->state == S_CLOSED) {
    h3wt_quic_shutdown_stream(QC(wt), id, H3WT_WT_SESSION_GONE);
    return 0;
  }
  if (s && s->state == S_READY && !fc_on(s) &&
      s->peer_streams >= wt->limits.max_streams_per_session) {
    /* Without session flow control the limit is on concurrent streams,
       and a stream over it is refused alone.  With it, the peer knows
       the limit (WT_MAX_STREAMS) and going over it is a session error
       (fc_peer_stream). */
    H3WT_LOG(wt->log, H3WT_LOG_INFO, "wt",
             "[%s/%lld] session %llu over its stream limit (%u): refused",
             LOGID(wt), (long long)id, (unsigned long long)sid,
             wt->limits.max_streams_per_session);
    ++wt->stats->streams_refused_limit;
    h3wt_quic_shutdown_stream(QC(wt), id, H3WT_WT_FLOW_CONTROL_ERROR);
    return 0;
  }
  if ((!s || s->state != S_READY) &&
      wt->norphans >= wt->limits.max_orphan_streams) {
    /* Too many streams waiting for sessions that are not there. */
    ++wt->stats->streams_refused_buffered;
    h3wt_quic_shutdown_stream(QC(wt), id, H3WT_WT_BUFFERED_STREAM_REJECTED);
    return 0;
  }
  st = stream_new(wt, id, (int64_t)sid);
  if (!st) {
    return -2;
  }
  if (st->bidi) {
    ++wt->stats->streams_bidi_peer;
  } else {
    ++wt->stats->streams_uni_peer;
  }
  h3wt_quic_set_stream_data(QC(wt), id, st);
  if (s && s->state == S_READY) {
    st->session = s;
    ++s->peer_streams;
    link_stream(st);
    if (fc_peer_stream(s, st) != 0) {
      *pst = st; /* closed with its session: its bytes are dropped */
      return 0;
    }
    st->opened_notified = 1;
    if (s->handler->on_stream_open) {
      s->handler->on_stream_open(st, s->route_data);
    }
  } else {
    link_stream(st); /* an orphan until its session is ready */
  }
  *pst = st;
  return 0;
}

int h3wt_wt_recv_stream_data(h3wt_wt_conn *wt, int64_t stream_id,
                             h3wt_sud *sud, const uint8_t *data, size_t len,
                             int fin, uint8_t *prebuf, size_t *prelen,
                             uint64_t *h3err) {
  h3wt_quic_conn *qc = QC(wt);
  *prelen = 0;
  if (sud && sud->kind == H3WT_SUD_H3) {
    return H3WT_WT_PASS;
  }
  if (sud && sud->kind == H3WT_SUD_WT) {
    h3wt_stream *st = (h3wt_stream *)sud;
    st->rx_final_known |= fin;
    if (!st->closed && len && fc_received(st, len) != 0) {
      h3wt_quic_consume(qc, stream_id, len); /* the session is gone */
      return H3WT_WT_TAKEN;
    }
    if (st->session && !st->closed &&
        (st->paused || st->held.unread || st->resume_queued)) {
      /* Paused (or still catching up after a resume): hold the bytes and
         keep their credit, so the peer is stopped by its window. */
      if (len && h3wt_sendq_append(&st->held, data, len) != 0) {
        return -2;
      }
      st->held_fin |= fin;
      st->held_credit += len;
      return H3WT_WT_TAKEN;
    }
    h3wt_quic_consume(qc, stream_id, len);
    if (st->closed) {
      return H3WT_WT_TAKEN;
    }
    if (!st->session) {
      /* Still waiting for its session: buffer, within bounds. */
      if (st->early.unacked + len > wt->limits.max_orphan_bytes) {
        reject_stream(st, H3WT_WT_BUFFERED_STREAM_REJECTED);
        return H3WT_WT_TAKEN;
      }
      if (len && h3wt_sendq_append(&st->early, data, len) != 0) {
        reject_stream(st, H3WT_WT_BUFFERED_STREAM_REJECTED);
        return H3WT_WT_TAKEN;
      }
      st->early_fin |= fin;
      return H3WT_WT_TAKEN;
    }
    stream_data(st, data, len, fin);
    return H3WT_WT_TAKEN;
  }
  if (!sud && is_local(wt, stream_id)) {
    return H3WT_WT_PASS; /* our own request streams (client) */
  }
  /* A peer stream's first bytes: is it WebTransport? */
  pending *pd = (pending *)sud;
  uint8_t scratch[32];
  size_t have = pd ? pd->len : 0;
  size_t take = len < sizeof(scratch) - have ? len : sizeof(scratch) - have;
  if (pd) {
    memcpy(scratch, pd->buf, have);
  }
  memcpy(scratch + have, data, take);
  uint64_t sid;
  size_t hdr = 0;
  int kind = h3wt_stream_header_parse(scratch, have + take,
                                      is_bidi(stream_id), &sid, &hdr);
  if (kind == 0) {
    /* HTTP/3 (a request, a control or QPACK stream): nghttp3's from now
       on, starting with the bytes held back. */
    h3wt_quic_set_stream_data(qc, stream_id, &h3wt_sud_h3);
    if (pd) {
      memcpy(prebuf, pd->buf, pd->len);
      *prelen = pd->len;
      free(pd);
    }
    return H3WT_WT_PASS;
  }
  if (kind < 0) {
    /* Not enough bytes to decide: hold them (16 cover both varints). */
    if (have + len > sizeof(pd->buf)) {
      *h3err = 0x101; /* H3_GENERAL_PROTOCOL_ERROR: cannot happen */
      return -1;
    }
    if (!pd) {
      pd = calloc(1, sizeof(*pd));
      if (!pd) {
        return -2;
      }
      pd->kind = H3WT_SUD_PENDING;
      h3wt_quic_set_stream_data(qc, stream_id, pd);
    }
    memcpy(pd->buf + pd->len, data, len);
    pd->len += len;
    h3wt_quic_consume(qc, stream_id, len);
    if (fin) {
      /* Ended before its header was complete: nothing to attach. */
      h3wt_quic_set_stream_data(qc, stream_id, NULL);
      free(pd);
    }
    return H3WT_WT_TAKEN;
  }
  /* A WebTransport stream of session sid; its payload starts after the
     two varints. */
  size_t skip = hdr - have; /* header bytes inside data */
  h3wt_quic_consume(qc, stream_id, skip);
  free(pd);
  h3wt_quic_set_stream_data(qc, stream_id, NULL);
  h3wt_stream *st = NULL;
  int rv = attach_peer_stream(wt, stream_id, sid, &st, h3err);
  if (rv != 0) {
    return rv;
  }
  if (!st) {
    /* Refused: the bytes that came with the header were counted against
       the connection's window and will never be read; give them back, or
       refusals would shrink it to nothing (ngtcp2 gives back what arrives
       after the STOP_SENDING itself). */
    h3wt_quic_consume_conn(qc, len - skip);
    return H3WT_WT_TAKEN;
  }
  st->rx_hdr_len = hdr; /* not session credit, but part of a final size */
  return h3wt_wt_recv_stream_data(wt, stream_id, (h3wt_sud *)st, data + skip,
                                  len - skip, fin, prebuf, prelen, h3err);
}

/* The session fell below half its budget: wake every stream that waits
   and whose own queue has room.  Only on that crossing, so a busy session
   costs no walk per acknowledgement.  Streams stay linked until the
   deferred pass, so callbacks may close or open streams meanwhile. */
static void session_sweep(h3wt_session *s) {
  s->budget_wait = 0;
  for (h3wt_list *it = s->streams.next;
       it != &s->streams && s->state == S_READY; it = it->next) {
    h3wt_stream *st = STREAM_OF(it);
    if (!st->want_writable || st->closed ||
        st->out.unacked >= s->wt->limits.max_stream_queue / 2) {
      continue;
    }
    if (!session_roomy(s)) {
      s->budget_wait = 1; /* a callback refilled it: the rest wait on */
      break;
    }
    st->want_writable = 0;
    if (s->handler->on_stream_writable) {
      s->handler->on_stream_writable(st, s->route_data);
    }
  }
}

void h3wt_wt_stream_acked(h3wt_wt_conn *wt, h3wt_sud *sud, uint64_t n) {
  if (sud->kind != H3WT_SUD_WT) {
    return;
  }
  h3wt_stream *st = (h3wt_stream *)sud;
  h3wt_session *s = st->session;
  uint64_t before = st->out.unacked;
  h3wt_sendq_ack(&st->out, n);
  if (!s) {
    return;
  }
  assert(s->queued >= before - st->out.unacked);
  s->queued -= before - st->out.unacked;
  if (st->want_writable && !st->closed &&
      st->out.unacked < wt->limits.max_stream_queue / 2) {
    if (session_roomy(s)) {
      st->want_writable = 0;
      if (s->handler->on_stream_writable) {
        s->handler->on_stream_writable(st, s->route_data);
      }
    } else {
      s->budget_wait = 1; /* its own queue has room, the session not yet */
    }
  }
  if (s->budget_wait && session_roomy(s)) {
    session_sweep(s);
  }
}

void h3wt_wt_stream_closed(h3wt_wt_conn *wt, h3wt_sud *sud, uint64_t code) {
  if (sud->kind == H3WT_SUD_PENDING) {
    free(sud);
    return;
  }
  if (sud->kind != H3WT_SUD_WT) {
    return;
  }
  h3wt_stream *st = (h3wt_stream *)sud;
  if (st->session && (st->bidi || st->local) && !st->fin_sent &&
      !st->reset_by_us && !st->stop_notify && code != H3WT_H3_NO_ERROR) {
    /* Our side ended neither by FIN nor by our reset: the peer's
       STOP_SENDING ended it (ngtcp2 answered it; the close carries its
       code unless a RESET_STREAM of the peer's came first). */
    st->stop_notify = 1;
    st->stop_code = code;
    st->stop_has_code = 1;
  }
  fc_stream_closed(st);
  /* QUIC forgets the stream now; so must the write queue. */
  st->quic_closed = 1;
  st->write_shut = 1;
  if (st->held_credit) {
    /* Paused, and it ended (a reset): the held bytes' connection credit
       goes back now (the stream's own no longer matters). */
    h3wt_quic_consume_conn(QC(wt), st->held_credit);
    st->held_credit = 0;
  }
  if (!st->session && !st->closed && st->early_fin && !st->read_done) {
    /* A peer stream that came whole (FIN) before its session: QUIC is
       done with it, but its bytes wait in st->early for the session
       (bounded like every orphan); adopt_orphans delivers and closes. */
    return;
  }
  stream_defer_close(st);
}

void h3wt_wt_stream_reset(h3wt_wt_conn *wt, h3wt_sud *sud, uint64_t code,
                          uint64_t final_size) {
  if (sud->kind != H3WT_SUD_WT) {
    return;
  }
  h3wt_stream *st = (h3wt_stream *)sud;
  uint32_t wc = 0;
  int has = h3wt_wt_code_from_h3(code, &wc);
  st->read_done = 1;
  /* A reset stream used session credit up to its final size, bytes we
     never received included ("implementing WT_MAX_DATA requires that the
     QUIC stack provide the WebTransport implementation with information
     about the final size of streams"). */
  uint64_t seen = st->rx_hdr_len + st->rx_bytes;
  st->rx_final_known = 1;
  if (!st->closed && final_size > seen &&
      fc_received(st, final_size - seen) != 0) {
    return;
  }
  if (st->session && st->session->state == S_READY && !st->closed &&
      st->session->handler->on_stream_reset) {
    st->session->handler->on_stream_reset(st, wc, has,
                                          st->session->route_data);
  }
}

/* ngtcp2's stream_stop_sending callback: *we* stopped reading (our own
   h3wt_stream_stop_sending, or a reset of the whole stream).  Not the
   peer's STOP_SENDING, which ngtcp2 1.11 answers by itself and which we
   learn of in h3wt_wt_shut_wr(). */
void h3wt_wt_stream_stop_sending(h3wt_wt_conn *wt, h3wt_sud *sud,
                                 uint64_t code) {
  if (sud->kind != H3WT_SUD_WT) {
    return;
  }
  ((h3wt_stream *)sud)->read_done = 1;
  ((h3wt_stream *)sud)->rx_stopped = 1;
}

void h3wt_wt_stream_unblocked(h3wt_wt_conn *wt, h3wt_sud *sud) {
  if (sud->kind != H3WT_SUD_WT) {
    return;
  }
  h3wt_stream *st = (h3wt_stream *)sud;
  if (st->blocked) {
    st->blocked = 0;
    if (st->out.unread || (st->fin_queued && !st->fin_sent)) {
      wq_add(wt, st);
    }
  }
}

/* ---- writing -------------------------------------------------------------------- */

int h3wt_wt_has_writable(const h3wt_wt_conn *wt) {
  return !h3wt_list_empty(&wt->wq);
}

/* Cuts vectors to their first max bytes; returns how many remain. */
static size_t vec_cut(h3wt_vec *vec, size_t n, size_t max, size_t *total) {
  size_t k = 0, sum = 0;
  for (; k < n && sum < max; ++k) {
    if (sum + vec[k].len > max) {
      vec[k].len = max - sum;
    }
    sum += vec[k].len;
  }
  *total = sum;
  return k;
}

/* How many of total bytes st may hand to QUIC now under session flow
   control: what is left of its header freely ("The stream header is
   excluded from this limit so that this limit does not prevent the
   sending of information that is essential in linking new streams to a
   specific WebTransport session"), its body within the peer's
   WT_MAX_DATA. */
static size_t fc_allowed(h3wt_stream *st, size_t total) {
  h3wt_session *s = st->session;
  if (!s || !fc_on(s)) {
    return total;
  }
  size_t written = written_bytes(st);
  size_t hdr_left = st->hdr_len > written ? st->hdr_len - written : 0;
  uint64_t credit =
      s->tx_max_data > s->tx_data ? s->tx_max_data - s->tx_data : 0;
  if (total <= hdr_left || total - hdr_left <= credit) {
    return total;
  }
  return hdr_left + (size_t)credit;
}

/* st has body to send and no session credit: it leaves the write queue
   until WT_MAX_DATA rises (fc_unblock), and the peer hears of it once
   per limit (WT_DATA_BLOCKED). */
static void fc_block(h3wt_wt_conn *wt, h3wt_stream *st) {
  h3wt_session *s = st->session;
  wq_remove(wt, st);
  st->fc_blocked = 1;
  ++wt->stats->fc_data_blocked;
  if (s->data_blocked_at != s->tx_max_data + 1) {
    s->data_blocked_at = s->tx_max_data + 1;
    fc_send(s, H3WT_CAPSULE_DATA_BLOCKED, s->tx_max_data);
  }
}

ssize_t h3wt_wt_writev(h3wt_wt_conn *wt, int64_t *pstream_id, int *pfin,
                       h3wt_vec *vec, size_t veccnt) {
  while (!h3wt_list_empty(&wt->wq)) {
    h3wt_stream *st = h3wt_list_entry(wt->wq.next, h3wt_stream, wnode);
    size_t total;
    size_t n = h3wt_sendq_peek(&st->out, vec, veccnt, &total);
    int fin = st->fin_queued && !st->fin_sent && total == st->out.unread;
    if (st->reset_pending) {
      /* Only what is left of the header, then the reset. */
      n = vec_cut(vec, n, st->hdr_len - written_bytes(st), &total);
      fin = 0;
    }
    size_t allowed = fc_allowed(st, total);
    if (allowed < total) {
      if (allowed == 0) {
        fc_block(wt, st);
        continue;
      }
      n = vec_cut(vec, n, allowed, &total);
      fin = 0;
    }
    if (n == 0 && !fin) {
      wq_remove(wt, st);
      continue;
    }
    st->last_len = total;
    st->last_fin = fin;
    wt->writing = st;
    *pstream_id = st->id;
    *pfin = fin;
    return (ssize_t)n;
  }
  *pstream_id = -1;
  *pfin = 0;
  return 0;
}

int h3wt_wt_owns_write(const h3wt_wt_conn *wt, int64_t stream_id) {
  return wt->writing && wt->writing->id == stream_id;
}

void h3wt_wt_written(h3wt_wt_conn *wt, int64_t stream_id, size_t n) {
  h3wt_stream *st = wt->writing;
  if (!st || st->id != stream_id) {
    return;
  }
  if (st->session) {
    /* Body bytes use the peer's session credit; the header does not. */
    size_t before = written_bytes(st);
    size_t hdr = before < st->hdr_len ? st->hdr_len - before : 0;
    st->session->tx_data += n > hdr ? n - hdr : 0;
  }
  h3wt_sendq_consume(&st->out, n);
  if (st->last_fin && n == st->last_len) {
    st->fin_sent = 1;
  }
  if (st->reset_pending && written_bytes(st) >= st->hdr_len) {
    st->reset_pending = 0;
    st->write_shut = 1;
    wq_remove(wt, st);
    h3wt_quic_shutdown_stream_write(QC(wt), st->id, st->reset_code);
    return;
  }
  /* Round robin: a stream with more goes to the back of the queue. */
  wq_remove(wt, st);
  if (st->out.unread || (st->fin_queued && !st->fin_sent)) {
    wq_append(wt, st); /* we are writing already: no want_write */
  }
}

void h3wt_wt_blocked(h3wt_wt_conn *wt, int64_t stream_id) {
  h3wt_stream *st = wt->writing;
  if (st && st->id == stream_id) {
    st->blocked = 1;
    wq_remove(wt, st);
  }
}

void h3wt_wt_shut_wr(h3wt_wt_conn *wt, int64_t stream_id) {
  h3wt_stream *st = wt->writing;
  if (st && st->id == stream_id) {
    /* Writing found our side shut, and we did not shut it: the peer sent
       STOP_SENDING (ngtcp2 answered with RESET_STREAM already).  The
       application hears of it from the deferred pass, not from inside
       this write. */
    st->write_shut = 1;
    wq_remove(wt, st);
    if (st->session && !st->closed && !st->stop_notify) {
      st->stop_notify = 1;
      wt->stop_pending = 1;
      h3wt_h3_want_write(wt->h3);
    }
  }
}

/* Tells the application of the peer's STOP_SENDING (see above); the code
   is not known: ngtcp2 1.11 reports none. */
static void run_stop_notifications(h3wt_wt_conn *wt) {
  wt->stop_pending = 0;
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    h3wt_stream *st;
  FOR_STREAMS(st, &s->streams) {
      if (!st->stop_notify || st->stop_notified) {
        continue;
      }
      st->stop_notified = 1;
      if (s->state == S_READY && !st->closed &&
          s->handler->on_stream_stop_sending) {
        s->handler->on_stream_stop_sending(st, 0, 0, s->route_data);
        if (st->deferred) {
          break; /* the callback closed things: the walk ends here */
        }
      }
    }
  }
}

/* ---- datagrams ---------------------------------------------------------------------- */

void h3wt_wt_recv_datagram(h3wt_wt_conn *wt, const uint8_t *data,
                           size_t len) {
  uint64_t qsid;
  size_t n = h3wt_varint_decode(data, len, &qsid);
  ++wt->stats->dgrams_received;
  if (!n || qsid > (H3WT_VARINT_MAX >> 2)) {
    ++wt->stats->dgrams_received_dropped;
    return; /* RFC 9297 2.1: malformed; dropped */
  }
  h3wt_session *s = find_session(wt, (int64_t)(qsid * 4));
  if (s && s->state == S_READY) {
    deliver_datagram(s, data + n, len - n);
    return;
  }
  if (s && s->state == S_CLOSED) {
    ++wt->stats->dgrams_received_dropped;
    return; /* after the close: dropped, never delivered */
  }
  /* Its session may still be on the way: keep a few (bounded, oldest
     first out when full). */
  if (h3wt_dgramq_push(&wt->early_dgrams, NULL, 0, data, len) != 0) {
    ++wt->stats->dgrams_received_dropped;
    h3wt_dgramq_pop(&wt->early_dgrams);
    h3wt_dgramq_push(&wt->early_dgrams, NULL, 0, data, len);
  }
}

/* Removes the front entry, keeping its session's count. */
static void dgram_pop(h3wt_wt_conn *wt) {
  h3wt_wt_dgram_entry *e = h3wt_wt_dgramq_front(&wt->dgrams);
  if (e && e->owner && e->owner != (void *)wt) {
    h3wt_session *s = e->owner;
    assert(s->dgrams_queued > 0);
    --s->dgrams_queued;
  }
  h3wt_wt_dgramq_pop(&wt->dgrams);
}

size_t h3wt_wt_datagram_front(h3wt_wt_conn *wt, h3wt_vec *vec, uint64_t ts) {
  h3wt_wt_dgram_entry *e;
  size_t max = h3wt_quic_max_datagram_payload(QC(wt));
  while ((e = h3wt_wt_dgramq_front(&wt->dgrams))) {
    h3wt_session *s = e->owner;
    if (e->owner == (void *)wt) {
      if (!h3wt_wt_dgramq_vec(&wt->dgrams, e, vec)) {
        dgram_pop(wt);
        continue;
      }
      return h3wt_wt_dgramq_vec(&wt->dgrams, e, vec); /* a test hook's */
    }
    if (!s || s->state != S_READY) {
      /* Dropped in place (drop-oldest), or its session is gone. */
      dgram_pop(wt);
      continue;
    }
    if (s->dgram_max_age_ns && ts > e->ts + s->dgram_max_age_ns) {
      /* Stale state: sending it late helps nobody. */
      ++wt->stats->dgrams_dropped_expired;
      dgram_pop(wt);
      continue;
    }
    if ((size_t)e->prefixlen + e->len == 0) {
      dgram_pop(wt); /* nothing to send (a test hook's empty datagram) */
      continue;
    }
    if ((size_t)e->prefixlen + e->len > max) {
      /* No longer fits (the path shrank): it would block every later
         one. */
      ++wt->stats->dgrams_dropped_too_large;
      dgram_pop(wt);
      continue;
    }
    return h3wt_wt_dgramq_vec(&wt->dgrams, e, vec);
  }
  return 0;
}

void h3wt_wt_datagram_pop(h3wt_wt_conn *wt) {
  dgram_pop(wt);
  ++wt->stats->dgrams_sent;
}

void h3wt_wt_streams_available(h3wt_wt_conn *wt, int bidi) {
  /* Sessions stay linked until the deferred pass: callbacks may open
     streams or close sessions meanwhile. */
  h3wt_session *s;
  FOR_SESSIONS(s, wt) {
    int *want = bidi ? &s->want_streams_bidi : &s->want_streams_uni;
    if (!*want || s->state != S_READY) {
      continue;
    }
    *want = 0;
    if (s->handler->on_streams_available) {
      s->handler->on_streams_available(s, bidi, s->route_data);
    }
  }
}

/* The public code mapping lives in h3wt_wtproto.c; these are its names in
   the public header. */

/* ---- test hooks ------------------------------------------------------------ */

#ifdef H3WT_TEST_HOOKS /* only in the tests' build of the library */
int h3wt_wt_test_raw_stream(h3wt_wt_conn *wt, int bidi, const void *bytes,
                            size_t len, int fin) {
  int64_t id;
  /* Session ID -2 matches no session: the stream stays ours alone. */
  h3wt_stream *st = stream_new(wt, 0, -2);
  if (!st) {
    return H3WT_ERR_NOMEM;
  }
  int rv = bidi ? h3wt_quic_open_bidi_stream(QC(wt), &id, st)
                : h3wt_quic_open_uni_stream(QC(wt), &id, st);
  if (rv != 0) {
    stream_free(st);
    return rv;
  }
  st->id = id;
  st->bidi = bidi;
  st->local = 1;
  if (len && h3wt_sendq_append(&st->out, bytes, len) != 0) {
    h3wt_quic_shutdown_stream(QC(wt), id, H3WT_H3_INTERNAL_ERROR);
    h3wt_quic_set_stream_data(QC(wt), id, NULL);
    stream_free(st);
    return H3WT_ERR_NOMEM;
  }
  st->fin_queued = fin;
  link_stream(st); /* with the orphans, so the connection frees it */
  wq_add(wt, st);
  return 0;
}

int h3wt_wt_test_raw_capsule(h3wt_session *s, const void *bytes, size_t len) {
  int rv = h3wt_sendq_append(&s->capq, bytes, len);
  if (rv == 0) {
    h3wt_h3_resume(s->wt->h3, s->id);
    h3wt_h3_want_write(s->wt->h3);
  }
  return rv;
}

int h3wt_wt_test_raw_datagram(h3wt_wt_conn *wt, const void *bytes,
                              size_t len) {
  /* Owned by the connection itself: no session's policy applies. */
  int rv = h3wt_wt_dgramq_push(&wt->dgrams, wt, NULL, 0, NULL, bytes, len,
                               h3wt_now_ns());
  if (rv == 0) {
    h3wt_h3_want_write(wt->h3);
  }
  return rv;
}
#endif /* H3WT_TEST_HOOKS */
