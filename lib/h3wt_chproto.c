/*
 * h3wt_chproto: the channels wire format (see h3wt_chproto.h and
 * docs/channels.md, whose section names the comments cite).
 */
#include "h3wt_chproto.h"

#include <stdlib.h>
#include <string.h>

#include "h3wt_wtproto.h" /* the QUIC varint helpers */

/* Handed out for empty payloads and data: never a null pointer, so a
   caller may memcpy or compare without a special case. */
static const uint8_t empty[1];

const char *h3wt_ch_strerror(uint64_t code) {
  /* docs/channels.md "Errors", in code order. */
  static const char *const names[] = {
      NULL,
      "BAD_FRAME",
      "UNKNOWN_COMMAND",
      "FORBIDDEN",
      "TOO_LARGE",
      "RATE_LIMITED",
      "TOO_MANY_CHANNELS",
      "CHANNEL_FULL",
      "NOT_SUBSCRIBED",
      "SLOW_CONSUMER",
      "BAD_CHANNEL",
      "ALREADY_SUBSCRIBED",
      "BROKER_UNAVAILABLE",
  };
  if (code == 0 || code >= sizeof(names) / sizeof(names[0])) {
    return "(unknown code)";
  }
  return names[code];
}

int h3wt_ch_name_valid(const uint8_t *name, size_t len) {
  /* "Frames on the channel stream": "Channel names are bytes of 1..255
     octets, none of them below 0x20 or 0x7f (control characters)". */
  if (len == 0 || len > H3WT_CH_NAME_MAX) {
    return 0;
  }
  for (size_t i = 0; i < len; ++i) {
    if (name[i] < 0x20 || name[i] == 0x7f) {
      return 0;
    }
  }
  return 1;
}

/* ---- the channel stream parser ------------------------------------------ */

enum { ST_TYPE, ST_LENGTH, ST_PAYLOAD };

/* A gathered payload up to this size keeps its buffer for the next frame;
   a larger one (a big message, up to max_frame) is freed once delivered,
   so an idle session does not hold 64 KiB because of one large publish. */
#define PARSER_KEEP 4096

void h3wt_ch_parser_init(h3wt_ch_parser *p, size_t max_frame) {
  memset(p, 0, sizeof(*p));
  p->state = ST_TYPE;
  p->max_frame = max_frame;
}

void h3wt_ch_parser_free(h3wt_ch_parser *p) {
  free(p->buf);
  p->buf = NULL;
  p->bufcap = 0;
}

/* Collects a varint that may arrive split across calls.  Returns the bytes
   used from data; *done is set when the varint is complete (value in *v). */
static size_t take_varint(h3wt_ch_parser *p, const uint8_t *data, size_t len,
                          uint64_t *v, int *done) {
  size_t used = 0;
  *done = 0;
  if (p->hdrlen == 0) {
    size_t n = h3wt_varint_decode(data, len, v);
    if (n) {
      *done = 1;
      return n;
    }
  }
  while (used < len) {
    p->hdr[p->hdrlen++] = data[used++];
    if (p->hdrlen == (size_t)1 << (p->hdr[0] >> 6)) {
      h3wt_varint_decode(p->hdr, p->hdrlen, v);
      p->hdrlen = 0;
      *done = 1;
      break;
    }
  }
  return used;
}

/* Hands a complete frame to the callback and gets ready for the next. */
static int deliver(h3wt_ch_parser *p, const uint8_t *payload, size_t len,
                   h3wt_ch_frame_cb cb, void *ud) {
  p->state = ST_TYPE;
  p->have = 0;
  return cb(p->type, len ? payload : empty, len, ud);
}

