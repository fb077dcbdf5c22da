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

/* Static-file handler (h3wt_static.c). */
typedef struct h3wt_static_mount h3wt_static_mount;
int h3wt_static_mount_new(h3wt_static_mount **pm, const char *prefix,
                          const char *dir);
void h3wt_static_mount_del(h3wt_static_mount *m);
extern const h3wt_request_handler h3wt_static_handler;

#endif /* H3WT_SERVER_INTERNAL_H */
