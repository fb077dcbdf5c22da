/*
 * Unit tests for h3wt_path: request-path resolution below a web root and
 * content types.  Most cases are rows of tables; a failing row is named by
 * TEST_CONTEXT with its index and input.
 */
#include "h3wt_path.h"
#include "h3wt_test.h"

#include <stdlib.h>
#include <string.h>

#define ROOT "/srv/www"

enum {
  OK = H3WT_PATH_OK,
  BAD = H3WT_PATH_BAD_REQUEST,
  NOTFOUND = H3WT_PATH_NOT_FOUND,
  TOOLONG = H3WT_PATH_TOO_LONG
};

/* A path literal with its exact length, so inputs may hold NUL bytes. */
#define P(s) s, sizeof(s) - 1

typedef struct resolve_row {
  const char *path;
  size_t pathlen;
  int rc;
  const char *want; /* out on OK, relative to ROOT; ignored otherwise */
} resolve_row;

/* Runs every row with root ROOT and a roomy buffer.  On failure out must be
   the empty string, so a caller ignoring rc still cannot open anything. */
static void run_rows(const resolve_row *rows, size_t nrows) {
  size_t k;
  for (k = 0; k < nrows; k++) {
    char out[512];
    int rc;
    memset(out, 'X', sizeof(out));
    TEST_CONTEXT("row %zu, path of %zu bytes \"%.*s\"", k, rows[k].pathlen,
                 (int)rows[k].pathlen, rows[k].path);
    rc = h3wt_path_resolve(ROOT, rows[k].path, rows[k].pathlen, out,
                           sizeof(out));
    CHECK_EQ_INT(rc, rows[k].rc);
    if (rc == OK && rows[k].rc == OK) {
      char want[512];
      snprintf(want, sizeof(want), "%s%s", ROOT, rows[k].want);
      CHECK_EQ_STR(out, want);
    } else if (rc != OK) {
      CHECK_EQ_STR(out, "");
    }
  }
}

#define RUN_ROWS(rows) run_rows(rows, sizeof(rows) / sizeof(rows[0]))

TEST(resolve_normal) {
  static const resolve_row rows[] = {
      {P("/"), OK, "/index.html"},
      {P("/index.html"), OK, "/index.html"},
      {P("/a"), OK, "/a"},
      {P("/a/"), OK, "/a/index.html"},
      {P("/a/b/c.js"), OK, "/a/b/c.js"},
      {P("/a/b/"), OK, "/a/b/index.html"},
      {P("/app.mjs"), OK, "/app.mjs"},
      {P("/file.with.dots.txt"), OK, "/file.with.dots.txt"},
      {P("/a..b"), OK, "/a..b"},
      {P("/a."), OK, "/a."},
      {P("/a.."), OK, "/a.."},
      {P("/-_~!$&'()*+,;=:@"), OK, "/-_~!$&'()*+,;=:@"},
      {P("/x/y/z/w/v/u"), OK, "/x/y/z/w/v/u"},
  };
  RUN_ROWS(rows);
}

