/*
 * The callback contract, pair by pair.  h3wt.h promises: "Any h3wt
 * function may be called from inside an h3wt callback.  Objects are freed
 * only after the callback that announced their end returns."  Each case
 * takes one server-side callback (of a request route, of a WebTransport
 * route, or the server close callback) and calls one closing or writing
 * function from inside it, then lets everything finish.
 *
 * A case is a fresh server and one or two clients on a fresh libuv loop,
 * real UDP on 127.0.0.1 and real TLS.  It passes when no sanitizer fires,
 * the loop ends with uv_loop_close() == 0 before the watchdog, the server
 * close callback ran exactly once, the clients saw what the call promises
 * (a connection or session close, a reset, bytes, a datagram), every
 * object announced to a handler got its close callback, and no callback
 * reached a session, stream or request after that close callback.
 *
 * Cases are named "<callback>.<action>", e.g. "on_stream_data.server_close".
 * Run without arguments, every case runs in a child process of its own (a
 * few at a time), so that one sanitizer abort or endless loop fails that
 * case and not the ones after it; the last line is "N passed, M failed".
 *   test_contract --list          the case names
 *   test_contract NAME...         those cases (shell patterns allowed); a
 *                                 single one runs in this process, for a
 *                                 debugger
 *   test_contract -j N            N children at a time (default 2)
 *   test_contract -v              print the output of failed children
 * H3WT_TEST_VERBOSE=1 turns the library's debug log on.
 */
#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "h3wt/h3wt.h"
#include "h3wt_test.h"
#include "loop_cert.h"
#include "h3wt_tls.h"

/* Small queues, so that a few kilobytes are enough to make writes block
   and on_writable / on_stream_writable follow. */
#define CHUNK 1024
#define RESPONSE_QUEUE 4096
#define STREAM_QUEUE 4096
#define MAX_CHUNKS 64

#define STEP_MS 5    /* the driver's tick */
#define SETTLE_MS 20 /* after the action, before tearing down */
/* What a case waits for on the wire arrives in milliseconds on loopback;
   missing it is a failure, found without waiting for the watchdog. */
#define TRIGGER_MS 1500 /* the callback under test runs within this */
/* Clients see what the action promised.  Usually within 200 ms; twice in
   some 2,000 runs a STOP_SENDING to another connection's stream
   (*.stream_stop_sending_other) was not seen within 1.5 s on a loaded
   machine (not reproduced alone): a lost-and-retransmitted packet would
   take a PTO, so the gate allows for one. */
#define GATE_MS 4000
#define WATCHDOG_MS 5000
#define FORCE_MS 2000        /* after the watchdog forced a teardown */
#define CLIENT_GRACE_MS 2000 /* clients hear the close within this */
#define SHUTDOWN_MS 300      /* h3wt_server_shutdown() deadline */
#define ALARM_S 15           /* an endless loop inside one callback */
#define STR_(x) #x
#define STR(x) STR_(x)
#define HUNG_MESSAGE                                                           \
  "contract: hung: no progress for " STR(ALARM_S) " s (an endless loop "       \
                                                  "inside a call?)\n"

/* Codes each action uses, distinct so that a client seeing one knows
   which call it came from. */
#define SESSION_CODE 4711u
#define SESSION_REASON "contract: closed from a callback"
#define OTHER_SESSION_CODE 4712u
#define OTHER_SESSION_REASON "contract: the other session"
#define SHUTDOWN_CODE 4713u
#define SHUTDOWN_REASON "contract: shutdown deadline"
#define SELF_RESET_CODE 11u
#define SELF_STOP_CODE 12u
#define OTHER_RESET_CODE 9u
#define OTHER_STOP_CODE 10u
#define CLIENT_RESET_CODE 7u
#define CLIENT_STOP_CODE 8u
#define CLIENT_CLOSE_CODE 0x77u
#define H3_NO_ERROR 0x100u          /* RFC 9114 8.1 */
#define H3_REQUEST_CANCELLED 0x10cu /* RFC 9114 8.1 */

/* ---- the table ----------------------------------------------------------- */

/* What a callback can hand an action. */
enum {
  HAS_REQ = 1,    /* a request */
  HAS_SESS = 2,   /* a WebTransport session */
  HAS_STREAM = 4, /* a stream of that session */
  HAS_LIVE = 8    /* the server still runs: the other session exists */
};

typedef enum cb_id {
  CB_ON_REQUEST,
  CB_ON_BODY,
  CB_ON_END,
  CB_ON_WRITABLE,
  CB_ON_CLOSE,
  CB_SESSION_REQUEST,
  CB_SESSION_READY,
  CB_STREAM_OPEN,
  CB_STREAM_DATA,
  CB_STREAM_RESET,
  CB_STREAM_STOP_SENDING,
  CB_STREAM_WRITABLE,
  CB_STREAM_CLOSE,
  CB_DATAGRAM,
  CB_SESSION_DRAIN,
  CB_SESSION_CLOSE,
  CB_STREAMS_AVAILABLE,
  CB_SERVER_CLOSED,
  NCB
} cb_id;

static const struct {
  const char *name;
  unsigned has;
} cbs[NCB] = {
    [CB_ON_REQUEST] = {"on_request", HAS_REQ | HAS_LIVE},
    [CB_ON_BODY] = {"on_body", HAS_REQ | HAS_LIVE},
    [CB_ON_END] = {"on_end", HAS_REQ | HAS_LIVE},
    [CB_ON_WRITABLE] = {"on_writable", HAS_REQ | HAS_LIVE},
    [CB_ON_CLOSE] = {"on_close", HAS_REQ | HAS_LIVE},
    [CB_SESSION_REQUEST] = {"on_session_request", HAS_SESS | HAS_LIVE},
    [CB_SESSION_READY] = {"on_session_ready", HAS_SESS | HAS_LIVE},
    [CB_STREAM_OPEN] = {"on_stream_open", HAS_SESS | HAS_STREAM | HAS_LIVE},
    [CB_STREAM_DATA] = {"on_stream_data", HAS_SESS | HAS_STREAM | HAS_LIVE},
    [CB_STREAM_RESET] = {"on_stream_reset", HAS_SESS | HAS_STREAM | HAS_LIVE},
    [CB_STREAM_STOP_SENDING] = {"on_stream_stop_sending",
                                HAS_SESS | HAS_STREAM | HAS_LIVE},
    [CB_STREAM_WRITABLE] = {"on_stream_writable",
                            HAS_SESS | HAS_STREAM | HAS_LIVE},
    [CB_STREAM_CLOSE] = {"on_stream_close", HAS_SESS | HAS_STREAM | HAS_LIVE},
    [CB_DATAGRAM] = {"on_datagram", HAS_SESS | HAS_LIVE},
    [CB_SESSION_DRAIN] = {"on_session_drain", HAS_SESS | HAS_LIVE},
    [CB_SESSION_CLOSE] = {"on_session_close", HAS_SESS | HAS_LIVE},
    [CB_STREAMS_AVAILABLE] = {"on_streams_available", HAS_SESS | HAS_LIVE},
    /* Everything is gone by then: only the server itself is left. */
    [CB_SERVER_CLOSED] = {"server_close_cb", 0},
};

typedef enum act_id {
  A_SERVER_CLOSE,
  A_SERVER_SHUTDOWN,
  A_CLOSE_CONNECTION,
  A_CLOSE_CONNECTION_OTHER,
  A_SESSION_CLOSE,
  A_SESSION_CLOSE_OTHER,
  A_STREAM_RESET,
  A_STREAM_STOP_SENDING,
  A_STREAM_RESET_OTHER,
  A_STREAM_STOP_SENDING_OTHER,
  A_STREAM_WRITE_OTHER,
  A_DATAGRAM_OTHER,
  A_OPEN_STREAM_OTHER,
  A_REQUEST_RESPOND,
  A_REQUEST_RESET,
  A_REQUEST_WRITE,
  NACT
} act_id;

