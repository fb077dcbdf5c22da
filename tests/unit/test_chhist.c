/*
 * Unit tests of h3wt_chhist, a channel's history: offsets from 1 without
 * gaps, the count bound across ring growth and wrap-around, the age bound
 * under a fake clock, every row of the recovery rule in docs/channels.md,
 * allocation failures (the run of kept offsets shortens, never gets a
 * hole), and the buffers' references (the run ends with ASan's leak check,
 * so a reference the history forgot to drop fails it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h3wt_chhist.h"
#include "h3wt_test.h"

#define MS 1000000ULL /* nanoseconds */

/* The allocator hook: fails allocation number fail_at (counted from 1 since
   the last reset), or every one from fail_from on; 0 disables each. */
static unsigned alloc_calls, fail_at, fail_from;

static void *test_alloc(size_t size) {
  ++alloc_calls;
  if ((fail_at && alloc_calls == fail_at) ||
      (fail_from && alloc_calls >= fail_from)) {
    return NULL;
  }
  return malloc(size);
}

static void hook(h3wt_chhist *h, unsigned at, unsigned from) {
  alloc_calls = 0;
  fail_at = at;
  fail_from = from;
  h->alloc = test_alloc;
}

/* Appends a message whose bytes name the offset it should get ("m<n>"),
   checks that it got it, and drops the caller's reference: from then on
   only the history holds the buffer.  Returns append's result. */
static int append(h3wt_chhist *h, uint64_t ts) {
  char text[32];
  h3wt_buf *b;
  uint64_t want = h3wt_chhist_last(h) + 1, got = 0;
  int n = snprintf(text, sizeof(text), "m%" PRIu64, want);
  if (h3wt_buf_new(&b, text, (size_t)n) != 0) {
    CHECK(!"h3wt_buf_new failed");
    return H3WT_ERR_NOMEM;
  }
  int rv = h3wt_chhist_append(h, b, ts, &got);
  h3wt_buf_unref(b);
  CHECK_EQ_INT(got, want);
  CHECK_EQ_INT(h3wt_chhist_last(h), want);
  return rv;
}

/* Whether buf holds "m<offset>". */
static int names(const h3wt_buf *buf, uint64_t offset) {
  char text[32];
  int n = snprintf(text, sizeof(text), "m%" PRIu64, offset);
  return buf && h3wt_buf_len(buf) == (size_t)n &&
         memcmp(h3wt_buf_data(buf), text, (size_t)n) == 0;
}

/* Checks that r is offsets first .. first+count-1 with their own bytes. */
static void check_range(const h3wt_chhist_range *r, uint64_t first,
                        size_t count) {
  CHECK_EQ_INT(h3wt_chhist_range_count(r), count);
  if (h3wt_chhist_range_count(r) != count) {
    return;
  }
  for (size_t i = 0; i < count; ++i) {
    uint64_t off = 0;
    h3wt_buf *b = h3wt_chhist_range_at(r, i, &off);
    CHECK_EQ_INT(off, first + i);
    CHECK(names(b, first + i));
  }
  CHECK(h3wt_chhist_range_at(r, count, NULL) == NULL);
}

/* The kept run: oldest .. last, each entry with its own bytes (read through
   a recovery from just before the oldest). */
static void check_kept(h3wt_chhist *h, uint64_t ts) {
  h3wt_chhist_range r;
  uint64_t oldest = h3wt_chhist_oldest(h), last = h3wt_chhist_last(h);
  CHECK_EQ_INT(oldest + h3wt_chhist_count(h), last + 1);
  CHECK_EQ_INT(h3wt_chhist_recover(h, h3wt_chhist_epoch(h), oldest - 1, ts, &r),
               H3WT_CHHIST_RECOVERED);
  check_range(&r, oldest, (size_t)(last - oldest + 1));
}

