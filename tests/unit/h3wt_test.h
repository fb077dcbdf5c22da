/*
 * h3wt_test.h: a tiny unit-test helper, in the spirit of libuv's test/task.h.
 *
 *   #include "h3wt_test.h"
 *
 *   TEST(parses_empty) {
 *     CHECK_EQ_INT(parse(""), -1);
 *   }
 *
 *   static const h3wt_test_case tests[] = {
 *     TEST_ENTRY(parses_empty),
 *   };
 *
 *   int main(int argc, char **argv) {
 *     return TEST_MAIN(argc, argv, tests);
 *   }
 *
 * A failed CHECK prints file:line and both values, marks the current test
 * failed and carries on (so one run of a table-driven test reports every bad
 * row); it does not abort.  TEST_CONTEXT("row %zu", i) attaches a note that
 * is printed with every later failure in the same test, which is how a table
 * row is named.  TEST_MAIN runs the tests named on the command line (all of
 * them if none), prints "ok"/"FAIL" per test and then a last line
 * "N passed, M failed", and returns the process exit status: non-zero when a
 * test failed, a CHECK failed outside any test, or no test matched.
 *
 * Everything is static and header-only: each test_*.c is one executable.
 */
#ifndef H3WT_TEST_H
#define H3WT_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
#define H3WT_TEST_UNUSED_ __attribute__((unused))
#define H3WT_TEST_PRINTF_(f, a) __attribute__((format(printf, f, a)))
#else
#define H3WT_TEST_UNUSED_
#define H3WT_TEST_PRINTF_(f, a)
#endif

typedef struct h3wt_test_case {
  const char *name;
  void (*fn)(void);
} h3wt_test_case;

/* Failed checks so far, in the whole run; a test failed if it moved this. */
H3WT_TEST_UNUSED_ static unsigned long h3wt_test_failed_checks_;
H3WT_TEST_UNUSED_ static const char *h3wt_test_current_;
H3WT_TEST_UNUSED_ static char h3wt_test_context_[256];

#define TEST(name) static void test_##name(void)
#define TEST_ENTRY(name)                                                       \
  { #name, test_##name }
#define TEST_MAIN(argc, argv, cases)                                           \
  h3wt_test_main_((argc), (argv), (cases), sizeof(cases) / sizeof((cases)[0]))

/* printf-style note shown with later failures of the current test; call
   TEST_CONTEXT("%s", "") to clear it early.  It is cleared between tests. */
#define TEST_CONTEXT(...) h3wt_test_set_context_(__VA_ARGS__)

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      h3wt_test_begin_failure_(__FILE__, __LINE__);                            \
      fprintf(stderr, "CHECK(%s) failed\n", #cond);                            \
      h3wt_test_end_failure_();                                                \
    }                                                                          \
  } while (0)

/* Integers of any type (signed or unsigned, up to 64 bits) are compared as
   long long, each argument evaluated once.  Values above LLONG_MAX wrap; use
   CHECK for those. */
