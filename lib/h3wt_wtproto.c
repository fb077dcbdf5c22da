/*
 * h3wt_wtproto: WebTransport wire formats (see h3wt_wtproto.h).
 */
#include "h3wt_wtproto.h"

#include <stdlib.h>
#include <string.h>

/* ---- varints ------------------------------------------------------------- */

size_t h3wt_varint_decode(const uint8_t *p, size_t len, uint64_t *v) {
  size_t n;
  uint64_t x;
  if (len == 0) {
    return 0;
  }
  n = (size_t)1 << (p[0] >> 6);
  if (len < n) {
    return 0;
  }
  x = p[0] & 0x3f;
  for (size_t i = 1; i < n; ++i) {
    x = (x << 8) | p[i];
  }
  *v = x;
  return n;
}

size_t h3wt_varint_len(uint64_t v) {
  return v < 64 ? 1 : v < 16384 ? 2 : v < 1073741824 ? 4 : 8;
}

uint8_t *h3wt_varint_encode(uint8_t *p, uint64_t v) {
  size_t n = h3wt_varint_len(v);
  static const uint8_t prefix[] = {0, 0x40, 0x80, 0, 0xc0};
  for (size_t i = n; i > 0; --i) {
    p[i - 1] = (uint8_t)v;
    v >>= 8;
  }
  p[0] |= prefix[n == 8 ? 4 : n == 4 ? 2 : n - 1];
  return p + n;
}

/* ---- capsules ------------------------------------------------------------- */

void h3wt_capsule_parser_init(h3wt_capsule_parser *cp, size_t max_value) {
  memset(cp, 0, sizeof(*cp));
  cp->max_value = max_value;
}

void h3wt_capsule_parser_free(h3wt_capsule_parser *cp) {
  free(cp->value);
  cp->value = NULL;
  cp->valuecap = 0;
}

/* Collects a varint that may arrive split.  Returns bytes used from data;
   *done set when the varint is complete (value in *v). */
static size_t take_varint(h3wt_capsule_parser *cp, const uint8_t *data,
                          size_t len, uint64_t *v, int *done) {
  size_t used = 0;
  *done = 0;
  if (cp->hdrlen == 0) {
    size_t n = h3wt_varint_decode(data, len, v);
    if (n) {
      *done = 1;
      return n;
    }
  }
  while (used < len) {
    cp->hdr[cp->hdrlen++] = data[used++];
    size_t need = (size_t)1 << (cp->hdr[0] >> 6);
    if (cp->hdrlen == need) {
      h3wt_varint_decode(cp->hdr, cp->hdrlen, v);
      cp->hdrlen = 0;
      *done = 1;
      break;
    }
  }
  return used;
}

int h3wt_capsule_parse(h3wt_capsule_parser *cp, const uint8_t *data,
                       size_t len, int (*known)(uint64_t type),
                       h3wt_capsule_cb cb, void *ud) {
  while (len) {
    uint64_t v;
    int done;
    size_t n;
    switch (cp->state) {
    case 0: /* type */
      n = take_varint(cp, data, len, &v, &done);
      data += n;
      len -= n;
      if (done) {
        cp->type = v;
        cp->state = 1;
      }
      break;
    case 1: /* length */
      n = take_varint(cp, data, len, &v, &done);
      data += n;
      len -= n;
      if (!done) {
        break;
      }
      cp->left = v;
      cp->valuelen = 0;
      if (!known(cp->type)) {
        cp->state = 3;
        break;
      }
      if (v > cp->max_value) {
        return -1;
      }
      if (v > cp->valuecap) {
        uint8_t *nb = realloc(cp->value, (size_t)v);
        if (!nb) {
          return -2;
        }
        cp->value = nb;
        cp->valuecap = (size_t)v;
      }
      cp->state = 2;
      if (v == 0) {
        cp->state = 0;
        /* Never hand a null pointer to the callback, even for no bytes. */
        static const uint8_t none[1];
        int rv = cb(cp->type, cp->value ? cp->value : none, 0, ud);
        if (rv) {
          return rv;
        }
      }
      break;
    case 2: /* value of a known type */
      n = len < cp->left ? len : (size_t)cp->left;
      memcpy(cp->value + cp->valuelen, data, n);
      cp->valuelen += n;
      cp->left -= n;
      data += n;
      len -= n;
      if (cp->left == 0) {
        cp->state = 0;
        int rv = cb(cp->type, cp->value, cp->valuelen, ud);
        if (rv) {
          return rv;
        }
      }
      break;
    case 3: /* skipping an unknown type (RFC 9297 3.2) */
      n = len < cp->left ? len : (size_t)cp->left;
      cp->left -= n;
      data += n;
      len -= n;
      if (cp->left == 0) {
        cp->state = 0;
      }
      break;
    }
    if (cp->state == 3 && cp->left == 0) {
      cp->state = 0;
    }
  }
  return 0;
}