static const struct {
  const char *name;
  unsigned needs; /* HAS_* the callback must offer */
  int other;      /* acts on the session of a second connection */
} acts[NACT] = {
    [A_SERVER_CLOSE] = {"server_close", 0, 0},
    [A_SERVER_SHUTDOWN] = {"server_shutdown", 0, 0},
    [A_CLOSE_CONNECTION] = {"close_connection", HAS_SESS, 0},
    [A_CLOSE_CONNECTION_OTHER] = {"close_connection_other", HAS_LIVE, 1},
    [A_SESSION_CLOSE] = {"session_close", HAS_SESS, 0},
    [A_SESSION_CLOSE_OTHER] = {"session_close_other", HAS_LIVE, 1},
    [A_STREAM_RESET] = {"stream_reset", HAS_STREAM, 0},
    [A_STREAM_STOP_SENDING] = {"stream_stop_sending", HAS_STREAM, 0},
    [A_STREAM_RESET_OTHER] = {"stream_reset_other", HAS_LIVE, 1},
    [A_STREAM_STOP_SENDING_OTHER] = {"stream_stop_sending_other", HAS_LIVE, 1},
    [A_STREAM_WRITE_OTHER] = {"stream_write_other", HAS_LIVE, 1},
    [A_DATAGRAM_OTHER] = {"send_datagram_other", HAS_LIVE, 1},
    [A_OPEN_STREAM_OTHER] = {"open_stream_other", HAS_LIVE, 1},
    [A_REQUEST_RESPOND] = {"request_respond", HAS_REQ, 0},
    [A_REQUEST_RESET] = {"request_reset", HAS_REQ, 0},
    [A_REQUEST_WRITE] = {"request_write", HAS_REQ, 0},
};

typedef struct contract_case {
  cb_id cb;
  act_id act;
  int skip; /* the function does not exist in this build */
  char name[64];
} contract_case;

static contract_case cases[NCB * NACT];
static size_t ncases;

static int is_request_cb(cb_id cb) {
  return (cbs[cb].has & HAS_REQ) != 0;
}

static void build_cases(void) {
  for (int c = 0; c < NCB; ++c) {
    for (int a = 0; a < NACT; ++a) {
      if ((cbs[c].has & acts[a].needs) != acts[a].needs) {
        continue; /* the object the action needs does not exist here */
      }
      contract_case *k = &cases[ncases++];
      k->cb = (cb_id)c;
      k->act = (act_id)a;
      snprintf(k->name, sizeof(k->name), "%s.%s", cbs[c].name, acts[a].name);
    }
  }
}

/* ---- object lifetimes ---------------------------------------------------- */

/* One per session, stream or request a handler heard of, kept in a pool
   that outlives the objects, so a callback that arrives after the close
   callback is seen rather than read from freed memory by the test. */
typedef struct trk {
  const char *kind; /* "session", "stream", "request" */
  int server;       /* seen by the server, else by a client */
  int other;        /* of the second connection */
  int announced;    /* its close callback is owed */
  int closed;       /* its close callback ran */
  struct trk *session;
} trk;

#define MAX_TRK 512

/* Gates: what the clients must see before the case tears down. */
enum {
  G_A_CLOSED = 1 << 0,      /* client A: on_closed */
  G_B_CLOSED = 1 << 1,      /* client B: on_closed */
  G_A_SESS_CLOSED = 1 << 2, /* client A's session: on_session_close */
  G_B_SESS_CLOSED = 1 << 3,
  G_B_RESET = 1 << 4,  /* client B's stream: on_stream_reset */
  G_B_STOP = 1 << 5,   /* client B's stream: on_stream_stop_sending */
  G_B_FIN = 1 << 6,    /* client B's stream: the bytes and FIN */
  G_B_DGRAM = 1 << 7,  /* client B: a datagram */
  G_B_OPEN = 1 << 8,   /* client B: a stream the server opened */
  G_REQ_DONE = 1 << 9, /* client A's request: on_close */
  G_A_READY = 1 << 10  /* client A's session is established */
};

static const char *const gate_names[] = {
    "client A closed",         "client B closed",
    "client A session closed", "client B session closed",
    "client B stream reset",   "client B stream stop_sending",
    "client B stream FIN",     "client B datagram",
    "client B server stream",  "client A request closed",
    "client A session ready"};

enum { P_WAIT_OTHER, P_RUN, P_TEARDOWN, P_FORCED, P_DONE };

static const char *const phase_names[] = {"waiting for the other session",
                                          "running", "tearing down",
                                          "forced teardown", "done"};

/* The development certificate, made once and shared by every case. */
static char cert_path[256], key_path[256];

static struct {
  const contract_case *c;
  uv_loop_t loop;
  uv_timer_t step, watchdog;
  h3wt_server *server;
  h3wt_client *a, *b; /* A: the callback under test; B: the other */
  int phase;
  uint64_t started_at, acted_at, closed_at;
  int acted, act_rv;
  unsigned gates;
  int server_close_called; /* close or shutdown */
  int close_cbs;
  int timed_out, hung;
  /* What the action promises beyond the gates. */
  int want_a_code, want_b_code; /* check the session close code */
  uint32_t a_code_want, b_code_want;
  const char *a_reason_want, *b_reason_want;
  int want_status;    /* the response status client A must see; -1 any */
  int want_req_reset; /* client A's request must end in an error */
  /* Server side. */
  h3wt_session *other_sess; /* B's session as the server sees it */
  h3wt_stream *other_stream;
  int writable_blocked; /* the write that makes on_*writable follow */
  /* Client A. */
  int a_closed, a_err;
  h3wt_session *a_sess;
  int a_ready, a_sess_closed, a_sess_err;
  uint32_t a_sess_code;
  char a_sess_reason[128];
  h3wt_stream *a_stream;
  int a_signalled; /* the row's client reset/stop_sending went out */
  int req_status, req_closed, req_err;
  uint64_t req_app_code;
  /* Client B. */
  int b_closed, b_err;
  h3wt_session *b_sess;
  int b_sess_closed, b_sess_err;
  uint32_t b_sess_code;
  char b_sess_reason[128];
  h3wt_stream *b_stream;
  int b_fin_sent;       /* B finished its stream to learn of a stop */
  int b_stop_has_code;
  int b_reset, b_stop, b_fin, b_dgrams, b_server_streams;
  uint32_t b_reset_code, b_stop_code;
  char b_data[16];
  size_t b_len;
  /* Lifetimes. */
  trk pool[MAX_TRK];
  int ntrk;
  int violations;
} T;

/* A failure in the current case, in the format of h3wt_test.h. */
#define FAILF(...)                                                             \
  do {                                                                         \
    h3wt_test_begin_failure_(__FILE__, __LINE__);                              \
    fprintf(stderr, __VA_ARGS__);                                              \
    fputc('\n', stderr);                                                       \
    h3wt_test_end_failure_();                                                  \
  } while (0)

static trk *trk_new(const char *kind, int server, int other, trk *session) {
  if (T.ntrk == MAX_TRK) {
    FAILF("more than %d objects: raise MAX_TRK", MAX_TRK);
    abort(); /* the pool is what makes the checks safe: do not go on */
  }
  trk *t = &T.pool[T.ntrk++];
  t->kind = kind;
  t->server = server;
  t->other = other;
  t->session = session;
  return t;
}

/* A callback about t: it must not come after t's close callback, nor
   after its session's. */
