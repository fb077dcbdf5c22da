/*
 * Unit tests of h3wt_chproto (docs/channels.md): every frame encoded,
 * parsed and decoded back to its fields; header-only encoders against the
 * whole frames; the stream parser fed whole, in 1-byte chunks and in random
 * splits; frames over max_frame refused before their payload; malformed
 * payloads and bad channel names refused with the right codes; unknown
 * types passed through; datagrams; encoders against every too-small cap.
 */
#include <stdlib.h>
#include <string.h>

#include "h3wt_chproto.h"
#include "h3wt_test.h"
#include "h3wt_wtproto.h"

#define U8(s) ((const uint8_t *)(s))

/* ---- collecting frames ----------------------------------------------------
 */

#define MAXF 64

typedef struct got {
  size_t n;
  uint64_t type[MAXF];
  size_t off[MAXF], len[MAXF]; /* the payload's copy in bytes[] */
  uint8_t bytes[1 << 18];
  size_t used;
  const uint8_t *in; /* the bytes fed, to tell in-place payloads */
  size_t inlen;
  size_t inplace; /* frames whose payload pointed into in */
  size_t stop_at; /* return 7 on this frame (1-based); 0: never */
} got;

static got *got_new(void) {
  return calloc(1, sizeof(got));
}

static int collect(uint64_t type, const uint8_t *payload, size_t len,
                   void *ud) {
  got *g = ud;
  CHECK(payload != NULL); /* promised even for len 0 */
  if (g->n < MAXF && g->used + len <= sizeof(g->bytes)) {
    g->type[g->n] = type;
    g->off[g->n] = g->used;
    g->len[g->n] = len;
    memcpy(g->bytes + g->used, payload, len);
    g->used += len;
  }
  if (g->in && payload >= g->in && payload < g->in + g->inlen) {
    ++g->inplace;
  }
  ++g->n;
  return g->stop_at && g->n == g->stop_at ? 7 : 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
  /* xorshift64: reproducible splits without libc's rand(). */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

enum { WHOLE, BYTES1, RANDOM };

/* Feeds in to a fresh parser the way mode says; returns the parse result
   and leaves *idle set. */
static int feed(const uint8_t *in, size_t len, int mode, size_t max_frame,
                got *g, int *idle) {
  h3wt_ch_parser p;
  int rv = 0;
  h3wt_ch_parser_init(&p, max_frame);
  g->in = in;
  g->inlen = len;
  for (size_t off = 0; off < len && rv == 0;) {
    size_t n = len - off;
    if (mode == BYTES1) {
      n = 1;
    } else if (mode == RANDOM) {
      n = 1 + (size_t)(rng() % 300);
      n = n > len - off ? len - off : n;
    }
    rv = h3wt_ch_parse(&p, in + off, n, collect, g);
    off += n;
  }
  if (len == 0) {
    rv = h3wt_ch_parse(&p, in, 0, collect, g);
  }
  *idle = h3wt_ch_parser_idle(&p);
  h3wt_ch_parser_free(&p);
  return rv;
}

/* Parses one encoded frame; checks it is exactly one frame and returns its
   payload (inside frame). */
static const uint8_t *one_frame(const uint8_t *frame, size_t n, uint64_t type,
                                size_t *plen) {
  uint64_t t, l;
  size_t a = h3wt_varint_decode(frame, n, &t);
  size_t b = h3wt_varint_decode(frame + a, n - a, &l);
  got *g = got_new();
  int idle;
  CHECK(a && b);
  CHECK(t == type);
  CHECK_EQ_INT(a + b + l, n);
  CHECK_EQ_INT(feed(frame, n, WHOLE, 1 << 20, g, &idle), 0);
  CHECK_EQ_INT(g->n, 1);
  CHECK(g->type[0] == type);
  CHECK_EQ_INT(g->len[0], l);
  CHECK_EQ_INT(g->inplace, 1);
  CHECK(idle);
  free(g);
  *plen = (size_t)l;
  return frame + a + b;
}

/* ---- round trips ----------------------------------------------------------
 */

/* Values at each varint size boundary. */
static const uint64_t vals[] = {
    0, 1, 63, 64, 16383, 16384, 1073741823, 1073741824, H3WT_VARINT_MAX};
#define NVALS (sizeof(vals) / sizeof(vals[0]))

TEST(round_trip_client_frames) {
  static uint8_t buf[70000], data[66000];
  const uint8_t *pl;
  size_t n, plen;
  for (size_t i = 0; i < sizeof(data); ++i) {
    data[i] = (uint8_t)(i * 7);
  }
  for (size_t i = 0; i < NVALS; ++i) {
    uint64_t a = vals[i], b = vals[NVALS - 1 - i], c = vals[(i + 3) % NVALS];
    TEST_CONTEXT("values %zu", i);

    /* SUBSCRIBE without recover: epoch and offset are not sent. */
    h3wt_ch_subscribe s;
    n = h3wt_ch_encode_subscribe(buf, sizeof(buf), a, U8("room"), 4, 0, b, c);
    pl = one_frame(buf, n, H3WT_CH_SUBSCRIBE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_subscribe(pl, plen, &s), 0);
    CHECK(s.req == a && s.flags == 0 && s.recover == 0);
    CHECK(s.epoch == 0 && s.offset == 0);
    CHECK_EQ_INT(s.namelen, 4);
    CHECK_EQ_MEM(s.name, "room", 4);
    CHECK_EQ_INT(plen, h3wt_varint_len(a) + 1 + 4 + 1);

    CHECK(s.history == 0 && s.limit == 0);

    /* With recover. */
    n = h3wt_ch_encode_subscribe(buf, sizeof(buf), a, U8("room"), 4,
                                 H3WT_CH_FLAG_RECOVER, b, c);
    pl = one_frame(buf, n, H3WT_CH_SUBSCRIBE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_subscribe(pl, plen, &s), 0);
    CHECK(s.req == a && s.flags == 0x01 && s.recover == 1);
    CHECK(s.epoch == b && s.offset == c);
    CHECK(s.history == 0 && s.limit == 0);

    /* History alone: the limit follows the flags. */
    n = h3wt_ch_encode_subscribe_ex(buf, sizeof(buf), a, U8("room"), 4,
                                    H3WT_CH_FLAG_HISTORY, b, c, c);
    pl = one_frame(buf, n, H3WT_CH_SUBSCRIBE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_subscribe(pl, plen, &s), 0);
    CHECK(s.req == a && s.flags == 0x02 && s.recover == 0 && s.history == 1);
    CHECK(s.epoch == 0 && s.offset == 0 && s.limit == c);
    CHECK_EQ_INT(plen, h3wt_varint_len(a) + 1 + 4 + 1 + h3wt_varint_len(c));

    /* Recover and history: epoch, offset, then the limit. */
    n = h3wt_ch_encode_subscribe_ex(buf, sizeof(buf), a, U8("room"), 4,
                                    H3WT_CH_FLAG_RECOVER | H3WT_CH_FLAG_HISTORY,
                                    b, c, a);
    pl = one_frame(buf, n, H3WT_CH_SUBSCRIBE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_subscribe(pl, plen, &s), 0);
    CHECK(s.flags == 0x03 && s.recover == 1 && s.history == 1);
    CHECK(s.epoch == b && s.offset == c && s.limit == a);

    /* An unknown flag bit is malformed, with or without the known ones. */
    n = h3wt_ch_encode_subscribe(buf, sizeof(buf), a, U8("room"), 4,
                                 H3WT_CH_FLAG_RECOVER | 0x10, b, c);
    pl = one_frame(buf, n, H3WT_CH_SUBSCRIBE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_subscribe(pl, plen, &s), H3WT_CH_PARSE_BAD);
    n = h3wt_ch_encode_subscribe(buf, sizeof(buf), a, U8("room"), 4, 0x04, b,
                                 c);
    pl = one_frame(buf, n, H3WT_CH_SUBSCRIBE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_subscribe(pl, plen, &s), H3WT_CH_PARSE_BAD);

    h3wt_ch_unsubscribe u;
    n = h3wt_ch_encode_unsubscribe(buf, sizeof(buf), a, U8("a b"), 3);
    pl = one_frame(buf, n, H3WT_CH_UNSUBSCRIBE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_unsubscribe(pl, plen, &u), 0);
    CHECK(u.req == a);
    CHECK_EQ_INT(u.namelen, 3);
    CHECK_EQ_MEM(u.name, "a b", 3);

    h3wt_ch_presence pr;
    n = h3wt_ch_encode_presence(buf, sizeof(buf), b, U8("\xc3\xa9t\xc3\xa9"),
                                5);
    pl = one_frame(buf, n, H3WT_CH_PRESENCE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_presence(pl, plen, &pr), 0);
    CHECK(pr.req == b);
    CHECK_EQ_INT(pr.namelen, 5);
    CHECK_EQ_MEM(pr.name, "\xc3\xa9t\xc3\xa9", 5);

    /* PUBLISH with empty, small and frame-sized data. */
    static const size_t dlens[] = {0, 1, 63, 64, 16384, 65536};
    for (size_t k = 0; k < sizeof(dlens) / sizeof(dlens[0]); ++k) {
      h3wt_ch_publish p;
      n = h3wt_ch_encode_publish(buf, sizeof(buf), c, U8("x"), 1, data,
                                 dlens[k]);
      pl = one_frame(buf, n, H3WT_CH_PUBLISH, &plen);
      CHECK_EQ_INT(h3wt_ch_decode_publish(pl, plen, &p), 0);
      CHECK(p.req == c);
      CHECK_EQ_INT(p.namelen, 1);
      CHECK_EQ_INT(p.datalen, dlens[k]);
      CHECK(p.data != NULL);
      CHECK_EQ_MEM(p.data, data, dlens[k]);
    }
  }
}

TEST(round_trip_server_frames) {
  static uint8_t buf[70000];
  const uint8_t *pl;
  size_t n, plen;
  for (size_t i = 0; i < NVALS; ++i) {
    uint64_t a = vals[i], b = vals[NVALS - 1 - i], c = vals[(i + 3) % NVALS],
             d = vals[(i + 5) % NVALS];
    TEST_CONTEXT("values %zu", i);

    h3wt_ch_subscribed sd;
    for (int rec = 0; rec < 2; ++rec) {
      n = h3wt_ch_encode_subscribed(buf, sizeof(buf), a, U8("chan"), 4, b, rec,
                                    c, d, a);
      pl = one_frame(buf, n, H3WT_CH_SUBSCRIBED, &plen);
      CHECK_EQ_INT(h3wt_ch_decode_subscribed(pl, plen, &sd), 0);
      CHECK(sd.req == a && sd.sub == b && sd.recovered == rec);
      CHECK(sd.epoch == c && sd.offset == d && sd.missed == a);
      CHECK_EQ_INT(sd.namelen, 4);
      CHECK_EQ_MEM(sd.name, "chan", 4);
    }

    h3wt_ch_published pd;
    n = h3wt_ch_encode_published(buf, sizeof(buf), a, b, c);
    pl = one_frame(buf, n, H3WT_CH_PUBLISHED, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_published(pl, plen, &pd), 0);
    CHECK(pd.req == a && pd.epoch == b && pd.offset == c);

    h3wt_ch_unsubscribed ud;
    n = h3wt_ch_encode_unsubscribed(buf, sizeof(buf), a, b, c, U8("slow"), 4);
    pl = one_frame(buf, n, H3WT_CH_UNSUBSCRIBED, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_unsubscribed(pl, plen, &ud), 0);
    CHECK(ud.req == a && ud.sub == b && ud.code == c);
    CHECK_EQ_INT(ud.reasonlen, 4);
    CHECK_EQ_MEM(ud.reason, "slow", 4);
    n = h3wt_ch_encode_unsubscribed(buf, sizeof(buf), 0, b, c, NULL, 0);
    pl = one_frame(buf, n, H3WT_CH_UNSUBSCRIBED, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_unsubscribed(pl, plen, &ud), 0);
    CHECK(ud.req == 0 && ud.reasonlen == 0 && ud.reason != NULL);

    h3wt_ch_message m;
    n = h3wt_ch_encode_message(buf, sizeof(buf), a, b, U8("hello"), 5);
    pl = one_frame(buf, n, H3WT_CH_MESSAGE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_message(pl, plen, &m), 0);
    CHECK(m.sub == a && m.offset == b);
    CHECK_EQ_INT(m.datalen, 5);
    CHECK_EQ_MEM(m.data, "hello", 5);

    h3wt_ch_join j;
    n = h3wt_ch_encode_join(buf, sizeof(buf), a, U8("12345"), 5);
    pl = one_frame(buf, n, H3WT_CH_JOIN, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_join(pl, plen, &j), 0);
    CHECK(j.sub == a);
    CHECK_EQ_INT(j.memberlen, 5);
    CHECK_EQ_MEM(j.member, "12345", 5);

    h3wt_ch_leave l;
    n = h3wt_ch_encode_leave(buf, sizeof(buf), b, U8(""), 0);
    pl = one_frame(buf, n, H3WT_CH_LEAVE, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_leave(pl, plen, &l), 0);
    CHECK(l.sub == b && l.memberlen == 0);

    h3wt_ch_error e;
    n = h3wt_ch_encode_error(buf, sizeof(buf), a, H3WT_CH_ERR_FORBIDDEN,
                             U8("403"), 3);
    pl = one_frame(buf, n, H3WT_CH_ERROR, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_error(pl, plen, &e), 0);
    CHECK(e.req == a && e.code == H3WT_CH_ERR_FORBIDDEN);
    CHECK_EQ_INT(e.textlen, 3);
    CHECK_EQ_MEM(e.text, "403", 3);

    /* MEMBERS: none, one, several of assorted lengths (one empty). */
    static char big[300];
    memset(big, 'm', sizeof(big));
    const h3wt_ch_str ms[] = {
        {U8("alice"), 5}, {U8(""), 0}, {U8(big), 64}, {U8(big), 300}};
    for (size_t cnt = 0; cnt <= 4; ++cnt) {
      h3wt_ch_members mb;
      size_t pos = 0, k = 0, mlen;
      const uint8_t *mp;
      n = h3wt_ch_encode_members(buf, sizeof(buf), a, b, ms, cnt);
      pl = one_frame(buf, n, H3WT_CH_MEMBERS, &plen);
      CHECK_EQ_INT(h3wt_ch_decode_members(pl, plen, &mb), 0);
      CHECK(mb.req == a && mb.sub == b && mb.count == cnt);
      while (h3wt_ch_members_next(&mb, &pos, &mp, &mlen)) {
        CHECK(k < cnt);
        if (k < cnt) {
          CHECK_EQ_INT(mlen, ms[k].len);
          CHECK_EQ_MEM(mp, ms[k].p, mlen);
        }
        ++k;
      }
      CHECK_EQ_INT(k, cnt);
      CHECK_EQ_INT(pos, mb.listlen);
    }
  }
}

/* ---- header-only encoders -------------------------------------------------
 */

TEST(head_variants_match_whole_frames) {
  static uint8_t whole[70000], split[70000], data[65536];
  for (size_t i = 0; i < sizeof(data); ++i) {
    data[i] = (uint8_t)(i ^ (i >> 8));
  }
  static const size_t dlens[] = {0, 1, 62, 63, 64, 16383, 16384, 65536};
  for (size_t k = 0; k < sizeof(dlens) / sizeof(dlens[0]); ++k) {
    size_t dl = dlens[k], n, h;
    TEST_CONTEXT("datalen %zu", dl);
    /* MESSAGE: the head, then the data from a shared buffer. */
    n = h3wt_ch_encode_message(whole, sizeof(whole), 77, 1u << 20, data, dl);
    h = h3wt_ch_encode_message_head(split, H3WT_CH_MESSAGE_HEAD_MAX, 77,
                                    1u << 20, dl);
    CHECK(h > 0 && h <= H3WT_CH_MESSAGE_HEAD_MAX);
    memcpy(split + h, data, dl);
    CHECK_EQ_INT(h + dl, n);
    CHECK_EQ_MEM(split, whole, n);

    /* PUBLISH likewise, with the longest valid name. */
    uint8_t name[H3WT_CH_NAME_MAX];
    memset(name, 'n', sizeof(name));
    n = h3wt_ch_encode_publish(whole, sizeof(whole), H3WT_VARINT_MAX, name,
                               sizeof(name), data, dl);
    h = h3wt_ch_encode_publish_head(split, H3WT_CH_PUBLISH_HEAD_MAX,
                                    H3WT_VARINT_MAX, name, sizeof(name), dl);
    CHECK(h > 0 && h <= H3WT_CH_PUBLISH_HEAD_MAX);
    memcpy(split + h, data, dl);
    CHECK_EQ_INT(h + dl, n);
    CHECK_EQ_MEM(split, whole, n);

    /* The head with its data parses as the same one frame. */
    size_t plen;
    h3wt_ch_publish p;
    const uint8_t *pl = one_frame(split, h + dl, H3WT_CH_PUBLISH, &plen);
    CHECK_EQ_INT(h3wt_ch_decode_publish(pl, plen, &p), 0);
    CHECK_EQ_INT(p.datalen, dl);
    CHECK_EQ_MEM(p.data, data, dl);
  }
  TEST_CONTEXT("%s", "");
  /* MEMBERS in parts. */
  const h3wt_ch_str ms[] = {{U8("a"), 1}, {U8("bb"), 2}, {U8("ccc"), 3}};
  size_t listlen = 0, n, h;
  for (size_t i = 0; i < 3; ++i) {
    listlen += h3wt_ch_member_size(ms[i].len);
  }
  CHECK_EQ_INT(listlen, 2 + 3 + 4);
  n = h3wt_ch_encode_members(whole, sizeof(whole), 9, 8, ms, 3);
  h = h3wt_ch_encode_members_head(split, sizeof(split), 9, 8, 3, listlen);
  for (size_t i = 0; i < 3; ++i) {
    h +=
        h3wt_ch_encode_member(split + h, sizeof(split) - h, ms[i].p, ms[i].len);
  }
  CHECK_EQ_INT(h, n);
  CHECK_EQ_MEM(split, whole, n);
}

/* ---- the stream parser -------------------------------------------------- */

/* A stream of every frame type, unknown types, empty frames, a payload
   large enough to span many chunks. */
static size_t build_stream(uint8_t *out, size_t cap) {
  static uint8_t data[20000];
  const h3wt_ch_str ms[] = {{U8("a"), 1}, {U8("bob"), 3}};
  size_t o = 0;
  for (size_t i = 0; i < sizeof(data); ++i) {
    data[i] = (uint8_t)(i * 13);
  }
  o += h3wt_ch_encode_subscribe(out + o, cap - o, 1, U8("r"), 1, 1, 5, 6);
  o += h3wt_ch_encode_unsubscribe(out + o, cap - o, 2, U8("r"), 1);
  o += h3wt_ch_encode_presence(out + o, cap - o, 3, U8("r"), 1);
  o += h3wt_ch_encode_publish(out + o, cap - o, 4, U8("r"), 1, data, 3000);
  o +=
      h3wt_ch_encode_subscribed(out + o, cap - o, 5, U8("r"), 1, 9, 1, 2, 3, 0);
  o += h3wt_ch_encode_published(out + o, cap - o, 6, 7, 8);
  /* An unknown type with an empty payload, another with a 2-byte type and
     a non-minimal length (4 bytes for 3). */
  out[o++] = 0x05;
  out[o++] = 0x00;
  out[o++] = 0x7f;
  out[o++] = 0xff;
  memcpy(out + o, "\x80\x00\x00\x03xyz", 7);
  o += 7;
  o += h3wt_ch_encode_unsubscribed(out + o, cap - o, 0, 9, 9, U8("bye"), 3);
  o += h3wt_ch_encode_message(out + o, cap - o, 9, 4, data, sizeof(data));
  o += h3wt_ch_encode_join(out + o, cap - o, 9, U8("joe"), 3);
  o += h3wt_ch_encode_leave(out + o, cap - o, 9, U8("joe"), 3);
  o += h3wt_ch_encode_members(out + o, cap - o, 10, 9, ms, 2);
  o += h3wt_ch_encode_error(out + o, cap - o, 11, 2, U8("?"), 1);
  /* A known type with an empty payload still passes the parser (its
     decoder refuses it).  0x44 is a 2-byte varint. */
  out[o++] = 0x40;
  out[o++] = H3WT_CH_MESSAGE;
  out[o++] = 0x00;
  return o;
}

static const uint64_t stream_types[] = {H3WT_CH_SUBSCRIBE,
                                        H3WT_CH_UNSUBSCRIBE,
                                        H3WT_CH_PRESENCE,
                                        H3WT_CH_PUBLISH,
                                        H3WT_CH_SUBSCRIBED,
                                        H3WT_CH_PUBLISHED,
                                        0x05,
                                        0x3fff,
                                        H3WT_CH_UNSUBSCRIBED,
                                        H3WT_CH_MESSAGE,
                                        H3WT_CH_JOIN,
                                        H3WT_CH_LEAVE,
                                        H3WT_CH_MEMBERS,
                                        H3WT_CH_ERROR,
                                        H3WT_CH_MESSAGE};
#define NSTREAM (sizeof(stream_types) / sizeof(stream_types[0]))

static void same_frames(const got *a, const got *b) {
  CHECK_EQ_INT(a->n, b->n);
  for (size_t i = 0; i < a->n && i < b->n && i < MAXF; ++i) {
    CHECK(a->type[i] == b->type[i]);
    CHECK_EQ_INT(a->len[i], b->len[i]);
    if (a->len[i] == b->len[i]) {
      CHECK_EQ_MEM(a->bytes + a->off[i], b->bytes + b->off[i], a->len[i]);
    }
  }
}

TEST(parser_any_chunking) {
  static uint8_t in[40000];
  size_t len = build_stream(in, sizeof(in));
  got *whole = got_new(), *g;
  int idle;
  CHECK_EQ_INT(feed(in, len, WHOLE, H3WT_CH_MAX_FRAME_DEFAULT, whole, &idle),
               0);
  CHECK(idle);
  CHECK_EQ_INT(whole->n, NSTREAM);
  for (size_t i = 0; i < NSTREAM && i < whole->n; ++i) {
    CHECK(whole->type[i] == stream_types[i]);
  }
  CHECK_EQ_INT(whole->len[7], 3);
  CHECK_EQ_MEM(whole->bytes + whole->off[7], "xyz", 3);
  /* Fed whole, every payload is passed in place (the empty ones point at
     the parser's own empty array). */
  CHECK_EQ_INT(whole->inplace, NSTREAM - 2);

  g = got_new();
  CHECK_EQ_INT(feed(in, len, BYTES1, H3WT_CH_MAX_FRAME_DEFAULT, g, &idle), 0);
  CHECK(idle);
  same_frames(whole, g);
  free(g);
  for (int seed = 0; seed < 50; ++seed) {
    TEST_CONTEXT("random splits, round %d", seed);
    g = got_new();
    CHECK_EQ_INT(feed(in, len, RANDOM, H3WT_CH_MAX_FRAME_DEFAULT, g, &idle), 0);
    CHECK(idle);
    same_frames(whole, g);
    free(g);
  }
  free(whole);
}

TEST(parser_too_large_before_payload) {
  uint8_t in[32], *p;
  got *g = got_new();
  h3wt_ch_parser ps;
  /* max_frame 100: a length of 101 is refused on the length field alone,
     with no byte of payload sent and nothing allocated. */
  p = h3wt_varint_encode(in, H3WT_CH_PUBLISH);
  p = h3wt_varint_encode(p, 101);
  h3wt_ch_parser_init(&ps, 100);
  CHECK_EQ_INT(h3wt_ch_parse(&ps, in, (size_t)(p - in), collect, g),
               H3WT_CH_PARSE_TOO_LARGE);
  CHECK(ps.buf == NULL && ps.bufcap == 0);
  CHECK_EQ_INT(g->n, 0);
  /* The stream is over: later bytes get the same answer. */
  CHECK_EQ_INT(h3wt_ch_parse(&ps, in, 1, collect, g), H3WT_CH_PARSE_TOO_LARGE);
  h3wt_ch_parser_free(&ps);

  /* The same with the length split over calls, and the largest varint. */
  p = h3wt_varint_encode(in, 0x44);
  p = h3wt_varint_encode(p, H3WT_VARINT_MAX);
  h3wt_ch_parser_init(&ps, 100);
  for (size_t i = 0; i + 1 < (size_t)(p - in); ++i) {
    CHECK_EQ_INT(h3wt_ch_parse(&ps, in + i, 1, collect, g), 0);
  }
  CHECK_EQ_INT(h3wt_ch_parse(&ps, p - 1, 1, collect, g),
               H3WT_CH_PARSE_TOO_LARGE);
  CHECK(ps.bufcap == 0);
  h3wt_ch_parser_free(&ps);

  /* Exactly max_frame is allowed, fed whole or in pieces. */
  static uint8_t frame[200];
  memset(frame, 0, sizeof(frame));
  p = h3wt_varint_encode(frame, 0x44);
  p = h3wt_varint_encode(p, 100);
  size_t n = (size_t)(p - frame) + 100;
  int idle;
  CHECK_EQ_INT(feed(frame, n, WHOLE, 100, g, &idle), 0);
  CHECK_EQ_INT(feed(frame, n, BYTES1, 100, g, &idle), 0);
  CHECK_EQ_INT(g->n, 2);
  CHECK(idle);
  free(g);
}

TEST(parser_idle_and_buffer) {
  static uint8_t in[10000], data[5000];
  got *g = got_new();
  h3wt_ch_parser ps;
  size_t n = h3wt_ch_encode_message(in, sizeof(in), 1, 2, data, sizeof(data));
  h3wt_ch_parser_init(&ps, H3WT_CH_MAX_FRAME_DEFAULT);
  CHECK(h3wt_ch_parser_idle(&ps));
  /* Mid type (a 2-byte varint), mid length, mid payload: not idle. */
  static const uint8_t two[] = {0x40, 0x44, 0x02, 'h', 'i'};
  CHECK_EQ_INT(h3wt_ch_parse(&ps, two, 1, collect, g), 0);
  CHECK(!h3wt_ch_parser_idle(&ps));
  CHECK_EQ_INT(h3wt_ch_parse(&ps, two + 1, 1, collect, g), 0);
  CHECK(!h3wt_ch_parser_idle(&ps));
  CHECK_EQ_INT(h3wt_ch_parse(&ps, two + 2, 2, collect, g), 0);
  CHECK(!h3wt_ch_parser_idle(&ps));
  CHECK_EQ_INT(h3wt_ch_parse(&ps, two + 4, 1, collect, g), 0);
  CHECK(h3wt_ch_parser_idle(&ps));
  CHECK_EQ_INT(g->n, 1);
  CHECK(g->type[0] == 0x44);
  /* A small gathered frame keeps its buffer for the next one... */
  CHECK(ps.bufcap == 2);
  /* ...a large one gives it back once delivered. */
  CHECK_EQ_INT(h3wt_ch_parse(&ps, in, n - 1, collect, g), 0);
  CHECK(!h3wt_ch_parser_idle(&ps));
  CHECK(ps.bufcap >= 5000);
  CHECK_EQ_INT(h3wt_ch_parse(&ps, in + n - 1, 1, collect, g), 0);
  CHECK(h3wt_ch_parser_idle(&ps));
  CHECK(ps.buf == NULL && ps.bufcap == 0);
  CHECK_EQ_INT(g->n, 2);
  CHECK_EQ_INT(g->len[1], n - 4); /* less the type and length, 2 each */
  h3wt_ch_parser_free(&ps);
  free(g);
}

TEST(parser_callback_stops) {
  static uint8_t in[40000];
  size_t len = build_stream(in, sizeof(in));
  for (int mode = WHOLE; mode <= BYTES1; ++mode) {
    got *g = got_new();
    h3wt_ch_parser ps;
    int rv = 0;
    TEST_CONTEXT("mode %d", mode);
    g->stop_at = 2;
    h3wt_ch_parser_init(&ps, H3WT_CH_MAX_FRAME_DEFAULT);
    for (size_t off = 0; off < len && rv == 0; off += mode == WHOLE ? len : 1) {
      rv = h3wt_ch_parse(&ps, in + off, mode == WHOLE ? len : 1, collect, g);
    }
    CHECK_EQ_INT(rv, 7);
    CHECK_EQ_INT(g->n, 2); /* nothing after the stop */
    CHECK_EQ_INT(h3wt_ch_parse(&ps, in, len, collect, g), 7);
    CHECK_EQ_INT(g->n, 2);
    h3wt_ch_parser_free(&ps);
    free(g);
  }
  TEST_CONTEXT("%s", "");
  /* A stop on an empty frame (delivered with its length field). */
  static const uint8_t empties[] = {0x05, 0x00, 0x06, 0x00, 0x07, 0x00};
  got *g = got_new();
  h3wt_ch_parser ps;
  g->stop_at = 2;
  h3wt_ch_parser_init(&ps, 16);
  CHECK_EQ_INT(h3wt_ch_parse(&ps, empties, sizeof(empties), collect, g), 7);
  CHECK_EQ_INT(g->n, 2);
  CHECK(g->type[1] == 0x06);
  h3wt_ch_parser_free(&ps);
  free(g);
}

TEST(unknown_types_pass_through) {
  uint8_t in[64], *p = in;
  static const uint64_t types[] = {0x00, 0x05,   0x40,
                                   0x49, 0x3fff, H3WT_VARINT_MAX};
  for (size_t i = 0; i < 6; ++i) {
    p = h3wt_varint_encode(p, types[i]);
    p = h3wt_varint_encode(p, i);
    memset(p, (int)i, i);
    p += i;
  }
  for (int mode = WHOLE; mode <= RANDOM; ++mode) {
    got *g = got_new();
    int idle;
    TEST_CONTEXT("mode %d", mode);
    CHECK_EQ_INT(feed(in, (size_t)(p - in), mode, 64, g, &idle), 0);
    CHECK_EQ_INT(g->n, 6);
    for (size_t i = 0; i < 6 && i < g->n; ++i) {
      CHECK(g->type[i] == types[i]);
      CHECK_EQ_INT(g->len[i], i);
    }
    CHECK(idle);
    free(g);
  }
}

/* ---- malformed payloads ------------------------------------------------- */

/* Any decoder by frame type; -100 for a type without one. */
static int decode_any(uint64_t type, const uint8_t *pl, size_t len) {
  union {
    h3wt_ch_subscribe s;
    h3wt_ch_chanreq c;
    h3wt_ch_publish p;
    h3wt_ch_subscribed sd;
    h3wt_ch_published pd;
    h3wt_ch_unsubscribed ud;
    h3wt_ch_message m;
    h3wt_ch_member_event j;
    h3wt_ch_members mb;
    h3wt_ch_error e;
  } u;
  switch (type) {
  case H3WT_CH_SUBSCRIBE:
    return h3wt_ch_decode_subscribe(pl, len, &u.s);
  case H3WT_CH_UNSUBSCRIBE:
    return h3wt_ch_decode_unsubscribe(pl, len, &u.c);
  case H3WT_CH_PRESENCE:
    return h3wt_ch_decode_presence(pl, len, &u.c);
  case H3WT_CH_PUBLISH:
    return h3wt_ch_decode_publish(pl, len, &u.p);
  case H3WT_CH_SUBSCRIBED:
    return h3wt_ch_decode_subscribed(pl, len, &u.sd);
  case H3WT_CH_PUBLISHED:
    return h3wt_ch_decode_published(pl, len, &u.pd);
  case H3WT_CH_UNSUBSCRIBED:
    return h3wt_ch_decode_unsubscribed(pl, len, &u.ud);
  case H3WT_CH_MESSAGE:
    return h3wt_ch_decode_message(pl, len, &u.m);
  case H3WT_CH_JOIN:
    return h3wt_ch_decode_join(pl, len, &u.j);
  case H3WT_CH_LEAVE:
    return h3wt_ch_decode_leave(pl, len, &u.j);
  case H3WT_CH_MEMBERS:
    return h3wt_ch_decode_members(pl, len, &u.mb);
  case H3WT_CH_ERROR:
    return h3wt_ch_decode_error(pl, len, &u.e);
  }
  return -100;
}

TEST(truncated_and_trailing_refused) {
  static uint8_t in[40000];
  size_t len = build_stream(in, sizeof(in));
  got *g = got_new();
  int idle;
  CHECK_EQ_INT(feed(in, len, WHOLE, H3WT_CH_MAX_FRAME_DEFAULT, g, &idle), 0);
  for (size_t i = 0; i < g->n && i < MAXF; ++i) {
    uint64_t t = g->type[i];
    size_t plen = g->len[i];
    const uint8_t *pl = g->bytes + g->off[i];
    if (decode_any(t, pl, plen) == -100 || plen == 0) {
      continue; /* unknown types; the empty MESSAGE is below */
    }
    TEST_CONTEXT("frame %zu type 0x%llx", i, (unsigned long long)t);
    CHECK_EQ_INT(decode_any(t, pl, plen), 0);
    /* Every strict prefix is too short for its fields.  Heap copies of
       exactly the prefix, so ASan sees any read past the end. */
    for (size_t k = 0; k < plen; k += k < 64 ? 1 : 997) {
      uint8_t *c = malloc(k ? k : 1);
      memcpy(c, pl, k);
      CHECK_EQ_INT(decode_any(t, c, k), H3WT_CH_PARSE_BAD);
      free(c);
    }
    /* One byte too many. */
    uint8_t *c = malloc(plen + 1);
    memcpy(c, pl, plen);
    c[plen] = 0;
    CHECK_EQ_INT(decode_any(t, c, plen + 1), H3WT_CH_PARSE_BAD);
    free(c);
  }
  TEST_CONTEXT("%s", "");
  free(g);
  /* Empty payloads, and no payload pointer at all. */
  static const uint64_t known[] = {
      H3WT_CH_SUBSCRIBE,    H3WT_CH_UNSUBSCRIBE, H3WT_CH_PUBLISH,
      H3WT_CH_PRESENCE,     H3WT_CH_SUBSCRIBED,  H3WT_CH_PUBLISHED,
      H3WT_CH_UNSUBSCRIBED, H3WT_CH_MESSAGE,     H3WT_CH_JOIN,
      H3WT_CH_LEAVE,        H3WT_CH_MEMBERS,     H3WT_CH_ERROR};
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); ++i) {
    TEST_CONTEXT("type 0x%llx", (unsigned long long)known[i]);
    CHECK_EQ_INT(decode_any(known[i], U8(""), 0), H3WT_CH_PARSE_BAD);
    CHECK_EQ_INT(decode_any(known[i], NULL, 0), H3WT_CH_PARSE_BAD);
  }
}