int h3wt_capsule_parser_at_boundary(const h3wt_capsule_parser *cp) {
  return cp->state == 0 && cp->hdrlen == 0;
}

size_t h3wt_close_reason_len(const char *reason, size_t reasonlen) {
  if (reasonlen > H3WT_CLOSE_REASON_MAX) {
    /* Cut at a character boundary: never leave half a UTF-8 sequence. */
    reasonlen = H3WT_CLOSE_REASON_MAX;
    while (reasonlen && ((uint8_t)reason[reasonlen] & 0xc0) == 0x80) {
      --reasonlen;
    }
  }
  return reasonlen;
}

size_t h3wt_capsule_close_session(uint8_t *out, uint32_t code,
                                  const char *reason, size_t reasonlen) {
  uint8_t *p = out;
  reasonlen = h3wt_close_reason_len(reason, reasonlen);
  p = h3wt_varint_encode(p, H3WT_CAPSULE_CLOSE_SESSION);
  p = h3wt_varint_encode(p, 4 + reasonlen);
  *p++ = (uint8_t)(code >> 24);
  *p++ = (uint8_t)(code >> 16);
  *p++ = (uint8_t)(code >> 8);
  *p++ = (uint8_t)code;
  if (reasonlen) {
    memcpy(p, reason, reasonlen);
  }
  p += reasonlen;
  return (size_t)(p - out);
}

size_t h3wt_capsule_empty(uint8_t *out, uint64_t type) {
  uint8_t *p = h3wt_varint_encode(out, type);
  p = h3wt_varint_encode(p, 0);
  return (size_t)(p - out);
}

int h3wt_capsule_is_flow_control(uint64_t type) {
  return type >= H3WT_CAPSULE_MAX_DATA &&
         type <= H3WT_CAPSULE_STREAMS_BLOCKED_UNI;
}

int h3wt_capsule_known(uint64_t type) {
  return type == H3WT_CAPSULE_CLOSE_SESSION ||
         type == H3WT_CAPSULE_DRAIN_SESSION ||
         h3wt_capsule_is_flow_control(type);
}

size_t h3wt_capsule_varint(uint8_t *out, uint64_t type, uint64_t v) {
  uint8_t *p = h3wt_varint_encode(out, type);
  p = h3wt_varint_encode(p, h3wt_varint_len(v));
  p = h3wt_varint_encode(p, v);
  return (size_t)(p - out);
}

int h3wt_capsule_varint_value(const uint8_t *value, size_t len,
                              uint64_t *v) {
  size_t n = h3wt_varint_decode(value, len, v);
  return n && n == len ? 0 : -1;
}

/* ---- stream headers ------------------------------------------------------ */

