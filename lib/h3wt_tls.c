/*
 * h3wt_tls: wolfSSL contexts for QUIC, certificate loading, key logging.
 *
 * wolfSSL is set up here (and used for certificate making in
 * h3wt_devcert.c): every other module sees opaque pointers.  The library
 * never prints; failures are described in errbuf.
 */
#include "h3wt_tls.h"
#include "h3wt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

/* options.h must come before any other wolfSSL header: it carries the
   feature macros the library was built with, and structure layouts depend
   on them. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/quic.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_wolfssl.h>

#if !defined(WOLFSSL_QUIC) || !defined(WOLFSSL_TLS13) || !defined(HAVE_ALPN)
#error "wolfSSL must be built with QUIC, TLS 1.3 and ALPN"
#endif
#if !defined(HAVE_ECC)
#error "wolfSSL must be built with ECC"
#endif
#if !defined(HAVE_SESSION_TICKET) || !defined(HAVE_CHACHA) ||                 \
    !defined(HAVE_POLY1305)
#error "wolfSSL must be built with session tickets and ChaCha20-Poly1305"
#endif

/* The cipher suites QUIC allows (RFC 9001, 5.3) minus AES-128-CCM, which
   browsers do not offer and this wolfSSL build lacks; naming them also
   keeps out CCM_8, which QUIC forbids, whatever the build's defaults. */
#define H3WT_TLS_CIPHERS                                                       \
  "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"                           \
  "TLS13-CHACHA20-POLY1305-SHA256"
/* X25519 first: it is what browsers send a key share for, so the server
   avoids a HelloRetryRequest round trip, and our client does the same. */
#define H3WT_TLS_GROUPS "X25519:P-256:P-384:P-521"

/* Index of the h3wt_tls_ctx pointer in the WOLFSSL_CTX ex data; the keylog
   callback gets only the WOLFSSL, so it finds its file through here. */
#define H3WT_TLS_EX_CTX 0

/* A PEM file larger than this is surely not a certificate chain. */
#define H3WT_TLS_MAX_PEM (1024 * 1024)

struct h3wt_tls_ctx {
  WOLFSSL_CTX *ssl_ctx;
  int is_server;
  /* Client: whether the server certificate (and name) is verified. */
  int verify;
  /* NSS key log, or NULL. */
  FILE *keylog;
  /* Server: whether 0-RTT is accepted (and offered in new tickets). */
  int early_data;
  /* Server: the session ticket key (see h3wt_tls_ctx_set_ticket_key) and
     the name that tells our tickets from others'. */
  int has_ticket_key;
  uint8_t ticket_key[32];
  uint8_t ticket_name[WOLFSSL_TICKET_NAME_SZ];
};

static const uint8_t h3_alpn[] = {'h', '3'};

/* ---- error reporting ---------------------------------------------------- */

void h3wt_tls_seterr(char *errbuf, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (errbuf == NULL || errlen == 0) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

/* Describes why a wolfSSL call failed: the oldest entry of wolfSSL's
   error queue (the root cause; later entries tend to be generic), else the
   call's own negative return code.  Empties the queue so the next failure
   is not blamed on this one. */
static const char *wolf_reason(int ret, char *buf, size_t buflen) {
  unsigned long e = wolfSSL_ERR_get_error();

  while (wolfSSL_ERR_get_error() != 0) {
    ;
  }
  if (e != 0) {
    wolfSSL_ERR_error_string_n(e, buf, (unsigned long)buflen);
  } else if (ret < 0) {
    wolfSSL_ERR_error_string_n((unsigned long)ret, buf, (unsigned long)buflen);
  } else {
    snprintf(buf, buflen, "no detail from wolfSSL");
  }
  return buf;
}

/* Checks that a file can be opened for reading, so that a missing or
   unreadable file is reported with the system's reason rather than
   wolfSSL's generic "bad file". */
static int check_readable(const char *what, const char *path, char *errbuf,
                          size_t errlen) {
  FILE *f = fopen(path, "rb");

  if (f == NULL) {
    h3wt_tls_seterr(errbuf, errlen, "cannot open %s '%s': %s", what, path,
           strerror(errno));
    return -1;
  }
  fclose(f);
  return 0;
}

static int ecc_key_matches_cert(const char *cert_file, const char *key_file);
static void secure_zero(void *p, size_t n);

/* ---- contexts ----------------------------------------------------------- */

static void keylog_cb(const WOLFSSL *ssl, const char *line) {
  WOLFSSL_CTX *ssl_ctx = wolfSSL_get_SSL_CTX(ssl);
  h3wt_tls_ctx *ctx;

  if (ssl_ctx == NULL) {
    return;
  }
  ctx = wolfSSL_CTX_get_ex_data(ssl_ctx, H3WT_TLS_EX_CTX);
  if (ctx == NULL || ctx->keylog == NULL) {
    return;
  }
  fputs(line, ctx->keylog);
  fputc('\n', ctx->keylog);
  /* Flushed per line so that a capture tool reading the file concurrently
     can decrypt the connection as it happens. */
  fflush(ctx->keylog);
}

/* Opens the key log for appending.  Created with mode 0600 because it holds
   secrets that decrypt every logged connection. */
static int keylog_open(h3wt_tls_ctx *ctx, const char *path, char *errbuf,
                       size_t errlen) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

  if (fd < 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot open key log file '%s': %s", path,
           strerror(errno));
    return -1;
  }
  ctx->keylog = fdopen(fd, "a");
  if (ctx->keylog == NULL) {
    h3wt_tls_seterr(errbuf, errlen, "cannot open key log file '%s': %s", path,
           strerror(errno));
    close(fd);
    return -1;
  }
  if (wolfSSL_CTX_set_ex_data(ctx->ssl_ctx, H3WT_TLS_EX_CTX, ctx) !=
      WOLFSSL_SUCCESS) {
    h3wt_tls_seterr(errbuf, errlen, "cannot attach key log file '%s' to the context",
           path);
    return -1;
  }
  wolfSSL_CTX_set_keylog_callback(ctx->ssl_ctx, keylog_cb);
  return 0;
}