TEST(resolve_percent_decoding) {
  static const resolve_row rows[] = {
      {P("/a%20b.txt"), OK, "/a b.txt"},
      {P("/%61%62%63"), OK, "/abc"},
      {P("/%4A%4b"), OK, "/JK"}, /* hex digits of either case */
      {P("/100%25"), OK, "/100%"},
      /* Decoded exactly once: "%252e%252e" is the file "%2e%2e". */
      {P("/%252e%252e/x"), OK, "/%2e%2e/x"},
      {P("/%252f"), OK, "/%2f"},
      /* Encoded delimiters are data (RFC 3986 section 2.2). */
      {P("/a%3Fb"), OK, "/a?b"},
      {P("/a%23b"), OK, "/a#b"},
      {P("/a%3bb"), OK, "/a;b"},
      /* UTF-8 names, encoded or raw. */
      {P("/caf%C3%A9.html"), OK, "/caf\xc3\xa9.html"},
      {P("/%E6%97%A5%E6%9C%AC/%F0%9F%98%80"), OK,
       "/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80"},
      {P("/caf\xc3\xa9"), OK, "/caf\xc3\xa9"},
      /* Overlong UTF-8 for '.' and '/' (the old IIS bypass) are just bytes
         to a POSIX file system: no dot-segment, no separator. */
      {P("/%c0%ae%c0%ae/%c0%afetc"), OK, "/\300\256\300\256/\300\257etc"},
      {P("/%e0%80%ae"), OK, "/\xe0\x80\xae"},
      /* Decoded controls other than NUL are legal file-name bytes. */
      {P("/a%0ab"), OK, "/a\nb"},
      {P("/a%7f"), OK, "/a\x7f"},
      {P("/%ff"), OK, "/\xff"},
  };
  RUN_ROWS(rows);
}

TEST(resolve_bad_escapes) {
  static const resolve_row rows[] = {
      {P("/%"), BAD, NULL},
      {P("/%2"), BAD, NULL},
      {P("/a%"), BAD, NULL},
      {P("/a%2"), BAD, NULL},
      {P("/%2/"), BAD, NULL},
      {P("/%zz"), BAD, NULL},
      {P("/%g0"), BAD, NULL},
      {P("/%0g"), BAD, NULL},
      {P("/%%41"), BAD, NULL},
      {P("/%-1"), BAD, NULL},
      {P("/% 1"), BAD, NULL},
      {P("/%+1"), BAD, NULL},
      {P("/%x41"), BAD, NULL},
      {P("/a%2?x=1"), BAD, NULL}, /* the path ends at '?' */
      {P("/a%?"), BAD, NULL},
      {P("/%2#"), BAD, NULL},
      /* Bad escape after a traversal attempt: still an error, whichever. */
      {P("/%2e%2"), BAD, NULL},
  };
  RUN_ROWS(rows);
}

TEST(resolve_nul_and_controls) {
  static const resolve_row rows[] = {
      {P("/%00"), BAD, NULL},
      {P("/index.html%00.png"), BAD, NULL},
      {P("/a\0b"), BAD, NULL},
      {P("/\0"), BAD, NULL},
      {P("\0/a"), BAD, NULL},
      /* Raw NUL, CR, LF are malformed even in the ignored query. */
      {P("/a?\0"), BAD, NULL},
      {P("/a?x\r\nSet-Cookie: y"), BAD, NULL},
      {P("/a\r\n"), BAD, NULL},
      {P("/a\nb"), BAD, NULL},
      {P("/a b"), BAD, NULL},
      {P("/a\tb"), BAD, NULL},
      {P("/a\x01"), BAD, NULL},
      {P("/a\x1f"), BAD, NULL},
      {P("/a\x7f"), BAD, NULL},
      /* Controls after '?' other than NUL/CR/LF are the query's business. */
      {P("/a?b c\t"), OK, "/a"},
  };
  RUN_ROWS(rows);
}

TEST(resolve_not_absolute) {
  static const resolve_row rows[] = {
      {P(""), BAD, NULL},
      {P("a"), BAD, NULL},
      {P("index.html"), BAD, NULL},
      {P("../etc/passwd"), BAD, NULL},
      {P("./a"), BAD, NULL},
      {P("*"), BAD, NULL},
      {P("?a=b"), BAD, NULL},
      {P("#frag"), BAD, NULL},
      {P("%2fetc/passwd"), BAD, NULL},
      {P("%2Fetc"), BAD, NULL},
      {P("\\etc\\passwd"), BAD, NULL},
      {P("http://example.com/a"), BAD, NULL},
      {P("https://example.com/"), BAD, NULL},
      {P(" /a"), BAD, NULL},
  };
  RUN_ROWS(rows);
}