static int parse(h3wt_ch_parser *p, const uint8_t *data, size_t len,
                 h3wt_ch_frame_cb cb, void *ud) {
  while (len) {
    uint64_t v;
    int done, rv;
    size_t n;
    if (p->state == ST_PAYLOAD) {
      if (p->have == 0 && len >= p->flen) {
        /* All here: pass it in place, no copy. */
        n = p->flen;
        rv = deliver(p, data, n, cb, ud);
        data += n;
        len -= n;
        if (rv) {
          return rv;
        }
        continue;
      }
      if (p->bufcap < p->flen) {
        /* Only reached with have == 0 (a buffer, once made, holds the
           whole frame), so nothing kept is lost; flen <= max_frame was
           checked with the length field. */
        free(p->buf);
        p->buf = malloc(p->flen);
        p->bufcap = p->buf ? p->flen : 0;
        if (!p->buf) {
          return H3WT_CH_PARSE_NOMEM;
        }
      }
      n = p->flen - p->have;
      if (n > len) {
        n = len;
      }
      memcpy(p->buf + p->have, data, n);
      p->have += n;
      data += n;
      len -= n;
      if (p->have == p->flen) {
        rv = deliver(p, p->buf, p->flen, cb, ud);
        if (p->bufcap > PARSER_KEEP) {
          h3wt_ch_parser_free(p);
        }
        if (rv) {
          return rv;
        }
      }
      continue;
    }
    n = take_varint(p, data, len, &v, &done);
    data += n;
    len -= n;
    if (!done) {
      continue;
    }
    if (p->state == ST_TYPE) {
      p->type = v;
      p->state = ST_LENGTH;
      continue;
    }
    /* "Frames on the channel stream": "A frame longer than the server's
       limit (max_frame ...) is a protocol error."  Refused on the length
       field alone, before a byte of the payload is kept. */
    if (v > p->max_frame) {
      return H3WT_CH_PARSE_TOO_LARGE;
    }
    p->flen = (size_t)v;
    p->have = 0;
    p->state = ST_PAYLOAD;
    if (p->flen == 0) {
      rv = deliver(p, empty, 0, cb, ud);
      if (rv) {
        return rv;
      }
    }
  }
  return 0;
}

int h3wt_ch_parse(h3wt_ch_parser *p, const uint8_t *data, size_t len,
                  h3wt_ch_frame_cb on_frame, void *ud) {
  if (p->err) {
    return p->err;
  }
  p->err = parse(p, data, len, on_frame, ud);
  return p->err;
}

int h3wt_ch_parser_idle(const h3wt_ch_parser *p) {
  return p->state == ST_TYPE && p->hdrlen == 0;
}

/* ---- decoders --------------------------------------------------------------
 * A reader over one payload.  The first short read marks it bad and every
 * later read returns zeros, so a decoder reads all its fields and checks
 * once at the end. */

typedef struct reader {
  const uint8_t *p, *end;
  int bad;
} reader;

static void rd_init(reader *r, const uint8_t *payload, size_t len) {
  if (!payload) {
    payload = empty; /* len is 0: no null pointer arithmetic */
    len = 0;
  }
  r->p = payload;
  r->end = payload + len;
  r->bad = 0;
}

static uint64_t rd_varint(reader *r) {
  uint64_t v = 0;
  size_t n = r->bad ? 0 : h3wt_varint_decode(r->p, (size_t)(r->end - r->p), &v);
  if (!n) {
    r->bad = 1;
    return 0;
  }
  r->p += n;
  return v;
}

/* "bytes = length (varint) then that many bytes". */
static void rd_bytes(reader *r, const uint8_t **p, size_t *len) {
  uint64_t n = rd_varint(r);
  if (r->bad || n > (uint64_t)(r->end - r->p)) {
    r->bad = 1;
    *p = empty;
    *len = 0;
    return;
  }
  *p = r->p;
  *len = (size_t)n;
  r->p += n;
}

/* "Payloads are parsed exactly: a payload with bytes left over, or too
   short for its fields, is malformed." */
static int rd_finish(const reader *r) {
  return r->bad || r->p != r->end ? H3WT_CH_PARSE_BAD : 0;
}

/* A well-formed frame whose channel name breaks the rule is BAD_CHANNEL,
   not BAD_FRAME: the session survives it. */
static int rd_finish_named(const reader *r, const uint8_t *name, size_t len) {
  int rv = rd_finish(r);
  if (rv == 0 && !h3wt_ch_name_valid(name, len)) {
    rv = H3WT_CH_PARSE_BAD_NAME;
  }
  return rv;
}

int h3wt_ch_decode_subscribe(const uint8_t *payload, size_t len,
                             h3wt_ch_subscribe *f) {
  reader r;
  rd_init(&r, payload, len);
  f->req = rd_varint(&r);
  rd_bytes(&r, &f->name, &f->namelen);
  f->flags = rd_varint(&r);
  /* "flags (varint; bit 0: recover, bit 1: history), then if recover:
     epoch (varint), offset (varint), then if history: limit (varint)".
     Any other bit is malformed: it may bring fields this draft cannot
     skip, and "payloads are parsed exactly". */
  if (f->flags & ~(uint64_t)H3WT_CH_FLAGS_KNOWN) {
    r.bad = 1;
  }
  f->recover = (f->flags & H3WT_CH_FLAG_RECOVER) != 0;
  f->epoch = f->recover ? rd_varint(&r) : 0;
  f->offset = f->recover ? rd_varint(&r) : 0;
  f->history = (f->flags & H3WT_CH_FLAG_HISTORY) != 0;
  f->limit = f->history ? rd_varint(&r) : 0;
  return rd_finish_named(&r, f->name, f->namelen);
}