/* Server ALPN selection: "h3" or nothing.  Note that wolfSSL only calls
   this in builds with OPENSSL_ALL, WOLFSSL_NGINX or WOLFSSL_HAPROXY;
   otherwise it matches the client's list against the session's own ALPN
   list, which h3wt_tls_session_new_server sets to "h3" with the
   fail-on-mismatch option.  Both paths give the same result. */
static int alpn_select_cb(WOLFSSL *ssl, const unsigned char **out,
                          unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg) {
  const unsigned char *p = in;
  const unsigned char *end = in + inlen;

  while (p < end) {
    size_t len = *p;

    if (len > (size_t)(end - p - 1)) {
      break;
    }
    if (len == sizeof(h3_alpn) && memcmp(p + 1, h3_alpn, len) == 0) {
      *out = p + 1;
      *outlen = (unsigned char)len;
      return 0; /* SSL_TLSEXT_ERR_OK */
    }
    p += 1 + len;
  }
  /* QUIC requires an agreed application protocol (RFC 9001, 8.1): refuse
     with no_application_protocol. */
  return fatal_return; /* SSL_TLSEXT_ERR_ALERT_FATAL */
}

/* What server and client contexts share: allocation, QUIC configuration,
   TLS 1.3 only, cipher suites, groups. */
static int ctx_new_common(h3wt_tls_ctx **pctx, int is_server, char *errbuf,
                          size_t errlen) {
  h3wt_tls_ctx *ctx;
  char reason[WOLFSSL_MAX_ERROR_SZ];
  int rv;

  *pctx = NULL;
  /* Reference counted: each context holds one, released in ctx_del, so
     wolfSSL's global state is freed when the last context goes. */
  rv = wolfSSL_Init();
  if (rv != WOLFSSL_SUCCESS) {
    h3wt_tls_seterr(errbuf, errlen, "wolfSSL_Init failed: %s",
           wolf_reason(rv, reason, sizeof(reason)));
    return -1;
  }
  /* Stale entries would otherwise be reported as this call's reason. */
  wolfSSL_ERR_clear_error();

  ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL) {
    h3wt_tls_seterr(errbuf, errlen, "out of memory");
    wolfSSL_Cleanup();
    return -1;
  }
  ctx->is_server = is_server;
  /* TLS 1.3 only: QUIC does not allow anything older. */
  ctx->ssl_ctx = wolfSSL_CTX_new(is_server ? wolfTLSv1_3_server_method()
                                           : wolfTLSv1_3_client_method());
  if (ctx->ssl_ctx == NULL) {
    h3wt_tls_seterr(errbuf, errlen, "wolfSSL_CTX_new failed: %s",
           wolf_reason(0, reason, sizeof(reason)));
    h3wt_tls_ctx_del(ctx);
    return -1;
  }
  rv = is_server ? ngtcp2_crypto_wolfssl_configure_server_context(ctx->ssl_ctx)
                 : ngtcp2_crypto_wolfssl_configure_client_context(ctx->ssl_ctx);
  if (rv != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot configure the TLS context for QUIC");
    h3wt_tls_ctx_del(ctx);
    return -1;
  }
  rv = wolfSSL_CTX_set_cipher_list(ctx->ssl_ctx, H3WT_TLS_CIPHERS);
  if (rv != WOLFSSL_SUCCESS) {
    h3wt_tls_seterr(errbuf, errlen, "cannot set cipher suites '%s': %s",
           H3WT_TLS_CIPHERS, wolf_reason(rv, reason, sizeof(reason)));
    h3wt_tls_ctx_del(ctx);
    return -1;
  }
  rv = wolfSSL_CTX_set1_curves_list(ctx->ssl_ctx, H3WT_TLS_GROUPS);
  if (rv != WOLFSSL_SUCCESS) {
    h3wt_tls_seterr(errbuf, errlen, "cannot set key exchange groups '%s': %s",
           H3WT_TLS_GROUPS, wolf_reason(rv, reason, sizeof(reason)));
    h3wt_tls_ctx_del(ctx);
    return -1;
  }
  *pctx = ctx;
  return 0;
}

