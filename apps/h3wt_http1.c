/*
 * h3wt_http1: the demo page's HTTP/1.1 listener (see h3wt_http1.h).
 *
 * One connection handles one request at a time: llhttp is paused from
 * on_message_complete, reading stops, the response is produced (a file is
 * opened, stat'ed and read with libuv's asynchronous fs calls, then written
 * with the head in one uv_write), and when the write completes parsing
 * resumes on the bytes left over (pipelining) and reading starts again.
 * A connection is freed only once both its handles are closed and no fs
 * call is in flight (the libuv rule: memory is reusable only after
 * close_cb, and an fs request owns its uv_fs_t until its callback).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <llhttp.h>

#include "h3wt_http1.h"
/* The library's path resolver, compiled into the demo as a source file
   (apps/CMakeLists.txt) rather than reached through the library: the
   listener must refuse exactly what h3wt_server_static() refuses, and the
   resolver is not public API.  Relative, because apps see only the public
   include directory. */
#include "../lib/h3wt_path.h"

#define READ_BUF 16384
#define MAX_LISTENERS 2
#define LISTEN_TRIES 8 /* ephemeral port: 127.0.0.1's port may be busy on ::1  \
                        */

typedef struct conn conn;

struct h3wt_http1 {
  uv_loop_t *loop;
  h3wt_http1_settings s;
  char *web_root;
  char *config;
  size_t configlen;
  uv_tcp_t *listeners[MAX_LISTENERS];
  size_t nlisteners;
  uint16_t port;
  conn *conns; /* doubly linked */
  size_t nconns;
  size_t open_handles; /* listeners, refused sockets, connection handles */
  size_t fs_busy;      /* fs calls (or hosts' documents) in flight */
  int closing;
  void (*close_cb)(h3wt_http1 *, void *);
  void *close_ud;
  uint64_t served;
};

struct conn {
  h3wt_http1 *h;
  conn *prev, *next;
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles; /* of tcp and timer, still open */
  int closing;
  llhttp_t parser;
  char peer[64];
  /* The request being parsed. */
  char *url;
  size_t urllen;
  size_t head_bytes;
  uint64_t body_bytes;
  int reject; /* a limit was hit: this status answers, then close */
  /* The response in progress. */
  int busy;
  int keep_alive;
  int head_only;
  char *rest; /* bytes read past the current request (pipelined) */
  size_t restlen;
  uv_fs_t fs;
  int fs_busy; /* an fs call or the host's document in flight */
  uv_file fd;
  uint64_t size, got;
  char *body; /* file bytes (owned) */
  const char *mime;
  char path[4096];
  char head[1024];
  char errbody[64];
  uv_write_t wr;
  char rbuf[READ_BUF];
};

static const llhttp_settings_t *parser_settings(void);

/* ---- logging ---------------------------------------------------------------
 */

static void hlog(const h3wt_http1 *h, h3wt_log_level level, const char *fmt,
                 ...) __attribute__((format(printf, 3, 4)));

static void hlog(const h3wt_http1 *h, h3wt_log_level level, const char *fmt,
                 ...) {
  char buf[1024];
  va_list ap;
  if (!h->s.log_cb || level > h->s.log_level) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  h->s.log_cb(level, "http1", buf, h->s.log_user_data);
}

/* ---- settings
 * ---------------------------------------------------------------- */

void h3wt_http1_settings_default(h3wt_http1_settings *s) {
  memset(s, 0, sizeof(*s));
  s->port = 8080;
  s->max_connections = 64;
  s->max_head_bytes = 8192;
  s->max_url_bytes = 2048;
  s->max_body_bytes = 65536;
  s->max_file_bytes = 16u << 20;
  s->idle_timeout_ms = 15000;
  s->log_level = H3WT_LOG_INFO;
}

int h3wt_http1_new(h3wt_http1 **ph, uv_loop_t *loop,
                   const h3wt_http1_settings *s) {
  h3wt_http1 *h;
  if (!ph || !loop || !s || !s->web_root || s->max_connections == 0 ||
      s->max_url_bytes == 0 || s->max_head_bytes < s->max_url_bytes) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  h = calloc(1, sizeof(*h));
  if (!h) {
    return H3WT_ERR_NOMEM;
  }
  h->loop = loop;
  h->s = *s;
  h->web_root = strdup(s->web_root);
  if (s->config_json) {
    h->config = strdup(s->config_json);
    h->configlen = strlen(s->config_json);
  }
  if (!h->web_root || (s->config_json && !h->config)) {
    free(h->web_root);
    free(h->config);
    free(h);
    return H3WT_ERR_NOMEM;
  }
  h->s.web_root = h->web_root;
  h->s.config_json = h->config;
  *ph = h;
  return 0;
}

