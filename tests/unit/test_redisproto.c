/*
 * Unit tests of h3wt_redisproto, the Redis broker's pure parts.  The URL:
 * the forms the settings document, percent-decoded passwords, and hostile
 * strings (bad ports, user names, control characters, over-long parts, NUL
 * bytes smuggled through escapes), each refused without touching memory
 * past the string (ASan runs this too).  The pub/sub frames: every kind,
 * the bounds of each number, canonical forms only, encode(parse(x)) == x,
 * and hostile frames refused (tests/fuzz/fuzz_redisproto.c goes further).
 */
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_redisproto.h"
#include "h3wt_test.h"

typedef struct good_row {
  const char *url;
  const char *host;
  unsigned port, db;
  int has_password;
  const char *password;
} good_row;

TEST(good_urls) {
  static const good_row rows[] = {
      {"redis://localhost", "localhost", 6379, 0, 0, ""},
      {"redis://127.0.0.1:6380", "127.0.0.1", 6380, 0, 0, ""},
      {"REDIS://cache.example:1/15", "cache.example", 1, 15, 0, ""},
      {"redis://:secret@host:65535/2", "host", 65535, 2, 1, "secret"},
      {"redis://:@host", "host", 6379, 0, 1, ""},
      {"redis://:p%40ss%2Fw%3a@h", "h", 6379, 0, 1, "p@ss/w:"},
      {"redis://:a@b@h", "h", 6379, 0, 1, "a@b"},
      {"redis://[::1]:7000/3", "::1", 7000, 3, 0, ""},
      {"redis://[::1]", "::1", 6379, 0, 0, ""},
      {"redis://h/", "h", 6379, 0, 0, ""},
      {"redis://h/2147483647", "h", 6379, 2147483647u, 0, ""},
      {"redis://my_host-1.local", "my_host-1.local", 6379, 0, 0, ""},
  };
  size_t i;
  for (i = 0; i < sizeof(rows) / sizeof(rows[0]); ++i) {
    h3wt_redisurl u;
    TEST_CONTEXT("row %zu: %s", i, rows[i].url);
    CHECK_EQ_INT(h3wt_redisurl_parse(rows[i].url, &u), 0);
    CHECK_EQ_STR(u.host, rows[i].host);
    CHECK_EQ_INT(u.port, rows[i].port);
    CHECK_EQ_INT(u.db, rows[i].db);
    CHECK_EQ_INT(u.has_password, rows[i].has_password);
    CHECK_EQ_STR(u.password, rows[i].password);
  }
}

TEST(hostile_urls) {
  static const char *const rows[] = {
      "",
      "redis:/",
      "redis:",
      "rediss://h", /* TLS: not supported by hiredis 0.14 */
      "http://h",
      "redis://",
      "redis://:pw@",
      "redis://:pw@/0",
      "redis://h:",
      "redis://h:0",
      "redis://h:65536",
      "redis://h:99999999999999999999",
      "redis://h:-1",
      "redis://h:+1",
      "redis://h:12a",
      "redis://h/x",
      "redis://h/-1",
      "redis://h/2147483648",
      "redis://h/1/2",
      "redis://h/1?x=1",
      "redis://h?db=1",
      "redis://h#f",
      "redis://user:pw@h",
      "redis://pw@h",
      "redis://h ost",
      "redis://h\tost",
      "redis://h\nost",
      "redis://h\x7f",
      "redis://h\xc3\xa9",
      "redis://:p\x01w@h",
      "redis://:%00@h",
      "redis://:%4@h",
      "redis://:%zz@h",
      "redis://:%@h",
      "redis://[::1",
      "redis://[]",
      "redis://[::1]x",
      "redis://[::1]:",
      "redis://[g::1]",
      "redis://h:1:2",
  };
  size_t i;
  for (i = 0; i < sizeof(rows) / sizeof(rows[0]); ++i) {
    h3wt_redisurl u;
    TEST_CONTEXT("row %zu: %s", i, rows[i]);
    CHECK_EQ_INT(h3wt_redisurl_parse(rows[i], &u), H3WT_ERR_INVALID_ARGUMENT);
  }
  CHECK_EQ_INT(h3wt_redisurl_parse(NULL, NULL), H3WT_ERR_INVALID_ARGUMENT);
}

/* Lengths right at and past each bound, built on the heap so ASan sees an
   overread by one byte. */