TEST(resolve_dot_dot) {
  static const resolve_row rows[] = {
      {P("/.."), NOTFOUND, NULL},
      {P("/../"), NOTFOUND, NULL},
      {P("/../etc/passwd"), NOTFOUND, NULL},
      {P("/../../../../etc/passwd"), NOTFOUND, NULL},
      {P("/a/../b"), NOTFOUND, NULL}, /* refused even inside the root */
      {P("/a/.."), NOTFOUND, NULL},
      {P("/a/b/../../.."), NOTFOUND, NULL},
      {P("//.."), NOTFOUND, NULL},
      {P("/./.."), NOTFOUND, NULL},
      {P("/%2e%2e"), NOTFOUND, NULL},
      {P("/%2E%2E/"), NOTFOUND, NULL},
      {P("/%2E%2e/etc/passwd"), NOTFOUND, NULL},
      {P("/%2e%2E/%2e%2e/etc/passwd"), NOTFOUND, NULL},
      {P("/.%2e"), NOTFOUND, NULL},
      {P("/.%2e/etc"), NOTFOUND, NULL},
      {P("/%2e."), NOTFOUND, NULL},
      {P("/a/.%2E/.%2e/x"), NOTFOUND, NULL},
      /* Tomcat-style path parameter: "..;" is still a dot-led segment. */
      {P("/..;/etc/passwd"), NOTFOUND, NULL},
      {P("/a/..;x=1/b"), NOTFOUND, NULL},
      {P("/..."), NOTFOUND, NULL},
      {P("/...."), NOTFOUND, NULL},
      {P("/..?x"), NOTFOUND, NULL},
      {P("/..#x"), NOTFOUND, NULL},
      /* A traversal in the query is not our business: the path is "/". */
      {P("/?a=../.."), OK, "/index.html"},
      {P("/x?../../etc/passwd"), OK, "/x"},
      {P("/x#/../../etc/passwd"), OK, "/x"},
      {P("/x?a#b"), OK, "/x"},
  };
  RUN_ROWS(rows);
}

TEST(resolve_encoded_separators) {
  static const resolve_row rows[] = {
      {P("/%2f"), NOTFOUND, NULL},
      {P("/%2F"), NOTFOUND, NULL},
      {P("/a%2fb"), NOTFOUND, NULL},
      {P("/..%2f..%2fetc%2fpasswd"), NOTFOUND, NULL},
      {P("/a%2f..%2f..%2fetc"), NOTFOUND, NULL},
      {P("/%2f%2fetc/passwd"), NOTFOUND, NULL},
      {P("/%5c"), NOTFOUND, NULL},
      {P("/%5C"), NOTFOUND, NULL},
      {P("/..%5c..%5cwindows"), NOTFOUND, NULL},
      {P("/a%5cb"), NOTFOUND, NULL},
      /* Raw backslashes too. */
      {P("/\\"), NOTFOUND, NULL},
      {P("/a\\b"), NOTFOUND, NULL},
      {P("/..\\..\\etc\\passwd"), NOTFOUND, NULL},
      {P("/a/\\..\\x"), NOTFOUND, NULL},
  };
  RUN_ROWS(rows);
}

TEST(resolve_hidden) {
  static const resolve_row rows[] = {
      {P("/.git/config"), NOTFOUND, NULL},
      {P("/.git"), NOTFOUND, NULL},
      {P("/.git/"), NOTFOUND, NULL},
      {P("/.env"), NOTFOUND, NULL},
      {P("/.htaccess"), NOTFOUND, NULL},
      {P("/a/.ssh/id_rsa"), NOTFOUND, NULL},
      {P("/a/b/.hidden"), NOTFOUND, NULL},
      {P("/%2egit/config"), NOTFOUND, NULL},
      {P("/%2Eenv"), NOTFOUND, NULL},
      {P("/.well-known/x"), NOTFOUND, NULL},
      {P("/.%20"), NOTFOUND, NULL},
      /* A dot that does not start a segment is ordinary. */
      {P("/a.git/config"), OK, "/a.git/config"},
      {P("/git./x"), OK, "/git./x"},
  };
  RUN_ROWS(rows);
}

