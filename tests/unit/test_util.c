/*
 * Unit tests of h3wt_util: the send queue's three cursors, the CID map
 * (growth, tombstones, keyed hash), hex and address formatting.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_test.h"
#include "h3wt_list.h"
#include "h3wt_util.h"

static int freed_count;
static void count_free(void *data, void *ud) {
  ++freed_count;
  free(data);
}

/* Reads everything out of q into buf, returns bytes. */
static size_t drain(h3wt_sendq *q, uint8_t *buf) {
  h3wt_vec v[8];
  size_t total = 0, n;
  while ((n = h3wt_sendq_read(q, v, 8)) > 0) {
    for (size_t i = 0; i < n; ++i) {
      memcpy(buf + total, v[i].base, v[i].len);
      total += v[i].len;
    }
  }
  return total;
}

TEST(sendq_copy_read_ack) {
  h3wt_sendq q;
  uint8_t out[100000], in[70000];
  for (size_t i = 0; i < sizeof(in); ++i) {
    in[i] = (uint8_t)(i * 7);
  }
  h3wt_sendq_init(&q);
  CHECK_EQ_INT(h3wt_sendq_append(&q, in, 10), 0);
  CHECK_EQ_INT(h3wt_sendq_append(&q, in + 10, sizeof(in) - 10), 0);
  CHECK_EQ_INT(q.unacked, sizeof(in));
  CHECK_EQ_INT(q.unread, sizeof(in));
  size_t n = drain(&q, out);
  CHECK_EQ_INT(n, sizeof(in));
  CHECK_EQ_MEM(out, in, sizeof(in));
  CHECK_EQ_INT(q.unread, 0);
  /* Acks in odd pieces free chunks as they complete. */
  h3wt_sendq_ack(&q, 5);
  h3wt_sendq_ack(&q, 30000);
  CHECK_EQ_INT(q.unacked, sizeof(in) - 30005);
  /* Bytes appended after a full read are handed out next, alone. */
  CHECK_EQ_INT(h3wt_sendq_append(&q, "tail", 4), 0);
  n = drain(&q, out);
  CHECK_EQ_INT(n, 4);
  CHECK_EQ_MEM(out, "tail", 4);
  h3wt_sendq_ack(&q, sizeof(in) - 30005 + 4);
  CHECK_EQ_INT(q.unacked, 0);
  /* Over-acknowledging is clamped, not a crash. */
  h3wt_sendq_ack(&q, 1000);
  CHECK_EQ_INT(q.unacked, 0);
  CHECK_EQ_INT(h3wt_sendq_append(&q, "again", 5), 0);
  n = drain(&q, out);
  CHECK_EQ_INT(n, 5);
  CHECK_EQ_MEM(out, "again", 5);
  h3wt_sendq_free(&q);
}

TEST(sendq_owned_buffers_are_not_copied) {
  h3wt_sendq q;
  h3wt_vec v[4];
  freed_count = 0;
  h3wt_sendq_init(&q);
  uint8_t *a = malloc(100), *b = malloc(50);
  memset(a, 'a', 100);
  memset(b, 'b', 50);
  CHECK_EQ_INT(h3wt_sendq_append_owned(&q, a, 100, count_free, NULL), 0);
  CHECK_EQ_INT(h3wt_sendq_append(&q, "xyz", 3), 0);
  CHECK_EQ_INT(h3wt_sendq_append_owned(&q, b, 50, count_free, NULL), 0);
  size_t n = h3wt_sendq_read(&q, v, 4);
  CHECK_EQ_INT(n, 3);
  CHECK(v[0].base == a); /* zero-copy */
  CHECK_EQ_INT(v[0].len, 100);
  CHECK_EQ_INT(v[1].len, 3);
  CHECK(v[2].base == b);
  h3wt_sendq_ack(&q, 99);
  CHECK_EQ_INT(freed_count, 0);
  h3wt_sendq_ack(&q, 1);
  CHECK_EQ_INT(freed_count, 1); /* freed once fully acknowledged */
  /* Freeing the queue runs the remaining free callbacks. */
  h3wt_sendq_free(&q);
  CHECK_EQ_INT(freed_count, 2);
}