static void seen(const trk *t, const char *cb) {
  if (!t) {
    ++T.violations;
    FAILF("%s on an object no earlier callback announced", cb);
    return;
  }
  if (t->closed || (t->session && t->session->closed)) {
    ++T.violations;
    FAILF("%s: %s on a %s after %s close callback",
          t->server ? "server" : "client", cb, t->kind,
          t->closed ? "its" : "its session's");
  }
}

static void seen_close(trk *t, const char *cb) {
  seen(t, cb);
  if (t) {
    t->closed = 1;
  }
}

static trk *session_trk(const h3wt_session *s) {
  return s ? h3wt_session_get_data(s) : NULL;
}

static trk *stream_trk(const h3wt_stream *st) {
  return h3wt_stream_get_data(st);
}

/* ---- the action ---------------------------------------------------------- */

/* The objects the callback under test is about. */
typedef struct here {
  h3wt_request *req;
  h3wt_session *sess;
  h3wt_stream *st;
} here;

static void on_server_closed(h3wt_server *server, void *ud);

static int triggers(cb_id cb, int other) {
  return !other && !T.acted && T.c->cb == cb && T.phase == P_RUN;
}

static void shutdown_server(void) {
  h3wt_server_shutdown(T.server, SHUTDOWN_MS, SHUTDOWN_CODE, SHUTDOWN_REASON,
                       on_server_closed, NULL);
}

static void act(const here *h) {
  int rv = 0, rv2 = 0;
  cb_id cb = T.c->cb;
  T.acted = 1;
  T.acted_at = uv_now(&T.loop);
  if (is_request_cb(cb)) {
    /* However the action ends it, the request must end. */
    T.gates |= G_REQ_DONE;
  }
  switch (T.c->act) {
  case A_SERVER_CLOSE:
    T.server_close_called = 1;
    T.want_status = -1;
    h3wt_server_close(T.server, on_server_closed, NULL);
    T.gates |= G_A_CLOSED | (T.b ? G_B_CLOSED : 0);
    break;
  case A_SERVER_SHUTDOWN:
    T.server_close_called = 1;
    shutdown_server();
    T.gates |= G_A_CLOSED | (T.b ? G_B_CLOSED : 0);
    if (cbs[cb].has & HAS_SESS && cb != CB_SESSION_CLOSE) {
      /* Still open at the deadline: closed with the code and reason the
         header documents. */
      T.want_a_code = 1;
      T.a_code_want = SHUTDOWN_CODE;
      T.a_reason_want = SHUTDOWN_REASON;
    }
    break;
  case A_CLOSE_CONNECTION:
  case A_CLOSE_CONNECTION_OTHER: {
    int other = T.c->act == A_CLOSE_CONNECTION_OTHER;
    rv = h3wt_session_close_connection(other ? T.other_sess : h->sess,
                                       H3_NO_ERROR, "contract");
    if (rv == 0) {
      T.gates |= other ? G_B_CLOSED : G_A_CLOSED;
    }
    break;
  }
  case A_SESSION_CLOSE:
    rv = h3wt_session_close(h->sess, SESSION_CODE, SESSION_REASON);
    if (rv == 0) {
      T.gates |= G_A_SESS_CLOSED;
      T.want_a_code = 1;
      T.a_code_want = SESSION_CODE;
      T.a_reason_want = SESSION_REASON;
    }
    break;
  case A_SESSION_CLOSE_OTHER:
    rv = h3wt_session_close(T.other_sess, OTHER_SESSION_CODE,
                            OTHER_SESSION_REASON);
    if (rv == 0) {
      T.gates |= G_B_SESS_CLOSED;
      T.want_b_code = 1;
      T.b_code_want = OTHER_SESSION_CODE;
      T.b_reason_want = OTHER_SESSION_REASON;
    }
    break;
  case A_STREAM_RESET:
    rv = h3wt_stream_reset(h->st, SELF_RESET_CODE);
    break;
  case A_STREAM_STOP_SENDING:
    rv = h3wt_stream_stop_sending(h->st, SELF_STOP_CODE);
    break;
  case A_STREAM_RESET_OTHER:
    rv = h3wt_stream_reset(T.other_stream, OTHER_RESET_CODE);
    if (rv == 0) {
      T.gates |= G_B_RESET;
    }
    break;
  case A_STREAM_STOP_SENDING_OTHER:
    rv = h3wt_stream_stop_sending(T.other_stream, OTHER_STOP_CODE);
    if (rv == 0) {
      T.gates |= G_B_STOP;
    }
    break;
  case A_STREAM_WRITE_OTHER:
    rv = h3wt_stream_write(T.other_stream, "w", 1);
    rv2 = h3wt_stream_finish(T.other_stream);
    if (rv == 0 && rv2 == 0) {
      T.gates |= G_B_FIN;
    }
    break;
  case A_DATAGRAM_OTHER:
    rv = h3wt_session_send_datagram(T.other_sess, "d", 1);
    if (rv == 0) {
      T.gates |= G_B_DGRAM;
    }
    break;
  case A_OPEN_STREAM_OTHER: {
    h3wt_stream *st = NULL;
    rv = h3wt_session_open_stream(T.other_sess, 0, &st);
    if (rv == 0) {
      trk *t = trk_new("stream", 1, 1, session_trk(T.other_sess));
      t->announced = 1; /* a local stream gets on_stream_close too */
      h3wt_stream_set_data(st, t);
      T.gates |= G_B_OPEN;
    }
    break;
  }
  case A_REQUEST_RESPOND:
    rv = h3wt_request_respond(h->req, 202, NULL, 0, "contract", 8);
    if (rv == 0) {
      T.want_status = 202;
    }
    break;
  case A_REQUEST_RESET:
    h3wt_request_reset(h->req, H3_REQUEST_CANCELLED);
    if (cb != CB_ON_CLOSE) {
      /* Before on_close the response is not complete: the reset wins. */
      T.want_status = -1;
      T.want_req_reset = 1;
    }
    break;
  case A_REQUEST_WRITE:
    rv = h3wt_request_write(h->req, "w", 1);
    break;
  case NACT:
    break;
  }
  T.act_rv = rv != 0 ? rv : rv2;
  if (rv > 0 || rv2 > 0) {
    FAILF("%s returned %d, %d: neither 0 nor an H3WT_ERR_* code",
          acts[T.c->act].name, rv, rv2);
  }
}

/* ---- the server's request route ------------------------------------------ */

/* Writes until the queue refuses, so that on_writable follows. */
static void fill_response(h3wt_request *req) {
  char chunk[CHUNK];
  memset(chunk, 'r', sizeof(chunk));
  for (int i = 0; i < MAX_CHUNKS; ++i) {
    int rv = h3wt_request_write(req, chunk, sizeof(chunk));
    if (rv == H3WT_ERR_WOULDBLOCK) {
      T.writable_blocked = 1;
      return;
    }
    if (rv != 0) {
      return;
    }
  }
  FAILF("the response queue never filled (max_response_queue %d)",
        RESPONSE_QUEUE);
}

static void rq_request(h3wt_request *req, void *rd) {
  trk *t = trk_new("request", 1, 0, NULL);
  t->announced = 1;
  h3wt_request_set_data(req, t);
  if (triggers(CB_ON_REQUEST, 0)) {
    here h = {req, NULL, NULL};
    act(&h);
    if (t->closed) {
      return; /* it ended inside the action */
    }
  }
  if (T.c->cb == CB_ON_WRITABLE) {
    if (h3wt_request_respond_start(req, 200, NULL, 0) == 0) {
      fill_response(req);
    }
  }
}

static void rq_body(h3wt_request *req, const uint8_t *d, size_t n, void *rd) {
  trk *t = h3wt_request_get_data(req);
  seen(t, "on_body");
  if (triggers(CB_ON_BODY, 0)) {
    here h = {req, NULL, NULL};
    act(&h);
  }
}

