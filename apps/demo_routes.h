/*
 * demo_routes: the demo server's routes.
 *
 * HTTP/3:
 *   GET /         a hello text
 *   POST /echo    JSON parsed and re-serialised (pretty) with jansson
 *
 * WebTransport (extended CONNECT):
 *   /wt/echo      datagrams echoed; each peer bidi stream echoed on itself;
 *                 each peer uni stream answered on a server uni stream;
 *                 resets and STOP_SENDING mirrored with the same code
 *   /wt/ticker    a server uni stream with a JSON line every 500 ms, plus a
 *                 datagram per tick
 *
 * (The demo page's chat is on the channels route, demo_channels.h.)
 *
 * Every session close is logged at info level as
 *   "<path> session <id> closed: code N reason '...'"
 * (the ticker's line is what browser tests look for).
 */
#ifndef DEMO_ROUTES_H
#define DEMO_ROUTES_H

#include <uv.h>

#include "h3wt/h3wt.h"

typedef struct demo_wt demo_wt;

typedef struct demo_wt_opts {
  /* When set, WebTransport sessions whose origin header differs get 403.
     NULL accepts any origin (and none). */
  const char *origin;
  /* The log sink (the server's settings). */
  h3wt_log_cb log_cb;
  void *log_user_data;
  h3wt_log_level log_level;
} demo_wt_opts;

/* GET / and POST /echo.  Returns 0 or an H3WT_ERR_* code. */
int demo_routes_http(h3wt_server *server);

/* The WebTransport routes above, on loop (the ticker's timers).  *pwt owns
   the routes' state; free it with demo_wt_del() after the server closed
   (every session has ended by then).  Returns 0 or an H3WT_ERR_* code. */
int demo_routes_wt(h3wt_server *server, uv_loop_t *loop,
                   const demo_wt_opts *opts, demo_wt **pwt);

void demo_wt_del(demo_wt *wt);

#endif /* DEMO_ROUTES_H */
