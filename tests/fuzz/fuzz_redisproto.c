/*
 * libFuzzer target for h3wt_redisproto, the bytes the Redis broker takes
 * from Redis and from its configuration.  Each input is used whole:
 *   - as a pub/sub frame: what parses lies inside the input, and encodes
 *     back to exactly the input (the format has one form per frame);
 *   - as a URL (NUL-terminated copy): what parses has a non-empty host of
 *     printable bytes, a port >= 1, and parses the same again when
 *     rebuilt from its parts (the password percent-encoded).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_redisproto.h"

static void check_frame(const char *p, size_t len) {
  h3wt_redisframe f;
  char *out;
  size_t n;
  if (h3wt_redisframe_parse(p, len, &f) != 0) {
    return;
  }
  assert(f.data >= p && f.data + f.len <= p + len);
  out = malloc(len ? len : 1);
  n = h3wt_redisframe_encode(&f, out, len);
  assert(n == len);
  assert(memcmp(out, p, len) == 0);
  free(out);
}

static void check_url(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1), *again;
  h3wt_redisurl u, v;
  size_t i, k;
  memcpy(s, data, size);
  s[size] = '\0';
  if (h3wt_redisurl_parse(s, &u) == 0) {
    assert(u.host[0] != '\0' && u.port >= 1);
    for (i = 0; u.host[i]; ++i) {
      assert((unsigned char)u.host[i] > 0x20 &&
             (unsigned char)u.host[i] < 0x7f);
    }
    again = malloc(3 * sizeof(u.password) + sizeof(u.host) + 64);
    k = (size_t)sprintf(again, "redis://");
    if (u.has_password) {
      again[k++] = ':';
      for (i = 0; u.password[i]; ++i) {
        k += (size_t)sprintf(again + k, "%%%02x",
                             (unsigned)(unsigned char)u.password[i]);
      }
      again[k++] = '@';
    }
    k += (size_t)sprintf(again + k,
                         strchr(u.host, ':') ? "[%s]:%u/%u" : "%s:%u/%u",
                         u.host, (unsigned)u.port, (unsigned)u.db);
    assert(h3wt_redisurl_parse(again, &v) == 0);
    assert(strcmp(u.host, v.host) == 0 && u.port == v.port && u.db == v.db &&
           u.has_password == v.has_password &&
           strcmp(u.password, v.password) == 0);
    free(again);
  }
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_frame((const char *)data, size);
  check_url(data, size);
  return 0;
}