int h3wt_tls_server_ctx_new(h3wt_tls_ctx **pctx, const h3wt_tls_ctx_opts *opts,
                            char *errbuf, size_t errlen) {
  h3wt_tls_ctx *ctx;
  char reason[WOLFSSL_MAX_ERROR_SZ];
  int rv;

  if (pctx == NULL) {
    h3wt_tls_seterr(errbuf, errlen, "no place to return the TLS context");
    return -1;
  }
  *pctx = NULL;
  if (opts == NULL || opts->cert_file == NULL || opts->key_file == NULL) {
    h3wt_tls_seterr(errbuf, errlen,
           "a TLS server needs both a certificate file and a key file");
    return -1;
  }
  if (check_readable("certificate file", opts->cert_file, errbuf, errlen) !=
          0 ||
      check_readable("private key file", opts->key_file, errbuf, errlen) != 0) {
    return -1;
  }
  if (ctx_new_common(&ctx, 1, errbuf, errlen) != 0) {
    return -1;
  }

  rv = wolfSSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, opts->cert_file);
  if (rv != WOLFSSL_SUCCESS) {
    h3wt_tls_seterr(errbuf, errlen, "cannot load certificate chain from '%s': %s",
           opts->cert_file, wolf_reason(rv, reason, sizeof(reason)));
    goto fail;
  }
  rv = wolfSSL_CTX_use_PrivateKey_file(ctx->ssl_ctx, opts->key_file,
                                       WOLFSSL_FILETYPE_PEM);
  if (rv != WOLFSSL_SUCCESS) {
    h3wt_tls_seterr(errbuf, errlen, "cannot load private key from '%s': %s",
           opts->key_file, wolf_reason(rv, reason, sizeof(reason)));
    goto fail;
  }
  rv = wolfSSL_CTX_check_private_key(ctx->ssl_ctx);
  if (rv != WOLFSSL_SUCCESS) {
    /* wolfSSL queues no reason for this one: the comparison just fails. */
    wolfSSL_ERR_clear_error();
    h3wt_tls_seterr(errbuf, errlen,
           "private key '%s' does not match certificate '%s' (the first "
           "certificate of the file)",
           opts->key_file, opts->cert_file);
    goto fail;
  }
  /* For ECC keys the check above only validates the certificate's public
     key on its own unless wolfSSL was built with WOLFSSL_VALIDATE_ECC_IMPORT
     (this one is not), so compare the key pair here. */
  if (ecc_key_matches_cert(opts->cert_file, opts->key_file) == 0) {
    h3wt_tls_seterr(errbuf, errlen,
           "private key '%s' does not match certificate '%s': the public "
           "keys differ",
           opts->key_file, opts->cert_file);
    goto fail;
  }

  wolfSSL_CTX_set_alpn_select_cb(ctx->ssl_ctx, alpn_select_cb, NULL);
#ifdef WOLFSSL_EARLY_DATA
  /* QUIC requires max_early_data_size 0xffffffff in tickets that allow
     0-RTT (RFC 9001, 4.6.1); the per-session switch is in
     h3wt_tls_session_new_server.  Without 0-RTT, tickets say 0 and early
     data from older tickets is rejected (the handshake still resumes). */
  ctx->early_data = !opts->no_early_data;
  rv = wolfSSL_CTX_set_max_early_data(ctx->ssl_ctx,
                                      ctx->early_data ? UINT32_MAX : 0);
  if (rv != WOLFSSL_SUCCESS) {
    h3wt_tls_seterr(errbuf, errlen, "cannot enable 0-RTT: %s",
           wolf_reason(rv, reason, sizeof(reason)));
    goto fail;
  }
#endif
  /* Session tickets (resumption) are on by default for a TLS 1.3 server,
     with wolfSSL's own rotating ticket key. */
  if (opts->keylog_file != NULL &&
      keylog_open(ctx, opts->keylog_file, errbuf, errlen) != 0) {
    goto fail;
  }
  *pctx = ctx;
  return 0;

fail:
  h3wt_tls_ctx_del(ctx);
  return -1;
}

