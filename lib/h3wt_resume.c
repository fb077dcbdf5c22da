/*
 * h3wt_resume: the client's saved session (see h3wt_resume.h).
 */
#include "h3wt_resume.h"

#include <string.h>

#include "h3wt_tls.h"

static const char magic[12] = {'H', '3', 'W', 'T', '-', 'S',
                               'E', 'S', 'S', 'I', 'O', 'N'};
#define FORMAT_VERSION 1
#define DIGEST_LEN 32
#define SETTINGS_LEN (1 + 3 * 8)

size_t h3wt_resume_encoded_len(const h3wt_resume_state *st) {
  if (st->namelen > H3WT_RESUME_MAX_NAME || st->tlslen == 0 ||
      st->tlslen > H3WT_RESUME_MAX_TLS ||
      st->paramslen > H3WT_RESUME_MAX_PARAMS) {
    return 0;
  }
  return sizeof(magic) + 1 + 2 + st->namelen + 4 + st->tlslen + 2 +
         st->paramslen + 1 + (st->has_settings ? SETTINGS_LEN : 0) +
         DIGEST_LEN;
}

static uint8_t *put_be(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  }
  return p + n;
}

static uint64_t get_be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    v = (v << 8) | p[i];
  }
  return v;
}

size_t h3wt_resume_encode(const h3wt_resume_state *st, uint8_t *out,
                          size_t outlen) {
  size_t len = h3wt_resume_encoded_len(st);
  uint8_t *p = out;
  if (len == 0 || outlen < len) {
    return 0;
  }
  memcpy(p, magic, sizeof(magic));
  p += sizeof(magic);
  *p++ = FORMAT_VERSION;
  p = put_be(p, st->namelen, 2);
  if (st->namelen) {
    memcpy(p, st->name, st->namelen);
    p += st->namelen;
  }
  p = put_be(p, st->tlslen, 4);
  memcpy(p, st->tls, st->tlslen);
  p += st->tlslen;
  p = put_be(p, st->paramslen, 2);
  if (st->paramslen) {
    memcpy(p, st->params, st->paramslen);
    p += st->paramslen;
  }
  *p++ = st->has_settings ? 1 : 0;
  if (st->has_settings) {
    *p++ = (uint8_t)((st->settings.connect_protocol ? 0x1 : 0) |
                     (st->settings.h3_datagram ? 0x2 : 0) |
                     (st->settings.webtransport ? 0x4 : 0));
    p = put_be(p, st->settings.max_data, 8);
    p = put_be(p, st->settings.max_streams_bidi, 8);
    p = put_be(p, st->settings.max_streams_uni, 8);
  }
  if (h3wt_tls_sha256(out, (size_t)(p - out), p) != 0) {
    return 0;
  }
  return len;
}

/* Takes n bytes from the cursor; NULL when fewer are left. */
static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t n) {
  const uint8_t *q = *p;
  if ((size_t)(end - q) < n) {
    return NULL;
  }
  *p = q + n;
  return q;
}

int h3wt_resume_decode(const uint8_t *in, size_t inlen,
                       h3wt_resume_state *st) {
  uint8_t digest[DIGEST_LEN];
  const uint8_t *p = in, *end, *q;
  memset(st, 0, sizeof(*st));
  if (!in || inlen < sizeof(magic) + 1 + DIGEST_LEN) {
    return -1;
  }
  /* The digest first: nothing of a damaged file is looked at. */
  end = in + inlen - DIGEST_LEN;
  if (h3wt_tls_sha256(in, inlen - DIGEST_LEN, digest) != 0 ||
      memcmp(digest, end, DIGEST_LEN) != 0) {
    return -1;
  }
  if (!(q = take(&p, end, sizeof(magic))) ||
      memcmp(q, magic, sizeof(magic)) != 0 || !(q = take(&p, end, 1)) ||
      *q != FORMAT_VERSION || !(q = take(&p, end, 2))) {
    return -1;
  }
  st->namelen = (size_t)get_be(q, 2);
  if (st->namelen > H3WT_RESUME_MAX_NAME ||
      !(q = take(&p, end, st->namelen))) {
    return -1;
  }
  st->name = (const char *)q;
  if (!(q = take(&p, end, 4))) {
    return -1;
  }
  st->tlslen = (size_t)get_be(q, 4);
  if (st->tlslen == 0 || st->tlslen > H3WT_RESUME_MAX_TLS ||
      !(st->tls = take(&p, end, st->tlslen)) || !(q = take(&p, end, 2))) {
    return -1;
  }
  st->paramslen = (size_t)get_be(q, 2);
  if (st->paramslen > H3WT_RESUME_MAX_PARAMS ||
      !(st->params = take(&p, end, st->paramslen)) ||
      !(q = take(&p, end, 1)) || *q > 1) {
    return -1;
  }
  st->has_settings = *q;
  if (st->has_settings) {
    if (!(q = take(&p, end, SETTINGS_LEN)) || (q[0] & ~0x7) != 0) {
      return -1;
    }
    st->settings.connect_protocol = (q[0] & 0x1) != 0;
    st->settings.h3_datagram = (q[0] & 0x2) != 0;
    st->settings.webtransport = (q[0] & 0x4) != 0;
    st->settings.max_data = get_be(q + 1, 8);
    st->settings.max_streams_bidi = get_be(q + 9, 8);
    st->settings.max_streams_uni = get_be(q + 17, 8);
  }
  if (p != end) {
    return -1; /* bytes left over */
  }
  return 0;
}
