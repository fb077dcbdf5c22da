/*
 * The static-file handler's cache of small files (lib/h3wt_static.c): what
 * it serves is the file on disk, through changes in place (same size and
 * not), replacement, deletion, eviction and the racy rule; files over the
 * per-file limit are streamed as before; what it holds stays under its
 * bound; hostile paths stay refused even for files it holds.  A real
 * server and client on one loop (UDP on 127.0.0.1, real TLS); the cache's
 * counters come from its internal header.  Each test ends with
 * uv_loop_close() == 0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h3wt/h3wt.h"
#include "h3wt_server.h"
#include "h3wt_static.h"
#include "h3wt_test.h"
#include "loop_cert.h"

#define BODY_MAX (512 * 1024)

static struct {
  uv_loop_t loop;
  h3wt_server *server;
  h3wt_client *client;
  h3wt_static_cache *cache;
  char certdir[64], cert[256], key[256];
  char web[64];
  int client_closed;
} F;

/* One response, as the client saw it. */
typedef struct response {
  int done, err, status;
  char ctype[128];
  long long clen; /* -1: no content-length */
  size_t len;
  uint8_t *body;
} response;

static void r_headers(h3wt_client_request *r, int status,
                      const h3wt_header *h, size_t n, void *ud) {
  response *rs = ud;
  rs->status = status;
  for (size_t i = 0; i < n; ++i) {
    if (h[i].namelen == 12 && memcmp(h[i].name, "content-type", 12) == 0) {
      snprintf(rs->ctype, sizeof(rs->ctype), "%.*s", (int)h[i].valuelen,
               h[i].value);
    }
    if (h[i].namelen == 14 && memcmp(h[i].name, "content-length", 14) == 0) {
      rs->clen = strtoll(h[i].value, NULL, 10);
    }
  }
}

static void r_body(h3wt_client_request *r, const uint8_t *d, size_t n,
                   void *ud) {
  response *rs = ud;
  size_t take = n;
  if (rs->len + take > BODY_MAX) {
    take = BODY_MAX - rs->len;
  }
  memcpy(rs->body + rs->len, d, take);
  rs->len += n; /* counts past BODY_MAX too: a check then fails */
}

static void r_close(h3wt_client_request *r, int err, uint64_t code,
                    void *ud) {
  response *rs = ud;
  rs->err = err;
  rs->done = 1;
}

static const h3wt_response_handler rh = {r_headers, r_body, r_close};

/* Runs the loop until rs is complete (or 20 s pass). */
static void run_until(response *rs) {
  uint64_t start = uv_now(&F.loop);
  while (!rs->done && uv_now(&F.loop) - start < 20000) {
    uv_run(&F.loop, UV_RUN_ONCE);
  }
  CHECK(rs->done);
}

/* A request for path with method; the response in *rs (body: caller
   frees rs->body). */
static void request(const char *method, const char *path, response *rs) {
  memset(rs, 0, sizeof(*rs));
  rs->clen = -1;
  rs->body = malloc(BODY_MAX);
  CHECK_EQ_INT(h3wt_client_request_send(F.client, method, path, NULL, 0, NULL,
                                        0, &rh, rs, NULL),
               0);
  run_until(rs);
  CHECK_EQ_INT(rs->err, 0);
}

static void get(const char *path, response *rs) {
  request("GET", path, rs);
}

/* GET path and check a 200 with exactly the n bytes at want. */
static void get_expect(const char *path, const void *want, size_t n) {
  response rs;
  TEST_CONTEXT("GET %s", path);
  get(path, &rs);
  CHECK_EQ_INT(rs.status, 200);
  CHECK_EQ_INT(rs.clen, (long long)n);
  CHECK_EQ_INT(rs.len, n);
  if (rs.len == n) {
    CHECK_EQ_MEM(rs.body, want, n);
  }
  free(rs.body);
  TEST_CONTEXT("%s", "");
}

static int get_status(const char *path) {
  response rs;
  get(path, &rs);
  int st = rs.status;
  free(rs.body);
  return st;
}