TEST(sendq_framed_heads_and_owned_payloads) {
  /* The channels' fan-out pattern: head, owned payload, head, owned
     payload...; in between, copies (presence frames).  Every byte comes
     out in order, partial acks free nothing early, each payload is freed
     exactly once, and freeing midway frees the rest. */
  h3wt_sendq q;
  h3wt_vec v[16];
  uint8_t out[4096];
  uint8_t *p[6];
  freed_count = 0;
  h3wt_sendq_init(&q);
  for (int i = 0; i < 6; ++i) {
    p[i] = malloc(100);
    memset(p[i], 'A' + i, 100);
    uint8_t head[3] = {0x44, (uint8_t)i, 100};
    CHECK_EQ_INT(h3wt_sendq_append_framed(&q, head, sizeof(head), p[i], 100,
                                          count_free, NULL),
                 0);
    if (i == 2) {
      CHECK_EQ_INT(h3wt_sendq_append(&q, "join", 4), 0);
    }
  }
  /* Zero-length heads are allowed too. */
  uint8_t *last = malloc(10);
  memset(last, 'z', 10);
  CHECK_EQ_INT(h3wt_sendq_append_framed(&q, NULL, 0, last, 10, count_free,
                                        NULL),
               0);
  CHECK_EQ_INT(q.unacked, 6 * 103 + 4 + 10);
  size_t n = h3wt_sendq_read(&q, v, 16), total = 0;
  /* 2 per framed message, but the head after "join" shares its chunk and
     the last one has no head: 6 * 2 - 1 + 1 (join) + 1 (last). */
  CHECK_EQ_INT(n, 13);
  for (size_t i = 0; i < n; ++i) {
    memcpy(out + total, v[i].base, v[i].len);
    total += v[i].len;
  }
  CHECK_EQ_INT(total, 6 * 103 + 4 + 10);
  CHECK(v[1].base == p[0]); /* zero copy */
  size_t off = 0;
  for (int i = 0; i < 6; ++i) {
    CHECK_EQ_INT(out[off], 0x44);
    CHECK_EQ_INT(out[off + 1], i);
    CHECK_EQ_INT(out[off + 3], 'A' + i);
    CHECK_EQ_INT(out[off + 102], 'A' + i);
    off += 103;
    if (i == 2) {
      CHECK_EQ_MEM(out + off, "join", 4);
      off += 4;
    }
  }
  CHECK_EQ_INT(out[off], 'z');
  h3wt_sendq_ack(&q, 3);   /* the first head only */
  CHECK_EQ_INT(freed_count, 0);
  h3wt_sendq_ack(&q, 99);  /* all but one byte of the first payload */
  CHECK_EQ_INT(freed_count, 0);
  h3wt_sendq_ack(&q, 1 + 103 + 50); /* the rest of p0, all of p1, half p2 */
  CHECK_EQ_INT(freed_count, 2);
  h3wt_sendq_free(&q); /* in the middle of the third: the rest */
  CHECK_EQ_INT(freed_count, 7);
}