static void rq_end(h3wt_request *req, void *rd) {
  trk *t = h3wt_request_get_data(req);
  seen(t, "on_end");
  if (triggers(CB_ON_END, 0)) {
    here h = {req, NULL, NULL};
    act(&h);
  }
  if (t && t->closed) {
    return;
  }
  if (T.c->cb != CB_ON_WRITABLE) {
    /* Already answered by the action, or reset: the call just fails. */
    h3wt_request_respond(req, 200, NULL, 0, "ok", 2);
  }
}

static void rq_writable(h3wt_request *req, void *rd) {
  trk *t = h3wt_request_get_data(req);
  seen(t, "on_writable");
  if (triggers(CB_ON_WRITABLE, 0)) {
    here h = {req, NULL, NULL};
    act(&h);
  }
  if (t && t->closed) {
    return;
  }
  h3wt_request_end(req);
}

static void rq_close(h3wt_request *req, uint64_t code, void *rd) {
  trk *t = h3wt_request_get_data(req);
  seen_close(t, "on_close");
  if (triggers(CB_ON_CLOSE, 0)) {
    here h = {req, NULL, NULL};
    act(&h);
  }
}

static const h3wt_request_handler request_handler = {
    rq_request, rq_body, rq_end, rq_writable, rq_close};

/* ---- the server's WebTransport route ------------------------------------- */

static int sv_session_request(h3wt_session *s, void *rd) {
  /* B asks for "/wt?other": the route ignores the query. */
  int other = strstr(h3wt_session_path(s), "?other") != NULL;
  trk *t = trk_new("session", 1, other, NULL);
  h3wt_session_set_data(s, t);
  if (triggers(CB_SESSION_REQUEST, other)) {
    here h = {NULL, s, NULL};
    act(&h);
  }
  return 200;
}

static void sv_session_ready(h3wt_session *s, void *rd) {
  trk *t = session_trk(s);
  seen(t, "on_session_ready");
  if (!t) {
    return;
  }
  t->announced = 1;
  if (t->other) {
    T.other_sess = s;
    return;
  }
  if (triggers(CB_SESSION_READY, 0)) {
    here h = {NULL, s, NULL};
    act(&h);
    if (t->closed) {
      return;
    }
  }
  if (T.c->cb == CB_STREAMS_AVAILABLE) {
    /* Finished uni streams until the client's stream limit refuses one;
       as the client reads them to the end it grants more, and
       on_streams_available follows. */
    for (int i = 0; i < 10000; ++i) {
      h3wt_stream *st;
      int rv = h3wt_session_open_stream(s, 0, &st);
      if (rv == H3WT_ERR_WOULDBLOCK) {
        return;
      }
      if (rv != 0) {
        FAILF("open_stream: %s", h3wt_strerror(rv));
        return;
      }
      trk *ts = trk_new("stream", 1, 0, t);
      ts->announced = 1;
      h3wt_stream_set_data(st, ts);
      h3wt_stream_write(st, "u", 1);
      h3wt_stream_finish(st);
    }
    FAILF("the client's stream limit never refused a stream");
    return;
  }
  if (T.c->cb == CB_STREAM_WRITABLE && !T.writable_blocked) {
    /* A stream of our own, written until it refuses.  Unidirectional:
       when a server-opened bidi stream closes, the client calls
       nghttp3_conn_set_max_client_streams_bidi(), which nghttp3 allows
       servers only (an assertion), and that would hide this row. */
    h3wt_stream *st;
    char chunk[CHUNK];
    if (h3wt_session_open_stream(s, 0, &st) != 0) {
      return;
    }
    trk *ts = trk_new("stream", 1, 0, t);
    ts->announced = 1;
    h3wt_stream_set_data(st, ts);
    memset(chunk, 's', sizeof(chunk));
    for (int i = 0; i < MAX_CHUNKS; ++i) {
      int rv = h3wt_stream_write(st, chunk, sizeof(chunk));
      if (rv == H3WT_ERR_WOULDBLOCK) {
        T.writable_blocked = 1;
        return;
      }
      if (rv != 0) {
        return;
      }
    }
    FAILF("the stream queue never filled (max_stream_queue %d)", STREAM_QUEUE);
  }
}

static void sv_stream_open(h3wt_stream *st, void *rd) {
  trk *ts = session_trk(h3wt_stream_session(st));
  seen(ts, "on_stream_open");
  trk *t = trk_new("stream", 1, ts ? ts->other : 0, ts);
  t->announced = 1;
  h3wt_stream_set_data(st, t);
  if (t->other) {
    if (!T.other_stream && h3wt_stream_is_bidi(st)) {
      T.other_stream = st;
    }
    return;
  }
  if (triggers(CB_STREAM_OPEN, 0)) {
    here h = {NULL, h3wt_stream_session(st), st};
    act(&h);
  }
}

static void sv_stream_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                           void *rd) {
  trk *t = stream_trk(st);
  seen(t, "on_stream_data");
  if (!t || t->other) {
    return;
  }
  if (triggers(CB_STREAM_DATA, 0)) {
    here h = {NULL, h3wt_stream_session(st), st};
    act(&h);
    if (t->closed) {
      return;
    }
  }
  /* Echo on the peer's bidi streams; the calls fail harmlessly when the
     action reset or closed something. */
  if (h3wt_stream_is_bidi(st) && !h3wt_stream_is_local(st)) {
    if (n) {
      h3wt_stream_write(st, d, n);
    }
    if (fin) {
      h3wt_stream_finish(st);
    }
  }
}

static void sv_stream_reset(h3wt_stream *st, uint32_t code, int has, void *rd) {
  trk *t = stream_trk(st);
  seen(t, "on_stream_reset");
  if (!t || t->other) {
    return;
  }
  if (triggers(CB_STREAM_RESET, 0)) {
    here h = {NULL, h3wt_stream_session(st), st};
    act(&h);
    if (t->closed) {
      return;
    }
  }
  /* The peer will send no more: end our side so the stream closes. */
  h3wt_stream_finish(st);
}

static void sv_stream_stop(h3wt_stream *st, uint32_t code, int has, void *rd) {
  trk *t = stream_trk(st);
  seen(t, "on_stream_stop_sending");
  if (code == SELF_STOP_CODE || code == OTHER_STOP_CODE) {
    /* h3wt.h: the peer asked us to stop sending.  The client never uses
       these codes: this is the server's own h3wt_stream_stop_sending()
       coming back to it. */
    ++T.violations;
    FAILF("server on_stream_stop_sending with code %u, which only the "
          "server itself sent",
          code);
  }
  if (!t || t->other) {
    return;
  }
  if (triggers(CB_STREAM_STOP_SENDING, 0)) {
    here h = {NULL, h3wt_stream_session(st), st};
    act(&h);
    if (t->closed) {
      return;
    }
  }
  /* RFC 9000 3.5: STOP_SENDING is answered with RESET_STREAM (the call
     fails if the library did it already). */
  h3wt_stream_reset(st, code);
}

static void sv_stream_writable(h3wt_stream *st, void *rd) {
  trk *t = stream_trk(st);
  seen(t, "on_stream_writable");
  if (!t || t->other) {
    return;
  }
  if (triggers(CB_STREAM_WRITABLE, 0)) {
    here h = {NULL, h3wt_stream_session(st), st};
    act(&h);
    if (t->closed) {
      return;
    }
  }
  h3wt_stream_finish(st);
}

static void sv_stream_close(h3wt_stream *st, void *rd) {
  trk *t = stream_trk(st);
  seen_close(t, "on_stream_close");
  if (st == T.other_stream) {
    T.other_stream = NULL;
  }
  if (t && !t->other && triggers(CB_STREAM_CLOSE, 0)) {
    here h = {NULL, h3wt_stream_session(st), st};
    act(&h);
  }
}