TEST(resolve_dot_and_empty_segments) {
  static const resolve_row rows[] = {
      {P("//"), OK, "/index.html"},
      {P("///"), OK, "/index.html"},
      {P("//etc/passwd"), OK, "/etc/passwd"},
      {P("///etc//passwd"), OK, "/etc/passwd"},
      {P("/a//b"), OK, "/a/b"},
      {P("/a///b//"), OK, "/a/b/index.html"},
      {P("/."), OK, "/index.html"},
      {P("/./"), OK, "/index.html"},
      {P("/./a/./b"), OK, "/a/b"},
      {P("/././././a"), OK, "/a"},
      {P("/a/."), OK, "/a/index.html"}, /* RFC 3986 5.2.4: "/a/." is "/a/" */
      {P("/a/./"), OK, "/a/index.html"},
      {P("/a/.//."), OK, "/a/index.html"},
      {P("/%2e"), OK, "/index.html"},
      {P("/%2E/a"), OK, "/a"},
      {P("/a/%2e"), OK, "/a/index.html"},
      {P("/a/%2e/b"), OK, "/a/b"},
      {P("/.//./"), OK, "/index.html"},
      /* A query or fragment straight after "/" or a dot-segment. */
      {P("/?x"), OK, "/index.html"},
      {P("/#x"), OK, "/index.html"},
      {P("/a/?x"), OK, "/a/index.html"},
      {P("/a/.?x"), OK, "/a/index.html"},
      {P("/a?"), OK, "/a"},
      {P("/a#"), OK, "/a"},
      {P("/a?b?c#d#e"), OK, "/a"},
      {P("/a#b?c"), OK, "/a"},
  };
  RUN_ROWS(rows);
}

/* Exact fit and one byte short, at the boundary. */
TEST(resolve_buffer_sizes) {
  char out[64];
  const char *want = ROOT "/abc";
  size_t need = strlen(want) + 1;
  int rc;

  memset(out, 'X', sizeof(out));
  rc = h3wt_path_resolve(ROOT, P("/abc"), out, need);
  CHECK_EQ_INT(rc, OK);
  CHECK_EQ_STR(out, want);
  CHECK_EQ_INT(out[need], 'X'); /* nothing written past outlen */

  memset(out, 'X', sizeof(out));
  rc = h3wt_path_resolve(ROOT, P("/abc"), out, need - 1);
  CHECK_EQ_INT(rc, TOOLONG);
  CHECK_EQ_STR(out, "");
  CHECK_EQ_INT(out[need - 1], 'X');

  /* index.html counts: "/srv/www/index.html" is 19 bytes + NUL. */
  memset(out, 'X', sizeof(out));
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/"), out, 20), OK);
  CHECK_EQ_STR(out, ROOT "/index.html");
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/"), out, 19), TOOLONG);
  CHECK_EQ_STR(out, "");

  /* Dropped segments and the query do not count towards the size. */
  CHECK_EQ_INT(
      h3wt_path_resolve(ROOT, P("/./././/abc?qqqqqqqqqqqqqqqqqq"), out, need),
      OK);
  CHECK_EQ_STR(out, want);

  /* Escapes count as the one byte they decode to. */
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/%61%62%63"), out, need), OK);
  CHECK_EQ_STR(out, want);

  /* The root alone may not fit. */
  memset(out, 'X', sizeof(out));
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/a"), out, 4), TOOLONG);
  CHECK_EQ_STR(out, "");
  CHECK_EQ_INT(out[1], 'X');

  /* outlen 0: nothing at all is written. */
  memset(out, 'X', sizeof(out));
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/a"), out, 0), TOOLONG);
  CHECK_EQ_INT(out[0], 'X');
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/.."), out, 0), NOTFOUND);
  CHECK_EQ_INT(out[0], 'X');
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/%zz"), out, 0), BAD);
  CHECK_EQ_INT(out[0], 'X');
}

