/*
 * h3wt_client: internals of the client facade, for tests and tools.
 */
#ifndef H3WT_CLIENT_INTERNAL_H
#define H3WT_CLIENT_INTERNAL_H

#include "h3wt/h3wt.h"

/* Sends a request whose field section is exactly headers[] (pseudo-headers
   included, in the given order, nothing added): for tests that send what a
   hostile or broken peer would.  No content-length is added. */
int h3wt_client_request_send_raw(h3wt_client *cl, const h3wt_header *headers,
                                 size_t nheaders, const void *body,
                                 size_t bodylen,
                                 const h3wt_response_handler *handler,
                                 void *user_data);

/* The connection's WebTransport state (for the test hooks of h3wt_wt.h). */
struct h3wt_wt_conn *h3wt_client_wt(h3wt_client *cl);

#endif /* H3WT_CLIENT_INTERNAL_H */