static void sv_datagram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  trk *t = session_trk(s);
  seen(t, "on_datagram");
  if (t && triggers(CB_DATAGRAM, t->other)) {
    here h = {NULL, s, NULL};
    act(&h);
  }
}

static void sv_session_drain(h3wt_session *s, void *rd) {
  trk *t = session_trk(s);
  seen(t, "on_session_drain");
  if (t && triggers(CB_SESSION_DRAIN, t->other)) {
    here h = {NULL, s, NULL};
    act(&h);
  }
}

static void sv_session_close(h3wt_session *s, int err, uint32_t code,
                             const char *reason, size_t rl, void *rd) {
  trk *t = session_trk(s);
  seen_close(t, "on_session_close");
  if (s == T.other_sess) {
    T.other_sess = NULL;
  }
  if (t && triggers(CB_SESSION_CLOSE, t->other)) {
    here h = {NULL, s, NULL};
    act(&h);
  }
}

static void sv_streams_available(h3wt_session *s, int bidi, void *rd) {
  trk *t = session_trk(s);
  seen(t, "on_streams_available");
  if (t && triggers(CB_STREAMS_AVAILABLE, t->other)) {
    here h = {NULL, s, NULL};
    act(&h);
  }
}

static const h3wt_session_handler server_handler = {
    sv_session_request, sv_session_ready, sv_stream_open,     sv_stream_data,
    sv_stream_reset,    sv_stream_stop,   sv_stream_writable, sv_stream_close,
    sv_datagram,        sv_session_drain, sv_session_close,
    sv_streams_available};

static void on_server_closed(h3wt_server *server, void *ud) {
  ++T.close_cbs;
  T.closed_at = uv_now(&T.loop);
  if (T.c->cb == CB_SERVER_CLOSED && !T.acted) {
    here h = {NULL, NULL, NULL};
    act(&h);
  }
}

/* ---- the clients --------------------------------------------------------- */

static int role_a, role_b; /* route data: which client's session */

static void cl_session_ready(h3wt_session *s, void *rd) {
  trk *t = session_trk(s);
  seen(t, "client on_session_ready");
  if (rd == &role_b) {
    /* The other session: one open bidi stream the actions can use. */
    h3wt_stream *st;
    if (h3wt_session_open_stream(s, 1, &st) == 0) {
      trk *ts = trk_new("stream", 0, 1, t);
      ts->announced = 1;
      h3wt_stream_set_data(st, ts);
      T.b_stream = st;
      h3wt_stream_write(st, "o", 1);
    }
    return;
  }
  T.a_ready = 1;
  switch (T.c->cb) {
  case CB_STREAM_OPEN:
  case CB_STREAM_DATA:
  case CB_STREAM_CLOSE:
  case CB_STREAM_RESET:
  case CB_STREAM_STOP_SENDING: {
    h3wt_stream *st;
    if (h3wt_session_open_stream(s, 1, &st) != 0) {
      break;
    }
    trk *ts = trk_new("stream", 0, 0, t);
    ts->announced = 1;
    h3wt_stream_set_data(st, ts);
    T.a_stream = st;
    h3wt_stream_write(st, "ping", 4);
    /* The reset and stop_sending rows signal once the echo is back, so
       the server has the stream by then. */
    if (T.c->cb != CB_STREAM_RESET && T.c->cb != CB_STREAM_STOP_SENDING) {
      h3wt_stream_finish(st);
    }
    break;
  }
  case CB_SESSION_DRAIN:
    h3wt_session_drain(s);
    break;
  case CB_SESSION_CLOSE:
    h3wt_session_close(s, CLIENT_CLOSE_CODE, "client bye");
    break;
  default:
    break;
  }
}

static void cl_stream_open(h3wt_stream *st, void *rd) {
  trk *ts = session_trk(h3wt_stream_session(st));
  seen(ts, "client on_stream_open");
  trk *t = trk_new("stream", 0, rd == &role_b, ts);
  t->announced = 1;
  h3wt_stream_set_data(st, t);
  if (rd == &role_b) {
    ++T.b_server_streams;
  }
}

static void cl_stream_data(h3wt_stream *st, const uint8_t *d, size_t n, int fin,
                           void *rd) {
  seen(stream_trk(st), "client on_stream_data");
  if (rd == &role_b) {
    if (st == T.b_stream) {
      size_t k =
          n < sizeof(T.b_data) - T.b_len ? n : sizeof(T.b_data) - T.b_len;
      memcpy(T.b_data + T.b_len, d, k);
      T.b_len += k;
      T.b_fin |= fin;
    }
    return;
  }
  if (st == T.a_stream && n && !T.a_signalled) {
    if (T.c->cb == CB_STREAM_RESET) {
      T.a_signalled = 1;
      h3wt_stream_reset(st, CLIENT_RESET_CODE);
    } else if (T.c->cb == CB_STREAM_STOP_SENDING) {
      T.a_signalled = 1;
      h3wt_stream_stop_sending(st, CLIENT_STOP_CODE);
      /* With ngtcp2 1.11 the server learns of a STOP_SENDING only when it
         next writes the stream or the stream closes (no callback for the
         frame): our FIN lets its echo handler finish, which does both. */
      h3wt_stream_finish(st);
    }
  }
  if (fin && h3wt_stream_is_bidi(st) && !h3wt_stream_is_local(st)) {
    h3wt_stream_finish(st); /* the server's stream: close it both ways */
  }
}

static void cl_stream_reset(h3wt_stream *st, uint32_t code, int has, void *rd) {
  seen(stream_trk(st), "client on_stream_reset");
  if (rd == &role_b && st == T.b_stream) {
    T.b_reset = 1;
    T.b_reset_code = code;
  }
}

static void cl_stream_stop(h3wt_stream *st, uint32_t code, int has, void *rd) {
  seen(stream_trk(st), "client on_stream_stop_sending");
  if (rd == &role_b && st == T.b_stream) {
    T.b_stop = 1;
    T.b_stop_code = code;
    T.b_stop_has_code = has;
  }
}

static void cl_stream_writable(h3wt_stream *st, void *rd) {
  seen(stream_trk(st), "client on_stream_writable");
}

static void cl_stream_close(h3wt_stream *st, void *rd) {
  seen_close(stream_trk(st), "client on_stream_close");
  if (st == T.a_stream) {
    T.a_stream = NULL;
  }
  if (st == T.b_stream) {
    T.b_stream = NULL;
  }
}

static void cl_datagram(h3wt_session *s, const uint8_t *d, size_t n, void *rd) {
  seen(session_trk(s), "client on_datagram");
  if (rd == &role_b) {
    ++T.b_dgrams;
  }
}

static void cl_session_drain(h3wt_session *s, void *rd) {
  seen(session_trk(s), "client on_session_drain");
}

static void cl_session_close(h3wt_session *s, int err, uint32_t code,
                             const char *reason, size_t rl, void *rd) {
  seen_close(session_trk(s), "client on_session_close");
  if (rd == &role_b) {
    T.b_sess = NULL;
    T.b_sess_closed = 1;
    T.b_sess_err = err;
    T.b_sess_code = code;
    snprintf(T.b_sess_reason, sizeof(T.b_sess_reason), "%.*s", (int)rl, reason);
  } else {
    T.a_sess = NULL;
    T.a_sess_closed = 1;
    T.a_sess_err = err;
    T.a_sess_code = code;
    snprintf(T.a_sess_reason, sizeof(T.a_sess_reason), "%.*s", (int)rl, reason);
  }
}

static const h3wt_session_handler client_handler = {NULL,
                                                    cl_session_ready,
                                                    cl_stream_open,
                                                    cl_stream_data,
                                                    cl_stream_reset,
                                                    cl_stream_stop,
                                                    cl_stream_writable,
                                                    cl_stream_close,
                                                    cl_datagram,
                                                    cl_session_drain,
                                                    cl_session_close,
                                                    NULL};

