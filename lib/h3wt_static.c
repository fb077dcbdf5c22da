/*
 * h3wt_static: serves files below a directory, streamed.
 *
 * A file is opened and stat'ed on the loop thread (both are metadata calls
 * answered from the kernel's caches for a local folder; a trip through
 * libuv's thread pool costs more than the calls, ~3 us of futex wake-ups
 * each).  Files up to SMALL_FILE bytes are read there too, in one read
 * sized to the file.  Larger files are read with libuv's asynchronous fs
 * calls (the thread pool), one 64 KiB chunk at a time.  Each chunk is handed to
 * the response queue without a copy (h3wt_request_write_owned) and freed
 * when the peer acknowledges it; reading pauses while the queue is full, so
 * a 100 MB file never holds more than max_response_queue + one chunk.
 *
 * The request may end (client reset, connection lost) while an fs call is
 * in flight; the transfer object then outlives it until that call returns.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h3wt_path.h"
#include "h3wt_server.h"

#define CHUNK 65536
/* Read on the loop thread in one go: a page-cache copy, cheaper than a
   thread-pool round trip.  (A web folder on a slow network file system
   would want this lower.) */
#define SMALL_FILE 16384

struct h3wt_static_mount {
  char *prefix;
  size_t prefixlen;
  char *dir;
};

typedef struct xfer {
  uv_fs_t fs;
  h3wt_request *req; /* NULL once the request ended */
  uv_file fd;
  int busy; /* an fs call is in flight */
  uint64_t size, offset;
  uint8_t *pending; /* a chunk read but refused with WOULDBLOCK */
  size_t pendinglen;
  uint8_t *buf;
} xfer;

int h3wt_static_mount_new(h3wt_static_mount **pm, const char *prefix,
                          const char *dir) {
  h3wt_static_mount *m = calloc(1, sizeof(*m));
  if (!m) {
    return H3WT_ERR_NOMEM;
  }
  m->prefix = strdup(prefix);
  m->dir = strdup(dir);
  if (!m->prefix || !m->dir) {
    h3wt_static_mount_del(m);
    return H3WT_ERR_NOMEM;
  }
  m->prefixlen = strlen(prefix);
  /* "dir/" and "dir" name the same root. */
  size_t dl = strlen(m->dir);
  while (dl > 1 && m->dir[dl - 1] == '/') {
    m->dir[--dl] = '\0';
  }
  *pm = m;
  return 0;
}

void h3wt_static_mount_del(h3wt_static_mount *m) {
  if (!m) {
    return;
  }
  free(m->prefix);
  free(m->dir);
  free(m);
}

static void chunk_free(void *data, void *ud) {
  free(data);
}

static void xfer_release(xfer *x) {
  /* Called when neither the request nor an fs call needs x any more. */
  if (x->fd >= 0) {
    uv_fs_t req;
    uv_fs_close(NULL, &req, x->fd, NULL); /* synchronous: cheap */
    uv_fs_req_cleanup(&req);
  }
  free(x->pending);
  free(x->buf);
  free(x);
}

static void fail(xfer *x, int status) {
  h3wt_request *req = x->req;
  if (!req) {
    return;
  }
  char body[64];
  int n = snprintf(body, sizeof(body), "%d %s\n", status,
                   h3wt_status_text(status));
  h3wt_header h[] = {{"content-type", 12, "text/plain; charset=utf-8", 25}};
  h3wt_request_respond(req, status, h, 1, body, (size_t)n);
}

static void read_next(xfer *x);

/* After a chunk went into the queue: the next read, or the end. */
static void advance(xfer *x) {
  if (x->offset >= x->size) {
    h3wt_request_end(x->req);
  } else {
    read_next(x);
  }
}

static void got_chunk(xfer *x, ssize_t n);

static void on_read(uv_fs_t *fs) {
  xfer *x = fs->data;
  ssize_t n = fs->result;
  uv_fs_req_cleanup(fs);
  x->busy = 0;
  if (!x->req) {
    xfer_release(x);
    return;
  }
  got_chunk(x, n);
}

/* n bytes (or an error) read into x->buf at x->offset. */
static void got_chunk(xfer *x, ssize_t n) {
  if (n <= 0) {
    /* A read error, or the file shrank below the content-length we
       promised.  Headers are out: all we can do is abort the stream. */
    H3WT_LOG(h3wt_server_logger(h3wt_request_server(x->req)), H3WT_LOG_WARN,
             "static", "read: %s", n < 0 ? uv_strerror((int)n) : "short file");
    h3wt_request_reset(x->req, 0x102 /* H3_INTERNAL_ERROR */);
    return;
  }
  /* Never send more than content-length, even if the file grew. */
  size_t take = (size_t)n;
  if ((uint64_t)take > x->size - x->offset) {
    take = (size_t)(x->size - x->offset);
  }
  x->offset += take;
  int rv = h3wt_request_write_owned(x->req, x->buf, take, chunk_free, NULL);
  if (rv == H3WT_ERR_WOULDBLOCK) {
    /* The queue is full: keep the chunk, on_writable sends it. */
    x->pending = x->buf;
    x->pendinglen = take;
    x->buf = NULL;
    return;
  }
  if (rv != 0) {
    h3wt_request_reset(x->req, 0x102);
    return;
  }
  x->buf = NULL;
  advance(x);
}