void h3wt_http1_del(h3wt_http1 *h) {
  if (!h) {
    return;
  }
  free(h->web_root);
  free(h->config);
  free(h);
}

uint16_t h3wt_http1_port(const h3wt_http1 *h) {
  return h ? h->port : 0;
}

/* ---- closing
 * ------------------------------------------------------------------- */

static void maybe_closed(h3wt_http1 *h) {
  if (h->closing && h->open_handles == 0 && h->fs_busy == 0 && h->close_cb) {
    void (*cb)(h3wt_http1 *, void *) = h->close_cb;
    h->close_cb = NULL;
    cb(h, h->close_ud);
  }
}

static void handle_freed(uv_handle_t *handle) {
  h3wt_http1 *h = handle->data;
  free(handle);
  h->open_handles--;
  maybe_closed(h);
}

static void conn_maybe_free(conn *c) {
  h3wt_http1 *h = c->h;
  if (c->handles > 0 || c->fs_busy) {
    return;
  }
  if (c->prev) {
    c->prev->next = c->next;
  } else {
    h->conns = c->next;
  }
  if (c->next) {
    c->next->prev = c->prev;
  }
  h->nconns--;
  free(c->url);
  free(c->rest);
  free(c->body);
  free(c);
  maybe_closed(h);
}

static void conn_handle_closed(uv_handle_t *handle) {
  conn *c = handle->data;
  c->handles--;
  c->h->open_handles--;
  conn_maybe_free(c);
}

static void conn_close(conn *c) {
  if (c->closing) {
    return;
  }
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

void h3wt_http1_close(h3wt_http1 *h, void (*cb)(h3wt_http1 *, void *),
                      void *user_data) {
  if (h->closing) {
    return;
  }
  h->closing = 1;
  h->close_cb = cb;
  h->close_ud = user_data;
  for (size_t i = 0; i < h->nlisteners; ++i) {
    uv_close((uv_handle_t *)h->listeners[i], handle_freed);
  }
  h->nlisteners = 0;
  for (conn *c = h->conns; c; c = c->next) {
    conn_close(c);
  }
  maybe_closed(h);
}

/* ---- responses
 * ------------------------------------------------------------------ */

static void response_done(conn *c);

static void on_written(uv_write_t *wr, int status) {
  conn *c = wr->data;
  free(c->body);
  c->body = NULL;
  if (status < 0) {
    conn_close(c);
    return;
  }
  response_done(c);
}

/* Writes the head and (unless HEAD) body.  body is borrowed for static
   bodies (owned == 0) or taken over (owned != 0, freed after the write). */
static void send_response(conn *c, int status, const char *ctype,
                          const char *body, uint64_t len, int owned) {
  uv_buf_t bufs[2];
  unsigned nbufs = 1;
  int n;
  if (c->closing) {
    if (owned) {
      free((char *)body);
    }
    return;
  }
  n = snprintf(c->head, sizeof(c->head),
               "HTTP/1.1 %d %s\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %" PRIu64 "\r\n"
               "Cache-Control: no-store\r\n"
               "X-Content-Type-Options: nosniff\r\n"
               "Referrer-Policy: no-referrer\r\n"
               "Server: h3wt/" H3WT_VERSION " (demo page listener)\r\n"
               "%s"
               "Connection: %s\r\n\r\n",
               status, h3wt_status_text(status), ctype, len,
               status == 405 ? "Allow: GET, HEAD\r\n" : "",
               c->keep_alive ? "keep-alive" : "close");
  bufs[0] = uv_buf_init(c->head, (unsigned)n);
  if (!c->head_only && len > 0) {
    bufs[1] = uv_buf_init((char *)body, (unsigned)len);
    nbufs = 2;
  }
  c->body = owned ? (char *)body : NULL;
  c->wr.data = c;
  hlog(c->h, H3WT_LOG_DEBUG, "%s %s %.*s -> %d (%" PRIu64 " bytes)", c->peer,
       llhttp_method_name((llhttp_method_t)c->parser.method),
       (int)(c->urllen > 200 ? 200 : c->urllen), c->url ? c->url : "", status,
       len);
  if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, bufs, nbufs, on_written) != 0) {
    free(c->body);
    c->body = NULL;
    conn_close(c);
  }
}