TEST(odd_but_valid_and_hand_built_bad) {
  h3wt_ch_subscribe s;
  h3wt_ch_subscribed sd;
  h3wt_ch_members mb;
  /* "shortest form not required": req 5 as an 8-byte varint, the name
     length as a 2-byte one. */
  static const uint8_t longform[] = {0xc0, 0, 0,    0,    0,   0,
                                     0,    5, 0x40, 0x01, 'r', 0x00};
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(longform, sizeof(longform), &s), 0);
  CHECK(s.req == 5 && s.namelen == 1 && s.name[0] == 'r' && !s.recover);
  /* Recover set but epoch and offset missing. */
  static const uint8_t norecover[] = {0x01, 0x01, 'r', 0x01};
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(norecover, 4, &s), H3WT_CH_PARSE_BAD);
  /* History set but the limit missing; or the limit and a byte more. */
  static const uint8_t nolimit[] = {0x01, 0x01, 'r', 0x02};
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(nolimit, 4, &s), H3WT_CH_PARSE_BAD);
  static const uint8_t limit2[] = {0x01, 0x01, 'r', 0x02, 0x05, 0x00};
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(limit2, 6, &s), H3WT_CH_PARSE_BAD);
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(limit2, 5, &s), 0);
  CHECK(s.history == 1 && s.limit == 5 && !s.recover);
  /* A flag bit past the known ones, even in a long varint form. */
  static const uint8_t bit62[] = {0x01, 0x01, 'r',  0xc0, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x00, 0x80, 0x00};
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(bit62, sizeof(bit62), &s),
               H3WT_CH_PARSE_BAD);
  static const uint8_t known2[] = {0x01, 0x01, 'r',  0xc0, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x02, 0x07};
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(known2, sizeof(known2), &s), 0);
  CHECK(s.history == 1 && s.limit == 7);
  /* A name longer than the bytes left. */
  static const uint8_t longname[] = {0x01, 0x05, 'r', 0x00};
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(longname, 4, &s), H3WT_CH_PARSE_BAD);
  /* SUBSCRIBED: "recovered (varint 0/1)"; 2 is malformed. */
  static const uint8_t rec2[] = {0x01, 0x01, 'r', 0x07, 0x02, 0, 0, 0};
  CHECK_EQ_INT(h3wt_ch_decode_subscribed(rec2, sizeof(rec2), &sd),
               H3WT_CH_PARSE_BAD);
  static const uint8_t rec1[] = {0x01, 0x01, 'r', 0x07, 0x01, 0, 0, 0};
  CHECK_EQ_INT(h3wt_ch_decode_subscribed(rec1, sizeof(rec1), &sd), 0);
  CHECK(sd.recovered == 1 && sd.sub == 7);
  /* MEMBERS: a count no payload could hold fails at once; a count of 2
     with one member is short; with three, trailing. */
  static const uint8_t huge[] = {0x01, 0x02, 0xc0, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0xff, 0xff, 0x00};
  CHECK_EQ_INT(h3wt_ch_decode_members(huge, sizeof(huge), &mb),
               H3WT_CH_PARSE_BAD);
  static const uint8_t two[] = {0x01, 0x02, 0x02, 0x01, 'a'};
  CHECK_EQ_INT(h3wt_ch_decode_members(two, sizeof(two), &mb),
               H3WT_CH_PARSE_BAD);
  static const uint8_t extra[] = {0x01, 0x02, 0x01, 0x01, 'a', 0x00};
  CHECK_EQ_INT(h3wt_ch_decode_members(extra, sizeof(extra), &mb),
               H3WT_CH_PARSE_BAD);
  static const uint8_t none[] = {0x01, 0x02, 0x00};
  CHECK_EQ_INT(h3wt_ch_decode_members(none, sizeof(none), &mb), 0);
  size_t pos = 0, ml;
  const uint8_t *m;
  CHECK_EQ_INT(h3wt_ch_members_next(&mb, &pos, &m, &ml), 0);
}