TEST(lengths) {
  h3wt_redisurl u;
  size_t n;
  char *s;
  for (n = H3WT_REDISURL_HOST_MAX; n <= H3WT_REDISURL_HOST_MAX + 1; ++n) {
    s = malloc(8 + n + 1);
    memcpy(s, "redis://", 8);
    memset(s + 8, 'a', n);
    s[8 + n] = '\0';
    CHECK_EQ_INT(h3wt_redisurl_parse(s, &u),
                 n <= H3WT_REDISURL_HOST_MAX ? 0 : H3WT_ERR_INVALID_ARGUMENT);
    free(s);
  }
  for (n = H3WT_REDISURL_PASSWORD_MAX; n <= H3WT_REDISURL_PASSWORD_MAX + 1;
       ++n) {
    s = malloc(9 + n + 3);
    memcpy(s, "redis://:", 9);
    memset(s + 9, 'p', n);
    memcpy(s + 9 + n, "@h", 3);
    CHECK_EQ_INT(h3wt_redisurl_parse(s, &u), n <= H3WT_REDISURL_PASSWORD_MAX
                                                 ? 0
                                                 : H3WT_ERR_INVALID_ARGUMENT);
    if (n == H3WT_REDISURL_PASSWORD_MAX) {
      CHECK_EQ_INT(strlen(u.password), n);
    }
    free(s);
  }
}

/* The public entry: a bad URL or prefix is refused, a good one makes a
   broker (nothing connects until a hub attaches), with or without hiredis
   built in (then H3WT_ERR_INVALID_STATE whatever the URL). */
TEST(broker_new) {
  h3wt_broker_redis_settings s;
  h3wt_broker *b = (h3wt_broker *)&s;
  int rv;
  h3wt_broker_redis_settings_default(&s);
  CHECK_EQ_INT(s.version, H3WT_BROKER_REDIS_SETTINGS_VERSION);
  CHECK_EQ_INT(s.presence_ttl_ms, 15000);
  rv = h3wt_broker_redis_new(&b, &s);
  if (rv == H3WT_ERR_INVALID_STATE) {
    CHECK(b == NULL);
    return; /* built without hiredis */
  }
  CHECK_EQ_INT(rv, 0);
  h3wt_broker_del(b);
  s.url = "redis://h:0";
  b = (h3wt_broker *)&s;
  CHECK_EQ_INT(h3wt_broker_redis_new(&b, &s), H3WT_ERR_INVALID_ARGUMENT);
  CHECK(b == NULL);
  s.url = NULL;
  s.prefix = "0123456789012345678901234567890123456789012345678901234567890"
             "123456789";
  CHECK_EQ_INT(h3wt_broker_redis_new(&b, &s), H3WT_ERR_INVALID_ARGUMENT);
  h3wt_broker_del(NULL);
}

/* A frame from a literal with its length (frames may hold NUL bytes). */
#define FR(s) s, sizeof(s) - 1

typedef struct frame_row {
  const char *in;
  size_t len;
  int kind;
  uint64_t epoch, offset;
  const char *data; /* payload or member */
} frame_row;

TEST(frames_good) {
  static const frame_row rows[] = {
      {FR("R7 1 hello"), 'R', 7, 1, "hello"},
      {FR("R0 1 "), 'R', 0, 1, ""},
      {FR("R1 2 a b  c"), 'R', 1, 2, "a b  c"},
      {FR("R4611686018427387903 9007199254740992 x"), 'R',
       4611686018427387903ULL, 9007199254740992ULL, "x"},
      {FR("U"), 'U', 0, 0, ""},
      {FR("UR1 1 x"), 'U', 0, 0, "R1 1 x"},
      {FR("J0123456789abcdefalice"), 'J', 0, 0, "alice"},
      {FR("L0123456789abcdef b o b"), 'L', 0, 0, " b o b"},
  };
  size_t i;
  for (i = 0; i < sizeof(rows) / sizeof(rows[0]); ++i) {
    h3wt_redisframe f;
    char out[128];
    TEST_CONTEXT("row %zu: %.*s", i, (int)rows[i].len, rows[i].in);
    CHECK_EQ_INT(h3wt_redisframe_parse(rows[i].in, rows[i].len, &f), 0);
    CHECK_EQ_INT(f.kind, rows[i].kind);
    CHECK(f.epoch == rows[i].epoch);
    CHECK(f.offset == rows[i].offset);
    CHECK_EQ_INT(f.len, strlen(rows[i].data));
    CHECK_EQ_MEM(f.data, rows[i].data, f.len);
    if (f.kind == 'J' || f.kind == 'L') {
      CHECK_EQ_MEM(f.node, "0123456789abcdef", 16);
    }
    /* Canonical: it encodes back to the same bytes, and not into less
       room than that. */
    CHECK_EQ_INT(h3wt_redisframe_encode(&f, out, sizeof(out)), rows[i].len);
    CHECK_EQ_MEM(out, rows[i].in, rows[i].len);
    CHECK_EQ_INT(h3wt_redisframe_encode(&f, out, rows[i].len - 1), 0);
  }
}