int h3wt_tls_client_ctx_new(h3wt_tls_ctx **pctx, const h3wt_tls_ctx_opts *opts,
                            char *errbuf, size_t errlen) {
  static const h3wt_tls_ctx_opts no_opts;
  h3wt_tls_ctx *ctx;
  char reason[WOLFSSL_MAX_ERROR_SZ];
  int rv;

  if (pctx == NULL) {
    h3wt_tls_seterr(errbuf, errlen, "no place to return the TLS context");
    return -1;
  }
  *pctx = NULL;
  if (opts == NULL) {
    opts = &no_opts;
  }
  if (!opts->insecure && opts->ca_file != NULL &&
      check_readable("CA file", opts->ca_file, errbuf, errlen) != 0) {
    return -1;
  }
  if (ctx_new_common(&ctx, 0, errbuf, errlen) != 0) {
    return -1;
  }

  if (opts->insecure) {
    wolfSSL_CTX_set_verify(ctx->ssl_ctx, WOLFSSL_VERIFY_NONE, NULL);
  } else {
    ctx->verify = 1;
    wolfSSL_CTX_set_verify(ctx->ssl_ctx, WOLFSSL_VERIFY_PEER, NULL);
    if (opts->ca_file != NULL) {
      rv = wolfSSL_CTX_load_verify_locations(ctx->ssl_ctx, opts->ca_file, NULL);
      if (rv != WOLFSSL_SUCCESS) {
        h3wt_tls_seterr(errbuf, errlen, "cannot load CA certificates from '%s': %s",
               opts->ca_file, wolf_reason(rv, reason, sizeof(reason)));
        goto fail;
      }
    } else {
      /* SSL_CERT_FILE / SSL_CERT_DIR if set, else the system store. */
      rv = wolfSSL_CTX_set_default_verify_paths(ctx->ssl_ctx);
      if (rv != WOLFSSL_SUCCESS) {
        h3wt_tls_seterr(errbuf, errlen, "cannot load the system CA certificates: %s",
               wolf_reason(rv, reason, sizeof(reason)));
        goto fail;
      }
    }
  }
  if (opts->keylog_file != NULL &&
      keylog_open(ctx, opts->keylog_file, errbuf, errlen) != 0) {
    goto fail;
  }
  *pctx = ctx;
  return 0;

fail:
  h3wt_tls_ctx_del(ctx);
  return -1;
}

void h3wt_tls_ctx_del(h3wt_tls_ctx *ctx) {
  if (ctx == NULL) {
    return;
  }
  if (ctx->ssl_ctx != NULL) {
    wolfSSL_CTX_free(ctx->ssl_ctx);
  }
  if (ctx->keylog != NULL) {
    fclose(ctx->keylog);
  }
  secure_zero(ctx->ticket_key, sizeof(ctx->ticket_key));
  free(ctx);
  /* Pairs with the wolfSSL_Init in ctx_new_common, which every context that
     reached this point went through. */
  wolfSSL_Cleanup();
}

/* ---- session tickets (server) ------------------------------------------ */

/* wolfSSL's ticket callback: seals the ticket's state with
   ChaCha20-Poly1305 under our key (enc != 0), or opens it (enc == 0).
   The 16-byte key name goes in the clear and is authenticated with the
   ticket; a ticket under another name (another server, an older key) is
   refused, which means a full handshake, never an error.  The nonce is
   the first 12 bytes of wolfSSL's IV field, the tag the first 16 of its
   MAC field (the rest zero, and checked). */
static int ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc,
                     unsigned char *ticket, int inlen, int *outlen,
                     void *userctx) {
  h3wt_tls_ctx *ctx = userctx;
  static const uint8_t zero[WOLFSSL_TICKET_MAC_SZ];

  (void)ssl;
  if (ctx == NULL || !ctx->has_ticket_key || inlen < 0) {
    return WOLFSSL_TICKET_RET_FATAL;
  }
  if (enc) {
    memcpy(name, ctx->ticket_name, WOLFSSL_TICKET_NAME_SZ);
    memset(iv, 0, WOLFSSL_TICKET_IV_SZ);
    memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    if (h3wt_random(iv, CHACHA20_POLY1305_AEAD_IV_SIZE) != 0 ||
        wc_ChaCha20Poly1305_Encrypt(ctx->ticket_key, iv, name,
                                    WOLFSSL_TICKET_NAME_SZ, ticket,
                                    (word32)inlen, ticket, mac) != 0) {
      return WOLFSSL_TICKET_RET_FATAL;
    }
    *outlen = inlen;
    return WOLFSSL_TICKET_RET_OK;
  }
  if (memcmp(name, ctx->ticket_name, WOLFSSL_TICKET_NAME_SZ) != 0 ||
      memcmp(mac + CHACHA20_POLY1305_AEAD_AUTHTAG_SIZE, zero,
             WOLFSSL_TICKET_MAC_SZ - CHACHA20_POLY1305_AEAD_AUTHTAG_SIZE) !=
          0) {
    return WOLFSSL_TICKET_RET_REJECT;
  }
  if (wc_ChaCha20Poly1305_Decrypt(ctx->ticket_key, iv, name,
                                  WOLFSSL_TICKET_NAME_SZ, ticket,
                                  (word32)inlen, mac, ticket) != 0) {
    return WOLFSSL_TICKET_RET_REJECT;
  }
  *outlen = inlen;
  return WOLFSSL_TICKET_RET_OK;
}

