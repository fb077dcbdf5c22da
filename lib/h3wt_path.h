/*
 * h3wt_path: maps a request :path onto a file below a web root, safely, and
 * names the content type of a file.  Pure functions: no I/O.
 */
#ifndef H3WT_PATH_H
#define H3WT_PATH_H

#include <stddef.h>

/* Return values of h3wt_path_resolve. */
#define H3WT_PATH_OK 0
#define H3WT_PATH_BAD_REQUEST -1 /* malformed: bad %-escape, NUL, no leading '/' */
#define H3WT_PATH_NOT_FOUND -2   /* would leave the root ("..") or names a
                                    hidden file (a segment starting with '.') */
#define H3WT_PATH_TOO_LONG -3    /* the result does not fit in out */

/* Resolves the request path (the bytes of :path, pathlen long, not
   NUL-terminated; a query "?..." or fragment is ignored) below root.
   %-escapes are decoded (so "%2e%2e" is ".."), repeated '/' collapse, "."
   segments are dropped; any ".." segment, an encoded '/' or '\\' inside a
   segment, or a decoded NUL is refused.  A path ending in '/' gets
   "index.html" appended.  On success writes "root/relative" into out (NUL
   terminated).  Never touches the file system. */
int h3wt_path_resolve(const char *root, const char *path, size_t pathlen,
                      char *out, size_t outlen);

/* The content type for a file name by its extension (html, css, js, mjs,
   json, txt, svg, png, jpg/jpeg, gif, webp, ico, wasm, map, ...), with
   "; charset=utf-8" for text types; "application/octet-stream" otherwise. */
const char *h3wt_path_mime_type(const char *filename);

#endif /* H3WT_PATH_H */
