/*
 * h3wt_static: the built-in static-file handler (h3wt_server_static) and
 * the bounded cache of small files it answers from.
 *
 * One cache per server, so per loop thread: nothing here is thread-safe
 * and nothing needs to be (a server group's workers each have their own).
 * What the cache holds is bounded by max_total; a file that was evicted
 * or changed while responses still queue its bytes lives on until the
 * last of them is acknowledged (those bytes are bounded by the response
 * queues, not by the cache).
 */
#ifndef H3WT_STATIC_H
#define H3WT_STATIC_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt/h3wt.h"

typedef struct h3wt_static_cache h3wt_static_cache;

typedef struct h3wt_static_cache_limits {
  /* Files up to this many bytes are read whole on the loop thread and
     kept; larger ones are streamed in chunks, never kept.  Default 64 KiB. */
  size_t max_file;
  /* Bytes the cache holds (payloads, paths and entries), evicting the
     least recently used files.  Default 8 MiB; 0: keep nothing. */
  size_t max_total;
  /* A cached file is stat()ed again before it is served when its last
     check is at least this old (loop time): a change on disk is served at
     most this long (plus one loop iteration) after it happened.  Default
     100; 0: stat before every response. */
  uint64_t revalidate_ms;
  /* A file whose status changed (ctime) less than this long before it was
     read is served but not kept: a later change within the file system's
     timestamp granularity could leave size, times and inode as they were.
     Default 2000 (1-second and 2-second file systems included). */
  uint64_t racy_ms;
} h3wt_static_cache_limits;

typedef struct h3wt_static_cache_stats {
  uint64_t hits;          /* served from memory, no file opened */
  uint64_t misses;        /* the file was opened (not cached, or changed) */
  uint64_t revalidations; /* stat() calls on cached files */
  uint64_t invalidations; /* cached files found changed or gone */
  uint64_t evictions;     /* dropped to stay under max_total */
  uint64_t uncached;      /* small files read but not kept (racy, or
                             bigger than max_total) */
  size_t entries;         /* files held now */
  size_t bytes;           /* bytes held now (<= max_total) */
} h3wt_static_cache_stats;

void h3wt_static_cache_limits_default(h3wt_static_cache_limits *limits);

/* Returns 0 or H3WT_ERR_NOMEM. */
int h3wt_static_cache_new(h3wt_static_cache **pc, uv_loop_t *loop);
/* Drops every entry (responses in flight keep theirs) and frees c. */
void h3wt_static_cache_del(h3wt_static_cache *c);
/* New limits; evicts at once what no longer fits. */
void h3wt_static_cache_set_limits(h3wt_static_cache *c,
                                  const h3wt_static_cache_limits *limits);
void h3wt_static_cache_get_stats(const h3wt_static_cache *c,
                                 h3wt_static_cache_stats *out);

/* A mount: prefix -> directory, answering from cache (not owned). */
typedef struct h3wt_static_mount h3wt_static_mount;
int h3wt_static_mount_new(h3wt_static_mount **pm, const char *prefix,
                          const char *dir, h3wt_static_cache *cache);
void h3wt_static_mount_del(h3wt_static_mount *m);
extern const h3wt_request_handler h3wt_static_handler;

#endif /* H3WT_STATIC_H */