/* ---- channel names --------------------------------------------------------
 */

/* Encodes name into every frame that carries a channel and checks each
   decoder's answer is want (and that req survived). */
static void names_in_all_frames(const uint8_t *name, size_t len, int want) {
  static uint8_t buf[1024];
  const uint8_t *pl;
  size_t n, plen;
  h3wt_ch_subscribe s;
  h3wt_ch_chanreq c;
  h3wt_ch_publish p;
  h3wt_ch_subscribed sd;
  n = h3wt_ch_encode_subscribe(buf, sizeof(buf), 41, name, len, 1, 2, 3);
  pl = one_frame(buf, n, H3WT_CH_SUBSCRIBE, &plen);
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(pl, plen, &s), want);
  CHECK(s.req == 41 && s.namelen == len);
  n = h3wt_ch_encode_unsubscribe(buf, sizeof(buf), 42, name, len);
  pl = one_frame(buf, n, H3WT_CH_UNSUBSCRIBE, &plen);
  CHECK_EQ_INT(h3wt_ch_decode_unsubscribe(pl, plen, &c), want);
  CHECK(c.req == 42);
  n = h3wt_ch_encode_presence(buf, sizeof(buf), 43, name, len);
  pl = one_frame(buf, n, H3WT_CH_PRESENCE, &plen);
  CHECK_EQ_INT(h3wt_ch_decode_presence(pl, plen, &c), want);
  CHECK(c.req == 43);
  n = h3wt_ch_encode_publish(buf, sizeof(buf), 44, name, len, U8("d"), 1);
  pl = one_frame(buf, n, H3WT_CH_PUBLISH, &plen);
  CHECK_EQ_INT(h3wt_ch_decode_publish(pl, plen, &p), want);
  CHECK(p.req == 44 && p.datalen == 1);
  n = h3wt_ch_encode_subscribed(buf, sizeof(buf), 45, name, len, 1, 0, 0, 0, 0);
  pl = one_frame(buf, n, H3WT_CH_SUBSCRIBED, &plen);
  CHECK_EQ_INT(h3wt_ch_decode_subscribed(pl, plen, &sd), want);
  CHECK(sd.req == 45);
}