TEST(frames_hostile) {
  static const struct {
    const char *in;
    size_t len;
  } rows[] = {
      {FR("")},
      {FR("R")},
      {FR("R1")},
      {FR("R1 ")},
      {FR("R1 2")},    /* no space after the offset */
      {FR("R 1 x")},   /* no epoch */
      {FR("R1  x")},   /* no offset */
      {FR("R01 2 x")}, /* leading zero */
      {FR("R1 02 x")},
      {FR("R1 0 x")}, /* offset 0 */
      {FR("R-1 1 x")},
      {FR("R+1 1 x")},
      {FR("Rx 1 y")},
      {FR("R1 1x y")},
      {FR("R4611686018427387904 1 x")}, /* epoch 2^62 */
      {FR("R1 9007199254740993 x")},    /* offset past 2^53 */
      {FR("R99999999999999999999999 1 x")},
      {FR("R1\0 2 x")},
      {FR("J")},
      {FR("J0123456789abcde")},  /* short node id */
      {FR("J0123456789abcdef")}, /* no member */
      {FR("Z hello")},
      {FR("r1 1 x")},
      {FR("u")},
  };
  size_t i;
  char big[1 + 16 + 1025];
  h3wt_redisframe f;
  for (i = 0; i < sizeof(rows) / sizeof(rows[0]); ++i) {
    TEST_CONTEXT("row %zu", i);
    CHECK_EQ_INT(h3wt_redisframe_parse(rows[i].in, rows[i].len, &f), -1);
  }
  TEST_CONTEXT("%s", "");
  /* The member bound, exactly. */
  memset(big, 'm', sizeof(big));
  big[0] = 'L';
  CHECK_EQ_INT(h3wt_redisframe_parse(big, sizeof(big), &f), -1);
  CHECK_EQ_INT(h3wt_redisframe_parse(big, sizeof(big) - 1, &f), 0);
  CHECK_EQ_INT(f.len, 1024);
  /* Nothing is read past len: a frame cut anywhere is refused or is a
     shorter frame, never more. */
  for (i = 0; i < 10; ++i) {
    char *cut = malloc(i);
    memcpy(cut, "R12 34 xyz", i);
    if (h3wt_redisframe_parse(cut, i, &f) == 0) {
      CHECK(f.data + f.len <= cut + i);
    }
    free(cut);
  }
}

TEST(frames_encode_refuses) {
  h3wt_redisframe f;
  char out[64];
  memset(&f, 0, sizeof(f));
  f.kind = 'R';
  f.epoch = 1;
  CHECK_EQ_INT(h3wt_redisframe_encode(&f, out, sizeof(out)), 0); /* offset 0 */
  f.offset = 1;
  f.epoch = 0x4000000000000000ULL;
  CHECK_EQ_INT(h3wt_redisframe_encode(&f, out, sizeof(out)), 0);
  f.kind = 'J';
  CHECK_EQ_INT(h3wt_redisframe_encode(&f, out, sizeof(out)), 0); /* no node */
  f.kind = 'X';
  CHECK_EQ_INT(h3wt_redisframe_encode(&f, out, sizeof(out)), 0);
}

static const h3wt_test_case tests[] = {
    TEST_ENTRY(good_urls),
    TEST_ENTRY(hostile_urls),
    TEST_ENTRY(lengths),
    TEST_ENTRY(broker_new),
    TEST_ENTRY(frames_good),
    TEST_ENTRY(frames_hostile),
    TEST_ENTRY(frames_encode_refuses),
};

int main(int argc, char **argv) {
  return TEST_MAIN(argc, argv, tests);
}
