/*
 * h3wt_router: maps a request's method and path to a route.  Pure: no
 * I/O, no HTTP/3, so it is unit-tested on its own.
 */
#ifndef H3WT_ROUTER_H
#define H3WT_ROUTER_H

#include <stddef.h>

typedef struct h3wt_route {
  char *method; /* NULL: any */
  char *path;   /* without a trailing '*' */
  size_t pathlen;
  int prefix; /* the pattern ended in '*' */
  const void *handler;
  void *data;
} h3wt_route;

typedef struct h3wt_router {
  h3wt_route *routes;
  size_t n, cap;
} h3wt_router;

void h3wt_router_init(h3wt_router *r);
void h3wt_router_free(h3wt_router *r);
/* Returns 0, H3WT_ERR_INVALID_ARGUMENT (path not starting with '/') or
   H3WT_ERR_NOMEM. */
int h3wt_router_add(h3wt_router *r, const char *method, const char *pattern,
                    const void *handler, void *data);

/* Outcome of a lookup. */
#define H3WT_ROUTE_FOUND 0
#define H3WT_ROUTE_NO_PATH 1   /* 404 */
#define H3WT_ROUTE_NO_METHOD 2 /* 405: allow lists what would match */

/* Looks up path (pathlen bytes, query already removed).  On FOUND sets
   *route; on NO_METHOD writes the allowed methods, comma separated, into
   allow.  Exact routes win over prefix routes, longer prefixes over shorter
   ones. */
int h3wt_router_match(const h3wt_router *r, const char *method,
                      const char *path, size_t pathlen,
                      const h3wt_route **route, char *allow, size_t allowlen);

#endif /* H3WT_ROUTER_H */