/* A path that is both too long and hostile is reported as hostile: the
   buffer size must not change which requests are refused as what. */
TEST(resolve_overlong) {
  enum { N = 100000 };
  char *path = malloc(N + 64);
  char out[256];
  size_t k, len;

  CHECK(path != NULL);
  if (path == NULL)
    return;

  /* "/aaaa...a": a long but harmless name. */
  path[0] = '/';
  memset(path + 1, 'a', N);
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, path, N + 1, out, sizeof(out)), TOOLONG);
  CHECK_EQ_STR(out, "");

  /* ... followed by "/../x", "/.git", "%zz", "%00", "%2f", "\\". */
  static const struct {
    const char *tail;
    int rc;
  } tails[] = {
      {"/../x", NOTFOUND},   {"/.git", NOTFOUND}, {"/%2e%2e", NOTFOUND},
      {"%2f", NOTFOUND},     {"\\", NOTFOUND},    {"%zz", BAD},
      {"%00", BAD},          {"%2", BAD},         {" ", BAD},
      {"?q=../..", TOOLONG}, {"/./", TOOLONG},
  };
  for (k = 0; k < sizeof(tails) / sizeof(tails[0]); k++) {
    TEST_CONTEXT("tail \"%s\"", tails[k].tail);
    len = strlen(tails[k].tail);
    memcpy(path + 1 + N, tails[k].tail, len);
    CHECK_EQ_INT(h3wt_path_resolve(ROOT, path, N + 1 + len, out, sizeof(out)),
                 tails[k].rc);
    CHECK_EQ_STR(out, "");
  }
  TEST_CONTEXT("%s", "");

  /* Many tiny segments: "/a/a/a/..." and "/./././...", each in one pass. */
  for (k = 0; k < N; k += 2) {
    path[k] = '/';
    path[k + 1] = 'a';
  }
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, path, N, out, sizeof(out)), TOOLONG);
  for (k = 0; k < N; k += 2) {
    path[k] = '/';
    path[k + 1] = '.';
  }
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, path, N, out, sizeof(out)), OK);
  CHECK_EQ_STR(out, ROOT "/index.html");
  memset(path, '/', N);
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, path, N, out, sizeof(out)), OK);
  CHECK_EQ_STR(out, ROOT "/index.html");

  /* A big buffer takes a big path. */
  {
    char *big = malloc(N + 64);
    CHECK(big != NULL);
    if (big != NULL) {
      path[0] = '/';
      memset(path + 1, 'b', N - 1);
      CHECK_EQ_INT(h3wt_path_resolve("r", path, N, big, N + 64), OK);
      CHECK_EQ_INT(strlen(big), N + 1);
      CHECK_EQ_MEM(big, "r/bbbb", 6);
      free(big);
    }
  }
  free(path);
}

/* pathlen is authoritative: bytes after it are not read, and the path need
   not be NUL-terminated. */
TEST(resolve_not_nul_terminated) {
  char buf[] = {'/', 'a', 'b', '/', '.', '.'};
  char out[64];

  CHECK_EQ_INT(h3wt_path_resolve(ROOT, buf, 3, out, sizeof(out)), OK);
  CHECK_EQ_STR(out, ROOT "/ab");
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, buf, 4, out, sizeof(out)), OK);
  CHECK_EQ_STR(out, ROOT "/ab/index.html");
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, buf, 6, out, sizeof(out)), NOTFOUND);

  /* A truncated escape at the very end of the bytes given is not completed
     from whatever follows in memory. */
  {
    char esc[] = {'/', '%', '4', '1'};
    CHECK_EQ_INT(h3wt_path_resolve(ROOT, esc, 3, out, sizeof(out)), BAD);
    CHECK_EQ_INT(h3wt_path_resolve(ROOT, esc, 2, out, sizeof(out)), BAD);
    CHECK_EQ_INT(h3wt_path_resolve(ROOT, esc, 4, out, sizeof(out)), OK);
    CHECK_EQ_STR(out, ROOT "/A");
  }
}