TEST(sendq_chunks_grow_and_an_emptied_queue_holds_nothing) {
  /* Copy chunks double from 512 bytes: 30,000 bytes in 300-byte writes
     fill 512 + 1 Ki + 2 Ki + 4 Ki + 8 Ki + 16 Ki, six vectors.  Once
     everything is acknowledged the queue holds no chunk at all, and the
     next write starts small again (one vector for a short write after
     another short write). */
  h3wt_sendq q;
  h3wt_vec v[16];
  uint8_t b[300];
  memset(b, 7, sizeof(b));
  h3wt_sendq_init(&q);
  for (int i = 0; i < 100; ++i) {
    CHECK_EQ_INT(h3wt_sendq_append(&q, b, sizeof(b)), 0);
  }
  size_t n = h3wt_sendq_read(&q, v, 16);
  CHECK_EQ_INT(n, 6);
  CHECK_EQ_INT(v[0].len, 512);
  CHECK_EQ_INT(v[5].len, 30000 - (512 + 1024 + 2048 + 4096 + 8192));
  h3wt_sendq_ack(&q, 29999);
  CHECK(q.tail != NULL); /* one byte still in flight */
  h3wt_sendq_ack(&q, 1);
  CHECK(q.head == NULL && q.tail == NULL && q.read == NULL);
  CHECK_EQ_INT(q.unacked, 0);
  CHECK_EQ_INT(h3wt_sendq_append(&q, "hello", 5), 0);
  CHECK_EQ_INT(h3wt_sendq_append(&q, " world", 6), 0);
  n = h3wt_sendq_read(&q, v, 16);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(v[0].len, 11);
  CHECK_EQ_MEM(v[0].base, "hello world", 11);
  h3wt_sendq_free(&q);
}

TEST(sendq_partial_vectors) {
  h3wt_sendq q;
  h3wt_vec v[1];
  uint8_t big[3 * H3WT_SENDQ_CHUNK];
  memset(big, 1, sizeof(big));
  h3wt_sendq_init(&q);
  CHECK_EQ_INT(h3wt_sendq_append(&q, "a", 1), 0);
  CHECK_EQ_INT(h3wt_sendq_append(&q, big, sizeof(big)), 0);
  size_t total = 0, n;
  while ((n = h3wt_sendq_read(&q, v, 1)) > 0) {
    total += v[0].len;
  }
  CHECK_EQ_INT(total, sizeof(big) + 1);
  h3wt_sendq_ack(&q, total);
  CHECK_EQ_INT(q.unacked, 0);
  h3wt_sendq_free(&q);
}

TEST(cidmap_insert_find_remove) {
  h3wt_cidmap m;
  uint8_t key[16] = {1, 2, 3};
  uint8_t cid[20];
  static int values[5000];
  CHECK_EQ_INT(h3wt_cidmap_init(&m, key), 0);
  for (int i = 0; i < 5000; ++i) {
    memset(cid, 0, sizeof(cid));
    memcpy(cid, &i, sizeof(i));
    CHECK_EQ_INT(h3wt_cidmap_insert(&m, cid, 18, &values[i]), 0);
  }
  CHECK_EQ_INT(m.count, 5000);
  memset(cid, 0, sizeof(cid));
  CHECK_EQ_INT(h3wt_cidmap_insert(&m, cid, 18, &values[0]),
               H3WT_ERR_INVALID_STATE);
  /* Same bytes, other length: another key. */
  CHECK_EQ_INT(h3wt_cidmap_insert(&m, cid, 8, &values[1]), 0);
  CHECK(h3wt_cidmap_find(&m, cid, 8) == &values[1]);
  CHECK(h3wt_cidmap_remove(&m, cid, 8) == &values[1]);
  for (int i = 0; i < 5000; i += 2) {
    memset(cid, 0, sizeof(cid));
    memcpy(cid, &i, sizeof(i));
    CHECK(h3wt_cidmap_remove(&m, cid, 18) == &values[i]);
  }
  for (int i = 0; i < 5000; ++i) {
    memset(cid, 0, sizeof(cid));
    memcpy(cid, &i, sizeof(i));
    CHECK(h3wt_cidmap_find(&m, cid, 18) == (i % 2 ? &values[i] : NULL));
  }
  /* Churn: tombstones must not make the table fill up or loop. */
  for (int round = 0; round < 20000; ++round) {
    memset(cid, 0xee, sizeof(cid));
    memcpy(cid, &round, sizeof(round));
    CHECK_EQ_INT(h3wt_cidmap_insert(&m, cid, 20, &values[0]), 0);
    CHECK(h3wt_cidmap_remove(&m, cid, 20) == &values[0]);
  }
  CHECK_EQ_INT(m.count, 2500);
  CHECK(h3wt_cidmap_find(&m, cid, 0) == NULL);
  CHECK(h3wt_cidmap_find(&m, cid, 21) == NULL);
  CHECK_EQ_INT(h3wt_cidmap_insert(&m, cid, 21, NULL),
               H3WT_ERR_INVALID_ARGUMENT);
  h3wt_cidmap_free(&m);
}