static void send_error(conn *c, int status) {
  int n = snprintf(c->errbody, sizeof(c->errbody), "%d %s\n", status,
                   h3wt_status_text(status));
  send_response(c, status, "text/plain; charset=utf-8", c->errbody, (uint64_t)n,
                0);
}

/* ---- files
 * ---------------------------------------------------------------------------
 */

static void file_fail(conn *c, int status) {
  if (c->fd >= 0) {
    uv_fs_t req;
    uv_fs_close(NULL, &req, c->fd, NULL); /* synchronous: cheap */
    uv_fs_req_cleanup(&req);
    c->fd = -1;
  }
  free(c->body);
  c->body = NULL;
  if (!c->closing) {
    send_error(c, status);
  }
}

/* Ends an fs call: returns 0 when the connection still wants the result. */
static int fs_end(conn *c) {
  c->fs_busy = 0;
  c->h->fs_busy--;
  if (c->closing) {
    file_fail(c, 500);
    conn_maybe_free(c);
    return -1;
  }
  return 0;
}

static void on_file_read(uv_fs_t *req);

static void file_read_next(conn *c) {
  uv_buf_t b = uv_buf_init(c->body + c->got, (unsigned)(c->size - c->got));
  c->fs_busy = 1;
  c->h->fs_busy++;
  if (uv_fs_read(c->h->loop, &c->fs, c->fd, &b, 1, (int64_t)c->got,
                 on_file_read) != 0) {
    c->fs_busy = 0;
    c->h->fs_busy--;
    file_fail(c, 500);
  }
}

static void on_file_read(uv_fs_t *req) {
  conn *c = req->data;
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  if (fs_end(c) != 0) {
    return;
  }
  if (r <= 0) { /* an error, or the file shrank under us */
    hlog(c->h, H3WT_LOG_WARN, "read %s: %s", c->path,
         r < 0 ? uv_strerror((int)r) : "file shrank");
    file_fail(c, 500);
    return;
  }
  c->got += (uint64_t)r;
  if (c->got < c->size) {
    file_read_next(c);
    return;
  }
  {
    uv_fs_t creq;
    char *body = c->body;
    uv_fs_close(NULL, &creq, c->fd, NULL);
    uv_fs_req_cleanup(&creq);
    c->fd = -1;
    c->body = NULL;
    send_response(c, 200, c->mime, body, c->size, 1);
  }
}

static void on_file_stat(uv_fs_t *req) {
  conn *c = req->data;
  int r = (int)req->result;
  uv_stat_t st = req->statbuf;
  uv_fs_req_cleanup(req);
  if (fs_end(c) != 0) {
    return;
  }
  if (r < 0 || !S_ISREG(st.st_mode)) {
    file_fail(c, 404); /* directories and devices are not served */
    return;
  }
  if (st.st_size > c->h->s.max_file_bytes) {
    hlog(c->h, H3WT_LOG_WARN, "%s: %" PRIu64 " bytes is over the limit",
         c->path, (uint64_t)st.st_size);
    file_fail(c, 500);
    return;
  }
  c->size = st.st_size;
  c->got = 0;
  if (c->head_only || c->size == 0) {
    uv_fs_t creq;
    uv_fs_close(NULL, &creq, c->fd, NULL);
    uv_fs_req_cleanup(&creq);
    c->fd = -1;
    send_response(c, 200, c->mime, NULL, c->size, 0);
    return;
  }
  c->body = malloc(c->size);
  if (!c->body) {
    file_fail(c, 500);
    return;
  }
  file_read_next(c);
}

