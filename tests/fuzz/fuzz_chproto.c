/*
 * libFuzzer target for h3wt_chproto (docs/channels.md).  Each input is used
 * whole in three ways:
 *   - as a channel stream, fed whole and again in 1-byte chunks (nghttp3
 *     fuzz/ does the same): both feedings must see the same frames, end
 *     with the same result and agree on whether a frame is half-received;
 *   - every frame payload through every decoder: what decodes is encoded
 *     again, and the result must be canonical (no longer than the input,
 *     byte-identical when as long, since only a longer varint form could
 *     differ) and a fixpoint (decode + encode gives the same bytes and the
 *     same result code); the header-only encoders must match the whole
 *     ones;
 *   - as a datagram: what decodes is encoded again the same way.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_chproto.h"
#include "h3wt_wtproto.h"

/* Small enough that inputs reach it, so TOO_LARGE is exercised. */
#define FUZZ_MAX_FRAME 1024

typedef struct tally {
  unsigned n;
  uint64_t hash;
  int check; /* run the decoders on each frame */
} tally;

/* Decodes payload as the frame type `which` stands for and encodes what it
   got into out.  Returns the frame size (0 when the decoder refused the
   payload) and the decoder's result in *rv. */
typedef size_t (*canon_fn)(const uint8_t *pl, size_t len, uint8_t *out,
                           size_t cap, int *rv);

/* A decoder that says 0 or BAD_NAME has filled its struct. */
static int filled(int rv) {
  assert(rv == 0 || rv == H3WT_CH_PARSE_BAD || rv == H3WT_CH_PARSE_BAD_NAME);
  return rv != H3WT_CH_PARSE_BAD;
}

static size_t c_subscribe(const uint8_t *pl, size_t len, uint8_t *out,
                          size_t cap, int *rv) {
  h3wt_ch_subscribe f;
  if (!filled(*rv = h3wt_ch_decode_subscribe(pl, len, &f))) {
    return 0;
  }
  assert(f.recover == ((f.flags & H3WT_CH_FLAG_RECOVER) != 0));
  assert(f.recover || (f.epoch == 0 && f.offset == 0));
  assert(f.history == ((f.flags & H3WT_CH_FLAG_HISTORY) != 0));
  assert(f.history || f.limit == 0);
  assert((f.flags & ~(uint64_t)H3WT_CH_FLAGS_KNOWN) == 0);
  assert((*rv == 0) == h3wt_ch_name_valid(f.name, f.namelen));
  return h3wt_ch_encode_subscribe_ex(out, cap, f.req, f.name, f.namelen,
                                     f.flags, f.epoch, f.offset, f.limit);
}

static size_t c_unsubscribe(const uint8_t *pl, size_t len, uint8_t *out,
                            size_t cap, int *rv) {
  h3wt_ch_unsubscribe f;
  if (!filled(*rv = h3wt_ch_decode_unsubscribe(pl, len, &f))) {
    return 0;
  }
  assert((*rv == 0) == h3wt_ch_name_valid(f.name, f.namelen));
  return h3wt_ch_encode_unsubscribe(out, cap, f.req, f.name, f.namelen);
}

static size_t c_presence(const uint8_t *pl, size_t len, uint8_t *out,
                         size_t cap, int *rv) {
  h3wt_ch_presence f;
  if (!filled(*rv = h3wt_ch_decode_presence(pl, len, &f))) {
    return 0;
  }
  assert((*rv == 0) == h3wt_ch_name_valid(f.name, f.namelen));
  return h3wt_ch_encode_presence(out, cap, f.req, f.name, f.namelen);
}

static size_t c_publish(const uint8_t *pl, size_t len, uint8_t *out, size_t cap,
                        int *rv) {
  h3wt_ch_publish f;
  if (!filled(*rv = h3wt_ch_decode_publish(pl, len, &f))) {
    return 0;
  }
  assert((*rv == 0) == h3wt_ch_name_valid(f.name, f.namelen));
  size_t n = h3wt_ch_encode_publish(out, cap, f.req, f.name, f.namelen, f.data,
                                    f.datalen);
  /* The head with the data after it is the same frame.  (The head is
     sized for valid names; a refused name may be longer.) */
  uint8_t *head = malloc(cap);
  size_t h = h3wt_ch_encode_publish_head(head, cap, f.req, f.name, f.namelen,
                                         f.datalen);
  assert(n && h && h + f.datalen == n && memcmp(head, out, h) == 0);
  assert(*rv != 0 || h <= H3WT_CH_PUBLISH_HEAD_MAX);
  assert(f.datalen == 0 || memcmp(out + h, f.data, f.datalen) == 0);
  free(head);
  return n;
}

static size_t c_subscribed(const uint8_t *pl, size_t len, uint8_t *out,
                           size_t cap, int *rv) {
  h3wt_ch_subscribed f;
  if (!filled(*rv = h3wt_ch_decode_subscribed(pl, len, &f))) {
    return 0;
  }
  assert(f.recovered == 0 || f.recovered == 1);
  assert((*rv == 0) == h3wt_ch_name_valid(f.name, f.namelen));
  return h3wt_ch_encode_subscribed(out, cap, f.req, f.name, f.namelen, f.sub,
                                   f.recovered, f.epoch, f.offset, f.missed);
}