TEST(offsets_from_one_without_gaps) {
  h3wt_chhist h;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 7, 1000, 0), 0);
  CHECK_EQ_INT(h3wt_chhist_epoch(&h), 7);
  CHECK_EQ_INT(h3wt_chhist_last(&h), 0);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 1); /* empty: last + 1 */
  CHECK_EQ_INT(h3wt_chhist_count(&h), 0);
  CHECK(h.e == NULL); /* nothing allocated before the first message */
  for (int i = 0; i < 50; ++i) {
    TEST_CONTEXT("append %d", i);
    CHECK_EQ_INT(append(&h, (uint64_t)i), 0);
  }
  TEST_CONTEXT("%s", "");
  CHECK_EQ_INT(h3wt_chhist_last(&h), 50);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 1);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 50);
  check_kept(&h, 50);
  /* A NULL offset pointer is allowed; a NULL buffer changes nothing. */
  h3wt_buf *b;
  CHECK_EQ_INT(h3wt_buf_new(&b, "m51", 3), 0);
  CHECK_EQ_INT(h3wt_chhist_append(&h, b, 51, NULL), 0);
  h3wt_buf_unref(b);
  CHECK_EQ_INT(h3wt_chhist_append(&h, NULL, 52, NULL),
               H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_chhist_last(&h), 51);
  check_kept(&h, 52);
  h3wt_chhist_free(&h);
  CHECK(h.e == NULL);
  CHECK_EQ_INT(h.cap, 0);
  h3wt_chhist_free(&h); /* twice is harmless */
}

TEST(count_bound_wraps_the_ring) {
  h3wt_chhist h;
  h3wt_chhist_range r;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 100, 0), 0);
  for (int i = 0; i < 10000; ++i) {
    if (append(&h, (uint64_t)i) != 0) {
      CHECK(!"append failed");
      break;
    }
    if (i + 1 == 5050) {
      /* Full since 100: 4950 evictions moved the oldest to slot 50. */
      CHECK_EQ_INT(h.head, 50);
      CHECK_EQ_INT(h3wt_chhist_oldest(&h), 4951);
      check_kept(&h, (uint64_t)i);
    }
  }
  CHECK_EQ_INT(h3wt_chhist_last(&h), 10000);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 100);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 9901);
  CHECK_EQ_INT(h.cap, 100); /* never past max_count */
  check_kept(&h, 10000);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, 9950, 10000, &r),
               H3WT_CHHIST_RECOVERED);
  check_range(&r, 9951, 50);
  h3wt_chhist_free(&h);
}

TEST(ring_grows_from_small_to_max_count) {
  h3wt_chhist h;
  /* Doubling from 8; the last step is clamped to max_count. */
  static const struct {
    int appends;
    size_t cap;
  } steps[] = {{0, 0},   {1, 8},   {8, 8},    {9, 16},    {17, 32},
               {33, 64}, {64, 64}, {65, 100}, {100, 100}, {250, 100}};
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 100, 0), 0);
  hook(&h, 0, 0);
  int done = 0;
  for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); ++k) {
    TEST_CONTEXT("after %d appends", steps[k].appends);
    while (done < steps[k].appends) {
      CHECK_EQ_INT(append(&h, (uint64_t)done), 0);
      ++done;
    }
    CHECK_EQ_INT(h.cap, steps[k].cap);
  }
  TEST_CONTEXT("%s", "");
  CHECK_EQ_INT(alloc_calls, 5); /* 8, 16, 32, 64, 100 */
  check_kept(&h, 250);
  h3wt_chhist_free(&h);

  /* A bound below the first size: one ring of exactly max_count. */
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 3, 0), 0);
  for (int i = 0; i < 10; ++i) {
    CHECK_EQ_INT(append(&h, (uint64_t)i), 0);
  }
  CHECK_EQ_INT(h.cap, 3);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 8);
  check_kept(&h, 10);
  h3wt_chhist_free(&h);
}