int h3wt_stream_header_parse(const uint8_t *p, size_t len, int bidi,
                             uint64_t *session_id, size_t *hdrlen) {
  uint64_t sig;
  size_t n1 = h3wt_varint_decode(p, len, &sig);
  if (!n1) {
    return -1;
  }
  if (sig != (bidi ? H3WT_WT_STREAM_BIDI : H3WT_WT_STREAM_UNI)) {
    return 0;
  }
  size_t n2 = h3wt_varint_decode(p + n1, len - n1, session_id);
  if (!n2) {
    return -1;
  }
  *hdrlen = n1 + n2;
  return 1;
}

/* ---- error codes ------------------------------------------------------------ */

/* draft-ietf-webtrans-http3 4.4: "webtransport_code_to_http_code(n) =
   first + n + floor(n / 0x1e)", which steps over the reserved codepoints
   0x1f * N + 0x21 (RFC 9114 8.1). */
uint64_t h3wt_wt_code_to_h3(uint32_t n) {
  return H3WT_WT_CODE_FIRST + n + n / 0x1e;
}

int h3wt_wt_code_from_h3(uint64_t h3, uint32_t *n) {
  if (h3 < H3WT_WT_CODE_FIRST || h3 > H3WT_WT_CODE_LAST) {
    return 0;
  }
  if ((h3 - 0x21) % 0x1f == 0) {
    return 0; /* a reserved (GREASE) codepoint: no WebTransport code */
  }
  uint64_t shifted = h3 - H3WT_WT_CODE_FIRST;
  *n = (uint32_t)(shifted - shifted / 0x1f);
  return 1;
}

/* ---- SETTINGS rewrite --------------------------------------------------------- */

#define H3_FRAME_SETTINGS 0x04

/* Finds the SETTINGS frame at the start of a control stream (our own,
   or the peer's).  Returns 1 with *off at its payload and *flen its
   length, 0 when in does not hold it whole yet, -1 when it is not a
   control stream starting with SETTINGS (or the frame is implausibly
   long: a SETTINGS frame is a few dozen bytes). */
static int settings_frame(const uint8_t *in, size_t inlen, size_t *off,
                          size_t *flen) {
  uint64_t stype, ftype, len;
  size_t o = 0, n;
  n = h3wt_varint_decode(in, inlen, &stype);
  if (!n) {
    return 0;
  }
  if (stype != 0x00) {
    return -1; /* not a control stream */
  }
  o += n;
  n = h3wt_varint_decode(in + o, inlen - o, &ftype);
  if (!n) {
    return 0;
  }
  if (ftype != H3_FRAME_SETTINGS) {
    return -1; /* RFC 9114 6.2.1: SETTINGS must come first */
  }
  o += n;
  n = h3wt_varint_decode(in + o, inlen - o, &len);
  if (!n) {
    return 0;
  }
  o += n;
  if (len > 4096) {
    return -1;
  }
  if (len > inlen - o) {
    return 0;
  }
  *off = o;
  *flen = (size_t)len;
  return 1;
}