static size_t c_published(const uint8_t *pl, size_t len, uint8_t *out,
                          size_t cap, int *rv) {
  h3wt_ch_published f;
  if (!filled(*rv = h3wt_ch_decode_published(pl, len, &f))) {
    return 0;
  }
  assert(*rv == 0); /* no name, so never BAD_NAME */
  return h3wt_ch_encode_published(out, cap, f.req, f.epoch, f.offset);
}

static size_t c_unsubscribed(const uint8_t *pl, size_t len, uint8_t *out,
                             size_t cap, int *rv) {
  h3wt_ch_unsubscribed f;
  if (!filled(*rv = h3wt_ch_decode_unsubscribed(pl, len, &f))) {
    return 0;
  }
  assert(*rv == 0);
  return h3wt_ch_encode_unsubscribed(out, cap, f.req, f.sub, f.code, f.reason,
                                     f.reasonlen);
}

static size_t c_message(const uint8_t *pl, size_t len, uint8_t *out, size_t cap,
                        int *rv) {
  h3wt_ch_message f;
  if (!filled(*rv = h3wt_ch_decode_message(pl, len, &f))) {
    return 0;
  }
  assert(*rv == 0);
  size_t n =
      h3wt_ch_encode_message(out, cap, f.sub, f.offset, f.data, f.datalen);
  uint8_t head[H3WT_CH_MESSAGE_HEAD_MAX];
  size_t h = h3wt_ch_encode_message_head(head, sizeof(head), f.sub, f.offset,
                                         f.datalen);
  assert(n && h && h + f.datalen == n && memcmp(head, out, h) == 0);
  assert(f.datalen == 0 || memcmp(out + h, f.data, f.datalen) == 0);
  return n;
}

static size_t c_join(const uint8_t *pl, size_t len, uint8_t *out, size_t cap,
                     int *rv) {
  h3wt_ch_join f;
  if (!filled(*rv = h3wt_ch_decode_join(pl, len, &f))) {
    return 0;
  }
  assert(*rv == 0);
  return h3wt_ch_encode_join(out, cap, f.sub, f.member, f.memberlen);
}

static size_t c_leave(const uint8_t *pl, size_t len, uint8_t *out, size_t cap,
                      int *rv) {
  h3wt_ch_leave f;
  if (!filled(*rv = h3wt_ch_decode_leave(pl, len, &f))) {
    return 0;
  }
  assert(*rv == 0);
  return h3wt_ch_encode_leave(out, cap, f.sub, f.member, f.memberlen);
}

static size_t c_members(const uint8_t *pl, size_t len, uint8_t *out, size_t cap,
                        int *rv) {
  h3wt_ch_members f;
  if (!filled(*rv = h3wt_ch_decode_members(pl, len, &f))) {
    return 0;
  }
  assert(*rv == 0);
  assert(f.count <= len); /* each member takes a byte at least */
  h3wt_ch_str *ms = malloc(sizeof(*ms) * (f.count ? (size_t)f.count : 1));
  size_t pos = 0, k = 0, listlen = 0;
  const uint8_t *m;
  size_t mlen;
  while (h3wt_ch_members_next(&f, &pos, &m, &mlen)) {
    assert(k < f.count);
    assert(m >= f.list && m + mlen <= f.list + f.listlen);
    ms[k].p = m;
    ms[k].len = mlen;
    listlen += h3wt_ch_member_size(mlen);
    ++k;
  }
  assert(k == f.count && pos == f.listlen);
  size_t n = h3wt_ch_encode_members(out, cap, f.req, f.sub, ms, k);
  /* In parts: the head, then each member. */
  uint8_t *parts = malloc(cap);
  size_t h = h3wt_ch_encode_members_head(parts, cap, f.req, f.sub, k, listlen);
  assert(h);
  for (size_t i = 0; i < k; ++i) {
    size_t w = h3wt_ch_encode_member(parts + h, cap - h, ms[i].p, ms[i].len);
    assert(w == h3wt_ch_member_size(ms[i].len));
    h += w;
  }
  assert(h == n && memcmp(parts, out, n) == 0);
  free(parts);
  free(ms);
  return n;
}

static size_t c_error(const uint8_t *pl, size_t len, uint8_t *out, size_t cap,
                      int *rv) {
  h3wt_ch_error f;
  if (!filled(*rv = h3wt_ch_decode_error(pl, len, &f))) {
    return 0;
  }
  assert(*rv == 0);
  (void)h3wt_ch_strerror(f.code);
  return h3wt_ch_encode_error(out, cap, f.req, f.code, f.text, f.textlen);
}