static h3wt_static_cache_stats stats(void) {
  h3wt_static_cache_stats s;
  h3wt_static_cache_get_stats(F.cache, &s);
  return s;
}

static void web_path(const char *name, char *out, size_t len) {
  snprintf(out, len, "%s/%s", F.web, name);
}

/* Writes n bytes to web/name: truncating (a new size) or in place
   (pwrite at 0 without truncation: same size, same inode). */
static void write_file(const char *name, const void *data, size_t n,
                       int in_place) {
  char p[256];
  web_path(name, p, sizeof(p));
  int fd = open(p, O_WRONLY | O_CREAT | (in_place ? 0 : O_TRUNC), 0644);
  CHECK(fd >= 0);
  CHECK_EQ_INT(pwrite(fd, data, n, 0), (long long)n);
  close(fd);
}

static void fill(uint8_t *b, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1103515245u + 12345u;
    b[i] = (uint8_t)(seed >> 16);
  }
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Past the racy window the tests use (RACY_MS): files written before
   this are cacheable.  The files live below /tmp, whose file systems
   (ext4, tmpfs) keep nanosecond times with a granularity of a jiffy, well
   under RACY_MS; the default (2 s) also covers 1-second file systems. */
#define RACY_MS 100
static void settle(void) {
  sleep_ms(RACY_MS + 50);
}

static void client_closed(h3wt_client *cl, int err, void *ud) {
  F.client_closed = 1;
}

/* A server serving F.web on "/" and a client; the cache's limits as given
   (revalidate_ms, racy_ms and sizes). */
static void setup(const h3wt_static_cache_limits *lim) {
  h3wt_server_settings ss;
  h3wt_client_settings cs;
  h3wt_client_callbacks cbs = {NULL, client_closed};
  memset(&F, 0, sizeof(F));
  snprintf(F.certdir, sizeof(F.certdir), "/tmp/h3wt-scache-c-XXXXXX");
  snprintf(F.web, sizeof(F.web), "/tmp/h3wt-scache-w-XXXXXX");
  CHECK_EQ_INT(loop_devcert(F.certdir, F.cert, sizeof(F.cert), F.key,
                            sizeof(F.key)),
               0);
  CHECK(mkdtemp(F.web) != NULL);
  CHECK_EQ_INT(uv_loop_init(&F.loop), 0);
  h3wt_server_settings_default(&ss);
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.cert_file = F.cert;
  ss.key_file = F.key;
  CHECK_EQ_INT(h3wt_server_new(&F.server, &F.loop, &ss), 0);
  CHECK(h3wt_server_static_cache(F.server) == NULL); /* made with a mount */
  CHECK_EQ_INT(h3wt_server_static(F.server, "/", F.web), 0);
  F.cache = h3wt_server_static_cache(F.server);
  CHECK(F.cache != NULL);
  h3wt_static_cache_set_limits(F.cache, lim);
  CHECK_EQ_INT(h3wt_server_listen(F.server), 0);
  h3wt_client_settings_default(&cs);
  cs.host = "127.0.0.1";
  cs.port = h3wt_server_port(F.server);
  cs.insecure = 1;
  CHECK_EQ_INT(h3wt_client_new(&F.client, &F.loop, &cs, &cbs, NULL), 0);
}

static void limits(h3wt_static_cache_limits *l) {
  h3wt_static_cache_limits_default(l);
  l->revalidate_ms = 0; /* stat before every response */
  l->racy_ms = RACY_MS;
}

static void rm_tree(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  CHECK_EQ_INT(system(cmd), 0);
}

static void teardown(void) {
  h3wt_client_close(F.client);
  uint64_t start = uv_now(&F.loop);
  while (!F.client_closed && uv_now(&F.loop) - start < 10000) {
    uv_run(&F.loop, UV_RUN_ONCE);
  }
  CHECK(F.client_closed);
  h3wt_client_del(F.client);
  h3wt_server_close(F.server, NULL, NULL);
  uv_run(&F.loop, UV_RUN_DEFAULT);
  h3wt_server_del(F.server);
  CHECK_EQ_INT(uv_loop_close(&F.loop), 0);
  loop_devcert_remove(F.certdir, F.cert, F.key);
  rm_tree(F.web);
}