static void on_file_open(uv_fs_t *req) {
  conn *c = req->data;
  int r = (int)req->result;
  uv_fs_req_cleanup(req);
  if (r >= 0) {
    c->fd = r;
  }
  if (fs_end(c) != 0) {
    return;
  }
  if (r < 0) {
    file_fail(c, r == UV_ENOENT || r == UV_ENOTDIR ? 404
                 : r == UV_EACCES                  ? 403
                                                   : 500);
    return;
  }
  c->fs_busy = 1;
  c->h->fs_busy++;
  if (uv_fs_fstat(c->h->loop, &c->fs, c->fd, on_file_stat) != 0) {
    c->fs_busy = 0;
    c->h->fs_busy--;
    file_fail(c, 500);
  }
}

static void serve_file(conn *c) {
  int r = h3wt_path_resolve(c->h->web_root, c->url, c->urllen, c->path,
                            sizeof(c->path));
  if (r != H3WT_PATH_OK) {
    send_error(c, r == H3WT_PATH_BAD_REQUEST ? 400
                  : r == H3WT_PATH_TOO_LONG  ? 414
                                             : 404);
    return;
  }
  c->mime = h3wt_path_mime_type(c->path);
  c->fd = -1;
  c->fs.data = c;
  c->fs_busy = 1;
  c->h->fs_busy++;
  if (uv_fs_open(c->h->loop, &c->fs, c->path, O_RDONLY | O_CLOEXEC, 0,
                 on_file_open) != 0) {
    c->fs_busy = 0;
    c->h->fs_busy--;
    send_error(c, 500);
  }
}

/* ---- requests
 * ----------------------------------------------------------------------------
 */

static int is_config_path(const conn *c) {
  static const char p[] = "/config.json";
  size_t n = c->urllen;
  const char *q = memchr(c->url, '?', n);
  if (q) {
    n = (size_t)(q - c->url);
  }
  return n == sizeof(p) - 1 && memcmp(c->url, p, n) == 0;
}

/* Asks the host's callback.  Returns 1 when it takes the request: its
   answer (h3wt_http1_answer) holds the connection like a file read in
   flight. */
static int dynamic(conn *c) {
  char path[256];
  size_t n = strcspn(c->url, "?");
  if (n >= sizeof(path)) {
    return 0; /* longer than any dynamic path: a file, or 404 */
  }
  memcpy(path, c->url, n);
  path[n] = '\0';
  c->fs_busy = 1;
  c->h->fs_busy++;
  if (c->h->s.dynamic(path, (h3wt_http1_later *)c,
                      c->h->s.dynamic_user_data) == 0) {
    c->fs_busy = 0;
    c->h->fs_busy--;
    return 0;
  }
  return 1;
}

void h3wt_http1_answer(h3wt_http1_later *later, char *body, size_t len,
                       const char *ctype) {
  conn *c = (conn *)later;
  if (fs_end(c) != 0) {
    free(body); /* the connection went while the host was busy */
    return;
  }
  if (!body) {
    send_error(c, 500);
    return;
  }
  send_response(c, 200, ctype, body, len, 1);
}

static void handle_request(conn *c) {
  uint8_t m = c->parser.method;
  c->busy = 1;
  c->keep_alive = llhttp_should_keep_alive(&c->parser) && !c->reject &&
                  !c->parser.upgrade && !c->h->closing;
  c->head_only = m == HTTP_HEAD;
  if (c->reject) {
    send_error(c, c->reject);
    return;
  }
  if (m != HTTP_GET && m != HTTP_HEAD) {
    send_error(c, 405);
    return;
  }
  if (c->urllen == 0 || c->url[0] != '/') {
    send_error(c, 400); /* absolute-form and '*' are not for us */
    return;
  }
  if (c->h->s.dynamic && dynamic(c)) {
    return;
  }
  if (is_config_path(c)) {
    if (!c->h->config) {
      send_error(c, 404);
    } else {
      send_response(c, 200, "application/json", c->h->config, c->h->configlen,
                    0);
    }
    return;
  }
  serve_file(c);
}

static void conn_feed(conn *c, const char *data, size_t len);

static void on_timeout(uv_timer_t *t) {
  conn *c = t->data;
  hlog(c->h, H3WT_LOG_DEBUG, "%s: idle, closing", c->peer);
  conn_close(c);
}

static void timer_restart(conn *c) {
  uv_timer_start(&c->timer, on_timeout, c->h->s.idle_timeout_ms, 0);
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  conn *c = handle->data;
  (void)suggested;
  *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
  conn *c = stream->data;
  if (n < 0) {
    conn_close(c); /* EOF or error; no response is in flight (not reading) */
    return;
  }
  if (n > 0) {
    conn_feed(c, buf->base, (size_t)n);
  }
}