static void rs_headers(h3wt_client_request *r, int status, const h3wt_header *h,
                       size_t n, void *ud) {
  T.req_status = status;
}

static void rs_close(h3wt_client_request *r, int err, uint64_t code, void *ud) {
  if (T.req_closed) {
    ++T.violations;
    FAILF("client request: on_close twice");
  }
  T.req_closed = 1;
  T.req_err = err;
  T.req_app_code = code;
}

static const h3wt_response_handler response_handler = {rs_headers, NULL,
                                                       rs_close};

static void on_a_closed(h3wt_client *cl, int err, void *ud) {
  T.a_closed = 1;
  T.a_err = err;
}

static void on_b_closed(h3wt_client *cl, int err, void *ud) {
  T.b_closed = 1;
  T.b_err = err;
}

static h3wt_client *client_new(h3wt_client_callbacks *callbacks) {
  h3wt_client_settings cs;
  h3wt_client *cl = NULL;
  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = h3wt_server_port(T.server);
  cs.insecure = 1;
  if (getenv("H3WT_TEST_VERBOSE")) {
    cs.log_cb = h3wt_log_stderr;
    cs.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_client_new(&cl, &T.loop, &cs, callbacks, NULL), 0);
  return cl;
}

static h3wt_session *client_session(h3wt_client *cl, const char *path,
                                    int *role) {
  h3wt_session *s = NULL;
  CHECK_EQ_INT(
      h3wt_client_webtransport(cl, path, NULL, NULL, 0, &client_handler, role,
                               &s),
      0);
  if (s) {
    trk *t = trk_new("session", 0, role == &role_b, NULL);
    t->announced = 1; /* a client always hears how its session ended */
    h3wt_session_set_data(s, t);
  }
  return s;
}

/* Client A's traffic, which makes the callback under test fire. */
static void start_primary(void) {
  T.phase = P_RUN;
  T.started_at = uv_now(&T.loop);
  if (is_request_cb(T.c->cb)) {
    CHECK_EQ_INT(h3wt_client_request_send(T.a, "POST", "/r", NULL, 0, "hello",
                                          5, &response_handler, NULL, NULL),
                 0);
  } else {
    T.a_sess = client_session(T.a, "/wt", &role_a);
  }
}

/* ---- driving a case ------------------------------------------------------ */

static int gates_met(unsigned *unmet) {
  unsigned g = 0;
  if (!T.a_closed) {
    g |= G_A_CLOSED;
  }
  if (!T.b_closed) {
    g |= G_B_CLOSED;
  }
  if (!T.a_sess_closed) {
    g |= G_A_SESS_CLOSED;
  }
  if (!T.b_sess_closed) {
    g |= G_B_SESS_CLOSED;
  }
  if (!T.b_reset) {
    g |= G_B_RESET;
  }
  if (!T.b_stop) {
    g |= G_B_STOP;
  }
  if (!T.b_fin) {
    g |= G_B_FIN;
  }
  if (!T.b_dgrams) {
    g |= G_B_DGRAM;
  }
  if (!T.b_server_streams) {
    g |= G_B_OPEN;
  }
  if (!T.req_closed) {
    g |= G_REQ_DONE;
  }
  if (!T.a_ready) {
    g |= G_A_READY;
  }
  g &= T.gates;
  if (unmet) {
    *unmet = g;
  }
  return g == 0;
}

static void describe_unmet(const char *what, int ms);

static void teardown(void) {
  T.phase = P_TEARDOWN;
  if (!T.server_close_called) {
    T.server_close_called = 1;
    h3wt_server_close(T.server, on_server_closed, NULL);
  }
}

static void finish(void) {
  T.phase = P_DONE;
  uv_close((uv_handle_t *)&T.step, NULL);
  uv_close((uv_handle_t *)&T.watchdog, NULL);
}

static void step_cb(uv_timer_t *timer) {
  uint64_t now = uv_now(&T.loop);
  switch (T.phase) {
  case P_WAIT_OTHER:
    /* B's session and stream exist on both sides before A starts, so
       every action on "the other session" has something to act on. */
    if (T.other_sess && T.other_stream && T.b_stream) {
      start_primary();
    }
    return;
  case P_RUN:
    if ((T.gates & G_B_STOP) && !T.b_stop && T.b_stream && !T.b_fin_sent) {
      /* ngtcp2 1.11 reports no STOP_SENDING frame: client B learns of it
         when it next writes the stream (or the stream closes). */
      T.b_fin_sent = 1;
      h3wt_stream_finish(T.b_stream);
    }
    if (T.c->cb == CB_DATAGRAM && !T.acted && T.a_sess && T.a_ready) {
      /* Again each tick until one arrives: datagrams may be lost. */
      h3wt_session_send_datagram(T.a_sess, "dgram", 5);
    }
    if (T.c->cb == CB_SERVER_CLOSED) {
      T.gates |= G_A_READY;
      if (gates_met(NULL)) {
        teardown(); /* the action runs in the close callback */
      }
      return;
    }
    if (T.acted && now - T.acted_at >= SETTLE_MS && gates_met(NULL)) {
      teardown();
    } else if (!T.acted && now - T.started_at >= TRIGGER_MS) {
      FAILF("the callback under test never ran (%d ms)", TRIGGER_MS);
      teardown();
    } else if (T.acted && now - T.acted_at >= GATE_MS) {
      describe_unmet("not seen", GATE_MS);
      teardown();
    }
    return;
  case P_TEARDOWN:
  case P_FORCED:
    if (T.close_cbs == 0) {
      return;
    }
    if ((T.a && !T.a_closed) || (T.b && !T.b_closed)) {
      /* The server sent CONNECTION_CLOSE: each client hears it (after
         its draining period). */
      if (now - T.closed_at < CLIENT_GRACE_MS) {
        return;
      }
      FAILF("a client never heard the server close (A closed %d, B closed "
            "%d)",
            T.a_closed, T.b_closed);
      if (T.a) {
        h3wt_client_close(T.a);
      }
      if (T.b) {
        h3wt_client_close(T.b);
      }
    }
    finish();
    return;
  }
}

static void describe_unmet(const char *what, int ms) {
  unsigned unmet = 0;
  char buf[512];
  size_t off = 0;
  gates_met(&unmet);
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof(gate_names) / sizeof(gate_names[0]); ++i) {
    if (unmet & (1u << i)) {
      off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
                              off ? ", " : "", gate_names[i]);
      if (off >= sizeof(buf)) {
        break;
      }
    }
  }
  FAILF("%s after %d ms %s: %s%s%s%s", what, ms, phase_names[T.phase],
        T.acted ? "" : "the callback under test never ran",
        T.acted && buf[0] ? "still waiting for: " : "", buf,
        T.phase >= P_TEARDOWN && !T.close_cbs
            ? "the server close callback never ran"
            : "");
}

static void watchdog_cb(uv_timer_t *timer) {
  if (T.phase != P_FORCED) {
    T.timed_out = 1;
    describe_unmet("watchdog", WATCHDOG_MS);
    T.phase = P_FORCED;
    if (T.close_cbs == 0) {
      /* Also cuts a shutdown short. */
      T.server_close_called = 1;
      h3wt_server_close(T.server, on_server_closed, NULL);
    }
    if (T.a) {
      h3wt_client_close(T.a);
    }
    if (T.b) {
      h3wt_client_close(T.b);
    }
    uv_timer_start(&T.watchdog, watchdog_cb, FORCE_MS, 0);
    return;
  }
  T.hung = 1;
  FAILF("the forced teardown did not end the loop either (close callback "
        "ran %d times, A closed %d, B closed %d)",
        T.close_cbs, T.a_closed, T.b_closed);
  uv_stop(&T.loop);
}

