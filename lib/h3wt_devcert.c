/*
 * h3wt_devcert: development certificates, and what a host needs to know
 * about its certificate file (the SHA-256 that browsers pin with
 * serverCertificateHashes, and the time left before it expires).  The
 * public calls are h3wt_devcert_make(), h3wt_cert_sha256() and
 * h3wt_cert_seconds_left() in h3wt.h.
 *
 * Apart from h3wt_tls.c because making a certificate has nothing to do
 * with the TLS sessions of a connection: it is an X.509/DER builder on
 * wolfCrypt, used once at start-up (and by tests), never on a live
 * connection.  Certificate files are read through h3wt_tls_cert_file_der().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* mkstemp, fchmod, timegm, gmtime_r, explicit_bzero */
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* options.h first: it carries the feature macros wolfSSL was built with. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "h3wt/h3wt.h"
#include "h3wt_tls.h"

#if !defined(WOLFSSL_CERT_GEN) || !defined(HAVE_ECC)
#error "wolfSSL must be built with certificate generation and ECC"
#endif

/* Development certificates: notBefore is this far in the past, to tolerate
   clocks that run a little behind ours ... */
#define H3WT_DEVCERT_BACKDATE (60 * 60)
/* ... and the total validity is 13 days: browsers refuse
   serverCertificateHashes certificates valid for more than 14 days, and a
   day of margin keeps us clear of any rounding on their side. */
#define H3WT_DEVCERT_SPAN (13 * 24 * 60 * 60)


/* Why a wolfCrypt call failed (they return an error code directly). */
static const char *crypt_reason(int ret) {
  const char *s = wc_GetErrorString(ret);

  return s != NULL ? s : "unknown wolfCrypt error";
}

/* ---- certificate files -------------------------------------------------- */

int h3wt_cert_sha256(const char *cert_file, uint8_t out[32]) {
  uint8_t *der;
  size_t derlen;
  int rv;

  if (cert_file == NULL || out == NULL) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  /* The init/cleanup pair (reference counted) bounds the lifetime of any
     entry wolfCrypt puts on its global error queue here: a wolfCrypt_Init
     from zero would forget, and so leak, entries left from before. */
  if (wolfCrypt_Init() != 0) {
    return H3WT_ERR_TLS;
  }
  rv = h3wt_tls_cert_file_der(cert_file, &der, &derlen);
  if (rv == 0) {
    if (wc_Sha256Hash(der, (word32)derlen, out) != 0) {
      rv = H3WT_ERR_TLS;
    }
    free(der);
  }
  wolfCrypt_Cleanup();
  return rv;
}

int64_t h3wt_cert_seconds_left(const char *cert_file) {
  WOLFSSL_X509 *x509 = NULL;
  WOLFSSL_ASN1_TIME *na;
  struct tm tm;
  uint8_t *der;
  size_t derlen;
  time_t t = (time_t)-1;

  if (wolfCrypt_Init() != 0) { /* as in h3wt_cert_sha256 */
    return INT64_MIN;
  }
  if (cert_file != NULL &&
      h3wt_tls_cert_file_der(cert_file, &der, &derlen) == 0) {
    x509 = wolfSSL_X509_d2i(NULL, der, (int)derlen);
    free(der);
  }
  if (x509 != NULL) {
    na = wolfSSL_X509_get_notAfter(x509);
    memset(&tm, 0, sizeof(tm));
    if (na != NULL && wolfSSL_ASN1_TIME_to_tm(na, &tm) == WOLFSSL_SUCCESS) {
      t = timegm(&tm);
    }
    wolfSSL_X509_free(x509);
  }
  wolfCrypt_Cleanup();
  if (t == (time_t)-1) {
    return INT64_MIN;
  }
  return (int64_t)t - (int64_t)time(NULL);
}

/* ---- development certificate -------------------------------------------- */

/* Writes a DER tag and definite length (content of at most 0xffff bytes,
   plenty for a certificate); returns the bytes written. */