/* ---- tests ---------------------------------------------------------------- */

TEST(serves_from_memory) {
  h3wt_static_cache_limits l;
  uint8_t a[1000], z[1];
  limits(&l);
  setup(&l);
  fill(a, sizeof(a), 1);
  write_file("a.bin", a, sizeof(a), 0);
  write_file("empty.txt", z, 0, 0);
  settle();
  get_expect("/a.bin", a, sizeof(a));
  h3wt_static_cache_stats s = stats();
  CHECK_EQ_INT(s.misses, 1);
  CHECK_EQ_INT(s.hits, 0);
  CHECK_EQ_INT(s.entries, 1);
  CHECK(s.bytes >= sizeof(a));
  for (int i = 0; i < 5; ++i) {
    get_expect("/a.bin", a, sizeof(a));
  }
  s = stats();
  CHECK_EQ_INT(s.misses, 1);
  CHECK_EQ_INT(s.hits, 5);
  CHECK_EQ_INT(s.revalidations, 5); /* revalidate_ms 0: one stat each */
  CHECK_EQ_INT(s.invalidations, 0);
  /* An empty file, twice (the second from memory). */
  get_expect("/empty.txt", z, 0);
  get_expect("/empty.txt", z, 0);
  CHECK_EQ_INT(stats().hits, 6);
  /* HEAD from memory: the length, no body. */
  response rs;
  request("HEAD", "/a.bin", &rs);
  CHECK_EQ_INT(rs.status, 200);
  CHECK_EQ_INT(rs.clen, (long long)sizeof(a));
  CHECK_EQ_INT(rs.len, 0);
  free(rs.body);
  CHECK_EQ_INT(stats().hits, 7);
  /* The same file spelled with an escape: the same bytes from memory,
     and the content type of this spelling, as before the cache. */
  get_expect("/a.bin", a, sizeof(a));
  get("/a.%62in", &rs);
  CHECK_EQ_INT(rs.status, 200);
  CHECK_EQ_STR(rs.ctype, "application/octet-stream");
  free(rs.body);
  write_file("t.txt", "text\n", 5, 0);
  settle();
  get("/t.txt", &rs);
  CHECK_EQ_STR(rs.ctype, "text/plain; charset=utf-8");
  free(rs.body);
  get("/t.%74xt", &rs); /* "%74" is 't': the type of ".%74xt" */
  CHECK_EQ_INT(rs.status, 200);
  CHECK_EQ_STR(rs.ctype, "application/octet-stream");
  CHECK_EQ_INT(rs.len, 5);
  free(rs.body);
  get("/t.txt?x=1.html", &rs); /* the query is not the name */
  CHECK_EQ_STR(rs.ctype, "text/plain; charset=utf-8");
  free(rs.body);
  teardown();
}