TEST(resolve_roots) {
  char out[64];

  /* The root is copied verbatim, trailing '/' or not. */
  CHECK_EQ_INT(h3wt_path_resolve("www", P("/a"), out, sizeof(out)), OK);
  CHECK_EQ_STR(out, "www/a");
  CHECK_EQ_INT(h3wt_path_resolve("./www", P("/"), out, sizeof(out)), OK);
  CHECK_EQ_STR(out, "./www/index.html");
  CHECK_EQ_INT(h3wt_path_resolve("/srv/www/", P("/a"), out, sizeof(out)), OK);
  CHECK_EQ_STR(out, "/srv/www//a");
  CHECK_EQ_INT(h3wt_path_resolve(".", P("/a/b"), out, sizeof(out)), OK);
  CHECK_EQ_STR(out, "./a/b");
  CHECK_EQ_INT(h3wt_path_resolve("", P("/a"), out, sizeof(out)), OK);
  CHECK_EQ_STR(out, "/a");
}

TEST(resolve_null_arguments) {
  char out[16];

  memset(out, 'X', sizeof(out));
  CHECK_EQ_INT(h3wt_path_resolve(NULL, P("/a"), out, sizeof(out)), BAD);
  CHECK_EQ_STR(out, "");
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, NULL, 3, out, sizeof(out)), BAD);
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, NULL, 0, out, sizeof(out)), BAD);
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/a"), NULL, 16), BAD);
}

typedef struct mime_row {
  const char *name;
  const char *type;
} mime_row;

TEST(mime_types) {
  static const mime_row rows[] = {
      {"index.html", "text/html; charset=utf-8"},
      {"old.htm", "text/html; charset=utf-8"},
      {"INDEX.HTML", "text/html; charset=utf-8"},
      {"Index.HtMl", "text/html; charset=utf-8"},
      {"style.css", "text/css; charset=utf-8"},
      {"app.js", "text/javascript; charset=utf-8"},
      {"mod.mjs", "text/javascript; charset=utf-8"},
      {"readme.txt", "text/plain; charset=utf-8"},
      {"data.json", "application/json"},
      {"app.js.map", "application/json"},
      {"logo.svg", "image/svg+xml"},
      {"a.png", "image/png"},
      {"a.PNG", "image/png"},
      {"a.jpg", "image/jpeg"},
      {"a.jpeg", "image/jpeg"},
      {"a.JPEG", "image/jpeg"},
      {"a.gif", "image/gif"},
      {"a.webp", "image/webp"},
      {"favicon.ico", "image/x-icon"},
      {"mod.wasm", "application/wasm"},
      {"f.woff2", "font/woff2"},
      {"f.woff", "font/woff"},
      {"site.webmanifest", "application/manifest+json"},
      {"a.tar.gz", "application/gzip"},
      /* Only the last extension of the last component counts. */
      {"/srv/www/a/b/index.html", "text/html; charset=utf-8"},
      {"/srv/www/a.html/file", "application/octet-stream"},
      {"./www/x.css", "text/css; charset=utf-8"},
      {"a.html.exe", "application/octet-stream"},
      {"a.exe.html", "text/html; charset=utf-8"},
      /* No extension, empty extension, hidden files, near misses. */
      {"Makefile", "application/octet-stream"},
      {"", "application/octet-stream"},
      {"a.", "application/octet-stream"},
      {".", "application/octet-stream"},
      {"..", "application/octet-stream"},
      {".html", "application/octet-stream"},
      {"dir/.json", "application/octet-stream"},
      {"a.htmlx", "application/octet-stream"},
      {"a.ht", "application/octet-stream"},
      {"a.h", "application/octet-stream"},
      {"a.jsx", "application/octet-stream"},
      {"a.j", "application/octet-stream"},
      {"a.bin", "application/octet-stream"},
      {"a.html/", "application/octet-stream"},
      {"a.html ", "application/octet-stream"},
      {"a.\xc3\xa9", "application/octet-stream"},
  };
  size_t k;

  for (k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
    TEST_CONTEXT("row %zu, \"%s\"", k, rows[k].name);
    CHECK_EQ_STR(h3wt_path_mime_type(rows[k].name), rows[k].type);
  }
  TEST_CONTEXT("%s", "");
  CHECK_EQ_STR(h3wt_path_mime_type(NULL), "application/octet-stream");
}

