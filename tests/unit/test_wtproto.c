/*
 * Unit tests of h3wt_wtproto: varints, the capsule parser (whole input and
 * 1-byte chunks, unknown types skipped, oversized known types refused),
 * WT_CLOSE_SESSION encoding, and the SETTINGS rewrite.
 */
#include <stdlib.h>
#include <string.h>

#include "h3wt_test.h"
#include "h3wt_wtproto.h"

TEST(varints) {
  static const uint64_t vals[] = {0,          1,          63,         64,
                                  16383,      16384,      1073741823,
                                  1073741824, H3WT_VARINT_MAX};
  static const size_t lens[] = {1, 1, 1, 2, 2, 4, 4, 8, 8};
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); ++i) {
    uint8_t buf[8];
    uint64_t v = 0;
    TEST_CONTEXT("value %llu", (unsigned long long)vals[i]);
    CHECK_EQ_INT(h3wt_varint_len(vals[i]), lens[i]);
    CHECK(h3wt_varint_encode(buf, vals[i]) == buf + lens[i]);
    CHECK_EQ_INT(h3wt_varint_decode(buf, lens[i], &v), lens[i]);
    CHECK(v == vals[i]);
    /* One byte short: undecided, never a wrong value. */
    CHECK_EQ_INT(h3wt_varint_decode(buf, lens[i] - 1, &v), 0);
  }
  /* RFC 9000 A.1 example: 0x9d7f3e7d is 494878333. */
  uint8_t ex[] = {0x9d, 0x7f, 0x3e, 0x7d};
  uint64_t v;
  CHECK_EQ_INT(h3wt_varint_decode(ex, 4, &v), 4);
  CHECK(v == 494878333);
}

typedef struct seen {
  int n;
  uint64_t types[8];
  size_t lens[8];
  uint8_t last[2048];
} seen;

static int known(uint64_t t) {
  return h3wt_capsule_known(t);
}

static int record(uint64_t type, const uint8_t *v, size_t len, void *ud) {
  seen *s = ud;
  if (s->n < 8) {
    s->types[s->n] = type;
    s->lens[s->n] = len;
    ++s->n;
  }
  CHECK(v != NULL); /* the parser promises a pointer even for len 0 */
  if (len) {
    memcpy(s->last, v, len < sizeof(s->last) ? len : sizeof(s->last));
  }
  return 0;
}

/* Parses in in chunks of chunk bytes (0: whole). */
static int parse_all(const uint8_t *in, size_t len, size_t chunk, seen *s,
                     h3wt_capsule_parser *cp) {
  int rv = 0;
  if (!chunk) {
    return h3wt_capsule_parse(cp, in, len, known, record, s);
  }
  for (size_t off = 0; off < len && rv == 0; off += chunk) {
    size_t n = len - off < chunk ? len - off : chunk;
    rv = h3wt_capsule_parse(cp, in + off, n, known, record, s);
  }
  return rv;
}