int h3wt_tls_ctx_set_ticket_key(h3wt_tls_ctx *ctx, const uint8_t key[32]) {
  uint8_t buf[16 + 32], digest[32];

  if (ctx == NULL || !ctx->is_server) {
    return -1;
  }
  memcpy(ctx->ticket_key, key, 32);
  /* The name is a hash of the key: servers with the same key (a group's
     workers, a restart with the same secret) recognise each other's
     tickets; any other key gives another name. */
  memcpy(buf, "h3wt ticket name", 16);
  memcpy(buf + 16, key, 32);
  if (h3wt_tls_sha256(buf, sizeof(buf), digest) != 0) {
    return -1;
  }
  secure_zero(buf, sizeof(buf));
  memcpy(ctx->ticket_name, digest, WOLFSSL_TICKET_NAME_SZ);
  ctx->has_ticket_key = 1;
  if (wolfSSL_CTX_set_TicketEncCtx(ctx->ssl_ctx, ctx) != WOLFSSL_SUCCESS ||
      wolfSSL_CTX_set_TicketEncCb(ctx->ssl_ctx, ticket_cb) != WOLFSSL_SUCCESS) {
    ctx->has_ticket_key = 0;
    return -1;
  }
  return 0;
}

/* ---- resumption (client) ------------------------------------------------ */

int h3wt_tls_session_resume(void *ssl, const uint8_t *der, size_t derlen) {
  const unsigned char *p = der;
  WOLFSSL_SESSION *sess;
  int early = 0;

  if (ssl == NULL || der == NULL || derlen == 0 || derlen > 65536) {
    return -1;
  }
  sess = wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)derlen);
  if (sess == NULL) {
    wolfSSL_ERR_clear_error();
    return -1;
  }
  if (wolfSSL_set_session(ssl, sess) != WOLFSSL_SUCCESS) {
    wolfSSL_SESSION_free(sess);
    wolfSSL_ERR_clear_error();
    return -1;
  }
#ifdef WOLFSSL_EARLY_DATA
  /* QUIC tickets that allow 0-RTT say 0xffffffff (RFC 9001, 4.6.1). */
  if (wolfSSL_SESSION_get_max_early_data(sess) == UINT32_MAX) {
    wolfSSL_set_quic_early_data_enabled(ssl, 1);
    early = 1;
  }
#endif
  wolfSSL_SESSION_free(sess);
  return early;
}

int h3wt_tls_session_export(void *ssl, uint8_t **pder, size_t *pderlen) {
  WOLFSSL_SESSION *sess;
  unsigned char *der, *p;
  int n;

  *pder = NULL;
  *pderlen = 0;
  if (ssl == NULL) {
    return -1;
  }
  sess = wolfSSL_get1_session(ssl);
  if (sess == NULL) {
    return -1;
  }
  /* A session without a ticket cannot resume anything. */
  if (!wolfSSL_SESSION_has_ticket(sess)) {
    wolfSSL_SESSION_free(sess);
    return -1;
  }
  n = wolfSSL_i2d_SSL_SESSION(sess, NULL);
  if (n <= 0 || (der = malloc((size_t)n)) == NULL) {
    wolfSSL_SESSION_free(sess);
    return -1;
  }
  p = der;
  if (wolfSSL_i2d_SSL_SESSION(sess, &p) != n) {
    free(der);
    wolfSSL_SESSION_free(sess);
    return -1;
  }
  wolfSSL_SESSION_free(sess);
  *pder = der;
  *pderlen = (size_t)n;
  return 0;
}

static int ticket_seen(WOLFSSL *ssl, const unsigned char *ticket, int len,
                       void *ctx) {
  (void)ssl;
  (void)ticket;
  (void)len;
  ++*(unsigned *)ctx;
  return 0;
}

void h3wt_tls_session_count_tickets(void *ssl, unsigned *counter) {
  if (ssl != NULL) {
    wolfSSL_set_SessionTicket_cb(ssl, ticket_seen, counter);
  }
}

int h3wt_tls_session_reused(void *ssl) {
  return ssl != NULL && wolfSSL_session_reused(ssl) == 1;
}

int h3wt_tls_early_data_status(void *ssl) {
#ifdef WOLFSSL_EARLY_DATA
  int st = ssl != NULL ? wolfSSL_get_early_data_status(ssl) : 0;
  return st == WOLFSSL_EARLY_DATA_ACCEPTED   ? 2
         : st == WOLFSSL_EARLY_DATA_REJECTED ? 1
                                             : 0;
#else
  (void)ssl;
  return 0;
#endif
}

