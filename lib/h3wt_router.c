/*
 * h3wt_router: method + path to route (see h3wt_router.h).  A linear scan:
 * servers have a handful of routes, and the scan touches one array.
 */
#include "h3wt_router.h"

#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"

void h3wt_router_init(h3wt_router *r) {
  memset(r, 0, sizeof(*r));
}

void h3wt_router_free(h3wt_router *r) {
  for (size_t i = 0; i < r->n; ++i) {
    free(r->routes[i].method);
    free(r->routes[i].path);
  }
  free(r->routes);
  h3wt_router_init(r);
}

int h3wt_router_add(h3wt_router *r, const char *method, const char *pattern,
                    const void *handler, void *data) {
  size_t len;
  h3wt_route rt;
  if (!pattern || pattern[0] != '/' || !handler) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    h3wt_route *nr = realloc(r->routes, cap * sizeof(*nr));
    if (!nr) {
      return H3WT_ERR_NOMEM;
    }
    r->routes = nr;
    r->cap = cap;
  }
  len = strlen(pattern);
  memset(&rt, 0, sizeof(rt));
  rt.prefix = pattern[len - 1] == '*';
  rt.pathlen = rt.prefix ? len - 1 : len;
  rt.path = strndup(pattern, rt.pathlen);
  rt.method = method ? strdup(method) : NULL;
  if (!rt.path || (method && !rt.method)) {
    free(rt.path);
    free(rt.method);
    return H3WT_ERR_NOMEM;
  }
  rt.handler = handler;
  rt.data = data;
  r->routes[r->n++] = rt;
  return 0;
}

static int path_matches(const h3wt_route *rt, const char *path,
                        size_t pathlen) {
  if (rt->prefix) {
    return pathlen >= rt->pathlen && memcmp(path, rt->path, rt->pathlen) == 0;
  }
  return pathlen == rt->pathlen && memcmp(path, rt->path, pathlen) == 0;
}

/* Exact beats prefix; a longer prefix beats a shorter one. */
static size_t score(const h3wt_route *rt) {
  return rt->prefix ? rt->pathlen : (size_t)-1;
}

/* Does any exact route name this path?  Then it owns the path: a method
   it lacks is a 405, never a fall-through to a prefix route (so "GET /echo"
   is not served by a static mount on "GET /" and below). */
static int exact_owner(const h3wt_router *r, const char *path,
                       size_t pathlen) {
  for (size_t i = 0; i < r->n; ++i) {
    if (!r->routes[i].prefix && path_matches(&r->routes[i], path, pathlen)) {
      return 1;
    }
  }
  return 0;
}

int h3wt_router_match(const h3wt_router *r, const char *method,
                      const char *path, size_t pathlen,
                      const h3wt_route **route, char *allow, size_t allowlen) {
  const h3wt_route *best = NULL;
  size_t best_score = 0;
  int any_path = 0;
  int exact_only = exact_owner(r, path, pathlen);
  for (size_t i = 0; i < r->n; ++i) {
    const h3wt_route *rt = &r->routes[i];
    if ((exact_only && rt->prefix) || !path_matches(rt, path, pathlen)) {
      continue;
    }
    any_path = 1;
    if (rt->method && strcmp(rt->method, method) != 0) {
      continue;
    }
    if (!best || score(rt) > best_score) {
      best = rt;
      best_score = score(rt);
    }
  }
  if (best) {
    *route = best;
    return H3WT_ROUTE_FOUND;
  }
  if (!any_path) {
    return H3WT_ROUTE_NO_PATH;
  }
  /* 405: list the methods of every route that matched the path (RFC 9110
     15.5.6: "MUST generate an Allow header field"). */
  size_t off = 0;
  if (allowlen) {
    allow[0] = '\0';
  }
  for (size_t i = 0; i < r->n; ++i) {
    const h3wt_route *rt = &r->routes[i];
    if ((exact_only && rt->prefix) || !path_matches(rt, path, pathlen) ||
        !rt->method) {
      continue;
    }
    size_t ml = strlen(rt->method);
    if (strstr(allow, rt->method)) {
      continue;
    }
    if (off + ml + 3 > allowlen) {
      break;
    }
    if (off) {
      memcpy(allow + off, ", ", 2);
      off += 2;
    }
    memcpy(allow + off, rt->method, ml + 1);
    off += ml;
  }
  return H3WT_ROUTE_NO_METHOD;
}
