/*
 * libFuzzer target for h3wt_wtproto: the parsers of WebTransport peer
 * bytes.  The first input byte picks the parser; the rest is its input.
 *   0: capsules, fed whole and again in 1-byte chunks (nghttp3 fuzz/ does
 *      the same): both feedings must see the same capsules; the values of
 *      the flow-control ones (one varint each) read back as encoded
 *   1: the SETTINGS rewrite: output must re-parse, carry every extra once;
 *      and the peer SETTINGS reader on the same bytes: it stops at the
 *      frame's end, reads our own rewritten frame back
 *   2: varints: decode, re-encode, compare
 *   3: stream headers (bidi and uni), every prefix: undecided until some
 *      length, then the same answer for every longer prefix
 *   4: WT-Available-Protocols (a structured-field list of strings): each
 *      member parsed must re-encode and parse back to itself
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_wtproto.h"

typedef struct tally {
  unsigned n;
  uint64_t hash;
} tally;

static int known(uint64_t t) {
  return h3wt_capsule_known(t);
}

static int count(uint64_t type, const uint8_t *v, size_t len, void *ud) {
  tally *t = ud;
  uint64_t x, y;
  if (h3wt_capsule_is_flow_control(type) &&
      h3wt_capsule_varint_value(v, len, &x) == 0) {
    /* Re-encoded (minimally), the capsule carries the same value. */
    uint8_t buf[24];
    size_t n = h3wt_capsule_varint(buf, type, x);
    size_t a = h3wt_varint_decode(buf, n, &y);
    assert(a && y == type);
    size_t b = h3wt_varint_decode(buf + a, n - a, &y);
    assert(b && a + b + y == n);
    assert(h3wt_capsule_varint_value(buf + a + b, (size_t)y, &y) == 0 &&
           y == x);
  }
  ++t->n;
  t->hash = t->hash * 31 + type + len;
  for (size_t i = 0; i < len; ++i) {
    t->hash = t->hash * 131 + v[i];
  }
  return 0;
}

static int count_members(const char *p, size_t len, void *ud) {
  (void)p;
  (void)len;
  ++*(size_t *)ud;
  return 0;
}

static void fuzz_capsules(const uint8_t *d, size_t n) {
  h3wt_capsule_parser a, b;
  tally ta = {0, 0}, tb = {0, 0};
  h3wt_capsule_parser_init(&a, 1028);
  h3wt_capsule_parser_init(&b, 1028);
  int ra = h3wt_capsule_parse(&a, d, n, known, count, &ta);
  int rb = 0;
  for (size_t i = 0; i < n && rb == 0; ++i) {
    rb = h3wt_capsule_parse(&b, d + i, 1, known, count, &tb);
  }
  assert(ra == rb);
  if (ra == 0) {
    assert(ta.n == tb.n && ta.hash == tb.hash);
    assert(h3wt_capsule_parser_at_boundary(&a) ==
           h3wt_capsule_parser_at_boundary(&b));
  }
  h3wt_capsule_parser_free(&a);
  h3wt_capsule_parser_free(&b);
}