TEST(age_bound_with_a_fake_clock) {
  h3wt_chhist h;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 100, 10 * MS), 0);
  /* Offsets 1..10 at 0, 1, ..., 9 ms. */
  for (int i = 0; i < 10; ++i) {
    CHECK_EQ_INT(append(&h, (uint64_t)i * MS), 0);
  }
  /* At 10 ms the first is exactly max_age old: kept ("at most ... old"). */
  h3wt_chhist_trim(&h, 10 * MS);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 1);
  /* One nanosecond later it is gone. */
  h3wt_chhist_trim(&h, 10 * MS + 1);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 2);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 9);
  /* A time before the entries' own (a clock that stepped back) drops
     nothing, rather than wrapping into a huge age. */
  h3wt_chhist_trim(&h, 0);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 9);
  /* An append trims too: at 15.5 ms, offsets 1..6 (0..5 ms) are too old. */
  CHECK_EQ_INT(append(&h, 15 * MS + MS / 2), 0);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 7);
  CHECK_EQ_INT(h3wt_chhist_last(&h), 11);
  check_kept(&h, 15 * MS + MS / 2);
  /* Everything ages out: the ring is given back, the offsets remain. */
  h3wt_chhist_trim(&h, 60 * MS);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 0);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 12);
  CHECK(h.e == NULL);
  CHECK_EQ_INT(h.cap, 0);
  /* And the next message starts a new ring at the next offset. */
  CHECK_EQ_INT(append(&h, 61 * MS), 0);
  CHECK_EQ_INT(h3wt_chhist_last(&h), 12);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 12);
  CHECK_EQ_INT(h.cap, 8);
  /* No age bound: nothing ever ages out. */
  h3wt_chhist_free(&h);
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 100, 0), 0);
  CHECK_EQ_INT(append(&h, 0), 0);
  h3wt_chhist_trim(&h, UINT64_MAX);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 1);
  h3wt_chhist_free(&h);
}

/* docs/channels.md: "A SUBSCRIBE with recover (epoch E, offset O), against
   a channel whose epoch is E' with last offset T and oldest kept offset F":
   here E' = 42, T = 25, F = 16 (max_count 10). */
TEST(recovery_rule_table) {
  static const struct {
    const char *what;
    uint64_t epoch, since;
    int want;
    uint64_t first;
    size_t count;
  } rows[] = {
      {"nothing missed (O == T)", 42, 25, H3WT_CHHIST_RECOVERED, 26, 0},
      {"some missed", 42, 20, H3WT_CHHIST_RECOVERED, 21, 5},
      {"one missed", 42, 24, H3WT_CHHIST_RECOVERED, 25, 1},
      {"exactly the oldest kept (O + 1 == F)", 42, 15, H3WT_CHHIST_RECOVERED,
       16, 10},
      {"one older than kept (O + 1 == F - 1)", 42, 14,
       H3WT_CHHIST_NOT_RECOVERED, 0, 0},
      {"from the very start", 42, 0, H3WT_CHHIST_NOT_RECOVERED, 0, 0},
      {"future offset (O == T + 1)", 42, 26, H3WT_CHHIST_NOT_RECOVERED, 0, 0},
      {"far future offset", 42, UINT64_MAX, H3WT_CHHIST_NOT_RECOVERED, 0, 0},
      {"other epoch, same offset", 43, 25, H3WT_CHHIST_NOT_RECOVERED, 0, 0},
      {"other epoch, a kept offset", 41, 20, H3WT_CHHIST_NOT_RECOVERED, 0, 0},
      {"epoch 0, offset 0 (a fresh client)", 0, 0, H3WT_CHHIST_NOT_RECOVERED, 0,
       0},
  };
  h3wt_chhist h;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 42, 10, 0), 0);
  for (int i = 0; i < 25; ++i) {
    CHECK_EQ_INT(append(&h, (uint64_t)i), 0);
  }
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 16);
  for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); ++k) {
    h3wt_chhist_range r;
    TEST_CONTEXT("%s", rows[k].what);
    CHECK_EQ_INT(h3wt_chhist_recover(&h, rows[k].epoch, rows[k].since, 100, &r),
                 rows[k].want);
    if (rows[k].want == H3WT_CHHIST_RECOVERED) {
      check_range(&r, rows[k].first, rows[k].count);
    } else {
      CHECK_EQ_INT(h3wt_chhist_range_count(&r), 0); /* missed 0 */
      CHECK(h3wt_chhist_range_at(&r, 0, NULL) == NULL);
    }
  }
  /* Asking changed nothing. */
  CHECK_EQ_INT(h3wt_chhist_last(&h), 25);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 10);
  h3wt_chhist_free(&h);
}

