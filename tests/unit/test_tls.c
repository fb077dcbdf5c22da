/*
 * Unit test of h3wt_tls and h3wt_devcert: development certificates (files,
 * mode, validity span, subjectAltNames, hash, the public calls' error
 * codes), context creation and its error messages,
 * and real QUIC handshakes between h3wt client and server sessions run
 * through ngtcp2 in memory (ALPN, certificate and host name verification,
 * key log).
 *
 * Exits 0 when everything passes; otherwise prints each failure on stderr
 * and exits 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* mkdtemp, timegm */
#endif

#include "h3wt_tls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

/* Only to inspect the certificate independently of the code under test and
   to build a deliberately wrong client; h3wt itself keeps wolfSSL inside
   h3wt_tls.c. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/quic.h>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

static int failures;

static void fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;

  fprintf(stderr, "FAIL %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  failures++;
}

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fail(__FILE__, __LINE__, "(" #cond ") " __VA_ARGS__);                    \
    }                                                                          \
  } while (0)

#define DAY 86400

static char dir[256];
static char cert1[300], key1[300], cert2[300], key2[300], keylog[300];
static char missing[300], baddir[300];

/* ---- certificate inspection --------------------------------------------- */

static time_t asn1_time(const WOLFSSL_ASN1_TIME *t) {
  struct tm tm;

  memset(&tm, 0, sizeof(tm));
  if (t == NULL || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS) {
    return (time_t)-1;
  }
  return timegm(&tm);
}

static void check_cert_contents(const char *path) {
  WOLFSSL_X509 *x =
      wolfSSL_X509_load_certificate_file(path, WOLFSSL_FILETYPE_PEM);
  time_t nb, na, now = time(NULL);
  int dns = 0, v4 = 0, v6 = 0;
  char cn[128];
  char *alt;

  CHECK(x != NULL, "cannot parse %s", path);
  if (x == NULL) {
    return;
  }
  nb = asn1_time(wolfSSL_X509_get_notBefore(x));
  na = asn1_time(wolfSSL_X509_get_notAfter(x));
  CHECK(nb != (time_t)-1 && na != (time_t)-1, "unreadable validity dates");
  CHECK(na - nb <= 14 * DAY, "validity span %lld s exceeds 14 days",
        (long long)(na - nb));
  CHECK(na - nb >= 12 * DAY, "validity span %lld s is suspiciously short",
        (long long)(na - nb));
  CHECK(nb <= now && now <= na, "validity [%lld, %lld] does not cover %lld",
        (long long)nb, (long long)na, (long long)now);
  /* X.509 v3 is encoded (and reported, as by OpenSSL) as version 2. */
  CHECK(wolfSSL_X509_get_version(x) == 2, "version %ld",
        (long)wolfSSL_X509_get_version(x));
  CHECK(wolfSSL_X509_get_isCA(x) == 0, "the certificate claims to be a CA");

  CHECK(wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x),
                                          NID_commonName, cn, sizeof(cn)) > 0 &&
            strcmp(cn, "localhost") == 0,
        "subject CN is not localhost");
  while ((alt = wolfSSL_X509_get_next_altname(x)) != NULL) {
    dns += strcmp(alt, "localhost") == 0;
    v4 += strcmp(alt, "127.0.0.1") == 0;
    /* wolfSSL prints IPv6 addresses in full. */
    v6 += strcmp(alt, "0000:0000:0000:0000:0000:0000:0000:0001") == 0;
  }
  CHECK(dns == 1 && v4 == 1 && v6 == 1,
        "subjectAltNames: DNS:localhost %d, IP:127.0.0.1 %d, IP:::1 %d", dns,
        v4, v6);
  wolfSSL_X509_free(x);
}

/* ---- in-memory QUIC handshake ------------------------------------------- */

typedef struct endpoint {
  ngtcp2_conn *conn;
  ngtcp2_crypto_conn_ref ref;
  void *ssl;
  h3wt_tls_crypto_rx crypto_rx;
  struct sockaddr_in local, remote;
  ngtcp2_path path;
} endpoint;

