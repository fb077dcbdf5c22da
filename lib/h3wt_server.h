/*
 * h3wt_server: internals shared by the server facade and its built-in
 * handlers (static files).
 */
#ifndef H3WT_SERVER_INTERNAL_H
#define H3WT_SERVER_INTERNAL_H

#include "h3wt/h3wt.h"
#include "h3wt_util.h"

/* The server's logger, for handlers that live in the library. */
const h3wt_logger *h3wt_server_logger(const h3wt_server *server);
uv_loop_t *h3wt_server_loop(const h3wt_server *server);
size_t h3wt_server_response_queue_limit(const h3wt_server *server);

/* Unacknowledged response bytes queued on req. */
uint64_t h3wt_request_queued(const h3wt_request *req);

/* A complete response whose body is data, taken without a copy (as
   h3wt_request_write_owned: free_cb(data, user_data) runs once the peer
   acknowledged it, or the request ended; at once for HEAD or len 0).  The
   server adds "content-length" unless given.  Returns 0, or an error as
   h3wt_request_respond() with ownership staying with the caller; after
   H3WT_ERR_NOMEM the stream has been reset (H3_INTERNAL_ERROR). */
int h3wt_request_respond_owned(h3wt_request *req, int status,
                               const h3wt_header *headers, size_t nheaders,
                               void *data, size_t len,
                               void (*free_cb)(void *data, void *user_data),
                               void *user_data);

/* The cache of the server's static mounts (h3wt_static.h), NULL until the
   first h3wt_server_static(). */
struct h3wt_static_cache *h3wt_server_static_cache(const h3wt_server *server);

#endif /* H3WT_SERVER_INTERNAL_H */