static void response_done(conn *c) {
  c->busy = 0;
  c->urllen = 0;
  c->head_bytes = 0;
  c->body_bytes = 0;
  c->reject = 0;
  c->size = c->got = 0;
  c->fd = -1;
  c->h->served++;
  if (!c->keep_alive || c->closing) {
    conn_close(c);
    return;
  }
  timer_restart(c);
  llhttp_resume(&c->parser);
  if (c->rest) {
    char *rest = c->rest;
    size_t restlen = c->restlen;
    c->rest = NULL;
    c->restlen = 0;
    conn_feed(c, rest, restlen);
    free(rest);
  }
  if (!c->busy && !c->closing &&
      uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) != 0) {
    conn_close(c);
  }
}

static void conn_feed(conn *c, const char *data, size_t len) {
  llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
  if (e == HPE_OK || c->closing) {
    return;
  }
  if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
    /* on_message_complete started a response: keep what follows. */
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t used =
        pos && pos >= data && pos <= data + len ? (size_t)(pos - data) : len;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (used < len && c->keep_alive) {
      c->rest = malloc(len - used);
      if (!c->rest) {
        c->keep_alive = 0;
      } else {
        memcpy(c->rest, data + used, len - used);
        c->restlen = len - used;
      }
    }
    return;
  }
  /* A parse error, or a limit our callbacks enforced. */
  hlog(c->h, H3WT_LOG_DEBUG, "%s: bad request: %s (%s)", c->peer,
       llhttp_errno_name(e), llhttp_get_error_reason(&c->parser));
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (c->busy) {
    return; /* cannot happen: parsing pauses while a response is out */
  }
  c->busy = 1;
  c->keep_alive = 0;
  c->head_only = 0;
  send_error(c, c->reject ? c->reject : 400);
}

/* llhttp callbacks.  parser->data is the connection. */

static int on_message_begin(llhttp_t *p) {
  conn *c = p->data;
  c->urllen = 0;
  c->head_bytes = 0;
  c->body_bytes = 0;
  c->reject = 0;
  return 0;
}

static int count_head(conn *c, size_t len) {
  c->head_bytes += len;
  if (c->head_bytes > c->h->s.max_head_bytes) {
    c->reject = 431;
    return -1;
  }
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  conn *c = p->data;
  if (c->urllen + len > c->h->s.max_url_bytes) {
    c->reject = 414;
    return -1;
  }
  memcpy(c->url + c->urllen, at, len);
  c->urllen += len;
  c->url[c->urllen] = '\0';
  return count_head(c, len);
}

static int on_head_data(llhttp_t *p, const char *at, size_t len) {
  (void)at;
  /* +4 per piece roughly accounts for ": " and CRLF, so a flood of empty
     headers also hits the limit. */
  return count_head(p->data, len + 4);
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  conn *c = p->data;
  (void)at;
  c->body_bytes += len;
  if (c->body_bytes > c->h->s.max_body_bytes) {
    c->reject = 413;
    return -1;
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  conn *c = p->data;
  handle_request(c);
  return HPE_PAUSED;
}

static const llhttp_settings_t *parser_settings(void) {
  static llhttp_settings_t s;
  static int done;
  if (!done) {
    llhttp_settings_init(&s);
    s.on_message_begin = on_message_begin;
    s.on_url = on_url;
    s.on_method = on_head_data;
    s.on_version = on_head_data;
    s.on_header_field = on_head_data;
    s.on_header_value = on_head_data;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    done = 1;
  }
  return &s;
}

/* ---- accepting
 * -------------------------------------------------------------------------------
 */

static void on_connection(uv_stream_t *server, int status) {
  h3wt_http1 *h = server->data;
  conn *c;
  if (status < 0 || h->closing) {
    return;
  }
  if (h->nconns >= h->s.max_connections) {
    /* Accept and close at once, so the backlog does not fill up. */
    uv_tcp_t *t = malloc(sizeof(*t));
    if (!t || uv_tcp_init(h->loop, t) != 0) {
      free(t);
      return;
    }
    t->data = h;
    h->open_handles++;
    if (uv_accept(server, (uv_stream_t *)t) == 0) {
      hlog(h, H3WT_LOG_WARN, "too many connections (%zu): refused one",
           h->nconns);
    }
    uv_close((uv_handle_t *)t, handle_freed);
    return;
  }
  c = calloc(1, sizeof(*c));
  if (c) {
    c->url = malloc(h->s.max_url_bytes + 1);
  }
  if (!c || !c->url) {
    if (c) {
      free(c);
    }
    return;
  }
  c->h = h;
  c->fd = -1;
  if (uv_tcp_init(h->loop, &c->tcp) != 0) {
    free(c->url);
    free(c);
    return;
  }
  uv_timer_init(h->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  h->open_handles += 2;
  c->next = h->conns;
  if (h->conns) {
    h->conns->prev = c;
  }
  h->conns = c;
  h->nconns++;
  llhttp_init(&c->parser, HTTP_REQUEST, parser_settings());
  c->parser.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
      if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
      } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
      }
    }
  }
  uv_tcp_nodelay(&c->tcp, 1);
  timer_restart(c);
  if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) != 0) {
    conn_close(c);
  }
}