static int decode_chanreq(const uint8_t *payload, size_t len,
                          h3wt_ch_chanreq *f) {
  reader r;
  rd_init(&r, payload, len);
  f->req = rd_varint(&r);
  rd_bytes(&r, &f->name, &f->namelen);
  return rd_finish_named(&r, f->name, f->namelen);
}

int h3wt_ch_decode_unsubscribe(const uint8_t *payload, size_t len,
                               h3wt_ch_unsubscribe *f) {
  return decode_chanreq(payload, len, f);
}

int h3wt_ch_decode_presence(const uint8_t *payload, size_t len,
                            h3wt_ch_presence *f) {
  return decode_chanreq(payload, len, f);
}

int h3wt_ch_decode_publish(const uint8_t *payload, size_t len,
                           h3wt_ch_publish *f) {
  reader r;
  rd_init(&r, payload, len);
  f->req = rd_varint(&r);
  rd_bytes(&r, &f->name, &f->namelen);
  rd_bytes(&r, &f->data, &f->datalen);
  return rd_finish_named(&r, f->name, f->namelen);
}

int h3wt_ch_decode_subscribed(const uint8_t *payload, size_t len,
                              h3wt_ch_subscribed *f) {
  reader r;
  uint64_t recovered;
  rd_init(&r, payload, len);
  f->req = rd_varint(&r);
  rd_bytes(&r, &f->name, &f->namelen);
  f->sub = rd_varint(&r);
  recovered = rd_varint(&r);
  f->epoch = rd_varint(&r);
  f->offset = rd_varint(&r);
  f->missed = rd_varint(&r);
  /* "recovered (varint 0/1)": nothing else is a value of it. */
  if (recovered > 1) {
    return H3WT_CH_PARSE_BAD;
  }
  f->recovered = (int)recovered;
  return rd_finish_named(&r, f->name, f->namelen);
}

int h3wt_ch_decode_published(const uint8_t *payload, size_t len,
                             h3wt_ch_published *f) {
  reader r;
  rd_init(&r, payload, len);
  f->req = rd_varint(&r);
  f->epoch = rd_varint(&r);
  f->offset = rd_varint(&r);
  return rd_finish(&r);
}

int h3wt_ch_decode_unsubscribed(const uint8_t *payload, size_t len,
                                h3wt_ch_unsubscribed *f) {
  reader r;
  rd_init(&r, payload, len);
  f->req = rd_varint(&r);
  f->sub = rd_varint(&r);
  f->code = rd_varint(&r);
  rd_bytes(&r, &f->reason, &f->reasonlen);
  return rd_finish(&r);
}

int h3wt_ch_decode_message(const uint8_t *payload, size_t len,
                           h3wt_ch_message *f) {
  reader r;
  rd_init(&r, payload, len);
  f->sub = rd_varint(&r);
  f->offset = rd_varint(&r);
  rd_bytes(&r, &f->data, &f->datalen);
  return rd_finish(&r);
}

static int decode_member_event(const uint8_t *payload, size_t len,
                               h3wt_ch_member_event *f) {
  reader r;
  rd_init(&r, payload, len);
  f->sub = rd_varint(&r);
  rd_bytes(&r, &f->member, &f->memberlen);
  return rd_finish(&r);
}

int h3wt_ch_decode_join(const uint8_t *payload, size_t len, h3wt_ch_join *f) {
  return decode_member_event(payload, len, f);
}

int h3wt_ch_decode_leave(const uint8_t *payload, size_t len, h3wt_ch_leave *f) {
  return decode_member_event(payload, len, f);
}

int h3wt_ch_decode_members(const uint8_t *payload, size_t len,
                           h3wt_ch_members *f) {
  reader r;
  rd_init(&r, payload, len);
  f->req = rd_varint(&r);
  f->sub = rd_varint(&r);
  f->count = rd_varint(&r);
  /* Each member takes at least its length byte, so a count beyond the
     bytes left is malformed at once: the loop below is bounded by the
     payload, not by a peer's number. */
  if (r.bad || f->count > (uint64_t)(r.end - r.p)) {
    return H3WT_CH_PARSE_BAD;
  }
  f->list = r.p;
  for (uint64_t i = 0; i < f->count && !r.bad; ++i) {
    const uint8_t *m;
    size_t mlen;
    rd_bytes(&r, &m, &mlen);
  }
  f->listlen = (size_t)(r.p - f->list);
  return rd_finish(&r);
}