TEST(recovery_after_the_age_bound) {
  h3wt_chhist h;
  h3wt_chhist_range r;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 5, 100, 10 * MS), 0);
  /* Offsets 1..5 at 0 ms, 6..10 at 8 ms. */
  for (int i = 0; i < 10; ++i) {
    CHECK_EQ_INT(append(&h, i < 5 ? 0 : 8 * MS), 0);
  }
  /* The recovery trims at its own time, with no append in between: at
     12 ms offsets 1..5 are gone, so from 4 is refused, from 5 is not. */
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 5, 4, 12 * MS, &r),
               H3WT_CHHIST_NOT_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 5, 5, 12 * MS, &r),
               H3WT_CHHIST_RECOVERED);
  check_range(&r, 6, 5);
  /* At 30 ms all are gone: empty history, offsets counted (F = T + 1).
     Only "nothing missed" still recovers. */
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 5, 9, 30 * MS, &r),
               H3WT_CHHIST_NOT_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 0);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 11);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 5, 10, 30 * MS, &r),
               H3WT_CHHIST_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_range_count(&r), 0);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 5, 11, 30 * MS, &r),
               H3WT_CHHIST_NOT_RECOVERED);
  h3wt_chhist_free(&h);
}

TEST(recovery_of_a_new_channel) {
  h3wt_chhist h;
  h3wt_chhist_range r;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 9, 10, 0), 0);
  /* Nothing published yet: offset 0 is "nothing missed", 1 the future. */
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 9, 0, 0, &r), H3WT_CHHIST_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_range_count(&r), 0);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 9, 1, 0, &r), H3WT_CHHIST_NOT_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 8, 0, 0, &r), H3WT_CHHIST_NOT_RECOVERED);
  /* After three messages, from 0 gets all of them. */
  for (int i = 0; i < 3; ++i) {
    CHECK_EQ_INT(append(&h, 0), 0);
  }
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 9, 0, 0, &r), H3WT_CHHIST_RECOVERED);
  check_range(&r, 1, 3);
  h3wt_chhist_free(&h);
}

TEST(max_count_zero_counts_offsets_only) {
  h3wt_chhist h;
  h3wt_chhist_range r;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 3, 0, 0), 0);
  hook(&h, 0, 0);
  for (int i = 0; i < 5; ++i) {
    CHECK_EQ_INT(append(&h, (uint64_t)i), 0);
  }
  CHECK_EQ_INT(h3wt_chhist_last(&h), 5);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 0);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 6);
  CHECK_EQ_INT(alloc_calls, 0); /* no ring, no reference held */
  CHECK(h.e == NULL);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 3, 5, 5, &r), H3WT_CHHIST_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_range_count(&r), 0);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 3, 4, 5, &r), H3WT_CHHIST_NOT_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 3, 6, 5, &r), H3WT_CHHIST_NOT_RECOVERED);
  h3wt_chhist_free(&h);
}