ssize_t h3wt_settings_rewrite(const uint8_t *in, size_t inlen,
                              const h3wt_setting *extra, size_t nextra,
                              uint8_t *out, size_t outcap) {
  uint64_t stype = 0x00, ftype = H3_FRAME_SETTINGS;
  size_t off, payloadlen;
  int found = settings_frame(in, inlen, &off, &payloadlen);
  if (found <= 0) {
    return found;
  }
  const uint8_t *payload = in + off;
  /* Which of extra[] are already there (never send an id twice: RFC 9114
     7.2.4.1 makes duplicates a connection error). */
  uint8_t addbuf[128], *ap = addbuf;
  for (size_t i = 0; i < nextra; ++i) {
    int present = 0;
    for (size_t p = 0; p < payloadlen;) {
      uint64_t id, val;
      size_t a = h3wt_varint_decode(payload + p, payloadlen - p, &id);
      if (!a) {
        return -1;
      }
      size_t b = h3wt_varint_decode(payload + p + a, payloadlen - p - a,
                                    &val);
      if (!b) {
        return -1;
      }
      if (id == extra[i].id) {
        present = 1;
      }
      p += a + b;
    }
    if (!present) {
      if ((size_t)(ap - addbuf) + 16 > sizeof(addbuf)) {
        return -1;
      }
      ap = h3wt_varint_encode(ap, extra[i].id);
      ap = h3wt_varint_encode(ap, extra[i].value);
    }
  }
  size_t addlen = (size_t)(ap - addbuf);
  uint64_t newlen = payloadlen + addlen;
  size_t rest = inlen - off - payloadlen;
  size_t total = h3wt_varint_len(stype) + h3wt_varint_len(ftype) +
                 h3wt_varint_len(newlen) + payloadlen + addlen + rest;
  if (total > outcap) {
    return -1;
  }
  uint8_t *o = out;
  o = h3wt_varint_encode(o, stype);
  o = h3wt_varint_encode(o, ftype);
  o = h3wt_varint_encode(o, newlen);
  memcpy(o, payload, payloadlen);
  o += payloadlen;
  memcpy(o, addbuf, addlen);
  o += addlen;
  memcpy(o, payload + payloadlen, rest);
  o += rest;
  return (ssize_t)(o - out);
}

/* ---- subprotocol negotiation ---------------------------------------------- */

static const char *sf_skip_ows(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t')) {
    ++p;
  }
  return p;
}

/* Skips ;key[=value] parameters (RFC 8941 3.1.2).  Keys and bare values
   (tokens, numbers, booleans, byte sequences) are runs without a
   separator; a String value is skipped with its escapes.  NULL: a
   malformed String. */
static const char *sf_skip_params(const char *p, const char *end) {
  while (p < end && *p == ';') {
    ++p;
    p = sf_skip_ows(p, end);
    while (p < end && *p != ';' && *p != ',' && *p != ' ' && *p != '\t') {
      if (*p != '"') {
        ++p;
        continue;
      }
      for (++p;; ++p) {
        if (p == end) {
          return NULL; /* unterminated */
        }
        if (*p == '\\') {
          if (++p == end || (*p != '"' && *p != '\\')) {
            return NULL;
          }
        } else if (*p == '"') {
          ++p;
          break;
        } else if (*p < 0x20 || *p > 0x7e) {
          return NULL;
        }
      }
    }
  }
  return p;
}

int h3wt_sf_string_list_parse(const char *v, size_t len,
                              int (*cb)(const char *s, size_t len, void *ud),
                              void *ud) {
  const char *p = v, *end = v + len;
  char tmp[512];
  p = sf_skip_ows(p, end);
  if (p == end) {
    return 0; /* an empty list */
  }
  for (;;) {
    size_t n = 0;
    if (p == end || *p != '"') {
      return -1;
    }
    ++p;
    for (;;) {
      if (p == end) {
        return -1; /* unterminated */
      }
      char c = *p++;
      if (c == '"') {
        break;
      }
      if (c == '\\') {
        if (p == end || (*p != '"' && *p != '\\')) {
          return -1;
        }
        c = *p++;
      } else if (c < 0x20 || c > 0x7e) {
        return -1;
      }
      if (n == sizeof(tmp)) {
        return -1; /* longer than any sane protocol name */
      }
      tmp[n++] = c;
    }
    p = sf_skip_params(p, end);
    if (!p) {
      return -1;
    }
    int rv = cb(tmp, n, ud);
    if (rv != 0) {
      return rv;
    }
    p = sf_skip_ows(p, end);
    if (p == end) {
      return 0;
    }
    if (*p != ',') {
      return -1;
    }
    p = sf_skip_ows(p + 1, end);
    if (p == end) {
      return -1; /* a trailing comma */
    }
  }
}