int h3wt_ch_members_next(const h3wt_ch_members *f, size_t *pos,
                         const uint8_t **member, size_t *memberlen) {
  reader r;
  if (*pos >= f->listlen) {
    return 0;
  }
  rd_init(&r, f->list + *pos, f->listlen - *pos);
  rd_bytes(&r, member, memberlen);
  if (r.bad) {
    return 0; /* not from h3wt_ch_decode_members: stop rather than read on */
  }
  *pos = (size_t)(r.p - f->list);
  return 1;
}

int h3wt_ch_decode_error(const uint8_t *payload, size_t len, h3wt_ch_error *f) {
  reader r;
  rd_init(&r, payload, len);
  f->req = rd_varint(&r);
  f->code = rd_varint(&r);
  rd_bytes(&r, &f->text, &f->textlen);
  return rd_finish(&r);
}

/* ---- encoders --------------------------------------------------------------
 * A frame is described as a list of fields; one function sizes it, checks
 * it fits and writes it, so no encoder counts bytes by hand. */

enum { F_VARINT, F_BYTES, F_BYTES_HEAD };

typedef struct field {
  int kind;         /* F_BYTES_HEAD: the length is written, the bytes not */
  uint64_t v;       /* F_VARINT */
  const uint8_t *p; /* F_BYTES */
  size_t len;       /* F_BYTES, F_BYTES_HEAD */
} field;

#define VARINT(x)                                                              \
  { F_VARINT, (x), NULL, 0 }
#define BYTES(ptr, n)                                                          \
  { F_BYTES, 0, (ptr), (n) }
#define BYTES_HEAD(n)                                                          \
  { F_BYTES_HEAD, 0, NULL, (n) }

/* Adds a to *total unless either passes the varint limit (a length field
   must hold the sum).  Returns 0 when it would. */
static int add_size(uint64_t *total, uint64_t a) {
  if (a > H3WT_VARINT_MAX || *total + a > H3WT_VARINT_MAX) {
    return 0;
  }
  *total += a;
  return 1;
}

/* Writes type, length and the fields.  tail: payload bytes the caller
   sends after what is written (counted in the length, not written). */
static size_t encode_frame(uint8_t *out, size_t cap, uint64_t type,
                           const field *f, size_t nf, uint64_t tail) {
  /* type is one of this file's constants, so it fits a varint. */
  uint64_t payload = 0, unwritten = tail;
  if (!add_size(&payload, tail)) {
    return 0;
  }
  for (size_t i = 0; i < nf; ++i) {
    if (f[i].kind == F_VARINT) {
      if (f[i].v > H3WT_VARINT_MAX ||
          !add_size(&payload, h3wt_varint_len(f[i].v))) {
        return 0;
      }
      continue;
    }
    if ((uint64_t)f[i].len > H3WT_VARINT_MAX ||
        !add_size(&payload, h3wt_varint_len(f[i].len)) ||
        !add_size(&payload, f[i].len)) {
      return 0;
    }
    if (f[i].kind == F_BYTES_HEAD) {
      unwritten += f[i].len; /* no overflow: payload holds it already */
    }
  }
  uint64_t total =
      h3wt_varint_len(type) + h3wt_varint_len(payload) + payload - unwritten;
  if (total > cap) {
    return 0;
  }
  uint8_t *o = h3wt_varint_encode(out, type);
  o = h3wt_varint_encode(o, payload);
  for (size_t i = 0; i < nf; ++i) {
    if (f[i].kind == F_VARINT) {
      o = h3wt_varint_encode(o, f[i].v);
      continue;
    }
    o = h3wt_varint_encode(o, f[i].len);
    if (f[i].kind == F_BYTES && f[i].len) {
      memcpy(o, f[i].p, f[i].len);
      o += f[i].len;
    }
  }
  return (size_t)(o - out);
}

#define ENCODE(out, cap, type, fields, tail)                                   \
  encode_frame((out), (cap), (type), (fields),                                 \
               sizeof(fields) / sizeof((fields)[0]), (tail))