TEST(channel_names) {
  uint8_t name[300];
  memset(name, 'c', sizeof(name));
  CHECK(h3wt_ch_name_valid(name, 1));
  CHECK(h3wt_ch_name_valid(name, 255));
  CHECK(!h3wt_ch_name_valid(name, 0));
  CHECK(!h3wt_ch_name_valid(name, 256));
  names_in_all_frames(name, 1, 0);
  names_in_all_frames(name, 255, 0);
  names_in_all_frames(name, 0, H3WT_CH_PARSE_BAD_NAME);
  names_in_all_frames(name, 256, H3WT_CH_PARSE_BAD_NAME);
  /* Every byte value in the middle of a name: controls refused, the rest
     (space, DEL's neighbours, UTF-8 bytes) allowed. */
  for (int b = 0; b < 256; ++b) {
    int ok = b >= 0x20 && b != 0x7f;
    TEST_CONTEXT("byte 0x%02x", b);
    name[5] = (uint8_t)b;
    CHECK_EQ_INT(h3wt_ch_name_valid(name, 10), ok);
    if (b == 0x00 || b == 0x1f || b == 0x20 || b == 0x7e || b == 0x7f ||
        b == 0x80 || b == 0xff || b == '\n') {
      names_in_all_frames(name, 10, ok ? 0 : H3WT_CH_PARSE_BAD_NAME);
    }
  }
  TEST_CONTEXT("%s", "");
  name[5] = 'c';
  /* A control as the first or last byte. */
  name[0] = 0x01;
  CHECK(!h3wt_ch_name_valid(name, 10));
  name[0] = 'c';
  name[9] = 0x7f;
  CHECK(!h3wt_ch_name_valid(name, 10));
  /* A bad name in a malformed frame: BAD_FRAME wins (the session ends). */
  static const uint8_t both[] = {0x01, 0x01, 0x00, 0x00, 0xff};
  h3wt_ch_subscribe s;
  CHECK_EQ_INT(h3wt_ch_decode_subscribe(both, sizeof(both), &s),
               H3WT_CH_PARSE_BAD);
}