TEST(siphash_is_keyed) {
  uint64_t k1[2] = {1, 2}, k2[2] = {1, 3};
  const uint8_t d[] = "connection id";
  CHECK(h3wt_siphash13(k1, d, sizeof(d)) == h3wt_siphash13(k1, d, sizeof(d)));
  CHECK(h3wt_siphash13(k1, d, sizeof(d)) != h3wt_siphash13(k2, d, sizeof(d)));
  CHECK(h3wt_siphash13(k1, d, 8) != h3wt_siphash13(k1, d, 9));
}

TEST(ratemap_per_address_per_second) {
  h3wt_ratemap m;
  uint8_t key[16] = {1, 2, 3};
  struct sockaddr_in a = {0}, b = {0};
  struct sockaddr_in6 c = {0};
  uint64_t t0 = 5000000000ULL;
  a.sin_family = b.sin_family = AF_INET;
  inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
  inet_pton(AF_INET, "192.0.2.2", &b.sin_addr);
  c.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::1", &c.sin6_addr);
  CHECK_EQ_INT(h3wt_ratemap_init(&m, 4096, 3, key), 0);
  for (int i = 0; i < 3; ++i) {
    a.sin_port = htons((uint16_t)(1000 + i)); /* the port does not matter */
    CHECK_EQ_INT(h3wt_ratemap_hit(&m, (struct sockaddr *)&a, t0 + i), 0);
  }
  CHECK_EQ_INT(h3wt_ratemap_hit(&m, (struct sockaddr *)&a, t0 + 10), 1);
  CHECK_EQ_INT(h3wt_ratemap_hit(&m, (struct sockaddr *)&a, t0 + 20), 1);
  /* Other addresses have their own count. */
  CHECK_EQ_INT(h3wt_ratemap_hit(&m, (struct sockaddr *)&b, t0 + 30), 0);
  for (int i = 0; i < 3; ++i) {
    CHECK_EQ_INT(h3wt_ratemap_hit(&m, (struct sockaddr *)&c, t0 + i), 0);
  }
  CHECK_EQ_INT(h3wt_ratemap_hit(&m, (struct sockaddr *)&c, t0 + 40), 1);
  /* A new second, a new window. */
  CHECK_EQ_INT(
      h3wt_ratemap_hit(&m, (struct sockaddr *)&a, t0 + 1000000000ULL), 0);
  h3wt_ratemap_free(&m);
}