TEST(changes_on_disk_are_served) {
  h3wt_static_cache_limits l;
  uint8_t a[1000], b[1000], c[3000];
  char p[256], q[256];
  limits(&l);
  setup(&l);
  fill(a, sizeof(a), 1);
  fill(b, sizeof(b), 2);
  fill(c, sizeof(c), 3);
  write_file("f.bin", a, sizeof(a), 0);
  settle();
  get_expect("/f.bin", a, sizeof(a));
  get_expect("/f.bin", a, sizeof(a));
  CHECK_EQ_INT(stats().hits, 1);

  /* Same size, same inode, new bytes. */
  write_file("f.bin", b, sizeof(b), 1);
  get_expect("/f.bin", b, sizeof(b));
  CHECK_EQ_INT(stats().invalidations, 1);

  /* A new size. */
  settle();
  get_expect("/f.bin", b, sizeof(b)); /* cached again */
  write_file("f.bin", c, sizeof(c), 0);
  get_expect("/f.bin", c, sizeof(c));
  CHECK_EQ_INT(stats().invalidations, 2);

  /* Replaced by rename with a file of the same size and the same mtime:
     the inode (and ctime) tell. */
  settle();
  get_expect("/f.bin", c, sizeof(c));
  struct stat st;
  web_path("f.bin", p, sizeof(p));
  CHECK_EQ_INT(stat(p, &st), 0);
  fill(c, sizeof(c), 4);
  write_file("g.tmp", c, sizeof(c), 0);
  web_path("g.tmp", q, sizeof(q));
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  CHECK_EQ_INT(utimensat(AT_FDCWD, q, times, 0), 0);
  CHECK_EQ_INT(rename(q, p), 0);
  get_expect("/f.bin", c, sizeof(c));
  CHECK_EQ_INT(stats().invalidations, 3);

  /* Deleted: 404, and nothing of it kept. */
  settle();
  get_expect("/f.bin", c, sizeof(c));
  CHECK_EQ_INT(stats().entries, 1);
  CHECK_EQ_INT(unlink(p), 0);
  CHECK_EQ_INT(get_status("/f.bin"), 404);
  CHECK_EQ_INT(stats().entries, 0);
  CHECK_EQ_INT(stats().bytes, 0);
  CHECK_EQ_INT(stats().invalidations, 4);
  /* Back again. */
  write_file("f.bin", a, sizeof(a), 0);
  get_expect("/f.bin", a, sizeof(a));
  /* Turned into a directory: 404. */
  CHECK_EQ_INT(unlink(p), 0);
  CHECK_EQ_INT(mkdir(p, 0755), 0);
  CHECK_EQ_INT(get_status("/f.bin"), 404);
  teardown();
}

TEST(racy_files_are_not_kept) {
  h3wt_static_cache_limits l;
  uint8_t a[500], b[500];
  limits(&l);
  l.racy_ms = 60000; /* everything written in this test is "recent" */
  setup(&l);
  fill(a, sizeof(a), 5);
  fill(b, sizeof(b), 6);
  write_file("r.bin", a, sizeof(a), 0);
  get_expect("/r.bin", a, sizeof(a));
  get_expect("/r.bin", a, sizeof(a));
  h3wt_static_cache_stats s = stats();
  CHECK_EQ_INT(s.hits, 0);
  CHECK_EQ_INT(s.misses, 2);
  CHECK_EQ_INT(s.uncached, 2);
  CHECK_EQ_INT(s.entries, 0);
  /* A change within the same timestamp tick could not be told apart by
     stat(); not being cached, it is read again. */
  write_file("r.bin", b, sizeof(b), 1);
  get_expect("/r.bin", b, sizeof(b));
  teardown();
}

TEST(revalidation_interval) {
  h3wt_static_cache_limits l;
  uint8_t a[700], b[700];
  limits(&l);
  l.revalidate_ms = 1500; /* the six GETs below take far less (ASan,
                              valgrind, a loaded machine included) */
  setup(&l);
  fill(a, sizeof(a), 7);
  fill(b, sizeof(b), 8);
  write_file("v.bin", a, sizeof(a), 0);
  settle();
  get_expect("/v.bin", a, sizeof(a));
  for (int i = 0; i < 5; ++i) {
    get_expect("/v.bin", a, sizeof(a));
  }
  /* Within the interval no stat() at all: that is what it saves. */
  CHECK_EQ_INT(stats().revalidations, 0);
  CHECK_EQ_INT(stats().hits, 5);
  write_file("v.bin", b, sizeof(b), 1);
  /* After it, the change is served. */
  sleep_ms(1600);
  uv_update_time(&F.loop);
  get_expect("/v.bin", b, sizeof(b));
  CHECK_EQ_INT(stats().revalidations, 1);
  CHECK_EQ_INT(stats().invalidations, 1);
  teardown();
}

