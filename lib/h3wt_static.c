/*
 * h3wt_static: serves files below a directory, from a bounded cache of
 * small files or streamed.
 *
 * Small files (up to max_file, 64 KiB by default) are answered from memory:
 * the first request opens, stats and reads the file on the loop thread in
 * one read sized to it, and keeps the bytes in one allocation with the
 * file's identity (device, inode, size, mtime, ctime), the content-length
 * text and the content type.  Later requests for the same resolved path
 * hand those bytes to the response queue by reference
 * (h3wt_request_respond_owned: no copy, no file opened); the entry is
 * reference-counted, so a response still queued keeps it alive after an
 * eviction or a change.  What the cache holds is bounded (max_total,
 * 8 MiB by default, least recently used files go first).
 *
 * A change on disk is noticed by stat(): before serving a cached file
 * whose last check is at least revalidate_ms old (100 ms by default, loop
 * time), any difference in the identity drops it and the request reads
 * the file again; a file gone or turned into something else is 404 as
 * before.  A stat() costs 1-2 us here (about what the whole cached
 * response costs), so doing it for every request would give back much
 * of what the cache saves; once per 100 ms per file is nothing.  One trap
 * remains with any size-and-times check: a file changed twice within the
 * file system's timestamp granularity (a jiffy on ext4, 1-2 s on older
 * file systems) keeps its times, so the second change would go unseen
 * forever.  Hence the racy rule (git's "racy clean" problem): a file whose
 * ctime is less than racy_ms before the read began is served but not
 * kept, so every cached file's ctime lies clearly in the past and any
 * later change gives it a new one.  ctime, unlike mtime, cannot be set by
 * a writer, so copying with preserved times does not hide a change either.
 * Why not inotify (uv_fs_event): its events race with the requests that
 * follow a change (both are just readable descriptors in one epoll batch),
 * and watches are a limited per-user resource.
 *
 * Larger files are streamed: opened and stat'ed on the loop thread (both
 * are metadata calls answered from the kernel's caches for a local folder;
 * a trip through libuv's thread pool costs more than the calls, ~3 us of
 * futex wake-ups each) and read with libuv's asynchronous fs calls (the
 * thread pool), one 64 KiB chunk at a time.  Each chunk is handed to the
 * response queue without a copy (h3wt_request_write_owned) and freed when
 * the peer acknowledges it; reading pauses while the queue is full, so a
 * 100 MB file never holds more than max_response_queue + one chunk.
 *
 * The request may end (client reset, connection lost) while an fs call is
 * in flight; the transfer object then outlives it until that call returns.
 *
 * Path safety is h3wt_path_resolve's alone, run on every request before
 * the cache is looked at: the cache is keyed by the resolved file name, so
 * it can only answer for a file the request was allowed to name.
 */
#include "h3wt_static.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h3wt_list.h"
#include "h3wt_path.h"
#include "h3wt_server.h"

#define CHUNK 65536
/* Streamed files up to this size are read on the loop thread in one go
   (only with a max_file below it): a page-cache copy, cheaper than a
   thread-pool round trip.  (A web folder on a slow network file system
   would want this lower.) */
#define SMALL_FILE 16384
/* The file name buffer the content type has always been computed from. */
#define NAME_MAX_LEN 1024

struct h3wt_static_mount {
  char *prefix;
  size_t prefixlen;
  char *dir;
  h3wt_static_cache *cache;
};

/* ---- the cache ------------------------------------------------------------ */

typedef struct cache_entry {
  h3wt_name_node node;     /* in cache->table (name: path) while cached */
  h3wt_list lru;           /* in cache->lru, most recently used first */
  h3wt_static_cache *cache; /* NULL once out of the cache */
  size_t refs;             /* the cache's, a response's each, a filler's */
  size_t cost;             /* bytes charged against max_total */
  uint64_t checked_ms;     /* loop time of the last look at the file */
  /* The file as it was read: any difference means it changed. */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
  /* The content type of the last request's file-name extension: the type
     depends on the request's spelling of the name, not on the file. */
  const char *ctype;
  size_t ctypelen;
  uint8_t extlen;
  char ext[15];
  uint8_t cllen;
  char cl[23];    /* content-length, as text (h3wt_u64_dec: <= 21) */
  size_t len;     /* payload bytes */
  uint8_t *data;  /* the payload, after path */
  char path[];
} cache_entry;