/* How both sides cut the CRYPTO data ngtcp2 hands them before passing it
   on: chunk sizes, used in turn from the start of each callback (no sizes:
   whole), as a peer's CRYPTO frames may be cut.  crypto_raw passes the
   chunks to ngtcp2_crypto_recv_crypto_data_cb instead of h3wt's
   replacement, to show what the latter works around. */
static const size_t *crypto_split;
static size_t crypto_nsplit;
static int crypto_raw;

static int recv_crypto_data_cb(ngtcp2_conn *conn,
                               ngtcp2_encryption_level level, uint64_t offset,
                               const uint8_t *data, size_t datalen,
                               void *user_data) {
  endpoint *ep = user_data;
  size_t off = 0, i = 0;
  int rv;

  while (off < datalen) {
    size_t n = crypto_nsplit > 0 ? crypto_split[i++ % crypto_nsplit] : datalen;

    if (n > datalen - off) {
      n = datalen - off;
    }
    rv = crypto_raw ? ngtcp2_crypto_recv_crypto_data_cb(
                          conn, level, offset + off, data + off, n, user_data)
                    : h3wt_tls_recv_crypto_data(&ep->crypto_rx, conn,
                                                (int)level, data + off, n);
    if (rv != 0) {
      return rv;
    }
    off += n;
  }
  return 0;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((endpoint *)ref->user_data)->conn;
}

/* Not cryptographic: the handshake only needs distinct connection IDs. */
static void rand_bytes(uint8_t *dest, size_t len) {
  size_t i;

  for (i = 0; i < len; i++) {
    dest[i] = (uint8_t)(rand() >> 7);
  }
}

static void rand_cb(uint8_t *dest, size_t destlen,
                    const ngtcp2_rand_ctx *rand_ctx) {
  rand_bytes(dest, destlen);
}

static int new_cid_cb(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
                      size_t cidlen, void *user_data) {
  rand_bytes(cid->data, cidlen);
  cid->datalen = cidlen;
  rand_bytes(token, NGTCP2_STATELESS_RESET_TOKENLEN);
  return 0;
}

static ngtcp2_tstamp now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (ngtcp2_tstamp)ts.tv_sec * NGTCP2_SECONDS + (ngtcp2_tstamp)ts.tv_nsec;
}