static void fuzz_settings(const uint8_t *d, size_t n) {
  static const h3wt_setting extra[] = {{0x2b603742, 1}, {0xc671706a, 1},
                                      {0x14e9cd29, 1}, {0x2c7cf000, 1},
                                      {0xffd277, 1},   {0x2b61, 65536},
                                      {0x2b65, 256},   {0x2b64, 256}};
  uint8_t out[512];
  h3wt_peer_fc fc;
  ssize_t pr = h3wt_peer_settings_parse(d, n, &fc);
  assert(pr >= -1 && pr <= (ssize_t)n);
  if (pr > 0) {
    /* Only the frame is read: the same answer from exactly its bytes. */
    h3wt_peer_fc again;
    assert(h3wt_peer_settings_parse(d, (size_t)pr, &again) == pr);
    assert(memcmp(&fc, &again, sizeof(fc)) == 0);
  }
  ssize_t r = h3wt_settings_rewrite(d, n, extra, 8, out, sizeof(out));
  if (r <= 0) {
    return;
  }
  /* Our own frame (what a peer of ours reads) reads back. */
  ssize_t rr = h3wt_peer_settings_parse(out, (size_t)r, &fc);
  assert(rr > 0 && rr <= r);
  assert((size_t)r <= sizeof(out));
  /* The output is a control stream starting with a SETTINGS frame that
     parses whole. */
  uint64_t st, ft, len;
  size_t a = h3wt_varint_decode(out, (size_t)r, &st);
  size_t b = h3wt_varint_decode(out + a, (size_t)r - a, &ft);
  size_t c = h3wt_varint_decode(out + a + b, (size_t)r - a - b, &len);
  assert(a && b && c && st == 0 && ft == 4);
  assert(a + b + c + len <= (size_t)r);
  const uint8_t *p = out + a + b + c;
  unsigned seen[8] = {0};
  for (size_t off = 0; off < len;) {
    uint64_t id, v;
    size_t x = h3wt_varint_decode(p + off, len - off, &id);
    assert(x);
    size_t y = h3wt_varint_decode(p + off + x, len - off - x, &v);
    assert(y);
    for (int i = 0; i < 8; ++i) {
      seen[i] += id == extra[i].id;
    }
    off += x + y;
  }
  for (int i = 0; i < 8; ++i) {
    assert(seen[i] >= 1); /* present; twice only if the input had it */
  }
}

static void fuzz_varint(const uint8_t *d, size_t n) {
  uint64_t v;
  uint8_t buf[8];
  size_t k = h3wt_varint_decode(d, n, &v);
  if (!k) {
    assert(n == 0 || n < ((size_t)1 << (d[0] >> 6)));
    return;
  }
  assert(v <= H3WT_VARINT_MAX);
  /* Re-encoding is minimal, so it may be shorter, never longer. */
  size_t m = (size_t)(h3wt_varint_encode(buf, v) - buf);
  assert(m <= k);
  uint64_t w;
  assert(h3wt_varint_decode(buf, m, &w) == m && w == v);
}

static void fuzz_stream_header(const uint8_t *d, size_t n) {
  for (int bidi = 0; bidi < 2; ++bidi) {
    uint64_t sid = 0, first_sid = 0;
    size_t hdr = 0, first_hdr = 0;
    int decided = -1;
    for (size_t k = 0; k <= n && k <= 20; ++k) {
      int r = h3wt_stream_header_parse(d, k, bidi, &sid, &hdr);
      assert(r >= -1 && r <= 1);
      assert(r != -1 || k < 16); /* 16 bytes always decide */
      if (r == 1) {
        assert(hdr <= k && hdr >= 2 && sid <= H3WT_VARINT_MAX);
      }
      if (decided == -1) {
        decided = r;
        first_sid = sid;
        first_hdr = hdr;
      } else {
        /* More bytes never change the answer. */
        assert(r == decided);
        assert(r != 1 || (sid == first_sid && hdr == first_hdr));
      }
    }
  }
}

static int protocol_roundtrip(const char *p, size_t len, void *ud) {
  char one[600], enc[1300];
  (void)ud;
  assert(len < sizeof(one));
  memcpy(one, p, len);
  one[len] = '\0';
  for (size_t i = 0; i < len; ++i) {
    assert(one[i] >= 0x20 && one[i] <= 0x7e); /* a String's alphabet */
  }
  size_t n = h3wt_sf_string_encode(enc, sizeof(enc), one);
  assert(n > 0);
  size_t calls = 0;
  assert(h3wt_sf_string_list_parse(enc, n, count_members, &calls) == 0);
  assert(calls == 1);
  return 0;
}

static void fuzz_protocols(const uint8_t *d, size_t n) {
  h3wt_sf_string_list_parse((const char *)d, n, protocol_roundtrip, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) {
    return 0;
  }
  switch (data[0] % 5) {
  case 0:
    fuzz_capsules(data + 1, size - 1);
    break;
  case 1:
    fuzz_settings(data + 1, size - 1);
    break;
  case 2:
    fuzz_varint(data + 1, size - 1);
    break;
  case 4:
    fuzz_protocols(data + 1, size - 1);
    break;
  default:
    fuzz_stream_header(data + 1, size - 1);
    break;
  }
  return 0;
}
