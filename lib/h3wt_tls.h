/*
 * h3wt_tls: wolfSSL contexts for QUIC (through ngtcp2_crypto_wolfssl),
 * certificate loading, key logging.  (Development certificates are made in
 * h3wt_devcert.c, behind the public h3wt_devcert_make().)
 *
 * The only module that includes wolfSSL headers.  Everything it hands out is
 * an opaque pointer; the quic module passes the per-connection handle to
 * ngtcp2_conn_set_tls_native_handle().
 */
#ifndef H3WT_TLS_H
#define H3WT_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "h3wt/h3wt.h"

typedef struct h3wt_tls_ctx h3wt_tls_ctx;

/* Options for a context.  Zero-initialise, then fill what is needed. */
typedef struct h3wt_tls_ctx_opts {
  /* Server: PEM certificate chain and private key (both required). */
  const char *cert_file;
  const char *key_file;
  /* Client: PEM CA bundle to verify the server with; NULL uses the system
     default paths.  insecure != 0 skips verification (curl -k). */
  const char *ca_file;
  int insecure;
  /* NSS key log file (SSLKEYLOGFILE format) appended to; NULL: none. */
  const char *keylog_file;
  /* Server: refuse 0-RTT (tickets still resume the handshake). */
  int no_early_data;
} h3wt_tls_ctx_opts;

/* Creates a TLS 1.3 server context configured for QUIC with ALPN "h3".
   Returns 0, or -1 with a human-readable reason in errbuf. */
int h3wt_tls_server_ctx_new(h3wt_tls_ctx **pctx, const h3wt_tls_ctx_opts *opts,
                            char *errbuf, size_t errlen);
/* Creates a TLS 1.3 client context for QUIC offering ALPN "h3". */
int h3wt_tls_client_ctx_new(h3wt_tls_ctx **pctx, const h3wt_tls_ctx_opts *opts,
                            char *errbuf, size_t errlen);
void h3wt_tls_ctx_del(h3wt_tls_ctx *ctx);

/* Creates the per-connection TLS object (a WOLFSSL *, returned as void *).
   conn_ref is the connection's ngtcp2_crypto_conn_ref (stored as app data).
   For a client, sni is the server name (also checked against the
   certificate unless the context is insecure).  Returns NULL on failure. */
void *h3wt_tls_session_new_server(h3wt_tls_ctx *ctx, void *conn_ref);
void *h3wt_tls_session_new_client(h3wt_tls_ctx *ctx, void *conn_ref,
                                  const char *sni);
void h3wt_tls_session_del(void *ssl);
/* The negotiated ALPN of a session, or NULL/0 if none. */
void h3wt_tls_session_alpn(void *ssl, const uint8_t **alpn, size_t *alpnlen);

/* Server: seals session tickets with this 32-byte key (ChaCha20-Poly1305)
   instead of wolfSSL's random per-context key, so that every server with
   the same key resumes the others' tickets.  Returns 0 or -1. */
int h3wt_tls_ctx_set_ticket_key(h3wt_tls_ctx *ctx, const uint8_t key[32]);

/* Client: offers the saved session (DER, from h3wt_tls_session_export) in
   the coming handshake.  Returns 1 when its ticket allows 0-RTT (early
   data is then enabled), 0 when it only resumes, -1 when it cannot be
   used (nothing changed: a full handshake follows). */
int h3wt_tls_session_resume(void *ssl, const uint8_t *der, size_t derlen);
/* Client: the session with the server's latest ticket, in DER on the
   heap (free() it).  Returns 0, or -1 when there is no ticket (yet). */
int h3wt_tls_session_export(void *ssl, uint8_t **pder, size_t *pderlen);
/* Client: ++*counter for every ticket the session takes in (counter
   outlives ssl). */
void h3wt_tls_session_count_tickets(void *ssl, unsigned *counter);
/* After the handshake: whether it resumed a session, and whether the
   server accepted early data. */
int h3wt_tls_session_reused(void *ssl);
int h3wt_tls_early_data_accepted(void *ssl);
/* 0: no early data was offered, 1: it was rejected, 2: accepted. */
int h3wt_tls_early_data_status(void *ssl);

/* Handshake data received at each encryption level that h3wt_tls has not
   yet passed on to the TLS session (see h3wt_tls_recv_crypto_data).  One
   per connection, zero-initialised. */
#define H3WT_TLS_CRYPTO_LEVELS 4 /* ngtcp2_encryption_level values */
typedef struct h3wt_tls_crypto_rx {
  uint32_t body_left[H3WT_TLS_CRYPTO_LEVELS]; /* of the current message */
  uint8_t hdr[H3WT_TLS_CRYPTO_LEVELS][4]; /* incomplete message header */
  uint8_t hdrlen[H3WT_TLS_CRYPTO_LEVELS];
} h3wt_tls_crypto_rx;

/* What ngtcp2's recv_crypto_data callback does with CRYPTO data: hands
   datalen bytes received at the given level (an ngtcp2_encryption_level)
   to the TLS session of conn (an ngtcp2_conn *) and advances the
   handshake.  Use it instead of ngtcp2_crypto_recv_crypto_data_cb, which
   trips over a wolfSSL bug when the peer splits CRYPTO frames inside a
   handshake message header.  Returns 0 or an ngtcp2 error code. */
int h3wt_tls_recv_crypto_data(h3wt_tls_crypto_rx *rx, void *conn, int level,
                              const uint8_t *data, size_t datalen);

/* The DER encoding of the first certificate in a PEM file (at most 1 MiB),
   in *pder on the heap (free() it).  Returns 0, H3WT_ERR_INVALID_ARGUMENT
   (path NULL), H3WT_ERR_IO (cannot read it), H3WT_ERR_TLS (no PEM
   certificate in it) or H3WT_ERR_NOMEM. */
int h3wt_tls_cert_file_der(const char *path, uint8_t **pder, size_t *pderlen);

/* SHA-256 of len bytes.  Returns 0 or -1. */
int h3wt_tls_sha256(const void *data, size_t len, uint8_t out[32]);

/* Formats an error message into errbuf (errlen bytes; NULL/0: none), for
   the calls of this module and h3wt_devcert that report why. */
void h3wt_tls_seterr(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* H3WT_TLS_H */