static void read_next(xfer *x) {
  h3wt_request *req = x->req;
  uint64_t left = x->size - x->offset;
  size_t want = left < CHUNK ? (size_t)left : CHUNK;
  if (!x->buf) {
    x->buf = malloc(want); /* a 1 KiB file gets 1 KiB */
    if (!x->buf) {
      h3wt_request_reset(req, 0x102);
      return;
    }
  }
  uv_buf_t b = uv_buf_init((char *)x->buf, (unsigned int)want);
  if (x->offset == 0 && x->size <= SMALL_FILE) {
    uv_fs_t r;
    ssize_t n = uv_fs_read(NULL, &r, x->fd, &b, 1, 0, NULL);
    uv_fs_req_cleanup(&r);
    got_chunk(x, n);
    return;
  }
  x->fs.data = x;
  if (uv_fs_read(h3wt_server_loop(h3wt_request_server(req)), &x->fs, x->fd,
                 &b, 1, (int64_t)x->offset, on_read) == 0) {
    x->busy = 1;
  } else {
    h3wt_request_reset(req, 0x102);
  }
}

/* The file is open and stat'ed: the response head, then the body. */
static void begin(xfer *x, int result, const uv_stat_t *st) {
  if (result < 0 || !S_ISREG(st->st_mode)) {
    fail(x, 404); /* directories and devices are not served */
    return;
  }
  x->size = st->st_size;
  const char *path = h3wt_request_path(x->req);
  char name[1024];
  size_t pl = strcspn(path, "?#");
  if (pl >= sizeof(name)) {
    pl = sizeof(name) - 1;
  }
  memcpy(name, path, pl);
  name[pl] = '\0';
  if (pl && name[pl - 1] == '/') {
    strncat(name, "index.html", sizeof(name) - pl - 1);
  }
  char cl[24];
  snprintf(cl, sizeof(cl), "%llu", (unsigned long long)x->size);
  const char *ct = h3wt_path_mime_type(name);
  h3wt_header h[] = {
      {"content-type", 12, ct, strlen(ct)},
      {"content-length", 14, cl, strlen(cl)},
      {"cache-control", 13, "no-cache", 8},
  };
  if (h3wt_request_respond_start(x->req, 200, h, 3) != 0) {
    return;
  }
  if (x->size == 0 || strcmp(h3wt_request_method(x->req), "HEAD") == 0) {
    h3wt_request_end(x->req);
    return;
  }
  read_next(x);
}

static void static_on_request(h3wt_request *req, void *route_data) {
  h3wt_static_mount *m = route_data;
  const char *path = h3wt_request_path(req);
  char file[4096];
  /* The part after the mount prefix, keeping its leading '/'. */
  const char *rel = path + m->prefixlen - 1;
  int rv = h3wt_path_resolve(m->dir, rel, strlen(rel), file, sizeof(file));
  h3wt_header h[] = {{"content-type", 12, "text/plain; charset=utf-8", 25}};
  if (rv == H3WT_PATH_BAD_REQUEST) {
    h3wt_request_respond(req, 400, h, 1, "400 Bad Request\n", 16);
    return;
  }
  if (rv != H3WT_PATH_OK) {
    h3wt_request_respond(req, 404, h, 1, "404 Not Found\n", 14);
    return;
  }
  xfer *x = calloc(1, sizeof(*x));
  if (!x) {
    h3wt_request_reset(req, 0x102);
    return;
  }
  x->req = req;
  h3wt_request_set_data(req, x);
  uv_fs_t r;
  x->fd = uv_fs_open(NULL, &r, file, O_RDONLY | O_CLOEXEC, 0, NULL);
  uv_fs_req_cleanup(&r);
  if (x->fd < 0) {
    fail(x, 404);
    return;
  }
  int result = uv_fs_fstat(NULL, &r, x->fd, NULL);
  uv_stat_t st = r.statbuf;
  uv_fs_req_cleanup(&r);
  begin(x, result, &st);
}

static void static_on_writable(h3wt_request *req, void *route_data) {
  xfer *x = h3wt_request_get_data(req);
  if (!x || x->busy) {
    return;
  }
  if (x->pending) {
    int rv = h3wt_request_write_owned(req, x->pending, x->pendinglen,
                                      chunk_free, NULL);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      return;
    }
    if (rv != 0) {
      h3wt_request_reset(req, 0x102);
      return;
    }
    x->pending = NULL;
  }
  advance(x);
}

static void static_on_close(h3wt_request *req, uint64_t code,
                            void *route_data) {
  xfer *x = h3wt_request_get_data(req);
  if (!x) {
    return;
  }
  x->req = NULL;
  if (!x->busy) {
    xfer_release(x);
  }
}

const h3wt_request_handler h3wt_static_handler = {
    static_on_request, NULL, NULL, static_on_writable, static_on_close,
};