static size_t der_put_hdr(uint8_t *p, uint8_t tag, size_t len) {
  p[0] = tag;
  if (len < 0x80) {
    p[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xff) {
    p[1] = 0x81;
    p[2] = (uint8_t)len;
    return 3;
  }
  p[1] = 0x82;
  p[2] = (uint8_t)(len >> 8);
  p[3] = (uint8_t)len;
  return 4;
}

static size_t der_hdr_len(size_t len) {
  return len < 0x80 ? 2 : len <= 0xff ? 3 : 4;
}

/* Reads the tag and length at p (n bytes available); sets the header size
   and content length.  Only definite lengths up to 0xffff, as above. */
static int der_get_hdr(const uint8_t *p, size_t n, uint8_t *tag, size_t *hdr,
                       size_t *len) {
  if (n < 2) {
    return -1;
  }
  *tag = p[0];
  if (p[1] < 0x80) {
    *hdr = 2;
    *len = p[1];
  } else if (p[1] == 0x81 && n >= 3) {
    *hdr = 3;
    *len = p[2];
  } else if (p[1] == 0x82 && n >= 4) {
    *hdr = 4;
    *len = ((size_t)p[2] << 8) | p[3];
  } else {
    return -1;
  }
  return *len <= n - *hdr ? 0 : -1;
}

/* The subjectAltName extension for DNS:localhost, IP:127.0.0.1, IP:::1.
   Encoded by hand because this wolfSSL build lacks WOLFSSL_ALT_NAMES, the
   only way to have wc_MakeCert emit one. */
static size_t make_san_ext(uint8_t *out) {
  static const uint8_t san_oid[] = {0x06, 0x03, 0x55, 0x1d, 0x11};
  static const uint8_t ip4[4] = {127, 0, 0, 1};
  static const uint8_t ip6[16] = {[15] = 1};
  uint8_t names[64];
  size_t n = 0;
  size_t seqlen;
  size_t octlen;
  size_t o;

  n += der_put_hdr(names + n, 0x82, 9); /* [2] dNSName */
  memcpy(names + n, "localhost", 9);
  n += 9;
  n += der_put_hdr(names + n, 0x87, sizeof(ip4)); /* [7] iPAddress */
  memcpy(names + n, ip4, sizeof(ip4));
  n += sizeof(ip4);
  n += der_put_hdr(names + n, 0x87, sizeof(ip6));
  memcpy(names + n, ip6, sizeof(ip6));
  n += sizeof(ip6);

  seqlen = der_hdr_len(n) + n;                          /* GeneralNames */
  octlen = der_hdr_len(seqlen) + seqlen;                /* extnValue */
  o = der_put_hdr(out, 0x30, sizeof(san_oid) + octlen); /* Extension */
  memcpy(out + o, san_oid, sizeof(san_oid));
  o += sizeof(san_oid);
  o += der_put_hdr(out + o, 0x04, seqlen);
  o += der_put_hdr(out + o, 0x30, n);
  memcpy(out + o, names, n);
  return o + n;
}

/* Rewrites a TBSCertificate with one more extension: appended to the
   existing [3] extensions, or in a new [3] (the last TBS field) if there is
   none.  Returns the new length, or 0 on malformed input or short output. */
static size_t tbs_add_ext(const uint8_t *tbs, size_t tbslen, const uint8_t *ext,
                          size_t extlen, uint8_t *out, size_t outcap) {
  const uint8_t *body;
  const uint8_t *old_exts = NULL;
  size_t hdr, len, off, prefix, old_len = 0;
  size_t exts_len, seq_len, a3_len, body_len, total, o;
  uint8_t tag;

  if (der_get_hdr(tbs, tbslen, &tag, &hdr, &len) != 0 || tag != 0x30 ||
      hdr + len != tbslen) {
    return 0;
  }
  body = tbs + hdr;
  prefix = len;
  for (off = 0; off < len;) {
    size_t chdr, clen;

    if (der_get_hdr(body + off, len - off, &tag, &chdr, &clen) != 0) {
      return 0;
    }
    if (tag == 0xa3) {
      size_t ihdr;
      uint8_t itag;

      if (off + chdr + clen != len ||
          der_get_hdr(body + off + chdr, clen, &itag, &ihdr, &old_len) != 0 ||
          itag != 0x30 || ihdr + old_len != clen) {
        return 0;
      }
      old_exts = body + off + chdr + ihdr;
      prefix = off;
      break;
    }
    off += chdr + clen;
  }

  exts_len = old_len + extlen;
  seq_len = der_hdr_len(exts_len) + exts_len;
  a3_len = der_hdr_len(seq_len) + seq_len;
  body_len = prefix + a3_len;
  total = der_hdr_len(body_len) + body_len;
  if (body_len > 0xffff || total > outcap) {
    return 0;
  }
  o = der_put_hdr(out, 0x30, body_len);
  memcpy(out + o, body, prefix);
  o += prefix;
  o += der_put_hdr(out + o, 0xa3, seq_len);
  o += der_put_hdr(out + o, 0x30, exts_len);
  if (old_len > 0) {
    memcpy(out + o, old_exts, old_len);
    o += old_len;
  }
  memcpy(out + o, ext, extlen);
  return o + extlen;
}

/* Encodes t as an X.509 Time in wolfSSL's raw date layout (tag, length,
   characters): UTCTime until 2049 and GeneralizedTime after, as RFC 5280,
   4.1.2.5 requires. */
static int set_cert_date(uint8_t *out, size_t outcap, int *outlen, time_t t) {
  struct tm tm;
  char s[32];
  int n;

  if (gmtime_r(&t, &tm) == NULL) {
    return -1;
  }
  if (tm.tm_year + 1900 < 2050) {
    n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    out[0] = 0x17; /* UTCTime */
  } else {
    n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    out[0] = 0x18; /* GeneralizedTime */
  }
  if (n != (out[0] == 0x17 ? 13 : 15) || (size_t)n + 2 > outcap) {
    return -1;
  }
  out[1] = (uint8_t)n;
  memcpy(out + 2, s, (size_t)n);
  *outlen = n + 2;
  return 0;
}

/* Writes data to a temporary file next to path, with the given mode, and
   returns its name in tmp (to be renamed over path once everything is
   ready, so that readers never see half a file).  Returns 0,
   H3WT_ERR_INVALID_ARGUMENT (name too long) or H3WT_ERR_IO. */
static int write_temp(const char *path, const uint8_t *data, size_t len,
                      mode_t mode, char *tmp, size_t tmplen, char *errbuf,
                      size_t errlen) {
  size_t done = 0;
  int fd;

  if ((size_t)snprintf(tmp, tmplen, "%s.XXXXXX", path) >= tmplen) {
    h3wt_tls_seterr(errbuf, errlen, "file name too long: '%s'", path);
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  /* mkstemp creates the file with mode 0600, so a key is never readable by
     others, not even for a moment. */
  fd = mkstemp(tmp);
  if (fd < 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot create a temporary file for '%s': %s", path,
           strerror(errno));
    return H3WT_ERR_IO;
  }
  if (fchmod(fd, mode) != 0) {
    goto fail;
  }
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);

    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      goto fail;
    }
    done += (size_t)n;
  }
  if (fsync(fd) != 0) {
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    goto fail;
  }
  return 0;