static void set_callbacks(ngtcp2_callbacks *cb, int server) {
  memset(cb, 0, sizeof(*cb));
  if (server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb->recv_crypto_data = recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->rand = rand_cb;
  cb->get_new_connection_id = new_cid_cb;
}

static void endpoint_init(endpoint *ep, uint16_t lport, uint16_t rport) {
  memset(ep, 0, sizeof(*ep));
  ep->local.sin_family = ep->remote.sin_family = AF_INET;
  ep->local.sin_addr.s_addr = ep->remote.sin_addr.s_addr =
      htonl(INADDR_LOOPBACK);
  ep->local.sin_port = htons(lport);
  ep->remote.sin_port = htons(rport);
  ep->path.local.addr = (ngtcp2_sockaddr *)&ep->local;
  ep->path.local.addrlen = sizeof(ep->local);
  ep->path.remote.addr = (ngtcp2_sockaddr *)&ep->remote;
  ep->path.remote.addrlen = sizeof(ep->remote);
  ep->ref.get_conn = get_conn;
  ep->ref.user_data = ep;
}

/* Sends everything from one endpoint to the other (creating the server on
   the first client packet).  Returns -1 when a read fails. */
static int pump(endpoint *from, endpoint *to, h3wt_tls_ctx *sctx,
                ngtcp2_tstamp ts) {
  uint8_t buf[1500];
  ngtcp2_pkt_info pi = {0};

  for (;;) {
    ngtcp2_ssize n =
        ngtcp2_conn_write_pkt(from->conn, NULL, NULL, buf, sizeof(buf), ts);

    if (n < 0) {
      return -1;
    }
    if (n == 0) {
      return 0;
    }
    if (to->conn == NULL) {
      ngtcp2_callbacks cb;
      ngtcp2_settings settings;
      ngtcp2_transport_params params;
      ngtcp2_pkt_hd hd;
      ngtcp2_cid scid;

      if (ngtcp2_accept(&hd, buf, (size_t)n) != 0) {
        return -1;
      }
      set_callbacks(&cb, 1);
      ngtcp2_settings_default(&settings);
      settings.initial_ts = ts;
      ngtcp2_transport_params_default(&params);
      params.initial_max_streams_bidi = 10;
      params.initial_max_data = 1 << 20;
      params.original_dcid = hd.dcid;
      params.original_dcid_present = 1;
      scid.datalen = 16;
      rand_bytes(scid.data, scid.datalen);
      if (ngtcp2_conn_server_new(&to->conn, &hd.scid, &scid, &to->path,
                                 hd.version, &cb, &settings, &params, NULL,
                                 to) != 0) {
        return -1;
      }
      to->ssl = h3wt_tls_session_new_server(sctx, &to->ref);
      if (to->ssl == NULL) {
        return -1;
      }
      ngtcp2_conn_set_tls_native_handle(to->conn, to->ssl);
    }
    if (ngtcp2_conn_read_pkt(to->conn, &to->path, &pi, buf, (size_t)n, ts) !=
        0) {
      return -1;
    }
  }
}

/* TLS alerts (RFC 8446, 6), to tell why a handshake failed. */
#define ALERT_BAD_CERTIFICATE 42
#define ALERT_NO_APPLICATION_PROTOCOL 120

/* Runs a handshake.  alt_alpn, if set, replaces the client's "h3" offer (to
   see the server refuse).  Returns 0 when both sides completed, -1
   otherwise; *alpn_ok tells whether both negotiated "h3", *alert which TLS
   alert the client or else the server sent (0: none). */
static int handshake(h3wt_tls_ctx *sctx, h3wt_tls_ctx *cctx, const char *sni,
                     const char *alt_alpn, int *alpn_ok, int *alert) {
  endpoint client, server;
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid dcid, scid;
  ngtcp2_tstamp ts = now_ns();
  int i, rv = -1;

  *alpn_ok = 0;
  *alert = 0;
  endpoint_init(&client, 50000, 4433);
  endpoint_init(&server, 4433, 50000);
  set_callbacks(&cb, 0);
  ngtcp2_settings_default(&settings);
  settings.initial_ts = ts;
  ngtcp2_transport_params_default(&params);
  params.initial_max_streams_bidi = 10;
  params.initial_max_data = 1 << 20;
  dcid.datalen = 16;
  rand_bytes(dcid.data, dcid.datalen);
  scid.datalen = 16;
  rand_bytes(scid.data, scid.datalen);
  if (ngtcp2_conn_client_new(&client.conn, &dcid, &scid, &client.path,
                             NGTCP2_PROTO_VER_V1, &cb, &settings, &params, NULL,
                             &client) != 0) {
    return -1;
  }
  client.ssl = h3wt_tls_session_new_client(cctx, &client.ref, sni);
  if (client.ssl == NULL) {
    goto out;
  }
  if (alt_alpn != NULL) {
    /* Swap in a session that offers something else, from the same
       context. */
    WOLFSSL *ssl = wolfSSL_new(wolfSSL_get_SSL_CTX(client.ssl));
    char name[32];

    snprintf(name, sizeof(name), "%s", alt_alpn);
    h3wt_tls_session_del(client.ssl);
    client.ssl = ssl;
    if (ssl == NULL) {
      goto out;
    }
    wolfSSL_set_app_data(ssl, &client.ref);
    wolfSSL_set_connect_state(ssl);
    wolfSSL_UseALPN(ssl, name, (unsigned int)strlen(name),
                    WOLFSSL_ALPN_FAILED_ON_MISMATCH);
    wolfSSL_set_quic_transport_version(ssl, 0x39);
  }
  ngtcp2_conn_set_tls_native_handle(client.conn, client.ssl);

  for (i = 0; i < 16; i++) {
    if (pump(&client, &server, sctx, ts) != 0 || server.conn == NULL ||
        pump(&server, &client, sctx, ts) != 0) {
      goto out;
    }
    if (ngtcp2_conn_get_handshake_completed(client.conn) &&
        ngtcp2_conn_get_handshake_completed(server.conn)) {
      const uint8_t *a, *b;
      size_t alen, blen;

      h3wt_tls_session_alpn(client.ssl, &a, &alen);
      h3wt_tls_session_alpn(server.ssl, &b, &blen);
      *alpn_ok = a != NULL && alen == 2 && memcmp(a, "h3", 2) == 0 &&
                 b != NULL && blen == 2 && memcmp(b, "h3", 2) == 0;
      rv = 0;
      break;
    }
    ts += NGTCP2_MILLISECONDS;
  }

out:
  if (client.conn != NULL) {
    *alert = ngtcp2_conn_get_tls_alert(client.conn);
  }
  if (*alert == 0 && server.conn != NULL) {
    *alert = ngtcp2_conn_get_tls_alert(server.conn);
  }
  /* The connections go first: they may still reach the TLS objects. */
  if (client.conn != NULL) {
    ngtcp2_conn_del(client.conn);
  }
  if (server.conn != NULL) {
    ngtcp2_conn_del(server.conn);
  }
  h3wt_tls_session_del(client.ssl);
  h3wt_tls_session_del(server.ssl);
  return rv;
}

static long file_size(const char *path) {
  struct stat st;

  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int file_contains(const char *path, const char *needle) {
  char buf[8192];
  size_t n;
  FILE *f = fopen(path, "r");

  if (f == NULL) {
    return 0;
  }
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, needle) != NULL;
}

/* Writes the concatenation of files a and b to out. */
static int concat(const char *out, const char *a, const char *b) {
  const char *in[2] = {a, b};
  char buf[4096];
  FILE *o = fopen(out, "w");
  int i, rv = 0;

  if (o == NULL) {
    return -1;
  }
  for (i = 0; i < 2; i++) {
    FILE *f = fopen(in[i], "r");
    size_t n;

    if (f == NULL) {
      rv = -1;
      break;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
      fwrite(buf, 1, n, o);
    }
    fclose(f);
  }
  if (fclose(o) != 0) {
    rv = -1;
  }
  return rv;
}

/* ---- the test ----------------------------------------------------------- */

int main(void) {
  char err[512];
  uint8_t h1[32], h1b[32], h2[32], hx[32];
  h3wt_tls_ctx *sctx = NULL, *cctx = NULL, *ctx = NULL;
  h3wt_tls_ctx_opts o;
  ngtcp2_crypto_conn_ref dummy_ref = {get_conn, NULL};
  struct stat st;
  int64_t left;
  int alpn_ok, alert;
  const char *tmp;
  void *ssl;

  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  tmp = getenv("TMPDIR");
  if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 200) {
    tmp = "/tmp";
  }
  snprintf(dir, sizeof(dir), "%s/h3wt-test-tls-XXXXXX", tmp);
  if (mkdtemp(dir) == NULL) {
    fprintf(stderr, "FAIL: mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  snprintf(cert1, sizeof(cert1), "%s/cert1.pem", dir);
  snprintf(key1, sizeof(key1), "%s/key1.pem", dir);
  snprintf(cert2, sizeof(cert2), "%s/cert2.pem", dir);
  snprintf(key2, sizeof(key2), "%s/key2.pem", dir);
  snprintf(keylog, sizeof(keylog), "%s/keylog.txt", dir);
  snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
  snprintf(baddir, sizeof(baddir), "%s/no/such/dir/c.pem", dir);

  /* Development certificates. */
  err[0] = '\0';
  CHECK(h3wt_devcert_make(cert1, key1, err, sizeof(err)) == 0, "%s", err);
  CHECK(h3wt_devcert_make(cert2, key2, err, sizeof(err)) == 0, "%s", err);
  CHECK(file_size(cert1) > 0 && file_size(key1) > 0, "files missing");
  CHECK(stat(key1, &st) == 0 && (st.st_mode & 0777) == 0600, "key mode is %o",
        (unsigned)(st.st_mode & 0777));
  CHECK(file_contains(cert1, "-----BEGIN CERTIFICATE-----"), "not PEM");
  CHECK(file_contains(key1, "PRIVATE KEY-----"), "not PEM");
  if (failures > 0) {
    fprintf(stderr, "cannot go on without certificates\n");
    return 1;
  }
  check_cert_contents(cert1);

  CHECK(h3wt_cert_sha256(cert1, h1) == 0, "sha256 failed");
  CHECK(h3wt_cert_sha256(cert1, h1b) == 0, "sha256 failed");
  CHECK(h3wt_cert_sha256(cert2, h2) == 0, "sha256 failed");
  CHECK(memcmp(h1, h1b, 32) == 0, "hash of the same file differs");
  CHECK(memcmp(h1, h2, 32) != 0, "two certificates have the same hash");
  CHECK(h3wt_cert_sha256(missing, hx) == H3WT_ERR_IO, "hash of a missing file");
  CHECK(h3wt_cert_sha256(NULL, hx) == H3WT_ERR_INVALID_ARGUMENT,
        "hash of no file");
  {
    /* A chain: the hash is that of its first certificate. */
    char chain[300];
    uint8_t hc[32];

    snprintf(chain, sizeof(chain), "%s/chain.pem", dir);
    CHECK(concat(chain, cert1, cert2) == 0, "cannot write %s", chain);
    CHECK(h3wt_cert_sha256(chain, hc) == 0 && memcmp(hc, h1, 32) == 0,
          "hash of a chain is not that of its first certificate");
    unlink(chain);
  }
  CHECK(h3wt_cert_sha256(key1, hx) == H3WT_ERR_TLS, "hash of a key file");

  left = h3wt_cert_seconds_left(cert1);
  CHECK(left > 12 * DAY && left <= 14 * DAY, "seconds left: %lld",
        (long long)left);
  CHECK(h3wt_cert_seconds_left(missing) == INT64_MIN,
        "seconds left of a missing file");

  /* Regenerating replaces the files: a new key, so a new hash. */
  CHECK(h3wt_devcert_make(cert2, key2, err, sizeof(err)) == 0, "%s", err);
  CHECK(h3wt_cert_sha256(cert2, h1b) == 0 && memcmp(h1b, h2, 32) != 0,
        "regenerated certificate has the old hash");
  CHECK(h3wt_devcert_make(cert1, cert1, err, sizeof(err)) ==
            H3WT_ERR_INVALID_ARGUMENT,
        "same file for certificate and key accepted");
  CHECK(h3wt_devcert_make(NULL, key2, NULL, 0) == H3WT_ERR_INVALID_ARGUMENT,
        "no certificate file name accepted");
  CHECK(h3wt_devcert_make(baddir, key2, err, sizeof(err)) == H3WT_ERR_IO &&
            strstr(err, baddir) != NULL,
        "unwritable path: '%s'", err);

  /* Server contexts. */
  memset(&o, 0, sizeof(o));
  o.cert_file = cert1;
  o.key_file = key1;
  o.keylog_file = keylog;
  err[0] = '\0';
  CHECK(h3wt_tls_server_ctx_new(&sctx, &o, err, sizeof(err)) == 0 &&
            sctx != NULL,
        "%s", err);

  o.keylog_file = NULL;
  o.key_file = key2;
  err[0] = '\0';
  CHECK(h3wt_tls_server_ctx_new(&ctx, &o, err, sizeof(err)) == -1 &&
            ctx == NULL,
        "mismatched key accepted");
  CHECK(strstr(err, "does not match") != NULL && strstr(err, key2) != NULL,
        "message: '%s'", err);
  printf("mismatched key: %s\n", err);

  o.key_file = key1;
  o.cert_file = missing;
  err[0] = '\0';
  CHECK(h3wt_tls_server_ctx_new(&ctx, &o, err, sizeof(err)) == -1 &&
            ctx == NULL,
        "missing certificate accepted");
  CHECK(strstr(err, missing) != NULL, "message: '%s'", err);
  printf("missing file: %s\n", err);

  o.cert_file = key1; /* a key is not a certificate */
  err[0] = '\0';
  CHECK(h3wt_tls_server_ctx_new(&ctx, &o, err, sizeof(err)) == -1,
        "key file accepted as certificate");
  CHECK(strstr(err, key1) != NULL, "message: '%s'", err);
  printf("key as certificate: %s\n", err);

  CHECK(h3wt_tls_server_ctx_new(&ctx, NULL, err, sizeof(err)) == -1,
        "no options accepted");

  /* Client contexts. */
  memset(&o, 0, sizeof(o));
  o.insecure = 1;
  err[0] = '\0';
  CHECK(h3wt_tls_client_ctx_new(&ctx, &o, err, sizeof(err)) == 0, "%s", err);
  h3wt_tls_ctx_del(ctx);
  ctx = NULL;

  memset(&o, 0, sizeof(o)); /* verifying with the system's CAs */
  err[0] = '\0';
  CHECK(h3wt_tls_client_ctx_new(&ctx, &o, err, sizeof(err)) == 0, "%s", err);
  h3wt_tls_ctx_del(ctx);
  ctx = NULL;

  o.ca_file = cert1;
  err[0] = '\0';
  CHECK(h3wt_tls_client_ctx_new(&cctx, &o, err, sizeof(err)) == 0, "%s", err);

  o.ca_file = missing;
  CHECK(h3wt_tls_client_ctx_new(&ctx, &o, err, sizeof(err)) == -1 &&
            strstr(err, missing) != NULL,
        "missing CA file: '%s'", err);

  /* Sessions with a dummy connection reference. */
  ssl = h3wt_tls_session_new_server(sctx, &dummy_ref);
  CHECK(ssl != NULL, "server session");
  {
    const uint8_t *a = (const uint8_t *)"x";
    size_t alen = 1;

    h3wt_tls_session_alpn(ssl, &a, &alen);
    CHECK(a == NULL && alen == 0, "server ALPN before the handshake");
  }
  h3wt_tls_session_del(ssl);
  ssl = h3wt_tls_session_new_client(cctx, &dummy_ref, "localhost");
  CHECK(ssl != NULL, "client session");
  {
    const uint8_t *a = (const uint8_t *)"x";
    size_t alen = 1;

    h3wt_tls_session_alpn(ssl, &a, &alen);
    CHECK(a == NULL && alen == 0, "ALPN before the handshake");
  }
  h3wt_tls_session_del(ssl);
  ssl = h3wt_tls_session_new_client(cctx, &dummy_ref, "127.0.0.1");
  CHECK(ssl != NULL, "client session with an IP address");
  h3wt_tls_session_del(ssl);
  CHECK(h3wt_tls_session_new_client(sctx, &dummy_ref, "x") == NULL,
        "client session from a server context");
  CHECK(h3wt_tls_session_new_server(cctx, &dummy_ref) == NULL,
        "server session from a client context");

  /* Handshakes. */
  if (sctx != NULL && cctx != NULL) {
    CHECK(handshake(sctx, cctx, "localhost", NULL, &alpn_ok, &alert) == 0,
          "verified handshake with localhost failed, alert %d", alert);
    CHECK(alpn_ok, "ALPN h3 not negotiated");
    CHECK(handshake(sctx, cctx, "127.0.0.1", NULL, &alpn_ok, &alert) == 0,
          "verified handshake with 127.0.0.1 failed, alert %d", alert);
    CHECK(handshake(sctx, cctx, "[::1]", NULL, &alpn_ok, &alert) == 0,
          "verified handshake with [::1] failed, alert %d", alert);
    CHECK(handshake(sctx, cctx, "::1", NULL, &alpn_ok, &alert) == 0,
          "verified handshake with ::1 failed, alert %d", alert);
    CHECK(handshake(sctx, cctx, "example.com", NULL, &alpn_ok, &alert) == -1 &&
              alert == ALERT_BAD_CERTIFICATE,
          "wrong host name: alert %d", alert);
    CHECK(handshake(sctx, cctx, "127.0.0.2", NULL, &alpn_ok, &alert) == -1 &&
              alert == ALERT_BAD_CERTIFICATE,
          "wrong IP address: alert %d", alert);
    CHECK(handshake(sctx, cctx, "localhost", "h2", &alpn_ok, &alert) == -1 &&
              alert == ALERT_NO_APPLICATION_PROTOCOL,
          "no ALPN h3: alert %d", alert);
    /* The server logged its secrets. */
    CHECK(file_contains(keylog, "CLIENT_HANDSHAKE_TRAFFIC_SECRET ") &&
              file_contains(keylog, "SERVER_TRAFFIC_SECRET_0 "),
          "key log incomplete");
    CHECK(stat(keylog, &st) == 0 && (st.st_mode & 0777) == 0600,
          "key log mode is %o", (unsigned)(st.st_mode & 0777));

    /* Handshake messages cut into pieces, above all their 4-byte headers:
       byte by byte (every header of every message, both sides, all
       levels), and the ClientHello as Chromium sometimes cuts it, its
       header split 3+1, 2+2, 1+3 between CRYPTO frames. */
    {
      static const size_t splits[][3] = {
          {1, 1, 1}, {3, 1, 50}, {2, 2, 100}, {1, 3, 7}, {5, 3, 1}};
      size_t k;

      for (k = 0; k < sizeof(splits) / sizeof(splits[0]); k++) {
        crypto_split = splits[k];
        crypto_nsplit = 3;
        CHECK(handshake(sctx, cctx, "localhost", NULL, &alpn_ok, &alert) == 0 &&
                  alpn_ok,
              "handshake with CRYPTO data cut %zu+%zu+%zu failed, alert %d",
              splits[k][0], splits[k][1], splits[k][2], alert);
      }
#if LIBWOLFSSL_VERSION_HEX < 0x05008000
      /* The wolfSSL bug itself, so that the checks above are known to
         reach it (fixed in wolfSSL 5.8.0). */
      crypto_split = splits[2];
      crypto_raw = 1;
      CHECK(handshake(sctx, cctx, "localhost", NULL, &alpn_ok, &alert) == -1,
            "ngtcp2_crypto_recv_crypto_data_cb with a header cut 2+2 "
            "succeeded: is the workaround still needed?");
      crypto_raw = 0;
#endif
      crypto_split = NULL;
      crypto_nsplit = 0;
    }
  }
  /* A client trusting the other certificate must refuse the server; an
     insecure one must not. */
  memset(&o, 0, sizeof(o));
  o.ca_file = cert2;
  err[0] = '\0';
  CHECK(h3wt_tls_client_ctx_new(&ctx, &o, err, sizeof(err)) == 0, "%s", err);
  if (sctx != NULL && ctx != NULL) {
    CHECK(handshake(sctx, ctx, "localhost", NULL, &alpn_ok, &alert) == -1 &&
              alert == ALERT_BAD_CERTIFICATE,
          "untrusted certificate: alert %d", alert);
  }
  h3wt_tls_ctx_del(ctx);
  ctx = NULL;
  o.insecure = 1;
  CHECK(h3wt_tls_client_ctx_new(&ctx, &o, err, sizeof(err)) == 0, "%s", err);
  if (sctx != NULL && ctx != NULL) {
    CHECK(handshake(sctx, ctx, "example.com", NULL, &alpn_ok, &alert) == 0 &&
              alpn_ok,
          "insecure handshake failed, alert %d", alert);
  }
  h3wt_tls_ctx_del(ctx);

  h3wt_tls_ctx_del(cctx);
  h3wt_tls_ctx_del(sctx);

  unlink(cert1);
  unlink(key1);
  unlink(cert2);
  unlink(key2);
  unlink(keylog);
  if (rmdir(dir) != 0) {
    fprintf(stderr, "FAIL: %s left behind: %s\n", dir, strerror(errno));
    failures++;
  }
  if (failures > 0) {
    fprintf(stderr, "test_tls: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_tls: all passed\n");
  return 0;
}