TEST(nomem_without_a_ring_keeps_nothing) {
  h3wt_chhist h;
  h3wt_chhist_range r;
  uint64_t off = 0;
  h3wt_buf *b;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 100, 0), 0);
  hook(&h, 1, 0); /* the first ring cannot be had */
  CHECK_EQ_INT(h3wt_buf_new(&b, "m1", 2), 0);
  CHECK_EQ_INT(h3wt_chhist_append(&h, b, 0, &off), H3WT_ERR_NOMEM);
  h3wt_buf_unref(b); /* not kept: this frees it (ASan would see a leak) */
  /* Delivered live with offset 1, so offset 1 is taken... */
  CHECK_EQ_INT(off, 1);
  CHECK_EQ_INT(h3wt_chhist_last(&h), 1);
  CHECK_EQ_INT(h.nomem, 1);
  /* ...but not kept: a subscriber that saw nothing is not told it
     recovered (F = 2 > O + 1 = 1); one that saw offset 1 missed nothing. */
  CHECK_EQ_INT(h3wt_chhist_count(&h), 0);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 2);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, 0, 0, &r), H3WT_CHHIST_NOT_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, 1, 0, &r), H3WT_CHHIST_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_range_count(&r), 0);
  /* Memory is back: offset 2 is kept, and recovering across 1 is still
     refused. */
  CHECK_EQ_INT(append(&h, 0), 0);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 2);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, 0, 0, &r), H3WT_CHHIST_NOT_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, 1, 0, &r), H3WT_CHHIST_RECOVERED);
  check_range(&r, 2, 1);
  h3wt_chhist_free(&h);
}

TEST(nomem_while_growing_drops_the_oldest) {
  h3wt_chhist h;
  h3wt_chhist_range r;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 100, 0), 0);
  hook(&h, 2, 0); /* the ring of 8 is had, its growth to 16 is not */
  for (int i = 0; i < 8; ++i) {
    CHECK_EQ_INT(append(&h, 0), 0);
  }
  CHECK_EQ_INT(append(&h, 0), H3WT_ERR_NOMEM);
  CHECK_EQ_INT(h.nomem, 1);
  CHECK_EQ_INT(h.cap, 8);
  /* Offset 9 is kept and 1 made room: 2..9, no hole. */
  CHECK_EQ_INT(h3wt_chhist_last(&h), 9);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 2);
  check_kept(&h, 0);
  /* Across the lost one: not recovered, never a range with a hole. */
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, 0, 0, &r), H3WT_CHHIST_NOT_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, 1, 0, &r), H3WT_CHHIST_RECOVERED);
  check_range(&r, 2, 8);
  /* The next growth succeeds and the history fills up again. */
  CHECK_EQ_INT(append(&h, 0), 0);
  CHECK_EQ_INT(h.cap, 16);
  CHECK_EQ_INT(h3wt_chhist_oldest(&h), 2);
  CHECK_EQ_INT(h3wt_chhist_count(&h), 9);
  check_kept(&h, 0);
  h3wt_chhist_free(&h);
}

/* Walks every allocation failure of 300 appends into a history of 100
   (the rings of 8, 16, 32, 64, 100), and memory gone for good from each
   point: after each append, the kept run is contiguous, each entry holds
   its own message, and every possible recovery is answered by the rule
   (recovered exactly when O + 1 >= F and O <= T) with the right range. */
TEST(every_allocation_failure_keeps_recovery_honest) {
  for (unsigned mode = 0; mode < 2; ++mode) {
    for (unsigned n = 1; n <= 6; ++n) {
      h3wt_chhist h;
      unsigned nomem = 0;
      CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 100, 0), 0);
      hook(&h, mode ? 0 : n, mode ? n : 0);
      for (int i = 0; i < 300; ++i) {
        TEST_CONTEXT("%s %u, append %d", mode ? "from" : "at", n, i);
        int rv = append(&h, 0);
        CHECK(rv == 0 || rv == H3WT_ERR_NOMEM);
        nomem += rv == H3WT_ERR_NOMEM;
        uint64_t last = h3wt_chhist_last(&h), oldest = h3wt_chhist_oldest(&h);
        CHECK_EQ_INT(oldest + h3wt_chhist_count(&h), last + 1);
        if (i % 37 != 0 && i < 295) {
          continue; /* the full sweep of recoveries now and then */
        }
        for (uint64_t o = 0; o <= last + 1; ++o) {
          h3wt_chhist_range r;
          int want = o <= last && o + 1 >= oldest;
          CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, o, 0, &r),
                       want ? H3WT_CHHIST_RECOVERED
                            : H3WT_CHHIST_NOT_RECOVERED);
          if (want) {
            check_range(&r, o + 1, (size_t)(last - o));
          }
        }
      }
      TEST_CONTEXT("%s %u", mode ? "from" : "at", n);
      CHECK_EQ_INT(h.nomem, nomem);
      CHECK(nomem > 0 || n == 6); /* five allocations in all */
      h3wt_chhist_free(&h);
    }
  }
}