/* After the loop: what the action promised, and the lifetimes. */
static void check_outcome(void) {
  CHECK(!T.timed_out);
  if (T.c->cb == CB_SERVER_CLOSED) {
    CHECK(T.acted); /* the other rows said so when it did not */
  }
  CHECK_EQ_INT(T.close_cbs, 1);
  CHECK_EQ_INT(T.violations, 0);
  for (int i = 0; i < T.ntrk; ++i) {
    const trk *t = &T.pool[i];
    if (t->announced && !t->closed) {
      FAILF("%s %s%s never got its close callback",
            t->server ? "server" : "client", t->other ? "(other) " : "",
            t->kind);
    }
  }
  if (T.want_a_code && T.a_sess_closed) {
    TEST_CONTEXT("client A session close");
    CHECK_EQ_INT(T.a_sess_err, H3WT_SESSION_CLOSED);
    CHECK_EQ_INT(T.a_sess_code, T.a_code_want);
    CHECK_EQ_STR(T.a_sess_reason, T.a_reason_want);
  } else if (T.want_a_code) {
    FAILF("client A's session never closed");
  }
  if (T.want_b_code) {
    TEST_CONTEXT("client B session close");
    CHECK_EQ_INT(T.b_sess_err, H3WT_SESSION_CLOSED);
    CHECK_EQ_INT(T.b_sess_code, T.b_code_want);
    CHECK_EQ_STR(T.b_sess_reason, T.b_reason_want);
  }
  if (T.gates & G_B_RESET) {
    TEST_CONTEXT("client B stream reset");
    CHECK_EQ_INT(T.b_reset_code, OTHER_RESET_CODE);
  }
  if (T.gates & G_B_STOP) {
    TEST_CONTEXT("client B stream stop_sending");
    /* Learnt at a write, the code is unknown (has_code 0); learnt at the
       stream's close, it is the server's. */
    if (T.b_stop_has_code) {
      CHECK_EQ_INT(T.b_stop_code, OTHER_STOP_CODE);
    }
  }
  if (T.gates & G_B_FIN) {
    TEST_CONTEXT("client B stream bytes");
    /* "o" is not echoed: the only bytes are the action's. */
    CHECK_EQ_INT(T.b_len, 1);
    CHECK(T.b_len == 1 && T.b_data[0] == 'w');
  }
  if (is_request_cb(T.c->cb)) {
    TEST_CONTEXT("client A request: status %d err %d app code 0x%llx",
                 T.req_status, T.req_err, (unsigned long long)T.req_app_code);
    CHECK(T.req_closed);
    if (T.want_status > 0) {
      CHECK_EQ_INT(T.req_status, T.want_status);
      CHECK_EQ_INT(T.req_err, 0);
    }
    if (T.want_req_reset) {
      CHECK(T.req_err != 0);
    }
  }
  TEST_CONTEXT("%s", "");
}

static void on_alarm(int sig) {
  static const char msg[] = HUNG_MESSAGE;
  (void)sig;
  if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
    /* nothing more to do from a signal handler */
  }
  abort();
}

/* Runs one case in this process.  Returns 0 (passed), 1 (failed) or 77
   (skipped). */