#define CHECK_EQ_INT(a, b)                                                     \
  h3wt_test_eq_int_(__FILE__, __LINE__, #a, #b, (long long)(a), (long long)(b))

/* C strings; NULL is allowed and equals only NULL.  Non-printable bytes are
   shown as C escapes. */
#define CHECK_EQ_STR(a, b)                                                     \
  h3wt_test_eq_str_(__FILE__, __LINE__, #a, #b, (a), (b))

/* n bytes at a and at b; a failure shows the first differing offset and a
   hex dump of both around it. */
#define CHECK_EQ_MEM(a, b, n)                                                  \
  h3wt_test_eq_mem_(__FILE__, __LINE__, #a, #b, (a), (b), (size_t)(n))

H3WT_TEST_PRINTF_(1, 2)
static inline void h3wt_test_set_context_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h3wt_test_context_, sizeof(h3wt_test_context_), fmt, ap);
  va_end(ap);
}

static inline void h3wt_test_begin_failure_(const char *file, int line) {
  /* Keep stdout progress lines and stderr diagnostics in order when both go
     to the same pipe (ctest, CI logs). */
  fflush(stdout);
  h3wt_test_failed_checks_++;
  fprintf(stderr, "%s:%d: ", file, line);
  if (h3wt_test_current_ != NULL)
    fprintf(stderr, "[%s] ", h3wt_test_current_);
  if (h3wt_test_context_[0] != '\0')
    fprintf(stderr, "(%s) ", h3wt_test_context_);
}

static inline void h3wt_test_end_failure_(void) {
  fflush(stderr);
}

/* Prints s, n bytes long, quoted and with C escapes for anything that is not
   printable ASCII, so NULs, controls and UTF-8 bytes are all visible. */
static inline void h3wt_test_print_escaped_(const char *s, size_t n) {
  size_t k;
  fputc('"', stderr);
  for (k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    if (c == '"' || c == '\\')
      fprintf(stderr, "\\%c", c);
    else if (c >= 0x20 && c < 0x7f)
      fputc(c, stderr);
    else
      fprintf(stderr, "\\x%02x", c);
  }
  fputc('"', stderr);
}

static inline void h3wt_test_eq_int_(const char *file, int line, const char *ea,
                                     const char *eb, long long a, long long b) {
  if (a == b)
    return;
  h3wt_test_begin_failure_(file, line);
  fprintf(stderr, "CHECK_EQ_INT(%s, %s) failed: %lld != %lld\n", ea, eb, a, b);
  h3wt_test_end_failure_();
}

static inline void h3wt_test_eq_str_(const char *file, int line, const char *ea,
                                     const char *eb, const char *a,
                                     const char *b) {
  if (a == b || (a != NULL && b != NULL && strcmp(a, b) == 0))
    return;
  h3wt_test_begin_failure_(file, line);
  fprintf(stderr, "CHECK_EQ_STR(%s, %s) failed: ", ea, eb);
  if (a != NULL)
    h3wt_test_print_escaped_(a, strlen(a));
  else
    fputs("NULL", stderr);
  fputs(" != ", stderr);
  if (b != NULL)
    h3wt_test_print_escaped_(b, strlen(b));
  else
    fputs("NULL", stderr);
  fputc('\n', stderr);
  h3wt_test_end_failure_();
}

static inline void h3wt_test_hexdump_(const char *label, const void *p,
                                      size_t from, size_t to) {
  const unsigned char *u = (const unsigned char *)p;
  size_t k;
  fprintf(stderr, "  %s[%zu..%zu):", label, from, to);
  for (k = from; k < to; k++)
    fprintf(stderr, " %02x", u[k]);
  fputc('\n', stderr);
}

static inline void h3wt_test_eq_mem_(const char *file, int line, const char *ea,
                                     const char *eb, const void *a,
                                     const void *b, size_t n) {
  const unsigned char *ua = (const unsigned char *)a;
  const unsigned char *ub = (const unsigned char *)b;
  size_t at, from, to;

  if (n == 0 || a == b)
    return;
  if (a == NULL || b == NULL) {
    h3wt_test_begin_failure_(file, line);
    fprintf(stderr, "CHECK_EQ_MEM(%s, %s, %zu) failed: %s is a null pointer\n",
            ea, eb, n, a == NULL ? ea : eb);
    h3wt_test_end_failure_();
    return;
  }
  for (at = 0; at < n && ua[at] == ub[at]; at++)
    ;
  if (at == n)
    return;
  /* A window of up to 32 bytes starting a little before the difference is
     enough to see it without flooding the log with a large buffer. */
  from = at >= 8 ? at - 8 : 0;
  to = n - from > 32 ? from + 32 : n;
  h3wt_test_begin_failure_(file, line);
  fprintf(stderr,
          "CHECK_EQ_MEM(%s, %s, %zu) failed: first difference at offset %zu"
          " (0x%02x != 0x%02x)\n",
          ea, eb, n, at, ua[at], ub[at]);
  h3wt_test_hexdump_(ea, a, from, to);
  h3wt_test_hexdump_(eb, b, from, to);
  h3wt_test_end_failure_();
}

static inline int h3wt_test_selected_(int argc, char **argv, const char *name) {
  int k;
  if (argc < 2)
    return 1;
  for (k = 1; k < argc; k++) {
    if (strcmp(argv[k], name) == 0)
      return 1;
  }
  return 0;
}

static inline int h3wt_test_main_(int argc, char **argv,
                                  const h3wt_test_case *cases, size_t ncases) {
  /* Failures from CHECKs run before main() reached here (in main itself,
     say) still fail the run. */
  unsigned long stray = h3wt_test_failed_checks_;
  unsigned long passed = 0, failed = 0;
  size_t k;

  for (k = 0; k < ncases; k++) {
    unsigned long before = h3wt_test_failed_checks_;
    if (!h3wt_test_selected_(argc, argv, cases[k].name))
      continue;
    h3wt_test_current_ = cases[k].name;
    h3wt_test_context_[0] = '\0';
    cases[k].fn();
    h3wt_test_current_ = NULL;
    h3wt_test_context_[0] = '\0';
    if (h3wt_test_failed_checks_ == before) {
      passed++;
      printf("ok   %s\n", cases[k].name);
    } else {
      failed++;
      printf("FAIL %s (%lu failed checks)\n", cases[k].name,
             h3wt_test_failed_checks_ - before);
    }
  }
  if (passed + failed == 0)
    fprintf(stderr, "no test matched the names given\n");
  if (stray > 0)
    fprintf(stderr, "%lu checks failed outside any test\n", stray);
  printf("%lu passed, %lu failed\n", passed, failed);
  fflush(stdout);
  return (failed > 0 || stray > 0 || passed + failed == 0) ? 1 : 0;
}

#endif /* H3WT_TEST_H */