/* Binds and listens on one loopback address.  Returns 0 or a libuv error;
   on error the handle is closed. */
static int listen_one(h3wt_http1 *h, const struct sockaddr *sa,
                      unsigned flags) {
  uv_tcp_t *t = malloc(sizeof(*t));
  int r;
  if (!t) {
    return UV_ENOMEM;
  }
  r = uv_tcp_init(h->loop, t);
  if (r != 0) {
    free(t);
    return r;
  }
  t->data = h;
  h->open_handles++;
  r = uv_tcp_bind(t, sa, flags);
  if (r == 0) {
    /* Bind errors such as EADDRINUSE are reported here by libuv. */
    r = uv_listen((uv_stream_t *)t, 128, on_connection);
  }
  if (r != 0) {
    uv_close((uv_handle_t *)t, handle_freed);
    return r;
  }
  h->listeners[h->nlisteners++] = t;
  return 0;
}

static void close_listeners(h3wt_http1 *h) {
  for (size_t i = 0; i < h->nlisteners; ++i) {
    uv_close((uv_handle_t *)h->listeners[i], handle_freed);
  }
  h->nlisteners = 0;
}

int h3wt_http1_listen(h3wt_http1 *h) {
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  struct sockaddr_storage ss;
  int r, len;

  if (h->closing || h->nlisteners) {
    return H3WT_ERR_INVALID_STATE;
  }
  for (int attempt = 0; attempt < LISTEN_TRIES; ++attempt) {
    uv_ip4_addr("127.0.0.1", h->s.port, &a4);
    r = listen_one(h, (const struct sockaddr *)&a4, 0);
    if (r != 0) {
      hlog(h, H3WT_LOG_ERROR, "cannot listen on 127.0.0.1 port %u: %s",
           h->s.port, uv_strerror(r));
      return H3WT_ERR_ADDRESS;
    }
    len = sizeof(ss);
    r = uv_tcp_getsockname(h->listeners[0], (struct sockaddr *)&ss, &len);
    if (r != 0) {
      close_listeners(h);
      return H3WT_ERR_ADDRESS;
    }
    h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_ip6_addr("::1", h->port, &a6);
    r = listen_one(h, (const struct sockaddr *)&a6, UV_TCP_IPV6ONLY);
    if (r == 0) {
      return 0;
    }
    if (r == UV_EADDRNOTAVAIL || r == UV_EAFNOSUPPORT) {
      hlog(h, H3WT_LOG_DEBUG, "no ::1 here (%s): IPv4 only", uv_strerror(r));
      return 0;
    }
    if (r == UV_EADDRINUSE && h->s.port == 0) {
      close_listeners(h); /* that ephemeral port is taken on ::1: again */
      h->port = 0;
      continue;
    }
    hlog(h, H3WT_LOG_ERROR, "cannot listen on ::1 port %u: %s", h->port,
         uv_strerror(r));
    close_listeners(h);
    h->port = 0;
    return H3WT_ERR_ADDRESS;
  }
  hlog(h, H3WT_LOG_ERROR, "no ephemeral port free on both 127.0.0.1 and ::1");
  return H3WT_ERR_ADDRESS;
}