size_t h3wt_ch_encode_subscribe_ex(uint8_t *out, size_t cap, uint64_t req,
                                   const uint8_t *name, size_t namelen,
                                   uint64_t flags, uint64_t epoch,
                                   uint64_t offset, uint64_t limit) {
  field f[6] = {VARINT(req), BYTES(name, namelen), VARINT(flags)};
  size_t nf = 3;
  /* Epoch and offset are on the wire only with the recover bit, the limit
     only with the history bit. */
  if (flags & H3WT_CH_FLAG_RECOVER) {
    f[nf++] = (field)VARINT(epoch);
    f[nf++] = (field)VARINT(offset);
  }
  if (flags & H3WT_CH_FLAG_HISTORY) {
    f[nf++] = (field)VARINT(limit);
  }
  return encode_frame(out, cap, H3WT_CH_SUBSCRIBE, f, nf, 0);
}

size_t h3wt_ch_encode_subscribe(uint8_t *out, size_t cap, uint64_t req,
                                const uint8_t *name, size_t namelen,
                                uint64_t flags, uint64_t epoch,
                                uint64_t offset) {
  return h3wt_ch_encode_subscribe_ex(out, cap, req, name, namelen, flags, epoch,
                                     offset, 0);
}

size_t h3wt_ch_encode_unsubscribe(uint8_t *out, size_t cap, uint64_t req,
                                  const uint8_t *name, size_t namelen) {
  const field f[] = {VARINT(req), BYTES(name, namelen)};
  return ENCODE(out, cap, H3WT_CH_UNSUBSCRIBE, f, 0);
}

size_t h3wt_ch_encode_presence(uint8_t *out, size_t cap, uint64_t req,
                               const uint8_t *name, size_t namelen) {
  const field f[] = {VARINT(req), BYTES(name, namelen)};
  return ENCODE(out, cap, H3WT_CH_PRESENCE, f, 0);
}

size_t h3wt_ch_encode_publish(uint8_t *out, size_t cap, uint64_t req,
                              const uint8_t *name, size_t namelen,
                              const uint8_t *data, size_t datalen) {
  const field f[] = {VARINT(req), BYTES(name, namelen), BYTES(data, datalen)};
  return ENCODE(out, cap, H3WT_CH_PUBLISH, f, 0);
}

size_t h3wt_ch_encode_publish_head(uint8_t *out, size_t cap, uint64_t req,
                                   const uint8_t *name, size_t namelen,
                                   size_t datalen) {
  const field f[] = {VARINT(req), BYTES(name, namelen), BYTES_HEAD(datalen)};
  return ENCODE(out, cap, H3WT_CH_PUBLISH, f, 0);
}

size_t h3wt_ch_encode_subscribed(uint8_t *out, size_t cap, uint64_t req,
                                 const uint8_t *name, size_t namelen,
                                 uint64_t sub, int recovered, uint64_t epoch,
                                 uint64_t offset, uint64_t missed) {
  const field f[] = {VARINT(req),   BYTES(name, namelen),
                     VARINT(sub),   VARINT(recovered ? 1 : 0),
                     VARINT(epoch), VARINT(offset),
                     VARINT(missed)};
  return ENCODE(out, cap, H3WT_CH_SUBSCRIBED, f, 0);
}

size_t h3wt_ch_encode_published(uint8_t *out, size_t cap, uint64_t req,
                                uint64_t epoch, uint64_t offset) {
  const field f[] = {VARINT(req), VARINT(epoch), VARINT(offset)};
  return ENCODE(out, cap, H3WT_CH_PUBLISHED, f, 0);
}

size_t h3wt_ch_encode_unsubscribed(uint8_t *out, size_t cap, uint64_t req,
                                   uint64_t sub, uint64_t code,
                                   const uint8_t *reason, size_t reasonlen) {
  const field f[] = {VARINT(req), VARINT(sub), VARINT(code),
                     BYTES(reason, reasonlen)};
  return ENCODE(out, cap, H3WT_CH_UNSUBSCRIBED, f, 0);
}

size_t h3wt_ch_encode_message(uint8_t *out, size_t cap, uint64_t sub,
                              uint64_t offset, const uint8_t *data,
                              size_t datalen) {
  const field f[] = {VARINT(sub), VARINT(offset), BYTES(data, datalen)};
  return ENCODE(out, cap, H3WT_CH_MESSAGE, f, 0);
}

size_t h3wt_ch_encode_message_head(uint8_t *out, size_t cap, uint64_t sub,
                                   uint64_t offset, size_t datalen) {
  const field f[] = {VARINT(sub), VARINT(offset), BYTES_HEAD(datalen)};
  return ENCODE(out, cap, H3WT_CH_MESSAGE, f, 0);
}