struct h3wt_static_cache {
  uv_loop_t *loop;
  h3wt_name_table table;
  h3wt_list lru;
  h3wt_static_cache_limits limits;
  h3wt_static_cache_stats stats; /* entries and bytes kept current */
};

void h3wt_static_cache_limits_default(h3wt_static_cache_limits *l) {
  l->max_file = 64 * 1024;
  l->max_total = 8 * 1024 * 1024;
  l->revalidate_ms = 100;
  l->racy_ms = 2000;
}

int h3wt_static_cache_new(h3wt_static_cache **pc, uv_loop_t *loop) {
  h3wt_static_cache *c = calloc(1, sizeof(*c));
  if (!c) {
    return H3WT_ERR_NOMEM;
  }
  c->loop = loop;
  h3wt_name_table_init(&c->table);
  h3wt_list_init(&c->lru);
  h3wt_static_cache_limits_default(&c->limits);
  *pc = c;
  return 0;
}

static void entry_unref(cache_entry *e) {
  if (--e->refs == 0) {
    free(e);
  }
}

/* A response's reference goes when the peer acknowledged the bytes or the
   request ended (the send queue's free callback). */
static void entry_release(void *data, void *ud) {
  entry_unref(ud);
}

static void cache_drop(h3wt_static_cache *c, cache_entry *e) {
  assert(e->cache == c && e->refs >= 1);
  h3wt_name_table_remove(&c->table, &e->node);
  h3wt_list_remove(&e->lru);
  c->stats.bytes -= e->cost;
  --c->stats.entries;
  e->cache = NULL;
  entry_unref(e);
}

static void cache_trim(h3wt_static_cache *c, size_t room) {
  while (!h3wt_list_empty(&c->lru) &&
         c->stats.bytes + room > c->limits.max_total) {
    cache_drop(c, h3wt_list_entry(c->lru.prev, cache_entry, lru));
    ++c->stats.evictions;
  }
}

void h3wt_static_cache_del(h3wt_static_cache *c) {
  if (!c) {
    return;
  }
  while (!h3wt_list_empty(&c->lru)) {
    cache_drop(c, h3wt_list_entry(c->lru.next, cache_entry, lru));
  }
  h3wt_name_table_free(&c->table);
  free(c);
}

void h3wt_static_cache_set_limits(h3wt_static_cache *c,
                                  const h3wt_static_cache_limits *limits) {
  c->limits = *limits;
  cache_trim(c, 0);
  /* Entries bigger than the new max_file go too. */
  h3wt_list *it, *tmp;
  h3wt_list_foreach_safe(it, tmp, &c->lru) {
    cache_entry *e = h3wt_list_entry(it, cache_entry, lru);
    if (e->len > c->limits.max_file) {
      cache_drop(c, e);
      ++c->stats.evictions;
    }
  }
}

void h3wt_static_cache_get_stats(const h3wt_static_cache *c,
                                 h3wt_static_cache_stats *out) {
  *out = c->stats;
}

