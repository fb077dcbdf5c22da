/*
 * Unit tests for h3wt_wt_dgram, the outgoing datagram queue: order across
 * ring growth and wrap-around, inline copies and shared buffers side by
 * side, drop-oldest from the front and from the middle, entries of a
 * session that went, the count and byte bounds.
 */
#include <string.h>

#include "h3wt_test.h"
#include "h3wt_wt_dgram.h"

/* Two fake owners (sessions). */
static int owner_a, owner_b;

/* Pushes "<tag><n>" inline for owner. */
static int push(h3wt_wt_dgramq *q, void *owner, char tag, int n) {
  char buf[16];
  int len = snprintf(buf, sizeof(buf), "%c%d", tag, n);
  uint8_t prefix[1] = {0x04};
  return h3wt_wt_dgramq_push(q, owner, prefix, 1, NULL, (uint8_t *)buf,
                             (size_t)len, 1000 + (uint64_t)n);
}

/* The front's payload as a string ("" when the queue is empty). */
static const char *front(h3wt_wt_dgramq *q, void **owner) {
  static char out[64];
  h3wt_vec v[2];
  h3wt_wt_dgram_entry *e = h3wt_wt_dgramq_front(q);
  out[0] = '\0';
  if (!e) {
    return out;
  }
  *owner = e->owner;
  size_t n = h3wt_wt_dgramq_vec(q, e, v);
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i == 0 && v[i].len == 1 && v[i].base[0] == 0x04 && n == 2) {
      continue; /* the prefix */
    }
    memcpy(out + k, v[i].base, v[i].len);
    k += v[i].len;
  }
  out[k] = '\0';
  return out;
}

TEST(order_survives_growth_and_wrap) {
  h3wt_wt_dgramq q;
  void *o;
  h3wt_wt_dgramq_init(&q, 20, 20 * 1500);
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 13; ++i) {
      CHECK_EQ_INT(push(&q, &owner_a, 'a', round * 100 + i), 0);
    }
    for (int i = 0; i < 13; ++i) {
      char want[16];
      snprintf(want, sizeof(want), "a%d", round * 100 + i);
      TEST_CONTEXT("round %d item %d", round, i);
      CHECK_EQ_STR(front(&q, &o), want);
      h3wt_wt_dgramq_pop(&q);
    }
  }
  CHECK_EQ_INT((int)h3wt_wt_dgramq_count(&q), 0);
  h3wt_wt_dgramq_free(&q);
}

TEST(bounded_by_count) {
  h3wt_wt_dgramq q;
  h3wt_wt_dgramq_init(&q, 4, 4 * 1500);
  for (int i = 0; i < 4; ++i) {
    CHECK_EQ_INT(push(&q, &owner_a, 'a', i), 0);
  }
  CHECK_EQ_INT(push(&q, &owner_a, 'a', 4), H3WT_ERR_DGRAM_DROPPED);
  CHECK_EQ_INT((int)h3wt_wt_dgramq_count(&q), 4);
  h3wt_wt_dgramq_free(&q);
}

TEST(shared_buffer_referenced_not_copied) {
  h3wt_wt_dgramq q;
  h3wt_buf *b;
  h3wt_vec v[2];
  uint8_t prefix[1] = {0x04};
  h3wt_wt_dgramq_init(&q, 8, 8 * 1500);
  CHECK_EQ_INT(h3wt_buf_new(&b, "shared", 6), 0);
  CHECK_EQ_INT(h3wt_wt_dgramq_push(&q, &owner_a, prefix, 1, b, NULL, 6, 1),
               0);
  CHECK_EQ_INT(push(&q, &owner_b, 'b', 1), 0);
  h3wt_wt_dgram_entry *e = h3wt_wt_dgramq_front(&q);
  CHECK_EQ_INT((int)h3wt_wt_dgramq_vec(&q, e, v), 2);
  CHECK(v[1].base == h3wt_buf_data(b)); /* the very bytes, no copy */
  h3wt_buf_unref(b);                    /* the queue keeps its own */
  CHECK(memcmp(v[1].base, "shared", 6) == 0);
  h3wt_wt_dgramq_pop(&q); /* drops the queue's reference: ASan sees */
  void *o;
  CHECK_EQ_STR(front(&q, &o), "b1");
  h3wt_wt_dgramq_free(&q);
}

