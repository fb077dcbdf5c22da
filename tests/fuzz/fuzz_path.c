/*
 * libFuzzer target for h3wt_path_resolve (and h3wt_path_mime_type on what it
 * produces).  The input is the :path.  Besides the sanitizers catching any
 * out-of-bounds access, it checks what a static-file server relies on:
 *
 *  - the return value is one of the four documented ones;
 *  - on failure out is "" (nothing usable is left behind);
 *  - on success out is NUL-terminated inside outlen, starts with root + "/",
 *    and below the root has no empty, "." or ".." segment, no segment
 *    starting with '.', and no '\\';
 *  - the buffer size only decides OK versus TOO_LONG: a roomy buffer never
 *    gives TOO_LONG, and gives the same code and bytes wherever the small one
 *    succeeded or failed for any other reason;
 *  - nothing is written at or after out[outlen];
 *  - a result without bytes that would need escaping resolves to itself.
 */
#include "h3wt_path.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOT "/srv/www"
#define SMALL 64 /* small enough that TOO_LONG is common */
#define CANARY 0xA5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,     \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static void check_ok_result(const char *out, size_t outlen) {
  const char *rel, *seg, *end;
  size_t len;

  end = memchr(out, '\0', outlen);
  REQUIRE(end != NULL); /* NUL inside the buffer, and none earlier... */
  len = (size_t)(end - out);
  REQUIRE(len < outlen);
  REQUIRE(len > strlen(ROOT) + 1);
  REQUIRE(memcmp(out, ROOT "/", strlen(ROOT) + 1) == 0);
  REQUIRE(strstr(out, "/../") == NULL);
  REQUIRE(strstr(out, "/./") == NULL);

  /* Every segment below the root: non-empty, not dot-led (so not "." or
     ".."), no backslash. */
  rel = out + strlen(ROOT);
  for (seg = rel; seg < end;) {
    const char *next;
    REQUIRE(*seg == '/');
    seg++;
    next = memchr(seg, '/', (size_t)(end - seg));
    if (next == NULL)
      next = end;
    REQUIRE(next > seg);
    REQUIRE(seg[0] != '.');
    REQUIRE(memchr(seg, '\\', (size_t)(next - seg)) == NULL);
    seg = next;
  }
  REQUIRE(h3wt_path_mime_type(out) != NULL);
}

/* True if the relative part can be sent again as a :path unchanged: no byte
   that would be decoded, end the path, or be refused as raw. */
static int plain(const char *rel) {
  for (; *rel != '\0'; rel++) {
    unsigned char c = (unsigned char)*rel;
    if (c <= 0x20 || c == 0x7f || c == '%' || c == '?' || c == '#')
      return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = (const char *)data;
  unsigned char small[SMALL + 1];
  char *big, *again;
  size_t biglen = strlen(ROOT) + size + sizeof("/index.html") + 1;
  int rc, rc_big;

  /* A small buffer with a canary byte just past outlen. */
  memset(small, CANARY, sizeof(small));
  rc = h3wt_path_resolve(ROOT, path, size, (char *)small, SMALL);
  REQUIRE(small[SMALL] == CANARY);
  REQUIRE(rc == H3WT_PATH_OK || rc == H3WT_PATH_BAD_REQUEST ||
          rc == H3WT_PATH_NOT_FOUND || rc == H3WT_PATH_TOO_LONG);
  if (rc == H3WT_PATH_OK)
    check_ok_result((const char *)small, SMALL);
  else
    REQUIRE(small[0] == '\0');

  /* The same input with room for any result. */
  big = malloc(biglen);
  REQUIRE(big != NULL);
  rc_big = h3wt_path_resolve(ROOT, path, size, big, biglen);
  REQUIRE(rc_big != H3WT_PATH_TOO_LONG);
  if (rc == H3WT_PATH_TOO_LONG)
    REQUIRE(rc_big == H3WT_PATH_OK);
  else
    REQUIRE(rc_big == rc);
  if (rc_big == H3WT_PATH_OK) {
    check_ok_result(big, biglen);
    if (rc == H3WT_PATH_OK)
      REQUIRE(strcmp(big, (const char *)small) == 0);

    /* Resolving is idempotent on plain results. */
    if (plain(big + strlen(ROOT))) {
      const char *rel = big + strlen(ROOT);
      again = malloc(biglen);
      REQUIRE(again != NULL);
      REQUIRE(h3wt_path_resolve(ROOT, rel, strlen(rel), again, biglen) ==
              H3WT_PATH_OK);
      REQUIRE(strcmp(again, big) == 0);
      free(again);
    }
  } else {
    REQUIRE(big[0] == '\0');
  }
  free(big);

  /* The content-type lookup on the raw input as a file name. */
  if (size > 0 && memchr(data, '\0', size) == NULL) {
    char *name = malloc(size + 1);
    REQUIRE(name != NULL);
    memcpy(name, data, size);
    name[size] = '\0';
    REQUIRE(h3wt_path_mime_type(name) != NULL);
    free(name);
  }
  return 0;
}