/* ---- datagrams --------------------------------------------------------------
 */

TEST(datagrams) {
  uint8_t buf[64];
  uint64_t type, sub;
  const uint8_t *data;
  size_t datalen, h;
  for (size_t i = 0; i < NVALS; ++i) {
    TEST_CONTEXT("sub %llu", (unsigned long long)vals[i]);
    h = h3wt_ch_encode_dgram_head(buf, sizeof(buf), H3WT_CH_DGRAM_DELIVER,
                                  vals[i]);
    CHECK_EQ_INT(h, 1 + h3wt_varint_len(vals[i]));
    CHECK(h <= H3WT_CH_DGRAM_HEAD_MAX);
    memcpy(buf + h, "pos", 3);
    CHECK_EQ_INT(h3wt_ch_decode_dgram(buf, h + 3, &type, &sub, &data, &datalen),
                 0);
    CHECK(type == H3WT_CH_DGRAM_DELIVER && sub == vals[i]);
    CHECK_EQ_INT(datalen, 3);
    CHECK(data == buf + h);
    /* Empty data is a datagram too. */
    CHECK_EQ_INT(h3wt_ch_decode_dgram(buf, h, &type, &sub, &data, &datalen), 0);
    CHECK_EQ_INT(datalen, 0);
    /* Cut inside sub. */
    for (size_t k = 1; k < h; ++k) {
      CHECK_EQ_INT(h3wt_ch_decode_dgram(buf, k, &type, &sub, &data, &datalen),
                   H3WT_CH_PARSE_BAD);
    }
  }
  TEST_CONTEXT("%s", "");
  h = h3wt_ch_encode_dgram_head(buf, sizeof(buf), H3WT_CH_DGRAM_PUBLISH, 3);
  CHECK_EQ_INT(h, 2);
  CHECK_EQ_MEM(buf, "\x01\x03", 2);
  CHECK_EQ_INT(h3wt_ch_decode_dgram(buf, 2, &type, &sub, &data, &datalen), 0);
  CHECK(type == H3WT_CH_DGRAM_PUBLISH && sub == 3 && datalen == 0);
  /* Nothing at all; a type cut short. */
  CHECK_EQ_INT(h3wt_ch_decode_dgram(NULL, 0, &type, &sub, &data, &datalen),
               H3WT_CH_PARSE_BAD);
  CHECK_EQ_INT(
      h3wt_ch_decode_dgram(U8("\x40"), 1, &type, &sub, &data, &datalen),
      H3WT_CH_PARSE_BAD);
  /* Unknown types: dropped by the caller, sub never read. */
  type = 0;
  CHECK_EQ_INT(
      h3wt_ch_decode_dgram(U8("\x03"), 1, &type, &sub, &data, &datalen),
      H3WT_CH_PARSE_UNKNOWN);
  CHECK(type == 3);
  CHECK_EQ_INT(
      h3wt_ch_decode_dgram(U8("\x00\x01xy"), 4, &type, &sub, &data, &datalen),
      H3WT_CH_PARSE_UNKNOWN);
  CHECK(type == 0);
  /* The type is a varint: 0x4002 is DELIVER in two bytes. */
  CHECK_EQ_INT(h3wt_ch_decode_dgram(U8("\x40\x02\x05z"), 4, &type, &sub, &data,
                                    &datalen),
               0);
  CHECK(type == 2 && sub == 5 && datalen == 1 && data[0] == 'z');
  /* The head refuses values no varint holds, and a small buffer. */
  CHECK_EQ_INT(
      h3wt_ch_encode_dgram_head(buf, sizeof(buf), 1, H3WT_VARINT_MAX + 1), 0);
  CHECK_EQ_INT(
      h3wt_ch_encode_dgram_head(buf, sizeof(buf), H3WT_VARINT_MAX + 1, 1), 0);
  for (size_t cap = 0; cap < 5; ++cap) {
    uint8_t *o = malloc(cap ? cap : 1);
    CHECK_EQ_INT(h3wt_ch_encode_dgram_head(o, cap, 2, 1000), cap >= 3 ? 3 : 0);
    free(o);
  }
}

