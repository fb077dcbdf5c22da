/*
 * Unit tests of h3wt_router: exact vs prefix precedence, 405 with allow.
 */
#include <string.h>

#include "h3wt/h3wt.h"
#include "h3wt_router.h"
#include "h3wt_test.h"

static const int H_ROOT = 1, H_ECHO = 2, H_STATIC = 3, H_API = 4, H_ANY = 5;

static int match(const h3wt_router *r, const char *method, const char *path,
                 const void **handler, char *allow) {
  const h3wt_route *rt = NULL;
  int m = h3wt_router_match(r, method, path, strlen(path), &rt, allow, 128);
  *handler = m == H3WT_ROUTE_FOUND ? rt->handler : NULL;
  return m;
}

TEST(precedence_and_methods) {
  h3wt_router r;
  const void *h;
  char allow[128];
  h3wt_router_init(&r);
  CHECK_EQ_INT(h3wt_router_add(&r, "GET", "/", &H_ROOT, NULL), 0);
  CHECK_EQ_INT(h3wt_router_add(&r, "POST", "/echo", &H_ECHO, NULL), 0);
  CHECK_EQ_INT(h3wt_router_add(&r, "GET", "/*", &H_STATIC, NULL), 0);
  CHECK_EQ_INT(h3wt_router_add(&r, "GET", "/api/*", &H_API, NULL), 0);
  CHECK_EQ_INT(h3wt_router_add(&r, NULL, "/any", &H_ANY, NULL), 0);

  CHECK_EQ_INT(match(&r, "GET", "/", &h, allow), H3WT_ROUTE_FOUND);
  CHECK(h == &H_ROOT); /* exact beats the "/" prefix */
  CHECK_EQ_INT(match(&r, "GET", "/index.html", &h, allow), H3WT_ROUTE_FOUND);
  CHECK(h == &H_STATIC);
  CHECK_EQ_INT(match(&r, "GET", "/api/x", &h, allow), H3WT_ROUTE_FOUND);
  CHECK(h == &H_API); /* the longer prefix wins */
  CHECK_EQ_INT(match(&r, "POST", "/echo", &h, allow), H3WT_ROUTE_FOUND);
  CHECK(h == &H_ECHO);
  /* An exact route owns its path: GET /echo is not a static file. */
  CHECK_EQ_INT(match(&r, "GET", "/echo", &h, allow), H3WT_ROUTE_NO_METHOD);
  CHECK_EQ_STR(allow, "POST");
  CHECK_EQ_INT(match(&r, "DELETE", "/", &h, allow), H3WT_ROUTE_NO_METHOD);
  CHECK_EQ_STR(allow, "GET");
  CHECK_EQ_INT(match(&r, "PUT", "/any", &h, allow), H3WT_ROUTE_FOUND);
  CHECK(h == &H_ANY);
  CHECK_EQ_INT(match(&r, "POST", "/other", &h, allow), H3WT_ROUTE_NO_METHOD);
  CHECK_EQ_STR(allow, "GET");
  h3wt_router_free(&r);
}

TEST(no_match_and_bad_patterns) {
  h3wt_router r;
  const void *h;
  char allow[128];
  h3wt_router_init(&r);
  CHECK_EQ_INT(h3wt_router_add(&r, "GET", "/exact", &H_ROOT, NULL), 0);
  CHECK_EQ_INT(match(&r, "GET", "/exactly", &h, allow), H3WT_ROUTE_NO_PATH);
  CHECK_EQ_INT(match(&r, "GET", "/exac", &h, allow), H3WT_ROUTE_NO_PATH);
  CHECK_EQ_INT(match(&r, "GET", "", &h, allow), H3WT_ROUTE_NO_PATH);
  CHECK_EQ_INT(h3wt_router_add(&r, "GET", "noslash", &H_ROOT, NULL),
               H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_router_add(&r, "GET", NULL, &H_ROOT, NULL),
               H3WT_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(h3wt_router_add(&r, "GET", "/x", NULL, NULL),
               H3WT_ERR_INVALID_ARGUMENT);
  h3wt_router_free(&r);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(precedence_and_methods),
      TEST_ENTRY(no_match_and_bad_patterns),
  };
  return TEST_MAIN(argc, argv, tests);
}