TEST(large_files_are_streamed_not_kept) {
  h3wt_static_cache_limits l;
  static uint8_t big[200 * 1024], mid[10 * 1024];
  limits(&l);
  l.max_file = 4096;
  setup(&l);
  fill(big, sizeof(big), 9);
  fill(mid, sizeof(mid), 10);
  write_file("big.bin", big, sizeof(big), 0);
  write_file("mid.bin", mid, sizeof(mid), 0);
  settle();
  for (int i = 0; i < 2; ++i) {
    get_expect("/big.bin", big, sizeof(big)); /* thread-pool reads */
    get_expect("/mid.bin", mid, sizeof(mid)); /* one read on the loop */
  }
  h3wt_static_cache_stats s = stats();
  CHECK_EQ_INT(s.entries, 0);
  CHECK_EQ_INT(s.bytes, 0);
  CHECK_EQ_INT(s.hits, 0);
  CHECK_EQ_INT(s.misses, 4);
  /* Changed on disk: streamed fresh as always. */
  fill(big, sizeof(big), 11);
  write_file("big.bin", big, sizeof(big), 1);
  get_expect("/big.bin", big, sizeof(big));
  /* With the default limit (64 KiB) mid.bin is kept, big.bin is not. */
  h3wt_static_cache_limits_default(&l);
  l.revalidate_ms = 0;
  l.racy_ms = RACY_MS;
  h3wt_static_cache_set_limits(F.cache, &l);
  settle();
  get_expect("/mid.bin", mid, sizeof(mid));
  get_expect("/mid.bin", mid, sizeof(mid));
  get_expect("/big.bin", big, sizeof(big));
  s = stats();
  CHECK_EQ_INT(s.entries, 1);
  CHECK_EQ_INT(s.hits, 1);
  /* Lowering max_file drops what no longer fits. */
  l.max_file = 1024;
  h3wt_static_cache_set_limits(F.cache, &l);
  CHECK_EQ_INT(stats().entries, 0);
  CHECK_EQ_INT(stats().bytes, 0);
  get_expect("/mid.bin", mid, sizeof(mid));
  teardown();
}

TEST(eviction_keeps_memory_bounded) {
  h3wt_static_cache_limits l;
  enum { N = 12, SZ = 2000 };
  static uint8_t files[N][SZ];
  char name[32], path[32];
  limits(&l);
  /* Room for three of these files with their entries and names, not
     four. */
  l.max_total = 3 * SZ + 1200;
  setup(&l);
  for (int i = 0; i < N; ++i) {
    fill(files[i], SZ, 100 + (unsigned)i);
    snprintf(name, sizeof(name), "e%02d.bin", i);
    write_file(name, files[i], SZ, 0);
  }
  settle();
  for (int i = 0; i < N; ++i) {
    snprintf(path, sizeof(path), "/e%02d.bin", i);
    get_expect(path, files[i], SZ);
    h3wt_static_cache_stats s = stats();
    CHECK(s.bytes <= l.max_total);
    CHECK(s.entries <= 3);
  }
  h3wt_static_cache_stats s = stats();
  CHECK_EQ_INT(s.entries, 3);
  CHECK_EQ_INT(s.evictions, N - 3);
  /* Least recently used goes first: 9, 10, 11 are held; use 9, add 0:
     10 goes. */
  get_expect("/e09.bin", files[9], SZ);
  get_expect("/e00.bin", files[0], SZ);
  uint64_t hits = stats().hits;
  get_expect("/e09.bin", files[9], SZ);
  get_expect("/e11.bin", files[11], SZ);
  CHECK_EQ_INT(stats().hits, hits + 2);
  uint64_t misses = stats().misses;
  get_expect("/e10.bin", files[10], SZ);
  CHECK_EQ_INT(stats().misses, misses + 1);
  /* A file bigger than the whole budget is served, not kept. */
  static uint8_t large[3 * SZ + 1200];
  fill(large, sizeof(large), 77);
  write_file("large.bin", large, sizeof(large), 0);
  settle();
  get_expect("/large.bin", large, sizeof(large));
  CHECK(stats().bytes <= l.max_total);
  /* No budget: nothing kept, everything served. */
  l.max_total = 0;
  h3wt_static_cache_set_limits(F.cache, &l);
  CHECK_EQ_INT(stats().entries, 0);
  CHECK_EQ_INT(stats().bytes, 0);
  get_expect("/e01.bin", files[1], SZ);
  CHECK_EQ_INT(stats().entries, 0);
  teardown();
}

