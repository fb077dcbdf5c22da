/*
 * h3wt_resume: the client's saved session as bytes.  Round trips with and
 * without the optional parts; every cut, every extra byte and every single
 * bit flipped is refused whole; parts over their maximum are not encoded.
 * And the peer-SETTINGS reader's notes that 0-RTT remembers (extended
 * CONNECT, HTTP datagrams, WebTransport).
 */
#include <stdlib.h>
#include <string.h>

#include "h3wt_resume.h"
#include "h3wt_test.h"

static uint8_t tls[300], params[60];

static h3wt_resume_state sample(int with_settings) {
  h3wt_resume_state st;
  memset(&st, 0, sizeof(st));
  for (size_t i = 0; i < sizeof(tls); ++i) {
    tls[i] = (uint8_t)(i * 7 + 1);
  }
  for (size_t i = 0; i < sizeof(params); ++i) {
    params[i] = (uint8_t)(i * 13 + 5);
  }
  st.name = "game.example";
  st.namelen = 12;
  st.tls = tls;
  st.tlslen = sizeof(tls);
  st.params = params;
  st.paramslen = sizeof(params);
  st.has_settings = with_settings;
  if (with_settings) {
    st.settings.connect_protocol = 1;
    st.settings.webtransport = 1;
    st.settings.max_data = 16777216;
    st.settings.max_streams_bidi = 256;
    st.settings.max_streams_uni = 0x3fffffffffffffffULL;
  }
  return st;
}

TEST(round_trip) {
  for (int with = 0; with < 2; ++with) {
    h3wt_resume_state st = sample(with), back;
    uint8_t buf[1024];
    TEST_CONTEXT("settings %d", with);
    size_t n = h3wt_resume_encode(&st, buf, sizeof(buf));
    CHECK_EQ_INT(n, h3wt_resume_encoded_len(&st));
    CHECK_EQ_INT(h3wt_resume_encode(&st, buf, n - 1), 0); /* too small */
    CHECK_EQ_INT(h3wt_resume_decode(buf, n, &back), 0);
    CHECK_EQ_INT(back.namelen, 12);
    CHECK(memcmp(back.name, "game.example", 12) == 0);
    CHECK_EQ_INT(back.tlslen, sizeof(tls));
    CHECK(memcmp(back.tls, tls, sizeof(tls)) == 0);
    CHECK_EQ_INT(back.paramslen, sizeof(params));
    CHECK(memcmp(back.params, params, sizeof(params)) == 0);
    CHECK_EQ_INT(back.has_settings, with);
    CHECK(memcmp(&back.settings, &st.settings, sizeof(st.settings)) == 0);
  }
  /* No transport parameters, an empty name: still a session. */
  h3wt_resume_state st = sample(0), back;
  uint8_t buf[1024];
  st.paramslen = 0;
  st.namelen = 0;
  size_t n = h3wt_resume_encode(&st, buf, sizeof(buf));
  CHECK(n > 0);
  CHECK_EQ_INT(h3wt_resume_decode(buf, n, &back), 0);
  CHECK_EQ_INT(back.paramslen, 0);
  CHECK_EQ_INT(back.namelen, 0);
}

TEST(damage_is_refused) {
  h3wt_resume_state st = sample(1), back;
  uint8_t buf[1024], bad[1025];
  size_t n = h3wt_resume_encode(&st, buf, sizeof(buf));
  CHECK(n > 0);
  for (size_t len = 0; len < n; ++len) {
    TEST_CONTEXT("cut to %zu of %zu", len, n);
    CHECK_EQ_INT(h3wt_resume_decode(buf, len, &back), -1);
  }
  memcpy(bad, buf, n);
  bad[n] = 0;
  TEST_CONTEXT("%s", "one byte more");
  CHECK_EQ_INT(h3wt_resume_decode(bad, n + 1, &back), -1);
  for (size_t i = 0; i < n; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      memcpy(bad, buf, n);
      bad[i] ^= (uint8_t)(1u << bit);
      TEST_CONTEXT("bit %d of byte %zu flipped", bit, i);
      CHECK_EQ_INT(h3wt_resume_decode(bad, n, &back), -1);
    }
  }
  TEST_CONTEXT("%s", "NULL");
  CHECK_EQ_INT(h3wt_resume_decode(NULL, 0, &back), -1);
}

TEST(limits) {
  h3wt_resume_state st = sample(0);
  static uint8_t big[H3WT_RESUME_MAX_TLS + 1];
  char name[H3WT_RESUME_MAX_NAME + 2];
  memset(name, 'a', sizeof(name));
  st.name = name;
  st.namelen = H3WT_RESUME_MAX_NAME + 1;
  CHECK_EQ_INT(h3wt_resume_encoded_len(&st), 0);
  st.namelen = H3WT_RESUME_MAX_NAME;
  CHECK(h3wt_resume_encoded_len(&st) > 0);
  st.tls = big;
  st.tlslen = sizeof(big);
  CHECK_EQ_INT(h3wt_resume_encoded_len(&st), 0);
  st.tlslen = 0; /* no TLS session: nothing to resume */
  CHECK_EQ_INT(h3wt_resume_encoded_len(&st), 0);
  st = sample(0);
  st.paramslen = H3WT_RESUME_MAX_PARAMS + 1;
  CHECK_EQ_INT(h3wt_resume_encoded_len(&st), 0);
}

/* A control stream (type 0x00) whose SETTINGS frame carries
   ENABLE_CONNECT_PROTOCOL, H3_DATAGRAM and WT_ENABLED (a 4-byte varint
   id), then WT_INITIAL_MAX_DATA. */
TEST(peer_settings_notes) {
  static const uint8_t ctrl[] = {
      0x00,                         /* control stream */
      0x04, 0x0d,                   /* SETTINGS, 13 bytes */
      0x08, 0x01,                   /* ENABLE_CONNECT_PROTOCOL = 1 */
      0x33, 0x01,                   /* H3_DATAGRAM = 1 */
      0xac, 0x7c, 0xf0, 0x00, 0x01, /* WT_ENABLED (0x2c7cf000) = 1 */
      0x6b, 0x61, 0x44, 0x00,       /* WT_INITIAL_MAX_DATA = 1024 */
  };
  h3wt_peer_fc fc;
  ssize_t n = h3wt_peer_settings_parse(ctrl, sizeof(ctrl) - 2, &fc);
  CHECK_EQ_INT(n, 0); /* the frame is not whole yet */
  n = h3wt_peer_settings_parse(ctrl, sizeof(ctrl), &fc);
  CHECK_EQ_INT(n, (ssize_t)sizeof(ctrl));
  CHECK_EQ_INT(fc.connect_protocol, 1);
  CHECK_EQ_INT(fc.h3_datagram, 1);
  CHECK_EQ_INT(fc.webtransport, 1);
  CHECK_EQ_INT(fc.max_data, 1024);
  /* The same with ENABLE_CONNECT_PROTOCOL = 0: not remembered as on. */
  uint8_t off[sizeof(ctrl)];
  memcpy(off, ctrl, sizeof(ctrl));
  off[4] = 0x00;
  CHECK_EQ_INT(h3wt_peer_settings_parse(off, sizeof(off), &fc),
               (ssize_t)sizeof(off));
  CHECK_EQ_INT(fc.connect_protocol, 0);
}

int main(int argc, char **argv) {
  static const h3wt_test_case cases[] = {
      TEST_ENTRY(round_trip),
      TEST_ENTRY(damage_is_refused),
      TEST_ENTRY(limits),
      TEST_ENTRY(peer_settings_notes),
  };
  return TEST_MAIN(argc, argv, cases);
}
