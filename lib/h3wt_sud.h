/*
 * h3wt_sud: the tags on ngtcp2's stream user data.
 *
 * ngtcp2 gives each stream one user-data pointer.  The stream dispatcher
 * (h3wt_streams) owns it: every pointer it stores starts with an int that
 * says what it points to, so one look routes a QUIC event to nghttp3 or to
 * WebTransport.  Only the dispatcher and h3wt_wt (whose stream objects
 * carry the tag) include this.
 */
#ifndef H3WT_SUD_H
#define H3WT_SUD_H

enum {
  H3WT_SUD_H3 = 1,      /* nghttp3's stream (the shared marker below) */
  H3WT_SUD_PENDING = 2, /* a peer stream whose first bytes do not yet say */
  H3WT_SUD_WT = 3       /* a WebTransport stream (h3wt_stream) */
};

typedef struct h3wt_sud {
  int kind;
} h3wt_sud;

#define H3WT_SUD_KIND(sud) ((sud) ? ((const h3wt_sud *)(sud))->kind : 0)

/* The one marker every nghttp3 stream carries. */
extern h3wt_sud h3wt_sud_h3;

#endif /* H3WT_SUD_H */