/* A type carries "; charset=utf-8" exactly when it is a text/ type. */
TEST(mime_text_has_charset) {
  static const char *const names[] = {
      "a.html", "a.htm",  "a.css",  "a.js",   "a.mjs", "a.txt",
      "a.md",   "a.csv",  "a.json", "a.map",  "a.svg", "a.png",
      "a.jpg",  "a.jpeg", "a.gif",  "a.webp", "a.ico", "a.wasm",
      "a.xml",  "a.pdf",  "a.woff", "a.mp4",  "a.zip", "a.bin",
  };
  static const char suffix[] = "; charset=utf-8";
  size_t k;

  for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
    const char *t = h3wt_path_mime_type(names[k]);
    size_t tl, sl = sizeof(suffix) - 1;
    int text, charset;

    TEST_CONTEXT("%s", names[k]);
    CHECK(t != NULL);
    if (t == NULL)
      continue;
    tl = strlen(t);
    text = strncmp(t, "text/", 5) == 0;
    charset = tl > sl && strcmp(t + tl - sl, suffix) == 0;
    CHECK_EQ_INT(text, charset);
    CHECK(strchr(t, ' ') == NULL || charset); /* no other parameters */
  }
  CHECK_EQ_STR(h3wt_path_mime_type("a.txt"), "text/plain; charset=utf-8");
}

/* Resolution then typing, as the static-file server will use them. */
TEST(resolve_then_mime) {
  char out[128];

  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/docs/"), out, sizeof(out)), OK);
  CHECK_EQ_STR(h3wt_path_mime_type(out), "text/html; charset=utf-8");
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/app.js?v=3"), out, sizeof(out)), OK);
  CHECK_EQ_STR(h3wt_path_mime_type(out), "text/javascript; charset=utf-8");
  CHECK_EQ_INT(h3wt_path_resolve(ROOT, P("/a.wasm#x"), out, sizeof(out)), OK);
  CHECK_EQ_STR(h3wt_path_mime_type(out), "application/wasm");
}

static const h3wt_test_case tests[] = {
    TEST_ENTRY(resolve_normal),
    TEST_ENTRY(resolve_percent_decoding),
    TEST_ENTRY(resolve_bad_escapes),
    TEST_ENTRY(resolve_nul_and_controls),
    TEST_ENTRY(resolve_not_absolute),
    TEST_ENTRY(resolve_dot_dot),
    TEST_ENTRY(resolve_encoded_separators),
    TEST_ENTRY(resolve_hidden),
    TEST_ENTRY(resolve_dot_and_empty_segments),
    TEST_ENTRY(resolve_buffer_sizes),
    TEST_ENTRY(resolve_overlong),
    TEST_ENTRY(resolve_not_nul_terminated),
    TEST_ENTRY(resolve_roots),
    TEST_ENTRY(resolve_null_arguments),
    TEST_ENTRY(mime_types),
    TEST_ENTRY(mime_text_has_charset),
    TEST_ENTRY(resolve_then_mime),
};

int main(int argc, char **argv) {
  return TEST_MAIN(argc, argv, tests);
}