static int same_time(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static int same_file(const cache_entry *e, const struct stat *st) {
  return S_ISREG(st->st_mode) && st->st_ino == e->ino &&
         st->st_dev == e->dev && st->st_size == e->size &&
         same_time(&st->st_mtim, &e->mtime) &&
         same_time(&st->st_ctim, &e->ctime);
}

/* The cached entry for a resolved file name, checked against the disk if
   its last check is revalidate_ms old; NULL when there is none (any more). */
static cache_entry *cache_find(h3wt_static_cache *c, const char *file,
                               size_t filelen) {
  h3wt_name_node *n = h3wt_name_table_find(&c->table, file, filelen);
  if (!n) {
    return NULL;
  }
  cache_entry *e = h3wt_list_entry(n, cache_entry, node);
  uint64_t now = uv_now(c->loop);
  if (now - e->checked_ms >= c->limits.revalidate_ms) {
    struct stat st;
    ++c->stats.revalidations;
    if (stat(file, &st) != 0 || !same_file(e, &st)) {
      ++c->stats.invalidations;
      cache_drop(c, e);
      return NULL;
    }
    e->checked_ms = now;
  }
  if (c->lru.next != &e->lru) {
    h3wt_list_remove(&e->lru);
    h3wt_list_insert_head(&c->lru, &e->lru);
  }
  return e;
}

/* Keeps e (the caller keeps its own reference). */
static void cache_insert(h3wt_static_cache *c, cache_entry *e) {
  if (e->cost > c->limits.max_total) {
    ++c->stats.uncached;
    return;
  }
  cache_trim(c, e->cost);
  if (h3wt_name_table_insert(&c->table, &e->node) != 0) {
    ++c->stats.uncached; /* out of memory for the buckets: serve anyway */
    return;
  }
  h3wt_list_insert_head(&c->lru, &e->lru);
  c->stats.bytes += e->cost;
  ++c->stats.entries;
  e->cache = c;
  e->checked_ms = uv_now(c->loop);
  ++e->refs;
}

static int64_t timespec_ns(const struct timespec *t) {
  return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Reads the regular file fd (st: its fstat) into a new entry for file;
   NULL when out of memory or on a read error.  *whole: the bytes read are
   the st_size the identity records. */
static cache_entry *entry_read(int fd, const struct stat *st,
                               const char *file, size_t filelen,
                               int *whole) {
  size_t size = (size_t)st->st_size;
  cache_entry *e = malloc(sizeof(*e) + filelen + 1 + size);
  if (!e) {
    return NULL;
  }
  memset(e, 0, sizeof(*e));
  memcpy(e->path, file, filelen + 1);
  e->data = (uint8_t *)e->path + filelen + 1;
  size_t got = 0;
  while (got < size) {
    ssize_t n = pread(fd, e->data + got, size - got, (off_t)got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      free(e);
      return NULL;
    }
    if (n == 0) {
      break; /* it shrank since fstat: serve what is there, never keep it */
    }
    got += (size_t)n;
  }
  *whole = got == size;
  e->refs = 1;
  e->len = got;
  e->cost = sizeof(*e) + filelen + 1 + size;
  e->node.name = e->path;
  e->node.len = filelen;
  h3wt_list_init(&e->lru);
  e->dev = st->st_dev;
  e->ino = st->st_ino;
  e->size = st->st_size;
  e->mtime = st->st_mtim;
  e->ctime = st->st_ctim;
  e->cllen = (uint8_t)h3wt_u64_dec(got, e->cl); /* content-length, once */
  return e;
}

/* The content type for a request's path (query and fragment ignored; a
   path ending in '/' names its index.html), as this handler always
   computed it: from the request's own spelling of the name. */
static const char *content_type(const char *path) {
  char name[NAME_MAX_LEN];
  size_t pl = strcspn(path, "?#");
  if (pl >= sizeof(name)) {
    pl = sizeof(name) - 1;
  }
  memcpy(name, path, pl);
  if (pl && name[pl - 1] == '/') {
    /* index.html appended, cut where the buffer ends */
    static const char index_name[] = "index.html";
    size_t n = sizeof(index_name) - 1;
    if (n > sizeof(name) - 1 - pl) {
      n = sizeof(name) - 1 - pl;
    }
    memcpy(name + pl, index_name, n);
    pl += n;
  }
  name[pl] = '\0';
  return h3wt_path_mime_type(name);
}

/* content_type(path), remembered in e by the name's extension: the type
   is a function of the extension alone (h3wt_path_mime_type), so a
   request that spells it the same way gets the same answer without the
   table walk. */
static const char *entry_ctype(cache_entry *e, const char *path,
                               size_t *len) {
  size_t pl = strcspn(path, "?#");
  const char *ext = "";
  size_t extlen = 0;
  if (pl + sizeof("index.html") > NAME_MAX_LEN) {
    /* A name content_type() truncates: no shortcut. */
    const char *t = content_type(path);
    *len = strlen(t);
    return t;
  }
  if (pl && path[pl - 1] == '/') {
    ext = "html";
    extlen = 4;
  } else {
    /* The extension is what follows the last '.' of the last segment;
       a segment's leading dot is not one (as in h3wt_path_mime_type). */
    for (size_t i = pl; i > 0 && path[i - 1] != '/'; --i) {
      if (path[i - 1] == '.') {
        if (i >= 2 && path[i - 2] != '/') {
          ext = path + i;
          extlen = pl - i;
        }
        break;
      }
    }
  }
  if (e->ctype && extlen == e->extlen && memcmp(ext, e->ext, extlen) == 0) {
    *len = e->ctypelen;
    return e->ctype;
  }
  const char *t = content_type(path);
  *len = strlen(t);
  if (extlen <= sizeof(e->ext)) {
    memcpy(e->ext, ext, extlen);
    e->extlen = (uint8_t)extlen;
    e->ctype = t;
    e->ctypelen = *len;
  }
  return t;
}

/* The whole response from e's bytes, without a copy. */
static void serve_entry(h3wt_request *req, cache_entry *e) {
  size_t ctlen;
  const char *ct = entry_ctype(e, h3wt_request_path(req), &ctlen);
  h3wt_header h[] = {
      {"content-type", 12, ct, ctlen},
      {"content-length", 14, e->cl, e->cllen},
      {"cache-control", 13, "no-cache", 8},
  };
  ++e->refs;
  int rv = h3wt_request_respond_owned(req, 200, h, 3, e->data, e->len,
                                      entry_release, e);
  if (rv != 0) {
    entry_unref(e); /* not queued (after H3WT_ERR_NOMEM, reset) */
  }
}

/* ---- mounts and streamed files ----------------------------------------- */

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
                          const char *dir, h3wt_static_cache *cache) {
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
  m->cache = cache;
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
    close(x->fd);
  }
  free(x->pending);
  free(x->buf);
  free(x);
}