TEST(hostile_paths_stay_refused) {
  h3wt_static_cache_limits l;
  uint8_t a[300];
  char p[256], secret[300];
  limits(&l);
  setup(&l);
  fill(a, sizeof(a), 12);
  write_file("a.bin", a, sizeof(a), 0);
  web_path("sub", p, sizeof(p));
  CHECK_EQ_INT(mkdir(p, 0755), 0);
  write_file("sub/index.html", "<p>sub</p>\n", 11, 0);
  write_file(".hidden", "hidden\n", 7, 0);
  /* A file next to the web folder, cached under its own resolved name
     if it ever were. */
  snprintf(secret, sizeof(secret), "%s-secret", F.web);
  FILE *f = fopen(secret, "w");
  CHECK(f != NULL);
  fputs("SECRET\n", f);
  fclose(f);
  settle();
  /* Held in the cache... */
  get_expect("/a.bin", a, sizeof(a));
  get_expect("/a.bin", a, sizeof(a));
  get_expect("/sub/", "<p>sub</p>\n", 11);
  get_expect("/sub/", "<p>sub</p>\n", 11);
  CHECK_EQ_INT(stats().hits, 2);
  /* ...and still out of reach by any path that leaves or hides. */
  const char *bad[] = {"/sub/../a.bin",     "/sub/%2e%2e/a.bin",
                       "/sub/%2E%2E/a.bin", "/../a.bin",
                       "/.hidden",          "/%2ehidden",
                       "/sub",              "/sub/..%2fa.bin",
                       "/a.bin%00",         "/a.bin%00.html",
                       "/%00",              "/%zz",
                       "/a.bin/"};
  const char *base = strrchr(F.web, '/') + 1;
  char up[128];
  snprintf(up, sizeof(up), "/../%s-secret", base);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + 1; ++i) {
    const char *path = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : up;
    response rs;
    TEST_CONTEXT("GET %s", path);
    get(path, &rs);
    CHECK(rs.status == 404 || rs.status == 400);
    CHECK(rs.len < 6 || memcmp(rs.body, "SECRET", 6) != 0);
    CHECK(rs.len != sizeof(a) || memcmp(rs.body, a, sizeof(a)) != 0);
    free(rs.body);
  }
  TEST_CONTEXT("%s", "");
  CHECK_EQ_INT(get_status("/%00"), 400);
  CHECK_EQ_INT(get_status("/sub/../a.bin"), 404);
  /* A very long path: refused or not found, never served. */
  static char lp[6000];
  lp[0] = '/';
  memset(lp + 1, 'a', sizeof(lp) - 2);
  lp[sizeof(lp) - 1] = '\0';
  int st = get_status(lp);
  CHECK(st == 404 || st == 400 || st == 414 || st == 431);
  /* Long and hostile. */
  static char lh[5000];
  size_t k = 0;
  while (k + 4 < sizeof(lh) - 20) {
    memcpy(lh + k, "/a/.", 4);
    k += 4;
  }
  memcpy(lh + k, "/../a.bin", 10);
  st = get_status(lh);
  CHECK(st == 404 || st == 400 || st == 431);
  /* The cache still serves the file by its real name. */
  get_expect("/a.bin", a, sizeof(a));
  unlink(secret);
  teardown();
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(serves_from_memory),
      TEST_ENTRY(changes_on_disk_are_served),
      TEST_ENTRY(racy_files_are_not_kept),
      TEST_ENTRY(revalidation_interval),
      TEST_ENTRY(large_files_are_streamed_not_kept),
      TEST_ENTRY(eviction_keeps_memory_bounded),
      TEST_ENTRY(hostile_paths_stay_refused),
  };
  return TEST_MAIN(argc, argv, tests);
}
