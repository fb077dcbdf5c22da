/*
 * h3wt_resume: the client's saved session, as bytes (what
 * h3wt_client_session_save() hands out and h3wt_client_settings.session
 * takes back; h3wt-client keeps it in its --session-file).
 *
 * Everything a later connection to the same server needs to resume the
 * TLS session and send 0-RTT: the server name it belongs to, the TLS
 * session with its ticket (DER), the server's transport parameters that
 * bound 0-RTT (RFC 9000 7.4.1) and the SETTINGS the client may use before
 * it hears them again (RFC 9114 7.2.4.2).  Pure: no I/O, no TLS, no QUIC.
 *
 * Layout (integers big-endian):
 *   "H3WT-SESSION" (12 bytes), format version (1 byte, 1)
 *   name length (2), name
 *   TLS session length (4), TLS session
 *   transport parameters length (2), transport parameters
 *   settings known (1); if 1: flags (1: 0x1 ENABLE_CONNECT_PROTOCOL,
 *     0x2 H3_DATAGRAM, 0x4 WebTransport), WT_INITIAL_MAX_DATA (8),
 *     _STREAMS_BIDI (8), _STREAMS_UNI (8)
 *   SHA-256 of everything above (32)
 * A file that is cut, padded, altered or of another version is refused
 * as a whole.
 */
#ifndef H3WT_RESUME_H
#define H3WT_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt_wtproto.h"

#define H3WT_RESUME_MAX_NAME 255
#define H3WT_RESUME_MAX_TLS 16384
#define H3WT_RESUME_MAX_PARAMS 1024

typedef struct h3wt_resume_state {
  const char *name; /* the server name (SNI) it was issued for */
  size_t namelen;
  const uint8_t *tls; /* the TLS session (DER) */
  size_t tlslen;
  const uint8_t *params; /* 0-RTT transport parameters; 0 bytes: none */
  size_t paramslen;
  int has_settings; /* the server's SETTINGS were read */
  h3wt_peer_fc settings;
} h3wt_resume_state;

/* The encoded length of st (0 when a part is over its maximum). */
size_t h3wt_resume_encoded_len(const h3wt_resume_state *st);
/* Writes st into out (outlen >= h3wt_resume_encoded_len(st)).  Returns
   the length, or 0 when it does not fit. */
size_t h3wt_resume_encode(const h3wt_resume_state *st, uint8_t *out,
                          size_t outlen);
/* Reads in into *st, whose pointers then point into in.  Returns 0, or
   -1 when in is not exactly one intact saved session of this version. */
int h3wt_resume_decode(const uint8_t *in, size_t inlen,
                       h3wt_resume_state *st);

#endif /* H3WT_RESUME_H */