/* A short text answer (404 and 400), as the handler always gave them. */
static void respond_status(h3wt_request *req, int status) {
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

/* The file is open and stat'ed, and too big for the cache: the response
   head, then the body in chunks. */
static void begin(xfer *x, const struct stat *st) {
  x->size = (uint64_t)st->st_size;
  char cl[24];
  snprintf(cl, sizeof(cl), "%llu", (unsigned long long)x->size);
  const char *ct = content_type(h3wt_request_path(x->req));
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
  h3wt_static_cache *c = m->cache;
  const char *path = h3wt_request_path(req);
  char file[4096];
  /* The part after the mount prefix, keeping its leading '/'. */
  const char *rel = path + m->prefixlen - 1;
  int rv = h3wt_path_resolve(m->dir, rel, strlen(rel), file, sizeof(file));
  if (rv == H3WT_PATH_BAD_REQUEST) {
    respond_status(req, 400);
    return;
  }
  if (rv != H3WT_PATH_OK) {
    respond_status(req, 404);
    return;
  }
  size_t filelen = strlen(file);
  cache_entry *e = cache_find(c, file, filelen);
  if (e) {
    ++c->stats.hits;
    serve_entry(req, e);
    return;
  }
  ++c->stats.misses;
  /* The racy rule (top of file) compares the file's ctime with a time
     taken before the file is looked at. */
  struct timespec t0;
  clock_gettime(CLOCK_REALTIME, &t0);
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    respond_status(req, 404);
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    respond_status(req, 404); /* directories and devices are not served */
    return;
  }
  if ((uint64_t)st.st_size <= c->limits.max_file) {
    int whole = 0;
    e = entry_read(fd, &st, file, filelen, &whole);
    close(fd);
    if (!e) {
      h3wt_request_reset(req, 0x102 /* H3_INTERNAL_ERROR */);
      return;
    }
    int64_t age = timespec_ns(&t0) - timespec_ns(&st.st_ctim);
    if (whole && age >= (int64_t)c->limits.racy_ms * 1000000) {
      cache_insert(c, e);
    } else {
      ++c->stats.uncached;
    }
    serve_entry(req, e);
    entry_unref(e);
    return;
  }
  xfer *x = calloc(1, sizeof(*x));
  if (!x) {
    close(fd);
    h3wt_request_reset(req, 0x102);
    return;
  }
  x->req = req;
  x->fd = fd;
  h3wt_request_set_data(req, x);
  begin(x, &st);
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