size_t h3wt_ch_encode_join(uint8_t *out, size_t cap, uint64_t sub,
                           const uint8_t *member, size_t memberlen) {
  const field f[] = {VARINT(sub), BYTES(member, memberlen)};
  return ENCODE(out, cap, H3WT_CH_JOIN, f, 0);
}

size_t h3wt_ch_encode_leave(uint8_t *out, size_t cap, uint64_t sub,
                            const uint8_t *member, size_t memberlen) {
  const field f[] = {VARINT(sub), BYTES(member, memberlen)};
  return ENCODE(out, cap, H3WT_CH_LEAVE, f, 0);
}

size_t h3wt_ch_encode_error(uint8_t *out, size_t cap, uint64_t req,
                            uint64_t code, const uint8_t *text,
                            size_t textlen) {
  const field f[] = {VARINT(req), VARINT(code), BYTES(text, textlen)};
  return ENCODE(out, cap, H3WT_CH_ERROR, f, 0);
}

size_t h3wt_ch_member_size(size_t memberlen) {
  if ((uint64_t)memberlen > H3WT_VARINT_MAX - 8) {
    return 0;
  }
  return h3wt_varint_len(memberlen) + memberlen;
}

size_t h3wt_ch_encode_member(uint8_t *out, size_t cap, const uint8_t *member,
                             size_t memberlen) {
  size_t n = h3wt_ch_member_size(memberlen);
  if (n == 0 || n > cap) {
    return 0;
  }
  uint8_t *o = h3wt_varint_encode(out, memberlen);
  if (memberlen) {
    memcpy(o, member, memberlen);
  }
  return n;
}

size_t h3wt_ch_encode_members_head(uint8_t *out, size_t cap, uint64_t req,
                                   uint64_t sub, uint64_t count,
                                   size_t listlen) {
  const field f[] = {VARINT(req), VARINT(sub), VARINT(count)};
  return ENCODE(out, cap, H3WT_CH_MEMBERS, f, listlen);
}

size_t h3wt_ch_encode_members(uint8_t *out, size_t cap, uint64_t req,
                              uint64_t sub, const h3wt_ch_str *members,
                              size_t count) {
  uint64_t listlen = 0;
  for (size_t i = 0; i < count; ++i) {
    size_t n = h3wt_ch_member_size(members[i].len);
    if (n == 0 || !add_size(&listlen, n)) {
      return 0;
    }
  }
  size_t off =
      h3wt_ch_encode_members_head(out, cap, req, sub, count, (size_t)listlen);
  /* The head was sized without the list (its tail): check the list fits. */
  if (off == 0 || cap - off < listlen) {
    return 0;
  }
  for (size_t i = 0; i < count; ++i) {
    off += h3wt_ch_encode_member(out + off, cap - off, members[i].p,
                                 members[i].len);
  }
  return off;
}

/* ---- datagrams ------------------------------------------------------------
 */

size_t h3wt_ch_encode_dgram_head(uint8_t *out, size_t cap, uint64_t type,
                                 uint64_t sub) {
  if (type > H3WT_VARINT_MAX || sub > H3WT_VARINT_MAX) {
    return 0;
  }
  size_t n = h3wt_varint_len(type) + h3wt_varint_len(sub);
  if (n > cap) {
    return 0;
  }
  h3wt_varint_encode(h3wt_varint_encode(out, type), sub);
  return n;
}

int h3wt_ch_decode_dgram(const uint8_t *d, size_t len, uint64_t *type,
                         uint64_t *sub, const uint8_t **data, size_t *datalen) {
  reader r;
  rd_init(&r, d, len);
  uint64_t t = rd_varint(&r);
  if (r.bad) {
    return H3WT_CH_PARSE_BAD;
  }
  *type = t;
  /* "Datagrams": "Unknown datagram types ... are dropped and counted".
     Their layout is unknown too, so nothing past the type is read. */
  if (t != H3WT_CH_DGRAM_PUBLISH && t != H3WT_CH_DGRAM_DELIVER) {
    return H3WT_CH_PARSE_UNKNOWN;
  }
  uint64_t s = rd_varint(&r);
  if (r.bad) {
    return H3WT_CH_PARSE_BAD;
  }
  *sub = s;
  *data = r.p;
  *datalen = (size_t)(r.end - r.p);
  return 0;
}