TEST(drop_oldest_front_and_middle) {
  h3wt_wt_dgramq q;
  void *o;
  h3wt_wt_dgramq_init(&q, 4, 4 * 1500);
  CHECK_EQ_INT(push(&q, &owner_b, 'b', 0), 0);
  CHECK_EQ_INT(push(&q, &owner_a, 'a', 1), 0);
  CHECK_EQ_INT(push(&q, &owner_b, 'b', 2), 0);
  CHECK_EQ_INT(push(&q, &owner_a, 'a', 3), 0);
  /* a's oldest is in the middle: its slot comes free at once. */
  CHECK_EQ_INT(h3wt_wt_dgramq_drop_oldest(&q, &owner_a), 1);
  CHECK_EQ_INT((int)h3wt_wt_dgramq_count(&q), 3);
  CHECK_EQ_INT(push(&q, &owner_a, 'a', 4), 0);
  /* b's oldest is at the front. */
  CHECK_EQ_INT(h3wt_wt_dgramq_drop_oldest(&q, &owner_b), 1);
  const char *want[] = {"b2", "a3", "a4"};
  for (int i = 0; i < 3; ++i) {
    TEST_CONTEXT("item %d", i);
    CHECK_EQ_STR(front(&q, &o), want[i]);
    h3wt_wt_dgramq_pop(&q);
  }
  CHECK_EQ_INT(h3wt_wt_dgramq_drop_oldest(&q, &owner_a), 0);
  h3wt_wt_dgramq_free(&q);
}

TEST(forgotten_owner_is_skippable) {
  h3wt_wt_dgramq q;
  void *o = NULL;
  h3wt_wt_dgramq_init(&q, 8, 8 * 1500);
  CHECK_EQ_INT(push(&q, &owner_a, 'a', 0), 0);
  CHECK_EQ_INT(push(&q, &owner_b, 'b', 1), 0);
  h3wt_wt_dgramq_forget(&q, &owner_a);
  front(&q, &o);
  CHECK(o == NULL); /* the session went: the caller drops it */
  h3wt_wt_dgramq_pop(&q);
  CHECK_EQ_STR(front(&q, &o), "b1");
  CHECK(o == &owner_b);
  h3wt_wt_dgramq_free(&q);
}

TEST(bytes_bound_with_gaps) {
  h3wt_wt_dgramq q;
  uint8_t big[1000];
  uint8_t prefix[1] = {0x04};
  memset(big, 'x', sizeof(big));
  /* 3000 bytes of ring: three payloads fit, a fourth does not. */
  h3wt_wt_dgramq_init(&q, 16, 3000);
  for (int i = 0; i < 3; ++i) {
    CHECK_EQ_INT(h3wt_wt_dgramq_push(&q, &owner_a, prefix, 1, NULL, big,
                                     sizeof(big), 1),
                 0);
  }
  CHECK_EQ_INT(h3wt_wt_dgramq_push(&q, &owner_a, prefix, 1, NULL, big,
                                   sizeof(big), 1),
               H3WT_ERR_DGRAM_DROPPED);
  /* Popping the front frees its bytes for the next push (the ring slides
     its live bytes down). */
  h3wt_wt_dgramq_pop(&q);
  CHECK_EQ_INT(h3wt_wt_dgramq_push(&q, &owner_a, prefix, 1, NULL, big,
                                   sizeof(big), 1),
               0);
  CHECK_EQ_INT((int)h3wt_wt_dgramq_count(&q), 3);
  h3wt_wt_dgramq_free(&q);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(order_survives_growth_and_wrap),
      TEST_ENTRY(bounded_by_count),
      TEST_ENTRY(shared_buffer_referenced_not_copied),
      TEST_ENTRY(drop_oldest_front_and_middle),
      TEST_ENTRY(forgotten_owner_is_skippable),
      TEST_ENTRY(bytes_bound_with_gaps),
  };
  return TEST_MAIN(argc, argv, tests);
}