TEST(format_helpers) {
  char buf[64];
  uint8_t b[] = {0x00, 0xab, 0xff};
  h3wt_hex(b, 3, buf);
  CHECK_EQ_STR(buf, "00abff");
  CHECK_EQ_INT(h3wt_u64_dec(0, buf), 1);
  CHECK_EQ_STR(buf, "0");
  CHECK_EQ_INT(h3wt_u64_dec(1024, buf), 4);
  CHECK_EQ_STR(buf, "1024");
  CHECK_EQ_INT(h3wt_u64_dec(UINT64_MAX, buf), 20);
  CHECK_EQ_STR(buf, "18446744073709551615");
  struct sockaddr_in in = {0};
  in.sin_family = AF_INET;
  in.sin_port = htons(4433);
  inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
  h3wt_addr_format((struct sockaddr *)&in, buf, sizeof(buf));
  CHECK_EQ_STR(buf, "127.0.0.1:4433");
  struct sockaddr_in6 in6 = {0};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(443);
  inet_pton(AF_INET6, "::1", &in6.sin6_addr);
  h3wt_addr_format((struct sockaddr *)&in6, buf, sizeof(buf));
  CHECK_EQ_STR(buf, "[::1]:443");
  h3wt_log_level lvl;
  CHECK_EQ_INT(h3wt_log_level_parse("debug", &lvl), 0);
  CHECK_EQ_INT(lvl, H3WT_LOG_DEBUG);
  CHECK_EQ_INT(h3wt_log_level_parse("loud", &lvl), H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_STR(h3wt_strerror(H3WT_ERR_WOULDBLOCK),
               "queue full, wait until writable");
}

/* Header lists grow past their first allocation; every entry is a
   NUL-terminated copy (values may hold bytes a C string would stop at). */
TEST(headers_append) {
  h3wt_header *hs = NULL;
  size_t n = 0, cap = 0;
  char name[16], value[16];
  for (size_t i = 0; i < 20; ++i) {
    int nl = snprintf(name, sizeof(name), "x-h%zu", i);
    int vl = snprintf(value, sizeof(value), "v%zu", i * 7);
    CHECK_EQ_INT(
        h3wt_headers_append(&hs, &n, &cap, name, (size_t)nl, value, (size_t)vl),
        0);
  }
  CHECK_EQ_INT(n, 20);
  CHECK(cap >= 20);
  CHECK_EQ_STR(hs[0].name, "x-h0");
  CHECK_EQ_STR(hs[19].name, "x-h19");
  CHECK_EQ_STR(hs[19].value, "v133");
  CHECK_EQ_INT(hs[19].namelen, 5);
  CHECK_EQ_INT(h3wt_headers_append(&hs, &n, &cap, "a", 1, "b\0c", 3), 0);
  CHECK_EQ_INT(hs[20].valuelen, 3);
  CHECK_EQ_MEM(hs[20].value, "b\0c", 3);
  CHECK_EQ_INT(hs[20].value[3], '\0');
  CHECK_EQ_INT(h3wt_headers_append(&hs, &n, &cap, "", 0, "", 0), 0);
  CHECK_EQ_STR(hs[21].name, "");
  for (size_t i = 0; i < n; ++i) {
    free((void *)hs[i].name);
  }
  free(hs);
}

/* Every code the public header defines has a description of its own (the
   list is the header's, in its order: a new code must be added here). */
TEST(strerror_names_every_code) {
  static const struct {
    const char *name;
    int code;
  } codes[] = {
      {"H3WT_ERR_INVALID_ARGUMENT", H3WT_ERR_INVALID_ARGUMENT},
      {"H3WT_ERR_INVALID_STATE", H3WT_ERR_INVALID_STATE},
      {"H3WT_ERR_WOULDBLOCK", H3WT_ERR_WOULDBLOCK},
      {"H3WT_ERR_NOT_FOUND", H3WT_ERR_NOT_FOUND},
      {"H3WT_ERR_TOO_LARGE", H3WT_ERR_TOO_LARGE},
      {"H3WT_ERR_IO", H3WT_ERR_IO},
      {"H3WT_ERR_ADDRESS", H3WT_ERR_ADDRESS},
      {"H3WT_ERR_TLS", H3WT_ERR_TLS},
      {"H3WT_ERR_QUIC", H3WT_ERR_QUIC},
      {"H3WT_ERR_HANDSHAKE", H3WT_ERR_HANDSHAKE},
      {"H3WT_ERR_IDLE_TIMEOUT", H3WT_ERR_IDLE_TIMEOUT},
      {"H3WT_ERR_CLOSED", H3WT_ERR_CLOSED},
      {"H3WT_ERR_H3", H3WT_ERR_H3},
      {"H3WT_ERR_SESSION_CLOSING", H3WT_ERR_SESSION_CLOSING},
      {"H3WT_ERR_DGRAM_DROPPED", H3WT_ERR_DGRAM_DROPPED},
      {"H3WT_ERR_NOMEM", H3WT_ERR_NOMEM},
      {"H3WT_SESSION_CLOSED", H3WT_SESSION_CLOSED},
      {"H3WT_SESSION_RESET", H3WT_SESSION_RESET},
      {"H3WT_SESSION_REJECTED", H3WT_SESSION_REJECTED},
      {"H3WT_SESSION_CONN_LOST", H3WT_SESSION_CONN_LOST},
  };
  const size_t n = sizeof(codes) / sizeof(codes[0]);
  for (size_t i = 0; i < n; ++i) {
    const char *d = h3wt_strerror(codes[i].code);
    TEST_CONTEXT("%s (%d)", codes[i].name, codes[i].code);
    CHECK(d != NULL);
    if (!d) {
      continue;
    }
    CHECK(d[0] != '\0');
    CHECK(strcmp(d, "unknown error") != 0);
    /* Distinct codes, distinct descriptions: a log line names the cause. */
    for (size_t k = 0; k < i; ++k) {
      if (codes[k].code != codes[i].code) {
        CHECK(strcmp(d, h3wt_strerror(codes[k].code)) != 0);
      }
    }
  }
  TEST_CONTEXT("%s", "");
  /* The bands hold (API/state -1xx ... fatal <= -900). */
  CHECK(H3WT_ERR_INVALID_ARGUMENT <= -100 && H3WT_ERR_INVALID_ARGUMENT > -200);
  CHECK(H3WT_ERR_IO <= -200 && H3WT_ERR_IO > -300);
  CHECK(H3WT_ERR_SESSION_CLOSING <= -500 && H3WT_ERR_SESSION_CLOSING > -600);
  CHECK(H3WT_ERR_DGRAM_DROPPED <= -500 && H3WT_ERR_DGRAM_DROPPED > -600);
  CHECK(H3WT_ERR_NOMEM <= -900);
  /* And what is not a code says so. */
  CHECK_EQ_STR(h3wt_strerror(-999), "unknown error");
  CHECK_EQ_STR(h3wt_strerror(-500), "unknown error");
  CHECK_EQ_STR(h3wt_strerror(12345), "unknown error");
}

/* The library linked is the one the header describes. */
TEST(version_matches_header) {
  int num = -1;
  char want[32];
  const char *v = h3wt_version(&num);
  CHECK_EQ_STR(v, H3WT_VERSION);
  CHECK_EQ_INT(num, H3WT_VERSION_NUM);
  CHECK(h3wt_version(NULL) == v);
  snprintf(want, sizeof(want), "%d.%d.%d", H3WT_VERSION_MAJOR,
           H3WT_VERSION_MINOR, H3WT_VERSION_PATCH);
  CHECK_EQ_STR(H3WT_VERSION, want);
  CHECK_EQ_INT(H3WT_VERSION_NUM, (H3WT_VERSION_MAJOR << 16) |
                                     (H3WT_VERSION_MINOR << 8) |
                                     H3WT_VERSION_PATCH);
#if H3WT_VERSION_NUM < 0x000200
#error "the 0.2 calls are guarded by H3WT_VERSION_NUM >= 0x000200"
#endif
}

/* h3wt_buf: a copy with one reference; each ref needs its unref (ASan
   builds: LeakSanitizer fails the run if one is left, a double free
   aborts it). */
TEST(buf_refcount) {
  uint8_t src[100];
  h3wt_buf *b = NULL, *e = NULL, *x = (h3wt_buf *)&src;
  for (size_t i = 0; i < sizeof(src); ++i) {
    src[i] = (uint8_t)(i * 3);
  }
  CHECK_EQ_INT(h3wt_buf_new(&b, src, sizeof(src)), 0);
  CHECK(b != NULL);
  if (!b) {
    return;
  }
  CHECK_EQ_INT(h3wt_buf_len(b), sizeof(src));
  CHECK(h3wt_buf_data(b) != src); /* a copy */
  memset(src, 0, sizeof(src));    /* the buffer's bytes never change */
  for (size_t i = 0; i < sizeof(src); ++i) {
    if (h3wt_buf_data(b)[i] != (uint8_t)(i * 3)) {
      CHECK(!"buffer bytes changed with the source");
      break;
    }
  }
  CHECK(h3wt_buf_ref(b) == b);
  CHECK(h3wt_buf_ref(b) == b);
  h3wt_buf_unref(b); /* 3 -> 2 */
  h3wt_buf_unref(b); /* 2 -> 1: still readable */
  CHECK_EQ_INT(h3wt_buf_len(b), sizeof(src));
  CHECK_EQ_INT(h3wt_buf_data(b)[99], (uint8_t)(99 * 3));
  h3wt_buf_unref(b); /* 1 -> 0: freed */
  h3wt_buf_unref(NULL);
  /* Empty buffers exist; bad arguments are refused and set nothing. */
  CHECK_EQ_INT(h3wt_buf_new(&e, NULL, 0), 0);
  CHECK(e != NULL);
  if (e) {
    CHECK_EQ_INT(h3wt_buf_len(e), 0);
    CHECK(h3wt_buf_data(e) != NULL);
    h3wt_buf_unref(e);
  }
  CHECK_EQ_INT(h3wt_buf_new(&x, NULL, 5), H3WT_ERR_INVALID_ARGUMENT);
  CHECK(x == (h3wt_buf *)&src);
  CHECK_EQ_INT(h3wt_buf_new(NULL, src, 5), H3WT_ERR_INVALID_ARGUMENT);
}

/* The name table: finds what was inserted across growth, by bytes (not by
   pointer), and lets a walk remove the node it stands on. */
typedef struct named {
  char name[16];
  h3wt_name_node hn;
} named;

TEST(name_table) {
  enum { N = 300 }; /* past several doublings from 64 buckets */
  static named v[N];
  h3wt_name_table t;
  h3wt_name_table_init(&t);
  CHECK(h3wt_name_table_find(&t, "x", 1) == NULL); /* empty: no buckets */
  for (int i = 0; i < N; ++i) {
    v[i].hn.len = (size_t)snprintf(v[i].name, sizeof(v[i].name), "ch.%d", i);
    v[i].hn.name = v[i].name;
    CHECK_EQ_INT(h3wt_name_table_insert(&t, &v[i].hn), 0);
  }
  CHECK_EQ_INT(t.count, N);
  CHECK(t.nbuckets >= N);
  for (int i = 0; i < N; ++i) {
    char key[16];
    size_t len = (size_t)snprintf(key, sizeof(key), "ch.%d", i);
    TEST_CONTEXT("ch.%d", i);
    CHECK(h3wt_name_table_find(&t, key, len) == &v[i].hn);
  }
  TEST_CONTEXT("%s", "");
  CHECK(h3wt_name_table_find(&t, "ch.1", 3) == NULL); /* a prefix */
  CHECK(h3wt_name_table_find(&t, "ch.3000", 7) == NULL);
  /* Remove the even ones while walking. */
  size_t seen = 0;
  H3WT_NAME_TABLE_FOREACH(n, &t) {
    named *x = h3wt_list_entry(n, named, hn);
    ++seen;
    if ((x - v) % 2 == 0) {
      h3wt_name_table_remove(&t, n);
    }
  }
  CHECK_EQ_INT(seen, N);
  CHECK_EQ_INT(t.count, N / 2);
  CHECK(h3wt_name_table_find(&t, "ch.2", 4) == NULL);
  CHECK(h3wt_name_table_find(&t, "ch.3", 4) == &v[3].hn);
  h3wt_name_table_free(&t);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(sendq_copy_read_ack),
      TEST_ENTRY(sendq_owned_buffers_are_not_copied),
      TEST_ENTRY(sendq_framed_heads_and_owned_payloads),
      TEST_ENTRY(sendq_chunks_grow_and_an_emptied_queue_holds_nothing),
      TEST_ENTRY(sendq_partial_vectors),
      TEST_ENTRY(cidmap_insert_find_remove),
      TEST_ENTRY(siphash_is_keyed),
      TEST_ENTRY(ratemap_per_address_per_second),
      TEST_ENTRY(format_helpers),
      TEST_ENTRY(headers_append),
      TEST_ENTRY(strerror_names_every_code),
      TEST_ENTRY(version_matches_header),
      TEST_ENTRY(buf_refcount),
      TEST_ENTRY(name_table),
  };
  return TEST_MAIN(argc, argv, tests);
}