TEST(references_are_shared_and_dropped) {
  h3wt_chhist h;
  h3wt_chhist_range r;
  h3wt_buf *b;
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, 2, 0), 0);
  CHECK_EQ_INT(h3wt_buf_new(&b, "shared", 6), 0);
  /* One buffer appended three times (the count bound evicts the first of
     its entries), then the caller lets go of it. */
  for (int i = 0; i < 3; ++i) {
    CHECK_EQ_INT(h3wt_chhist_append(&h, b, 0, NULL), 0);
  }
  const uint8_t *bytes = h3wt_buf_data(b);
  h3wt_buf_unref(b);
  /* The history's own references keep the very bytes alive, not a copy. */
  CHECK_EQ_INT(h3wt_chhist_recover(&h, 1, 1, 0, &r), H3WT_CHHIST_RECOVERED);
  CHECK_EQ_INT(h3wt_chhist_range_count(&r), 2);
  for (size_t i = 0; i < 2; ++i) {
    h3wt_buf *got = h3wt_chhist_range_at(&r, i, NULL);
    CHECK(got == b);
    CHECK(h3wt_buf_data(got) == bytes);
    CHECK_EQ_MEM(h3wt_buf_data(got), "shared", 6);
  }
  /* A reference taken from a range outlives the history. */
  h3wt_buf *kept = h3wt_buf_ref(h3wt_chhist_range_at(&r, 0, NULL));
  h3wt_chhist_free(&h);
  CHECK_EQ_MEM(h3wt_buf_data(kept), "shared", 6);
  h3wt_buf_unref(kept); /* the last one: freed here, or ASan reports it */
}

TEST(init_checks_its_arguments) {
  h3wt_chhist h;
  CHECK_EQ_INT(h3wt_chhist_init(&h, H3WT_CHHIST_EPOCH_MAX, 1, 0), 0);
  h3wt_chhist_free(&h);
  /* Past the varint limit the epoch could not be sent. */
  CHECK_EQ_INT(h3wt_chhist_init(&h, H3WT_CHHIST_EPOCH_MAX + 1, 1, 0),
               H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_chhist_init(&h, UINT64_MAX, 1, 0),
               H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_chhist_init(&h, 1, SIZE_MAX, 0), H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_chhist_init(NULL, 1, 1, 0), H3WT_ERR_INVALID_ARGUMENT);
}

/* The figures the header documents (per channel, per kept entry). */
TEST(memory_figures) {
  if (sizeof(void *) != 8) {
    return; /* documented for LP64 */
  }
  CHECK_EQ_INT(sizeof(h3wt_chhist_entry), 16);
  CHECK_EQ_INT(sizeof(h3wt_chhist), 80);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(offsets_from_one_without_gaps),
      TEST_ENTRY(count_bound_wraps_the_ring),
      TEST_ENTRY(ring_grows_from_small_to_max_count),
      TEST_ENTRY(age_bound_with_a_fake_clock),
      TEST_ENTRY(recovery_rule_table),
      TEST_ENTRY(recovery_after_the_age_bound),
      TEST_ENTRY(recovery_of_a_new_channel),
      TEST_ENTRY(max_count_zero_counts_offsets_only),
      TEST_ENTRY(nomem_without_a_ring_keeps_nothing),
      TEST_ENTRY(nomem_while_growing_drops_the_oldest),
      TEST_ENTRY(every_allocation_failure_keeps_recovery_honest),
      TEST_ENTRY(references_are_shared_and_dropped),
      TEST_ENTRY(init_checks_its_arguments),
      TEST_ENTRY(memory_figures),
  };
  return TEST_MAIN(argc, argv, tests);
}