/* ---- encoders and small buffers
 * ---------------------------------------------- */

static uint8_t sample[300];
static const h3wt_ch_str sample_members[] = {
    {U8("alice"), 5}, {U8(""), 0}, {sample, 70}};

/* Every encoder once, with a mix of varint sizes. */
static size_t encode_nth(int which, uint8_t *o, size_t cap) {
  switch (which) {
  case 0:
    return h3wt_ch_encode_subscribe(o, cap, 300, U8("room"), 4, 1, 1ULL << 40,
                                    70000);
  case 1:
    return h3wt_ch_encode_subscribe(o, cap, 1, U8("room"), 4, 0, 0, 0);
  case 2:
    return h3wt_ch_encode_unsubscribe(o, cap, 64, U8("room"), 4);
  case 3:
    return h3wt_ch_encode_presence(o, cap, 16384, U8("room"), 4);
  case 4:
    return h3wt_ch_encode_publish(o, cap, 2, U8("room"), 4, sample, 100);
  case 5:
    return h3wt_ch_encode_publish_head(o, cap, 2, U8("room"), 4, 100);
  case 6:
    return h3wt_ch_encode_subscribed(o, cap, 3, U8("room"), 4, 17, 1,
                                     H3WT_VARINT_MAX, 99, 5);
  case 7:
    return h3wt_ch_encode_published(o, cap, 4, 1ULL << 62 >> 1, 1);
  case 8:
    return h3wt_ch_encode_unsubscribed(o, cap, 0, 17, 9, U8("slow"), 4);
  case 9:
    return h3wt_ch_encode_message(o, cap, 17, 12345, sample, 300);
  case 10:
    return h3wt_ch_encode_message_head(o, cap, 17, 12345, 300);
  case 11:
    return h3wt_ch_encode_join(o, cap, 17, U8("bob"), 3);
  case 12:
    return h3wt_ch_encode_leave(o, cap, 17, U8("bob"), 3);
  case 13:
    return h3wt_ch_encode_members(o, cap, 5, 17, sample_members, 3);
  case 14:
    return h3wt_ch_encode_members_head(o, cap, 5, 17, 3, 80);
  case 15:
    return h3wt_ch_encode_member(o, cap, U8("carol"), 5);
  case 16:
    return h3wt_ch_encode_error(o, cap, 6, 2, U8("unknown"), 7);
  case 17:
    return h3wt_ch_encode_dgram_head(o, cap, 1, 16384);
  }
  return 0;
}
#define NENCODERS 18

