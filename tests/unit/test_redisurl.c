/*
 * Unit tests of h3wt_redisurl, the Redis broker's URL: the forms the
 * settings document, percent-decoded passwords, and hostile strings (bad
 * ports, user names, control characters, over-long parts, NUL bytes
 * smuggled through escapes), each refused without touching memory past
 * the string (ASan runs this too).
 */
#include <stdlib.h>
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_redisurl.h"
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

static const h3wt_test_case tests[] = {
    TEST_ENTRY(good_urls),
    TEST_ENTRY(hostile_urls),
    TEST_ENTRY(lengths),
    TEST_ENTRY(broker_new),
};

int main(int argc, char **argv) {
  return TEST_MAIN(argc, argv, tests);
}