TEST(capsules_any_chunking) {
  uint8_t in[4096], *p = in;
  /* An unknown capsule (skipped without buffering), a drain, an unknown
     with a 2-byte type, a close with a reason. */
  p = h3wt_varint_encode(p, 0x17);
  p = h3wt_varint_encode(p, 300);
  memset(p, 0xaa, 300);
  p += 300;
  p += h3wt_capsule_empty(p, H3WT_CAPSULE_DRAIN_SESSION);
  p = h3wt_varint_encode(p, 0x4242);
  p = h3wt_varint_encode(p, 0);
  p += h3wt_capsule_close_session(p, 0x01020304, "done", 4);
  size_t len = (size_t)(p - in);
  for (size_t chunk = 0; chunk <= 7; ++chunk) {
    h3wt_capsule_parser cp;
    seen s = {0};
    TEST_CONTEXT("chunks of %zu", chunk);
    h3wt_capsule_parser_init(&cp, 1028);
    CHECK_EQ_INT(parse_all(in, len, chunk, &s, &cp), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK(s.types[0] == H3WT_CAPSULE_DRAIN_SESSION);
    CHECK_EQ_INT(s.lens[0], 0);
    CHECK(s.types[1] == H3WT_CAPSULE_CLOSE_SESSION);
    CHECK_EQ_INT(s.lens[1], 8);
    CHECK_EQ_MEM(s.last, "\x01\x02\x03\x04" "done", 8);
    CHECK(h3wt_capsule_parser_at_boundary(&cp));
    h3wt_capsule_parser_free(&cp);
  }
}

TEST(capsules_hostile) {
  h3wt_capsule_parser cp;
  seen s = {0};
  uint8_t in[64], *p;
  /* A close capsule claiming more than a reason may hold: refused before
     anything is buffered. */
  p = h3wt_varint_encode(in, H3WT_CAPSULE_CLOSE_SESSION);
  p = h3wt_varint_encode(p, 1u << 30);
  h3wt_capsule_parser_init(&cp, 1028);
  CHECK_EQ_INT(h3wt_capsule_parse(&cp, in, (size_t)(p - in), known, record,
                                  &s),
               -1);
  h3wt_capsule_parser_free(&cp);
  /* An unknown capsule of 2^62-1 bytes is skipped, never buffered. */
  p = h3wt_varint_encode(in, 0x99);
  p = h3wt_varint_encode(p, H3WT_VARINT_MAX);
  memset(p, 0, 16);
  h3wt_capsule_parser_init(&cp, 1028);
  CHECK_EQ_INT(h3wt_capsule_parse(&cp, in, (size_t)(p - in) + 16, known,
                                  record, &s),
               0);
  CHECK(cp.valuecap == 0);
  CHECK(!h3wt_capsule_parser_at_boundary(&cp)); /* mid-capsule */
  h3wt_capsule_parser_free(&cp);
  /* A stream that ends inside a varint is not at a boundary. */
  uint8_t half[] = {0x80, 0x00};
  h3wt_capsule_parser_init(&cp, 1028);
  CHECK_EQ_INT(h3wt_capsule_parse(&cp, half, 2, known, record, &s), 0);
  CHECK(!h3wt_capsule_parser_at_boundary(&cp));
  h3wt_capsule_parser_free(&cp);
}

TEST(close_session_reason_truncated_at_utf8) {
  char reason[1100];
  uint8_t out[16 + H3WT_CLOSE_REASON_MAX];
  /* 1023 ASCII bytes, then a 3-byte character straddling the limit. */
  memset(reason, 'a', 1023);
  memcpy(reason + 1023, "\xe2\x82\xac", 3);
  size_t n = h3wt_capsule_close_session(out, 7, reason, 1026);
  uint64_t type, len;
  size_t a = h3wt_varint_decode(out, n, &type);
  size_t b = h3wt_varint_decode(out + a, n - a, &len);
  CHECK(type == H3WT_CAPSULE_CLOSE_SESSION);
  CHECK_EQ_INT(len, 4 + 1023); /* the euro sign did not fit: dropped whole */
  CHECK_EQ_INT(n, a + b + len);
}

/* What nghttp3 writes first on its control stream: the stream type, then
   SETTINGS with QPACK settings, 0x08 and 0x33. */
static const uint8_t ctrl[] = {0x00, 0x04, 0x08, 0x01, 0x50, 0x00,
                               0x07, 0x40, 0x64, 0x08, 0x01, 0x33, 0x01};

static int find_setting(const uint8_t *out, size_t len, uint64_t id,
                        uint64_t *val) {
  uint64_t v;
  size_t off = 1 + 1, n = h3wt_varint_decode(out + off, len - off, &v);
  size_t end = off + n + (size_t)v;
  int count = 0;
  for (off += n; off < end;) {
    uint64_t k, x;
    size_t a = h3wt_varint_decode(out + off, end - off, &k);
    size_t b = h3wt_varint_decode(out + off + a, end - off - a, &x);
    if (!a || !b) {
      return -1;
    }
    if (k == id) {
      *val = x;
      ++count;
    }
    off += a + b;
  }
  return count;
}

TEST(settings_rewrite) {
  h3wt_setting extra[] = {{0x2b603742, 1}, {0xc671706a, 1}, {0x33, 1}};
  uint8_t in[64], out[256];
  uint64_t v;
  memcpy(in, ctrl, sizeof(ctrl));
  /* A GOAWAY after SETTINGS must survive untouched. */
  memcpy(in + sizeof(ctrl), "\x07\x01\x00", 3);
  ssize_t n = h3wt_settings_rewrite(in, sizeof(ctrl) + 3, extra, 3, out,
                                    sizeof(out));
  CHECK(n > (ssize_t)sizeof(ctrl));
  CHECK_EQ_INT(find_setting(out, (size_t)n, 0x2b603742, &v), 1);
  CHECK(v == 1);
  CHECK_EQ_INT(find_setting(out, (size_t)n, 0xc671706a, &v), 1);
  /* Already present: not sent twice (RFC 9114 7.2.4.1). */
  CHECK_EQ_INT(find_setting(out, (size_t)n, 0x33, &v), 1);
  CHECK_EQ_INT(find_setting(out, (size_t)n, 0x08, &v), 1);
  CHECK_EQ_MEM(out + n - 3, "\x07\x01\x00", 3);
  /* Not all there yet: wait. */
  CHECK_EQ_INT(h3wt_settings_rewrite(in, 5, extra, 3, out, sizeof(out)), 0);
  CHECK_EQ_INT(h3wt_settings_rewrite(in, 0, extra, 3, out, sizeof(out)), 0);
  /* Not a control stream, or not SETTINGS first: refused. */
  in[0] = 0x02;
  CHECK_EQ_INT(h3wt_settings_rewrite(in, sizeof(ctrl), extra, 3, out,
                                     sizeof(out)),
               -1);
  in[0] = 0x00;
  in[1] = 0x07;
  CHECK_EQ_INT(h3wt_settings_rewrite(in, sizeof(ctrl), extra, 3, out,
                                     sizeof(out)),
               -1);
  /* No room: refused, nothing written past the end. */
  memcpy(in, ctrl, sizeof(ctrl));
  CHECK_EQ_INT(h3wt_settings_rewrite(in, sizeof(ctrl), extra, 3, out, 10),
               -1);
}

/* The flow-control capsules: one varint each, parsed like the others in
   any chunking; a value that is not exactly one varint is refused. */
TEST(flow_control_capsules) {
  static const uint64_t types[] = {
      H3WT_CAPSULE_MAX_DATA,         H3WT_CAPSULE_MAX_STREAM_DATA,
      H3WT_CAPSULE_MAX_STREAMS_BIDI, H3WT_CAPSULE_MAX_STREAMS_UNI,
      H3WT_CAPSULE_DATA_BLOCKED,     H3WT_CAPSULE_STREAM_DATA_BLOCKED,
      H3WT_CAPSULE_STREAMS_BLOCKED_BIDI, H3WT_CAPSULE_STREAMS_BLOCKED_UNI};
  static const uint64_t values[] = {0, 63, 16384, 1ULL << 60,
                                    H3WT_VARINT_MAX};
  uint8_t in[512], *p = in;
  uint64_t v;
  for (size_t i = 0; i < 8; ++i) {
    CHECK(h3wt_capsule_known(types[i]));
    CHECK(h3wt_capsule_is_flow_control(types[i]));
  }
  /* Their neighbours are not ours: skipped as unknown. */
  CHECK(!h3wt_capsule_known(H3WT_CAPSULE_MAX_DATA - 1));
  CHECK(!h3wt_capsule_known(H3WT_CAPSULE_STREAMS_BLOCKED_UNI + 1));
  CHECK(!h3wt_capsule_is_flow_control(H3WT_CAPSULE_CLOSE_SESSION));
  for (size_t i = 0; i < 5; ++i) {
    p += h3wt_capsule_varint(p, types[i], values[i]);
  }
  for (size_t chunk = 0; chunk <= 3; ++chunk) {
    seen s;
    h3wt_capsule_parser cp;
    memset(&s, 0, sizeof(s));
    h3wt_capsule_parser_init(&cp, 1028);
    CHECK_EQ_INT(parse_all(in, (size_t)(p - in), chunk, &s, &cp), 0);
    CHECK_EQ_INT(s.n, 5);
    CHECK(s.types[4] == H3WT_CAPSULE_DATA_BLOCKED);
    CHECK_EQ_INT(s.lens[4], 8);
    CHECK_EQ_INT(h3wt_capsule_varint_value(s.last, s.lens[4], &v), 0);
    CHECK(v == H3WT_VARINT_MAX);
    h3wt_capsule_parser_free(&cp);
  }
  /* Encoded exactly as the draft's figure: type, length, one varint. */
  CHECK_EQ_INT(h3wt_capsule_varint(in, H3WT_CAPSULE_MAX_STREAMS_UNI, 100),
               4 + 1 + 2);
  CHECK_EQ_MEM(in, "\x99\x0b\x4d\x40\x02\x40\x64", 7);
  CHECK_EQ_INT(h3wt_capsule_varint_value(in + 5, 2, &v), 0);
  CHECK(v == 100);
  /* Trailing bytes, a truncated varint, nothing: malformed. */
  CHECK_EQ_INT(h3wt_capsule_varint_value((const uint8_t *)"\x05\x00", 2, &v),
               -1);
  CHECK_EQ_INT(h3wt_capsule_varint_value((const uint8_t *)"\x40", 1, &v), -1);
  CHECK_EQ_INT(h3wt_capsule_varint_value((const uint8_t *)"", 0, &v), -1);
}

/* Our SETTINGS offer flow control only with a window; the peer's are
   read for the three initial limits. */
TEST(flow_control_settings) {
  h3wt_setting rows[12];
  size_t n = h3wt_wt_settings(rows, 12, 0, 0, 0);
  for (size_t i = 0; i < n; ++i) {
    CHECK(rows[i].id != H3WT_SETTINGS_WT_INITIAL_MAX_DATA &&
          rows[i].id != H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI &&
          rows[i].id != H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_UNI);
  }
  size_t m = h3wt_wt_settings(rows, 12, 65536, 100, 7);
  CHECK_EQ_INT(m, n + 3);
  CHECK(rows[n].id == H3WT_SETTINGS_WT_INITIAL_MAX_DATA &&
        rows[n].value == 65536);
  CHECK(rows[n + 1].id == H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI &&
        rows[n + 1].value == 100);
  CHECK(rows[n + 2].id == H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_UNI &&
        rows[n + 2].value == 7);
  CHECK_EQ_INT(h3wt_wt_settings(rows, 2, 65536, 100, 7), 2); /* bounded */

  /* What our rewrite writes, the peer reader reads back. */
  uint8_t out[256];
  h3wt_peer_fc fc;
  ssize_t w = h3wt_settings_rewrite(ctrl, sizeof(ctrl), rows, m, out,
                                    sizeof(out));
  CHECK(w > 0);
  /* ctrl has two bytes after its SETTINGS frame, which the rewrite keeps
     after it: the reader stops at the frame's end. */
  ssize_t end = w - 2;
  CHECK_EQ_INT(h3wt_peer_settings_parse(out, (size_t)w, &fc), end);
  CHECK(fc.max_data == 65536 && fc.max_streams_bidi == 100 &&
        fc.max_streams_uni == 7);
  /* Every shorter prefix waits. */
  for (ssize_t k = 0; k < end; ++k) {
    CHECK_EQ_INT(h3wt_peer_settings_parse(out, (size_t)k, &fc), 0);
  }
  /* A browser's SETTINGS (none of them): all zero, flow control off. */
  CHECK_EQ_INT(h3wt_peer_settings_parse(ctrl, sizeof(ctrl), &fc),
               (ssize_t)sizeof(ctrl) - 2);
  CHECK(fc.max_data == 0 && fc.max_streams_bidi == 0 &&
        fc.max_streams_uni == 0);
  /* Not a control stream, another frame first, a setting cut by the
     frame's end: given up on. */
  CHECK_EQ_INT(h3wt_peer_settings_parse((const uint8_t *)"\x02\x04\x00", 3,
                                        &fc),
               -1);
  CHECK_EQ_INT(h3wt_peer_settings_parse((const uint8_t *)"\x00\x07\x00", 3,
                                        &fc),
               -1);
  CHECK_EQ_INT(h3wt_peer_settings_parse(
                   (const uint8_t *)"\x00\x04\x03\x80\x00\x2b", 6, &fc),
               -1);
}

TEST(stream_headers) {
  uint64_t sid = 0;
  size_t hdr = 0;
  /* Bidi: 0x41 (2-byte varint 0x4041), then session ID 4. */
  static const uint8_t bidi[] = {0x40, 0x41, 0x04, 'x'};
  CHECK_EQ_INT(h3wt_stream_header_parse(bidi, 0, 1, &sid, &hdr), -1);
  CHECK_EQ_INT(h3wt_stream_header_parse(bidi, 1, 1, &sid, &hdr), -1);
  CHECK_EQ_INT(h3wt_stream_header_parse(bidi, 2, 1, &sid, &hdr), -1);
  CHECK_EQ_INT(h3wt_stream_header_parse(bidi, 4, 1, &sid, &hdr), 1);
  CHECK_EQ_INT(sid, 4);
  CHECK_EQ_INT(hdr, 3);
  /* The same bytes on a uni stream are not WebTransport's. */
  CHECK_EQ_INT(h3wt_stream_header_parse(bidi, 4, 0, &sid, &hdr), 0);
  /* Uni: 0x54, then an 8-byte session ID. */
  static const uint8_t uni[] = {0x40, 0x54, 0xc0, 0, 0, 0, 0, 0, 0, 0x08};
  CHECK_EQ_INT(h3wt_stream_header_parse(uni, 9, 0, &sid, &hdr), -1);
  CHECK_EQ_INT(h3wt_stream_header_parse(uni, 10, 0, &sid, &hdr), 1);
  CHECK_EQ_INT(sid, 8);
  CHECK_EQ_INT(hdr, 10);
  /* A request stream starts with HEADERS (0x01); a control stream with 0. */
  static const uint8_t req[] = {0x01, 0x10};
  CHECK_EQ_INT(h3wt_stream_header_parse(req, 2, 1, &sid, &hdr), 0);
  CHECK_EQ_INT(h3wt_stream_header_parse(req, 1, 0, &sid, &hdr), 0);
}

/* ---- WT-Available-Protocols / WT-Protocol (RFC 8941 Lists of Strings) --- */

typedef struct sf_members {
  char m[8][128];
  size_t n;
  int stop_at; /* return 7 from the callback for this member (1-based) */
} sf_members;

static int sf_collect(const char *str, size_t len, void *ud) {
  sf_members *ms = ud;
  if (ms->n < 8 && len < sizeof(ms->m[0])) {
    memcpy(ms->m[ms->n], str, len);
    ms->m[ms->n][len] = '\0';
  }
  ++ms->n;
  return ms->stop_at && (int)ms->n == ms->stop_at ? 7 : 0;
}

/* Parses exactly len bytes from a heap copy with nothing after them, so
   ASan sees any read past the end (header values are not NUL-terminated
   in general). */
static int sf_parse(const char *v, size_t len, sf_members *ms) {
  char *copy = malloc(len ? len : 1);
  memcpy(copy, v, len);
  memset(ms, 0, sizeof(*ms));
  int rv = h3wt_sf_string_list_parse(copy, len, sf_collect, ms);
  free(copy);
  return rv;
}

TEST(sf_string_list_good) {
  static const struct {
    const char *in;
    size_t n;
    const char *m[3];
  } cases[] = {
      {"\"a\"", 1, {"a"}},
      {"\"a\", \"b\"", 2, {"a", "b"}},
      {"\"a\",\"b\"", 2, {"a", "b"}},
      {"\"a\";q=1,\"b\"", 2, {"a", "b"}},
      {"\"a\";q=1;x, \"b\";y=?0", 2, {"a", "b"}},
      {"\"x\\\"y\"", 1, {"x\"y"}},
      {"\"x\\\\y\"", 1, {"x\\y"}},
      {"\"\"", 1, {""}},
      {"\"\", \"a\"", 2, {"", "a"}},
      {"  \"a\" ,  \"b\"  ", 2, {"a", "b"}},
      {"\"a\",\t\"b\"", 2, {"a", "b"}},
      {"\"chat-v2\", \"chat\", \"x y\"", 3, {"chat-v2", "chat", "x y"}},
      {"\" !#~\"", 1, {" !#~"}},
      /* RFC 8941 3.1.2: a parameter's value may be any bare item,
         a String among them. */
      {"\"a\";p=\"x,y\", \"b\"", 2, {"a", "b"}},
      {"", 0, {NULL}},
      {"   ", 0, {NULL}},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
    sf_members ms;
    TEST_CONTEXT("good list [%s]", cases[i].in);
    CHECK_EQ_INT(sf_parse(cases[i].in, strlen(cases[i].in), &ms), 0);
    CHECK_EQ_INT(ms.n, cases[i].n);
    for (size_t k = 0; k < cases[i].n && k < ms.n; ++k) {
      CHECK_EQ_STR(ms.m[k], cases[i].m[k]);
    }
  }
  TEST_CONTEXT("%s", "");
  /* Only len bytes count. */
  sf_members ms;
  CHECK_EQ_INT(sf_parse("\"a\", \"b\"", 3, &ms), 0);
  CHECK_EQ_INT(ms.n, 1);
  CHECK_EQ_STR(ms.m[0], "a");
  /* A non-zero callback return stops the walk and is returned. */
  memset(&ms, 0, sizeof(ms));
  ms.stop_at = 2;
  CHECK_EQ_INT(
      h3wt_sf_string_list_parse("\"a\", \"b\", \"c\"", 13, sf_collect, &ms), 7);
  CHECK_EQ_INT(ms.n, 2);
}

TEST(sf_string_list_malformed) {
  static const char *const bad[] = {
      "a",               /* a token, not a String */
      "\"a\", b",        /* a token member after a good one */
      "\"a",             /* unterminated */
      "\"a\", \"b",      /* unterminated second member */
      "\"\\n\"",         /* only \" and \\ are escapes */
      "\"a\\\"",         /* the escape eats the closing quote */
      "\"\\",            /* a lone backslash at the end */
      "\"a\",",          /* trailing comma */
      "\"a\", ",         /* trailing comma and space */
      "\"a\",,\"b\"",    /* empty member */
      ",\"a\"",          /* leading comma */
      "\"a\" \"b\"",     /* no comma between members */
      "\"caf\xc3\xa9\"", /* non-ASCII bytes */
      "\"a\tb\"",        /* a control character inside */
      "\"a\x01\"",       /* another */
      "\"a\x7f\"",       /* DEL */
      "1",               /* an Integer */
      "(\"a\")",         /* an Inner List */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
    sf_members ms;
    TEST_CONTEXT("malformed list [%s]", bad[i]);
    CHECK_EQ_INT(sf_parse(bad[i], strlen(bad[i]), &ms), -1);
  }
  TEST_CONTEXT("%s", "");
  /* A NUL inside the value is a control character too. */
  sf_members ms;
  CHECK_EQ_INT(sf_parse("\"a\0b\"", 5, &ms), -1);
}

TEST(sf_string_encode_round_trip) {
  char buf[600], all[96];
  sf_members ms;
  size_t n;
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, sizeof(buf), "chat"), 6);
  CHECK_EQ_STR(buf, "\"chat\"");
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, sizeof(buf), ""), 2);
  CHECK_EQ_STR(buf, "\"\"");
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, sizeof(buf), "a\"b\\c"), 9);
  CHECK_EQ_STR(buf, "\"a\\\"b\\\\c\"");
  /* Every printable ASCII character survives encode then parse. */
  for (int c = 0x20; c <= 0x7e; ++c) {
    all[c - 0x20] = (char)c;
  }
  all[0x7f - 0x20] = '\0';
  n = h3wt_sf_string_encode(buf, sizeof(buf), all);
  CHECK_EQ_INT(n, 95 + 2 + 2); /* two escapes, two quotes */
  CHECK_EQ_INT(strlen(buf), n);
  CHECK_EQ_INT(sf_parse(buf, n, &ms), 0);
  CHECK_EQ_INT(ms.n, 1);
  CHECK_EQ_STR(ms.m[0], all);
  memset(&ms, 0, sizeof(ms));
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, sizeof(buf), "x\\y\"z"), 9);
  CHECK_EQ_INT(sf_parse(buf, 9, &ms), 0);
  CHECK_EQ_INT(ms.n, 1);
  CHECK_EQ_STR(ms.m[0], "x\\y\"z");
  /* A String cannot carry controls or non-ASCII bytes. */
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, sizeof(buf), "a\nb"), 0);
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, sizeof(buf), "\t"), 0);
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, sizeof(buf), "caf\xc3\xa9"), 0);
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, sizeof(buf), "\x7f"), 0);
  /* Sizes: "chat" needs 4 + 2 quotes + NUL = 7 bytes. */
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, 7, "chat"), 6);
  CHECK_EQ_STR(buf, "\"chat\"");
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, 6, "chat"), 0);
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, 3, ""), 2);
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, 2, ""), 0);
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, 0, ""), 0);
  /* An escape needs its backslash too: "a\"" is 6 bytes with the NUL. */
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, 6, "a\""), 5);
  CHECK_EQ_INT(h3wt_sf_string_encode(buf, 5, "a\""), 0);
  /* Exactly-sized heap buffers: ASan sees a write past the end. */
  for (size_t cap = 0; cap <= 8; ++cap) {
    char *h = malloc(cap ? cap : 1);
    size_t r = h3wt_sf_string_encode(h, cap, "a\\b");
    TEST_CONTEXT("cap %zu", cap);
    CHECK_EQ_INT(r, cap >= 7 ? 6 : 0);
    if (r) {
      CHECK_EQ_STR(h, "\"a\\\\b\"");
    }
    free(h);
  }
  TEST_CONTEXT("%s", "");
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(varints),
      TEST_ENTRY(capsules_any_chunking),
      TEST_ENTRY(capsules_hostile),
      TEST_ENTRY(close_session_reason_truncated_at_utf8),
      TEST_ENTRY(settings_rewrite),
      TEST_ENTRY(flow_control_capsules),
      TEST_ENTRY(flow_control_settings),
      TEST_ENTRY(stream_headers),
      TEST_ENTRY(sf_string_list_good),
      TEST_ENTRY(sf_string_list_malformed),
      TEST_ENTRY(sf_string_encode_round_trip),
  };
  return TEST_MAIN(argc, argv, tests);
}