static int run_case(const contract_case *c) {
  unsigned long before = h3wt_test_failed_checks_;
  h3wt_server_settings ss;
  h3wt_client_callbacks acbs = {NULL, on_a_closed};
  h3wt_client_callbacks bcbs = {NULL, on_b_closed};

  if (c->skip) {
    return 77;
  }
  memset(&T, 0, sizeof(T));
  T.c = c;
  T.want_status = is_request_cb(c->cb) ? 200 : -1;
  h3wt_test_current_ = c->name;
  signal(SIGALRM, on_alarm);
  alarm(ALARM_S);

  CHECK_EQ_INT(uv_loop_init(&T.loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = cert_path;
  ss.key_file = key_path;
  ss.max_response_queue = RESPONSE_QUEUE;
  ss.max_stream_queue = STREAM_QUEUE;
  if (getenv("H3WT_TEST_VERBOSE")) {
    ss.log_cb = h3wt_log_stderr;
    ss.log_level = H3WT_LOG_DEBUG;
  }
  CHECK_EQ_INT(h3wt_server_new(&T.server, &T.loop, &ss), 0);
  CHECK_EQ_INT(h3wt_server_route(T.server, NULL, "/r", &request_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_webtransport(T.server, "/wt", &server_handler, NULL),
               0);
  CHECK_EQ_INT(h3wt_server_listen(T.server), 0);
  if (h3wt_test_failed_checks_ != before) {
    return 1;
  }

  T.a = client_new(&acbs);
  if (acts[c->act].other) {
    T.b = client_new(&bcbs);
    T.b_sess = client_session(T.b, "/wt?other", &role_b);
    T.phase = P_WAIT_OTHER;
  } else {
    start_primary();
  }
  uv_timer_init(&T.loop, &T.step);
  uv_timer_start(&T.step, step_cb, STEP_MS, STEP_MS);
  uv_timer_init(&T.loop, &T.watchdog);
  uv_timer_start(&T.watchdog, watchdog_cb, WATCHDOG_MS, 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);

  if (T.hung) {
    /* Handles are still open: nothing can be freed safely. */
    return 1;
  }
  check_outcome();
  h3wt_client_del(T.a);
  h3wt_client_del(T.b);
  h3wt_server_del(T.server);
  CHECK_EQ_INT(uv_loop_close(&T.loop), 0);
  alarm(0);
  h3wt_test_current_ = NULL;
  return h3wt_test_failed_checks_ == before ? 0 : 1;
}

/* ---- one child per case -------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Drops the directories of a source path: "lib/h3wt_server.c:612" reads
   better than the absolute path a stack frame carries. */
static const char *short_path(const char *p) {
  const char *q = strstr(p, "/lib/");
  if (!q) {
    q = strstr(p, "/tests/");
  }
  return q ? q + 1 : p;
}

/* The first line that says why a child failed: a sanitizer report (with
   its first frame inside h3wt), a failed check of this case, or the hang
   message.  Written into out as one line. */
static void failure_reason(FILE *f, const char *name, char *out,
                           size_t outlen) {
  char *line = NULL, tag[80];
  size_t cap = 0;
  char san[256] = "", frame[256] = "", check[256] = "", other[256] = "";
  char leak[64] = "";
  int in_report = 0;
  snprintf(tag, sizeof(tag), "[%s] ", name);
  rewind(f);
  while (getline(&line, &cap, f) > 0) {
    line[strcspn(line, "\n")] = '\0';
    char *p;
    if (!san[0] && (p = strstr(line, "ERROR: AddressSanitizer: ")) != NULL) {
      /* "heap-use-after-free on address 0x... at pc ...": keep the kind. */
      p += strlen("ERROR: AddressSanitizer: ");
      char *on = strstr(p, " on ");
      snprintf(san, sizeof(san), "ASan %.*s",
               on ? (int)(on - p) : (int)strcspn(p, " "), p);
      in_report = 1;
    } else if (!san[0] && (p = strstr(line, "runtime error: ")) != NULL) {
      /* UBSan: "path:line:col: runtime error: what". */
      char *colon = strstr(line, ": runtime error");
      *colon = '\0';
      snprintf(san, sizeof(san), "UBSan %s at %s", p, short_path(line));
    } else if (!leak[0] && strstr(line, "ERROR: LeakSanitizer") != NULL) {
      /* Below a failed check: a case that failed may leave memory
         behind, and its own message says more. */
      snprintf(leak, sizeof(leak), "LeakSanitizer: memory leaked");
    } else if (in_report && !frame[0] && (p = strstr(line, " in ")) != NULL &&
               strstr(line, "/lib/h3wt_") != NULL) {
      /* "#3 0x55d0 in dispatch_connect /x/lib/h3wt_server.c:612:3" */
      char fn[96], where[512];
      if (sscanf(p, " in %95s %511s", fn, where) == 2) {
        snprintf(frame, sizeof(frame), " in %s (%.150s)", fn, short_path(where));
      }
    } else if (!check[0] && (p = strstr(line, tag)) != NULL) {
      snprintf(check, sizeof(check), "%s", p + strlen(tag));
    } else if (!other[0] && strncmp(line, "contract: ", 10) == 0) {
      snprintf(other, sizeof(other), "%s", line + 10);
    } else if (!san[0] && strstr(line, "Assertion `") != NULL) {
      /* assert() in the library or below it (nghttp3, ngtcp2). */
      snprintf(san, sizeof(san), "%s", line);
    }
  }
  free(line);
  if (san[0]) {
    snprintf(out, outlen, "%s%s", san, frame);
  } else if (check[0]) {
    snprintf(out, outlen, "%s", check);
  } else if (leak[0]) {
    snprintf(out, outlen, "%s", leak);
  } else {
    snprintf(out, outlen, "%s", other);
  }
}

static void dump(FILE *f) {
  char buf[4096];
  size_t n;
  rewind(f);
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
    fwrite(buf, 1, n, stdout);
  }
}

typedef struct child {
  pid_t pid;
  const contract_case *c;
  FILE *out;
  double started;
} child;

#define MAX_JOBS 16

/* Runs the selected cases, jobs at a time, each in a child whose output
   goes to a temporary file; prints one line per case.  Returns the
   number of failed cases. */
static int run_children(const contract_case **sel, size_t nsel, int jobs,
                        int verbose, int *passed, int *skipped) {
  child run[MAX_JOBS];
  size_t next = 0;
  int nrun = 0, failed = 0;
  char(*failures)[160] = calloc(nsel ? nsel : 1, sizeof(*failures));
  size_t nfail = 0;

  memset(run, 0, sizeof(run));
  while (next < nsel || nrun > 0) {
    while (nrun < jobs && next < nsel) {
      const contract_case *c = sel[next++];
      if (c->skip) {
        ++*skipped;
        printf("skip %s (h3wt_session_close_connection: not in this "
               "build)\n",
               c->name);
        continue;
      }
      child *k = NULL;
      for (int i = 0; i < jobs; ++i) {
        if (run[i].pid == 0) {
          k = &run[i];
          break;
        }
      }
      k->c = c;
      k->out = tmpfile();
      if (!k->out) {
        perror("tmpfile");
        exit(2);
      }
      fflush(stdout);
      fflush(stderr);
      k->started = now_ms();
      k->pid = fork();
      if (k->pid < 0) {
        perror("fork");
        exit(2);
      }
      if (k->pid == 0) {
        dup2(fileno(k->out), STDOUT_FILENO);
        dup2(fileno(k->out), STDERR_FILENO);
        setvbuf(stdout, NULL, _IONBF, 0);
        /* exit(), not _exit(): LeakSanitizer runs at exit. */
        exit(run_case(c));
      }
      ++nrun;
    }
    if (nrun == 0) {
      break;
    }
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) {
        continue;
      }
      perror("waitpid");
      exit(2);
    }
    child *k = NULL;
    for (int i = 0; i < jobs; ++i) {
      if (run[i].pid == pid) {
        k = &run[i];
      }
    }
    if (!k) {
      continue;
    }
    --nrun;
    double ms = now_ms() - k->started;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      ++*passed;
      printf("ok   %-50s %6.0f ms\n", k->c->name, ms);
    } else {
      char reason[512], how[64];
      ++failed;
      if (WIFSIGNALED(status)) {
        snprintf(how, sizeof(how), "signal %d", WTERMSIG(status));
      } else {
        snprintf(how, sizeof(how), "exit %d", WEXITSTATUS(status));
      }
      failure_reason(k->out, k->c->name, reason, sizeof(reason));
      printf("FAIL %-50s %6.0f ms  [%s] %s\n", k->c->name, ms, how, reason);
      snprintf(failures[nfail++], sizeof(failures[0]), "%s", k->c->name);
      if (verbose) {
        printf("---- output of %s\n", k->c->name);
        dump(k->out);
        printf("---- end of %s\n", k->c->name);
      }
    }
    fflush(stdout);
    fclose(k->out);
    k->pid = 0;
  }
  if (nfail) {
    printf("failed:");
    for (size_t i = 0; i < nfail; ++i) {
      printf(" %s", failures[i]);
    }
    printf("\n(rerun one with: test_contract NAME, in this process)\n");
  }
  free(failures);
  return failed;
}

static int selected(int argc, char **argv, int first, const char *name) {
  if (first >= argc) {
    return 1;
  }
  for (int k = first; k < argc; ++k) {
    if (fnmatch(argv[k], name, 0) == 0) {
      return 1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  char dir[] = "/tmp/h3wt-contract-XXXXXX";
  const contract_case **sel;
  size_t nsel = 0;
  int jobs = 2, verbose = 0, fork_each = -1, first = 1;
  int passed = 0, failed = 0, skipped = 0;
  double t0 = now_ms();

  build_cases();
  for (; first < argc && argv[first][0] == '-'; ++first) {
    if (strcmp(argv[first], "--list") == 0) {
      for (size_t i = 0; i < ncases; ++i) {
        printf("%s\n", cases[i].name);
      }
      return 0;
    } else if (strcmp(argv[first], "-j") == 0 && first + 1 < argc) {
      jobs = atoi(argv[++first]);
      jobs = jobs < 1 ? 1 : jobs > MAX_JOBS ? MAX_JOBS : jobs;
    } else if (strcmp(argv[first], "-v") == 0) {
      verbose = 1;
    } else if (strcmp(argv[first], "--fork") == 0) {
      fork_each = 1;
    } else if (strcmp(argv[first], "--no-fork") == 0) {
      fork_each = 0;
    } else {
      fprintf(stderr,
              "usage: %s [--list] [-j N] [-v] [--fork|--no-fork] "
              "[CASE...]\n",
              argv[0]);
      return 2;
    }
  }
  sel = calloc(ncases, sizeof(*sel));
  for (size_t i = 0; i < ncases; ++i) {
    if (selected(argc, argv, first, cases[i].name)) {
      sel[nsel++] = &cases[i];
    }
  }
  if (nsel == 0) {
    fprintf(stderr, "no case matched the names given (see --list)\n");
    free(sel);
    return 1;
  }
  if (fork_each < 0) {
    fork_each = nsel > 1;
  }

  if (loop_devcert(dir, cert_path, sizeof(cert_path), key_path,
                   sizeof(key_path)) != 0) {
    free(sel);
    return 2;
  }

  if (fork_each) {
    failed = run_children(sel, nsel, jobs, verbose, &passed, &skipped);
  } else {
    for (size_t i = 0; i < nsel; ++i) {
      double t = now_ms();
      int rv = run_case(sel[i]);
      double ms = now_ms() - t;
      if (rv == 77) {
        ++skipped;
        printf("skip %s\n", sel[i]->name);
      } else if (rv == 0) {
        ++passed;
        printf("ok   %-50s %6.0f ms\n", sel[i]->name, ms);
      } else {
        ++failed;
        printf("FAIL %-50s %6.0f ms\n", sel[i]->name, ms);
      }
      fflush(stdout);
    }
  }
  loop_devcert_remove(dir, cert_path, key_path);
  free(sel);
  printf("%d skipped, %.1f s\n", skipped, (now_ms() - t0) / 1e3);
  printf("%d passed, %d failed\n", passed, failed);
  return failed > 0 ? 1 : 0;
}