TEST(encoders_refuse_small_buffers) {
  uint8_t ref[1024];
  for (int w = 0; w < NENCODERS; ++w) {
    size_t n = encode_nth(w, ref, sizeof(ref));
    TEST_CONTEXT("encoder %d", w);
    CHECK(n > 0);
    /* Exactly-sized heap buffers: ASan sees a write past cap. */
    for (size_t cap = 0; cap <= n; ++cap) {
      uint8_t *o = malloc(cap ? cap : 1);
      size_t r = encode_nth(w, o, cap);
      CHECK_EQ_INT(r, cap == n ? n : 0);
      if (r) {
        CHECK_EQ_MEM(o, ref, n);
      }
      free(o);
    }
  }
}

TEST(encoders_refuse_huge_values) {
  uint8_t buf[256];
  const uint64_t big = H3WT_VARINT_MAX + 1;
  CHECK_EQ_INT(h3wt_ch_encode_published(buf, sizeof(buf), big, 0, 0), 0);
  CHECK_EQ_INT(h3wt_ch_encode_published(buf, sizeof(buf), 0, 0, big), 0);
  CHECK_EQ_INT(
      h3wt_ch_encode_subscribe(buf, sizeof(buf), 0, U8("r"), 1, 1, big, 0), 0);
  /* Without recover, epoch and offset are not written, so not checked. */
  CHECK(h3wt_ch_encode_subscribe(buf, sizeof(buf), 0, U8("r"), 1, 0, big, big) >
        0);
  CHECK_EQ_INT(h3wt_ch_encode_message(buf, sizeof(buf), big, 0, NULL, 0), 0);
  CHECK_EQ_INT(h3wt_ch_encode_error(buf, sizeof(buf), 0, big, NULL, 0), 0);
  /* Data lengths no frame can carry. */
  CHECK_EQ_INT(h3wt_ch_encode_message_head(buf, sizeof(buf), 1, 1, SIZE_MAX),
               0);
  CHECK_EQ_INT(h3wt_ch_encode_message_head(buf, sizeof(buf), 1, 1,
                                           (size_t)H3WT_VARINT_MAX),
               0);
  CHECK_EQ_INT(
      h3wt_ch_encode_publish_head(buf, sizeof(buf), 1, U8("r"), 1, SIZE_MAX),
      0);
  CHECK_EQ_INT(h3wt_ch_encode_members_head(buf, sizeof(buf), 1, 1, 1, SIZE_MAX),
               0);
  CHECK_EQ_INT(h3wt_ch_member_size(SIZE_MAX), 0);
  const h3wt_ch_str huge[] = {{U8("x"), 1}, {U8("x"), SIZE_MAX}};
  CHECK_EQ_INT(h3wt_ch_encode_members(buf, sizeof(buf), 1, 1, huge, 2), 0);
  CHECK_EQ_INT(h3wt_ch_encode_member(buf, sizeof(buf), U8("x"), SIZE_MAX), 0);
  /* The largest head that fits a varint length is still encoded (the data
     would follow in pieces). */
  size_t dl = (size_t)(H3WT_VARINT_MAX - 64);
  size_t h = h3wt_ch_encode_message_head(buf, sizeof(buf), 1, 1, dl);
  CHECK(h > 0);
  uint64_t t, l;
  size_t a = h3wt_varint_decode(buf, h, &t);
  h3wt_varint_decode(buf + a, h - a, &l);
  CHECK(t == H3WT_CH_MESSAGE && l == dl + 1 + 1 + 8);
}