fail:
  h3wt_tls_seterr(errbuf, errlen, "cannot write '%s': %s", tmp, strerror(errno));
  if (fd >= 0) {
    close(fd);
  }
  unlink(tmp);
  return H3WT_ERR_IO;
}

int h3wt_devcert_make(const char *cert_file, const char *key_file, char *errbuf,
                      size_t errlen) {
  enum { DER_MAX = 2048, PEM_MAX = 4096 };
  uint8_t *tbs = NULL, *der = NULL, *pem = NULL, *keypem = NULL;
  uint8_t keyder[256];
  uint8_t san[96];
  size_t sanlen, tbslen;
  char cert_tmp[4096], key_tmp[4096];
  int cert_tmp_made = 0, key_tmp_made = 0;
  int rng_ok = 0, key_ok = 0, crypt_ok = 0;
  /* Most failures below are wolfCrypt's; the others set rv themselves. */
  int n, pemlen, keypemlen, derlen, rv = H3WT_ERR_TLS;
  time_t now;
  WC_RNG rng;
  ecc_key key;
  Cert cert;

  if (cert_file == NULL || key_file == NULL) {
    h3wt_tls_seterr(errbuf, errlen, "a certificate and a key file name are needed");
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  if (strcmp(cert_file, key_file) == 0) {
    h3wt_tls_seterr(errbuf, errlen,
           "certificate and key must go to different files (both '%s')",
           cert_file);
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  n = wolfCrypt_Init();
  if (n != 0) {
    h3wt_tls_seterr(errbuf, errlen, "wolfCrypt_Init failed: %s", crypt_reason(n));
    return H3WT_ERR_TLS;
  }
  crypt_ok = 1;

  tbs = malloc(DER_MAX);
  der = malloc(DER_MAX);
  pem = malloc(PEM_MAX);
  keypem = malloc(PEM_MAX);
  if (tbs == NULL || der == NULL || pem == NULL || keypem == NULL) {
    h3wt_tls_seterr(errbuf, errlen, "out of memory");
    rv = H3WT_ERR_NOMEM;
    goto out;
  }

  n = wc_InitRng(&rng);
  if (n != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot initialise the random generator: %s",
           crypt_reason(n));
    goto out;
  }
  rng_ok = 1;
  n = wc_ecc_init(&key);
  if (n != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot initialise an ECC key: %s", crypt_reason(n));
    goto out;
  }
  key_ok = 1;
  /* P-256: the one curve every WebTransport client must accept for
     serverCertificateHashes. */
  n = wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1);
  if (n != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot generate a P-256 key: %s", crypt_reason(n));
    goto out;
  }

  n = wc_InitCert(&cert);
  if (n != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot initialise the certificate: %s",
           crypt_reason(n));
    goto out;
  }
  cert.version = 2; /* X.509 v3: required for serverCertificateHashes */
  cert.sigType = CTC_SHA256wECDSA;
  cert.isCA = 0;
  cert.selfSigned = 1;
  snprintf(cert.subject.commonName, sizeof(cert.subject.commonName), "%s",
           "localhost");
  snprintf(cert.subject.org, sizeof(cert.subject.org), "%s",
           "h3wt development");
  /* A random positive serial; the top byte is forced into 0x40..0x7f so
     the INTEGER is positive and minimally encoded. */
  cert.serialSz = 16;
  n = wc_RNG_GenerateBlock(&rng, cert.serial, (word32)cert.serialSz);
  if (n != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot generate a serial number: %s",
           crypt_reason(n));
    goto out;
  }
  cert.serial[0] = (uint8_t)((cert.serial[0] & 0x3f) | 0x40);
  /* The dates are given explicitly rather than through cert.daysValid,
     because wc_MakeCert would also back-date notBefore by a whole day,
     making the span daysValid + 1 days. */
  now = time(NULL);
  if (set_cert_date(cert.beforeDate, sizeof(cert.beforeDate),
                    &cert.beforeDateSz, now - H3WT_DEVCERT_BACKDATE) != 0 ||
      set_cert_date(cert.afterDate, sizeof(cert.afterDate), &cert.afterDateSz,
                    now - H3WT_DEVCERT_BACKDATE + H3WT_DEVCERT_SPAN) != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot encode the validity dates");
    goto out;
  }

  /* wc_MakeCert produces the TBSCertificate only; the subjectAltName is
     spliced in before it is signed. */
  n = wc_MakeCert(&cert, tbs, DER_MAX, NULL, &key, &rng);
  if (n <= 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot encode the certificate: %s",
           crypt_reason(n));
    goto out;
  }
  sanlen = make_san_ext(san);
  tbslen = tbs_add_ext(tbs, (size_t)n, san, sanlen, der, DER_MAX);
  if (tbslen == 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot add the subjectAltName to the certificate");
    goto out;
  }
  derlen = wc_SignCert((int)tbslen, CTC_SHA256wECDSA, der, DER_MAX, NULL, &key,
                       &rng);
  if (derlen <= 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot sign the certificate: %s",
           crypt_reason(derlen));
    goto out;
  }
  pemlen = wc_DerToPem(der, (word32)derlen, pem, PEM_MAX, CERT_TYPE);
  if (pemlen <= 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot PEM-encode the certificate: %s",
           crypt_reason(pemlen));
    goto out;
  }

  n = wc_EccKeyToDer(&key, keyder, sizeof(keyder));
  if (n <= 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot encode the private key: %s",
           crypt_reason(n));
    goto out;
  }
  keypemlen =
      wc_DerToPem(keyder, (word32)n, keypem, PEM_MAX, ECC_PRIVATEKEY_TYPE);
  if (keypemlen <= 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot PEM-encode the private key: %s",
           crypt_reason(keypemlen));
    goto out;
  }

  rv = write_temp(key_file, keypem, (size_t)keypemlen, 0600, key_tmp,
                  sizeof(key_tmp), errbuf, errlen);
  if (rv != 0) {
    goto out;
  }
  key_tmp_made = 1;
  rv = write_temp(cert_file, pem, (size_t)pemlen, 0644, cert_tmp,
                  sizeof(cert_tmp), errbuf, errlen);
  if (rv != 0) {
    goto out;
  }
  cert_tmp_made = 1;
  rv = H3WT_ERR_IO; /* for the renames */
  /* Key first: a reader that sees the new certificate then finds its key. */
  if (rename(key_tmp, key_file) != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot rename '%s' to '%s': %s", key_tmp, key_file,
           strerror(errno));
    goto out;
  }
  key_tmp_made = 0;
  if (rename(cert_tmp, cert_file) != 0) {
    h3wt_tls_seterr(errbuf, errlen, "cannot rename '%s' to '%s': %s", cert_tmp,
           cert_file, strerror(errno));
    goto out;
  }
  cert_tmp_made = 0;
  rv = 0;

out:
  if (key_tmp_made) {
    unlink(key_tmp);
  }
  if (cert_tmp_made) {
    unlink(cert_tmp);
  }
  /* explicit_bzero: a plain memset of memory about to be freed may be
     optimised away. */
  explicit_bzero(keyder, sizeof(keyder));
  if (keypem != NULL) {
    explicit_bzero(keypem, PEM_MAX);
  }
  if (key_ok) {
    wc_ecc_free(&key);
  }
  if (rng_ok) {
    wc_FreeRng(&rng);
  }
  free(tbs);
  free(der);
  free(pem);
  free(keypem);
  if (crypt_ok) {
    wolfCrypt_Cleanup();
  }
  return rv;
}