static const struct {
  uint64_t type;
  canon_fn fn;
} decoders[] = {
    {H3WT_CH_SUBSCRIBE, c_subscribe},
    {H3WT_CH_UNSUBSCRIBE, c_unsubscribe},
    {H3WT_CH_PUBLISH, c_publish},
    {H3WT_CH_PRESENCE, c_presence},
    {H3WT_CH_SUBSCRIBED, c_subscribed},
    {H3WT_CH_PUBLISHED, c_published},
    {H3WT_CH_UNSUBSCRIBED, c_unsubscribed},
    {H3WT_CH_MESSAGE, c_message},
    {H3WT_CH_JOIN, c_join},
    {H3WT_CH_LEAVE, c_leave},
    {H3WT_CH_MEMBERS, c_members},
    {H3WT_CH_ERROR, c_error},
};

/* The payload of an encoded frame of the expected type. */
static const uint8_t *frame_payload(const uint8_t *f, size_t n, uint64_t type,
                                    size_t *plen) {
  uint64_t t, l;
  size_t a = h3wt_varint_decode(f, n, &t);
  size_t b = a ? h3wt_varint_decode(f + a, n - a, &l) : 0;
  assert(a && b && t == type && a + b + l == n);
  *plen = (size_t)l;
  return f + a + b;
}

/* Every decoder on one payload (whatever the frame's type: each decoder
   must cope with any bytes). */
static void check_payload(const uint8_t *pl, size_t len) {
  /* Re-encoded varints are never longer; the frame head adds at most 16. */
  size_t cap = len + 16;
  uint8_t *a = malloc(cap), *b = malloc(cap);
  for (size_t i = 0; i < sizeof(decoders) / sizeof(decoders[0]); ++i) {
    int rv1, rv2;
    size_t n1 = decoders[i].fn(pl, len, a, cap, &rv1);
    if (rv1 == H3WT_CH_PARSE_BAD) {
      continue;
    }
    assert(n1 > 0);
    size_t l1;
    const uint8_t *p1 = frame_payload(a, n1, decoders[i].type, &l1);
    assert(l1 <= len);
    /* As long: no varint was longer than it needed, so the same bytes. */
    assert(l1 < len || memcmp(p1, pl, len) == 0);
    size_t n2 = decoders[i].fn(p1, l1, b, cap, &rv2);
    assert(rv2 == rv1 && n2 == n1 && memcmp(a, b, n1) == 0);
  }
  free(a);
  free(b);
}

static int on_frame(uint64_t type, const uint8_t *pl, size_t len, void *ud) {
  tally *t = ud;
  assert(pl != NULL && len <= FUZZ_MAX_FRAME);
  ++t->n;
  t->hash = t->hash * 31 + type + len;
  for (size_t i = 0; i < len; ++i) {
    t->hash = t->hash * 131 + pl[i];
  }
  if (t->check) {
    check_payload(pl, len);
  }
  return 0;
}

static void fuzz_stream(const uint8_t *d, size_t n) {
  h3wt_ch_parser a, b;
  tally ta = {0, 0, 1}, tb = {0, 0, 0};
  h3wt_ch_parser_init(&a, FUZZ_MAX_FRAME);
  h3wt_ch_parser_init(&b, FUZZ_MAX_FRAME);
  int ra = h3wt_ch_parse(&a, d, n, on_frame, &ta);
  int rb = 0;
  for (size_t i = 0; i < n && rb == 0; ++i) {
    rb = h3wt_ch_parse(&b, d + i, 1, on_frame, &tb);
  }
  assert(ra == 0 || ra == H3WT_CH_PARSE_TOO_LARGE);
  assert(ra == rb);
  assert(ta.n == tb.n && ta.hash == tb.hash);
  if (ra == 0) {
    assert(h3wt_ch_parser_idle(&a) == h3wt_ch_parser_idle(&b));
  }
  h3wt_ch_parser_free(&a);
  h3wt_ch_parser_free(&b);
}

static void fuzz_dgram(const uint8_t *d, size_t n) {
  uint64_t type = UINT64_MAX, sub;
  const uint8_t *data;
  size_t datalen;
  int rv = h3wt_ch_decode_dgram(d, n, &type, &sub, &data, &datalen);
  if (rv == H3WT_CH_PARSE_UNKNOWN) {
    assert(type != H3WT_CH_DGRAM_PUBLISH && type != H3WT_CH_DGRAM_DELIVER);
    return;
  }
  if (rv != 0) {
    assert(rv == H3WT_CH_PARSE_BAD);
    return;
  }
  assert(type == H3WT_CH_DGRAM_PUBLISH || type == H3WT_CH_DGRAM_DELIVER);
  assert(data >= d && data + datalen == d + n);
  uint8_t head[H3WT_CH_DGRAM_HEAD_MAX];
  size_t h = h3wt_ch_encode_dgram_head(head, sizeof(head), type, sub);
  size_t used = (size_t)(data - d);
  assert(h && h <= used);
  assert(h < used || memcmp(head, d, h) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_stream(data, size);
  fuzz_dgram(data, size);
  /* The whole input as one payload too, for payloads longer than the
     parser lets through. */
  check_payload(data, size);
  return 0;
}