TEST(strerror_names) {
  CHECK_EQ_STR(h3wt_ch_strerror(H3WT_CH_ERR_BAD_FRAME), "BAD_FRAME");
  CHECK_EQ_STR(h3wt_ch_strerror(H3WT_CH_ERR_UNKNOWN_COMMAND),
               "UNKNOWN_COMMAND");
  CHECK_EQ_STR(h3wt_ch_strerror(H3WT_CH_ERR_SLOW_CONSUMER), "SLOW_CONSUMER");
  CHECK_EQ_STR(h3wt_ch_strerror(H3WT_CH_ERR_BAD_CHANNEL), "BAD_CHANNEL");
  CHECK_EQ_STR(h3wt_ch_strerror(H3WT_CH_ERR_ALREADY_SUBSCRIBED),
               "ALREADY_SUBSCRIBED");
  CHECK_EQ_STR(h3wt_ch_strerror(H3WT_CH_ERR_BROKER_UNAVAILABLE),
               "BROKER_UNAVAILABLE");
  CHECK_EQ_STR(h3wt_ch_strerror(0), "(unknown code)");
  CHECK_EQ_STR(h3wt_ch_strerror(13), "(unknown code)");
  CHECK_EQ_STR(h3wt_ch_strerror(UINT64_MAX), "(unknown code)");
  for (uint64_t c = 1; c <= 12; ++c) {
    CHECK(h3wt_ch_strerror(c)[0] != '(');
  }
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(round_trip_client_frames),
      TEST_ENTRY(round_trip_server_frames),
      TEST_ENTRY(head_variants_match_whole_frames),
      TEST_ENTRY(parser_any_chunking),
      TEST_ENTRY(parser_too_large_before_payload),
      TEST_ENTRY(parser_idle_and_buffer),
      TEST_ENTRY(parser_callback_stops),
      TEST_ENTRY(unknown_types_pass_through),
      TEST_ENTRY(truncated_and_trailing_refused),
      TEST_ENTRY(odd_but_valid_and_hand_built_bad),
      TEST_ENTRY(channel_names),
      TEST_ENTRY(datagrams),
      TEST_ENTRY(encoders_refuse_small_buffers),
      TEST_ENTRY(encoders_refuse_huge_values),
      TEST_ENTRY(strerror_names),
  };
  return TEST_MAIN(argc, argv, tests);
}