int h3wt_tls_early_data_accepted(void *ssl) {
#ifdef WOLFSSL_EARLY_DATA
  return ssl != NULL &&
         wolfSSL_get_early_data_status(ssl) == WOLFSSL_EARLY_DATA_ACCEPTED;
#else
  (void)ssl;
  return 0;
#endif
}

/* ---- sessions ----------------------------------------------------------- */

void *h3wt_tls_session_new_server(h3wt_tls_ctx *ctx, void *conn_ref) {
  WOLFSSL *ssl;
  char alpn[sizeof(h3_alpn) + 1];

  if (ctx == NULL || !ctx->is_server || conn_ref == NULL) {
    return NULL;
  }
  ssl = wolfSSL_new(ctx->ssl_ctx);
  if (ssl == NULL) {
    return NULL;
  }
  /* ngtcp2_crypto_wolfssl finds the connection through this. */
  wolfSSL_set_app_data(ssl, conn_ref);
  wolfSSL_set_accept_state(ssl);
  /* See alpn_select_cb for why the list is set here as well. */
  memcpy(alpn, h3_alpn, sizeof(h3_alpn));
  alpn[sizeof(h3_alpn)] = '\0';
  if (wolfSSL_UseALPN(ssl, alpn, sizeof(h3_alpn),
                      WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS) {
    wolfSSL_free(ssl);
    return NULL;
  }
#ifdef WOLFSSL_EARLY_DATA
  wolfSSL_set_quic_early_data_enabled(ssl, ctx->early_data);
#endif
  /* The codepoint of the quic_transport_parameters extension for QUIC v1
     (and v2), RFC 9000. */
  wolfSSL_set_quic_transport_version(ssl, 0x39);
  return ssl;
}

/* ---- received handshake data ------------------------------------------- */

/* Passes handshake data to wolfSSL and advances the handshake, as
   ngtcp2_crypto_recv_crypto_data_cb does. */
static int provide_crypto(ngtcp2_conn *conn, int level, const uint8_t *data,
                          size_t len) {
  int rv;

  if (ngtcp2_crypto_read_write_crypto_data(
          conn, (ngtcp2_encryption_level)level, data, len) != 0) {
    rv = ngtcp2_conn_get_tls_error(conn);
    return rv != 0 ? rv : NGTCP2_ERR_CRYPTO;
  }
  return 0;
}

/* wolfSSL before 5.8.0 fails wolfSSL_provide_quic_data when the call
   completes a handshake message header (type and 24-bit length: 4 bytes)
   that an earlier call began, and carries no byte beyond it: its
   quic_record_append returns 0 there, which wolfSSL_provide_quic_data takes
   for an error (wolfSSL PR 8340, January 2025).  The handshake then fails
   with NGTCP2_ERR_CRYPTO and no TLS alert.  ngtcp2 hands over CRYPTO data
   frame by frame, and Chromium cuts its ClientHello into CRYPTO frames at
   random offsets, so about one handshake in a hundred had frame boundaries
   at offsets 1..3 and 4 of the ClientHello and failed.  Hence wolfSSL is
   never given part of a header: an incomplete header at the end of the data
   is kept in rx and passed on, whole, when the rest arrives.  A header alone
   is harmless, as is all of this with a fixed wolfSSL. */
int h3wt_tls_recv_crypto_data(h3wt_tls_crypto_rx *rx, void *conn, int level,
                              const uint8_t *data, size_t datalen) {
  uint8_t *hdr;
  uint8_t *hdrlen;
  uint32_t *left;
  size_t off, n;
  int rv;

  if (level < 0 || level >= H3WT_TLS_CRYPTO_LEVELS) {
    return provide_crypto(conn, level, data, datalen);
  }
  hdr = rx->hdr[level];
  hdrlen = &rx->hdrlen[level];
  left = &rx->body_left[level];
  if (*hdrlen > 0) {
    n = 4 - (size_t)*hdrlen;
    if (n > datalen) {
      n = datalen;
    }
    memcpy(hdr + *hdrlen, data, n);
    *hdrlen = (uint8_t)(*hdrlen + n);
    data += n;
    datalen -= n;
    if (*hdrlen < 4) {
      return 0;
    }
    *hdrlen = 0;
    *left = ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
    rv = provide_crypto(conn, level, hdr, 4);
    if (rv != 0) {
      return rv;
    }
  }
  /* Follows the messages to where the data ends. */
  for (off = 0; off < datalen;) {
    if (*left > 0) {
      n = datalen - off < *left ? datalen - off : *left;
      off += n;
      *left -= (uint32_t)n;
    } else if (datalen - off >= 4) {
      *left = ((uint32_t)data[off + 1] << 16) |
              ((uint32_t)data[off + 2] << 8) | data[off + 3];
      off += 4;
    } else {
      *hdrlen = (uint8_t)(datalen - off);
      memcpy(hdr, data + off, *hdrlen);
      datalen = off;
    }
  }
  return datalen > 0 ? provide_crypto(conn, level, data, datalen) : 0;
}

/* If host is an IPv4 or IPv6 literal (the latter possibly in brackets),
   writes it to out in the form wolfSSL prints IP subjectAltNames in when it
   compares them with the name given to wolfSSL_check_domain_name (dotted
   decimal; eight groups of four hex digits), and returns 1.  Returns 0 for
   anything else. */
static int ip_literal_canon(const char *host, char *out, size_t outlen) {
  char buf[INET6_ADDRSTRLEN + 2];
  uint8_t a[16];
  size_t len = strlen(host);
  size_t i, o;

  if (inet_pton(AF_INET, host, a) == 1) {
    snprintf(out, outlen, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    return 1;
  }
  if (len > 2 && len < sizeof(buf) && host[0] == '[' && host[len - 1] == ']') {
    memcpy(buf, host + 1, len - 2);
    buf[len - 2] = '\0';
    host = buf;
  }
  if (inet_pton(AF_INET6, host, a) != 1) {
    return 0;
  }
  for (i = 0, o = 0; i < 8 && o < outlen; i++) {
    o += (size_t)snprintf(out + o, outlen - o, "%02X%02X%s", a[2 * i],
                          a[2 * i + 1], i < 7 ? ":" : "");
  }
  return 1;
}

void *h3wt_tls_session_new_client(h3wt_tls_ctx *ctx, void *conn_ref,
                                  const char *sni) {
  WOLFSSL *ssl;
  char alpn[sizeof(h3_alpn) + 1];
  size_t snilen;

  if (ctx == NULL || ctx->is_server || conn_ref == NULL) {
    return NULL;
  }
  ssl = wolfSSL_new(ctx->ssl_ctx);
  if (ssl == NULL) {
    return NULL;
  }
  wolfSSL_set_app_data(ssl, conn_ref);
  wolfSSL_set_connect_state(ssl);
  memcpy(alpn, h3_alpn, sizeof(h3_alpn));
  alpn[sizeof(h3_alpn)] = '\0';
  if (wolfSSL_UseALPN(ssl, alpn, sizeof(h3_alpn),
                      WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS) {
    goto fail;
  }
  /* Without a name there is nothing to send or to check the certificate's
     names against (the chain is still verified). */
  if (sni != NULL && *sni != '\0') {
    char ip[48];
    int is_ip = ip_literal_canon(sni, ip, sizeof(ip));

    snilen = strlen(sni);
    /* SNI must not carry an IP address (RFC 6066, 3); the certificate is
       still checked against one, through its IP subjectAltNames. */
    if (!is_ip && (snilen > UINT16_MAX ||
                   wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, sni,
                                  (uint16_t)snilen) != WOLFSSL_SUCCESS)) {
      goto fail;
    }
    if (ctx->verify &&
        wolfSSL_check_domain_name(ssl, is_ip ? ip : sni) != WOLFSSL_SUCCESS) {
      goto fail;
    }
  }
  wolfSSL_set_quic_transport_version(ssl, 0x39);
  /* Keep the tickets the server sends (h3wt_tls_session_export). */
  wolfSSL_UseSessionTicket(ssl);
  return ssl;

fail:
  wolfSSL_free(ssl);
  return NULL;
}

void h3wt_tls_session_del(void *ssl) {
  if (ssl != NULL) {
    wolfSSL_free(ssl);
  }
}

void h3wt_tls_session_alpn(void *ssl, const uint8_t **alpn, size_t *alpnlen) {
  const unsigned char *data = NULL;
  unsigned int len = 0;

  if (ssl != NULL) {
    wolfSSL_get0_alpn_selected(ssl, &data, &len);
  }
  if (data == NULL || len == 0) {
    data = NULL;
    len = 0;
  }
  if (alpn != NULL) {
    *alpn = data;
  }
  if (alpnlen != NULL) {
    *alpnlen = len;
  }
}

/* ---- files -------------------------------------------------------------- */

/* Clears secrets in a way the compiler may not elide. */
static void secure_zero(void *p, size_t n) {
  volatile uint8_t *v = p;

  while (n-- > 0) {
    *v++ = 0;
  }
}

/* Reads a whole (small) file into a NUL-terminated heap buffer.  Returns
   0, H3WT_ERR_NOMEM, or H3WT_ERR_IO for anything else (missing, not a
   regular file, too large, changed while read). */
static int read_small_file(const char *path, uint8_t **pdata, size_t *plen) {
  FILE *f = fopen(path, "rb");
  uint8_t *data = NULL;
  struct stat st;
  size_t len;
  int rv = H3WT_ERR_IO;

  *pdata = NULL;
  *plen = 0;
  if (f == NULL) {
    return H3WT_ERR_IO;
  }
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size > H3WT_TLS_MAX_PEM) {
    goto fail;
  }
  len = (size_t)st.st_size;
  data = malloc(len + 1);
  if (data == NULL) {
    rv = H3WT_ERR_NOMEM;
    goto fail;
  }
  /* A file that changes size while being read is not trusted either. */
  if (fread(data, 1, len, f) != len || fgetc(f) != EOF) {
    goto fail;
  }
  fclose(f);
  data[len] = '\0';
  *pdata = data;
  *plen = len;
  return 0;

fail:
  free(data);
  fclose(f);
  return rv;
}

int h3wt_tls_cert_file_der(const char *path, uint8_t **pder, size_t *pderlen) {
  uint8_t *pem;
  uint8_t *der;
  size_t pemlen;
  int n;

  *pder = NULL;
  *pderlen = 0;
  if (path == NULL) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  n = read_small_file(path, &pem, &pemlen);
  if (n != 0) {
    return n;
  }
  /* Base64 decodes to less than its own length. */
  der = malloc(pemlen + 1);
  if (der == NULL) {
    free(pem);
    return H3WT_ERR_NOMEM;
  }
  n = wc_CertPemToDer(pem, (int)pemlen, der, (int)pemlen + 1, CERT_TYPE);
  free(pem);
  if (n <= 0) {
    free(der);
    return H3WT_ERR_TLS; /* no PEM certificate in it */
  }
  *pder = der;
  *pderlen = (size_t)n;
  return 0;
}

/* Whether the ECC private key in key_file (PEM: SEC 1 or PKCS #8) belongs
   to the first certificate in cert_file: derives the public point from the
   private scalar and compares it with the certificate's.  Returns 1 on a
   match, 0 on a mismatch, -1 when either side is not an ECC key or cannot
   be read (then wolfSSL's own checks are all there is). */
static int ecc_key_matches_cert(const char *cert_file, const char *key_file) {
  uint8_t *pem = NULL, *keyder = NULL, *certder = NULL;
  uint8_t spki[512], a[160], b[160];
  word32 alen = sizeof(a), blen = sizeof(b), idx;
  size_t pemlen, certlen;
  int spkilen = sizeof(spki);
  int n, rv = -1, priv_ok = 0, pub_ok = 0, rng_ok = 0;
  WOLFSSL_X509 *x509 = NULL;
  ecc_key priv, pub;
  WC_RNG rng;

  if (read_small_file(key_file, &pem, &pemlen) != 0 ||
      h3wt_tls_cert_file_der(cert_file, &certder, &certlen) != 0) {
    goto out;
  }
  keyder = malloc(pemlen + 1);
  if (keyder == NULL) {
    goto out;
  }
  n = wc_KeyPemToDer(pem, (int)pemlen, keyder, (int)pemlen + 1, NULL);
  if (n <= 0) {
    goto out;
  }
  if (wc_ecc_init(&priv) != 0) {
    goto out;
  }
  priv_ok = 1;
  idx = 0;
  if (wc_EccPrivateKeyDecode(keyder, &idx, &priv, (word32)n) != 0) {
    goto out; /* not an ECC key */
  }
  x509 = wolfSSL_X509_d2i(NULL, certder, (int)certlen);
  if (x509 == NULL ||
      wolfSSL_X509_get_pubkey_buffer(x509, spki, &spkilen) != WOLFSSL_SUCCESS ||
      wc_ecc_init(&pub) != 0) {
    goto out;
  }
  pub_ok = 1;
  idx = 0;
  if (wc_EccPublicKeyDecode(spki, &idx, &pub, (word32)spkilen) != 0) {
    rv = 0; /* an ECC private key for a certificate of another kind */
    goto out;
  }
  if (wc_InitRng(&rng) != 0) {
    goto out;
  }
  rng_ok = 1;
  /* The random generator blinds the scalar multiplication. */
  if (wc_ecc_make_pub_ex(&priv, NULL, &rng) != 0 ||
      wc_ecc_export_x963(&priv, a, &alen) != 0 ||
      wc_ecc_export_x963(&pub, b, &blen) != 0) {
    goto out;
  }
  rv = alen == blen && memcmp(a, b, alen) == 0;

out:
  if (rng_ok) {
    wc_FreeRng(&rng);
  }
  if (pub_ok) {
    wc_ecc_free(&pub);
  }
  if (priv_ok) {
    wc_ecc_free(&priv);
  }
  wolfSSL_X509_free(x509);
  if (keyder != NULL) {
    secure_zero(keyder, pemlen + 1);
    free(keyder);
  }
  if (pem != NULL) {
    secure_zero(pem, pemlen);
    free(pem);
  }
  free(certder);
  return rv;
}

int h3wt_tls_sha256(const void *data, size_t len, uint8_t out[32]) {
  return wc_Sha256Hash(data, (word32)len, out) == 0 ? 0 : -1;
}