size_t h3wt_sf_string_encode(char *buf, size_t buflen, const char *str) {
  size_t k = 0;
  if (buflen < 3) {
    return 0;
  }
  buf[k++] = '"';
  for (const char *p = str; *p; ++p) {
    if (*p < 0x20 || *p > 0x7e) {
      return 0;
    }
    if (*p == '"' || *p == '\\') {
      if (k + 1 >= buflen) {
        return 0;
      }
      buf[k++] = '\\';
    }
    if (k + 2 >= buflen) {
      return 0;
    }
    buf[k++] = *p;
  }
  buf[k++] = '"';
  buf[k] = '\0';
  return k;
}

/* ---- SETTINGS ------------------------------------------------------------------------- */

size_t h3wt_wt_settings(h3wt_setting *out, size_t max, uint64_t max_data,
                        uint64_t max_streams_bidi, uint64_t max_streams_uni) {
  /* Several draft vintages at once (see docs in h3wt_wtproto.h).  Max
     sessions are advertised as 1: values above 1 oblige the
     WT_INITIAL_MAX_* settings and session flow control, which broke Safari
     for a peer server; the server still accepts up to max_sessions from
     clients that pool anyway. */
  static const h3wt_setting s[] = {
      {H3WT_SETTINGS_ENABLE_WEBTRANSPORT, 1},
      {H3WT_SETTINGS_WEBTRANSPORT_MAX_SESSIONS, 1},
      {H3WT_SETTINGS_WT_MAX_SESSIONS, 1},
      {H3WT_SETTINGS_WT_ENABLED, 1},
      {H3WT_SETTINGS_H3_DATAGRAM_DRAFT04, 1},
  };
  size_t n = sizeof(s) / sizeof(s[0]);
  if (n > max) {
    n = max;
  }
  memcpy(out, s, n * sizeof(*s));
  /* Session flow control is offered with its initial limits; a limit of
     0 is the default and need not be sent (and all three 0 must not be:
     that would not offer flow control). */
  const h3wt_setting fc[] = {
      {H3WT_SETTINGS_WT_INITIAL_MAX_DATA, max_data},
      {H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI, max_streams_bidi},
      {H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_UNI, max_streams_uni},
  };
  for (size_t i = 0; i < 3 && n < max; ++i) {
    if (fc[i].value) {
      out[n++] = fc[i];
    }
  }
  return n;
}

ssize_t h3wt_peer_settings_parse(const uint8_t *in, size_t inlen,
                                 h3wt_peer_fc *fc) {
  size_t off, flen;
  int found = settings_frame(in, inlen, &off, &flen);
  if (found <= 0) {
    return found;
  }
  memset(fc, 0, sizeof(*fc));
  for (size_t p = off; p < off + flen;) {
    uint64_t id, val;
    size_t a = h3wt_varint_decode(in + p, off + flen - p, &id);
    size_t b = a ? h3wt_varint_decode(in + p + a, off + flen - p - a, &val)
                 : 0;
    if (!b) {
      return -1; /* a setting cut by the frame's end */
    }
    if (id == H3WT_SETTINGS_WT_INITIAL_MAX_DATA) {
      fc->max_data = val;
    } else if (id == H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI) {
      fc->max_streams_bidi = val;
    } else if (id == H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_UNI) {
      fc->max_streams_uni = val;
    } else if (id == H3WT_SETTINGS_ENABLE_CONNECT_PROTOCOL) {
      fc->connect_protocol = val == 1;
    } else if (id == H3WT_SETTINGS_H3_DATAGRAM ||
               id == H3WT_SETTINGS_H3_DATAGRAM_DRAFT04) {
      fc->h3_datagram |= val == 1;
    } else if (id == H3WT_SETTINGS_WT_ENABLED ||
               id == H3WT_SETTINGS_ENABLE_WEBTRANSPORT ||
               id == H3WT_SETTINGS_WT_MAX_SESSIONS ||
               id == H3WT_SETTINGS_WEBTRANSPORT_MAX_SESSIONS) {
      fc->webtransport |= val > 0;
    }
    p += a + b;
  }
  return (ssize_t)(off + flen);
}

