/*
 * libFuzzer target: the HTTP/1.1 listener of the demo page (apps/h3wt_http1.c)
 * fed hostile bytes over a real loopback TCP connection.
 *
 * Why a socket and not a parse function: what a hostile peer reaches is the
 * whole listener (llhttp, our limits, pipelining, keep-alive, the path
 * resolver, the file reads and the close paths), and every piece of it is
 * driven by when bytes arrive.  One listener lives for the whole run on its
 * own libuv loop; each input is one connection.
 *
 * Input: byte 0 picks how the rest is written: >= 0xc0 in chunks of
 * (byte 0 & 0x3f) + 1 bytes with the loop run between them (the parser sees
 * every split), otherwise in one go.  Then the client half-closes and reads
 * until the server closes.  Checked: the server closes within a deadline (no
 * hang on EOF), whatever it sends begins with a status line, and every
 * 256th input a normal request still gets 200 (it keeps serving others).
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "h3wt_http1.h"

#define DEADLINE_MS 3000
#define INDEX_BODY "<!doctype html><title>fuzz</title>\n"

static uv_loop_t loop;
static h3wt_http1 *listener;
static uint16_t port;
static char webdir[] = "/tmp/h3wt-fuzz-http1-XXXXXX";
static uint64_t inputs;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void write_file(const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", webdir, name);
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    fprintf(stderr, "fuzz_http1: cannot write %s\n", path);
    abort();
  }
}

static void cleanup(void) {
  static const char *const files[] = {"index.html", "a.txt", "sub/b.css",
                                      ".hidden"};
  char path[256];
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); ++i) {
    snprintf(path, sizeof(path), "%s/%s", webdir, files[i]);
    unlink(path);
  }
  snprintf(path, sizeof(path), "%s/sub", webdir);
  rmdir(path);
  rmdir(webdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  h3wt_http1_settings s;
  char sub[256];
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  if (!mkdtemp(webdir)) {
    perror("fuzz_http1: mkdtemp");
    abort();
  }
  atexit(cleanup);
  snprintf(sub, sizeof(sub), "%s/sub", webdir);
  mkdir(sub, 0700);
  write_file("index.html", INDEX_BODY);
  write_file("a.txt", "hello\n");
  write_file("sub/b.css", "body{}\n");
  write_file(".hidden", "secret\n");
  uv_loop_init(&loop);
  h3wt_http1_settings_default(&s);
  s.web_root = webdir;
  s.port = 0;
  s.config_json = "{\"port\":4433}";
  if (h3wt_http1_new(&listener, &loop, &s) != 0 ||
      h3wt_http1_listen(listener) != 0) {
    fprintf(stderr, "fuzz_http1: cannot start the listener\n");
    abort();
  }
  port = h3wt_http1_port(listener);
  return 0;
}

/* Waits (at most ms) until fd or the loop has something to do. */
static void wait_io(int fd, short events, int ms) {
  struct pollfd p[2] = {{fd, events, 0}, {uv_backend_fd(&loop), POLLIN, 0}};
  poll(p, 2, ms);
}

/* One connection: writes data (chunked or not), half-closes, reads until
   the server closes.  Returns the bytes the server sent (up to cap) in out;
   aborts if the server neither closes nor answers within the deadline. */
static size_t exchange(const uint8_t *data, size_t len, size_t chunk,
                       char *out, size_t cap) {
  struct sockaddr_in sa;
  size_t off = 0, got = 0;
  int wr_closed = 0;
  uint64_t deadline = now_ms() + DEADLINE_MS;
  char buf[16384];
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    perror("fuzz_http1: socket");
    abort();
  }
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
      errno != EINPROGRESS) {
    perror("fuzz_http1: connect");
    abort();
  }
  for (;;) {
    int progress = 0;
    if (off < len) {
      size_t n = len - off < chunk ? len - off : chunk;
      ssize_t k = send(fd, data + off, n, MSG_NOSIGNAL);
      if (k > 0) {
        off += (size_t)k;
        progress = 1;
      } else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                 errno != ENOTCONN) {
        off = len; /* the server closed on us (e.g. after a 400) */
      }
    } else if (!wr_closed) {
      shutdown(fd, SHUT_WR);
      wr_closed = 1;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    ssize_t k = recv(fd, buf, sizeof(buf), 0);
    if (k > 0) {
      size_t take = (size_t)k < cap - got ? (size_t)k : cap - got;
      memcpy(out + got, buf, take);
      got += take;
      progress = 1;
    } else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
                          errno != ENOTCONN)) {
      break; /* closed (EOF or reset) */
    }
    if (now_ms() > deadline) {
      fprintf(stderr,
              "fuzz_http1: the server did not close a half-closed connection "
              "within %d ms (%zu of %zu bytes written, %zu read)\n",
              DEADLINE_MS, off, len, got);
      abort();
    }
    if (!progress) {
      wait_io(fd, off < len ? POLLIN | POLLOUT : POLLIN, 5);
    }
  }
  close(fd);
  uv_run(&loop, UV_RUN_NOWAIT); /* let the server see the close */
  return got;
}

/* Every so often: a well-formed request must still be served. */
static void check_still_serving(void) {
  static const char req[] = "GET /index.html HTTP/1.1\r\nHost: localhost\r\n"
                            "Connection: close\r\n\r\n";
  char out[4096];
  size_t n = exchange((const uint8_t *)req, sizeof(req) - 1, sizeof(req),
                      out, sizeof(out) - 1);
  out[n] = '\0';
  if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || !strstr(out, INDEX_BODY)) {
    fprintf(stderr, "fuzz_http1: a normal GET was not served: '%.200s'\n",
            out);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char out[65536];
  size_t chunk = SIZE_MAX, n;
  if (size > 0 && data[0] >= 0xc0) {
    chunk = (size_t)(data[0] & 0x3f) + 1;
  }
  if (size > 0) {
    ++data;
    --size;
  }
  n = exchange(data, size, chunk, out, sizeof(out));
  if (n > 0 && (n < 9 || memcmp(out, "HTTP/1.1 ", 9) != 0)) {
    fprintf(stderr, "fuzz_http1: the answer is no status line: '%.*s'\n",
            (int)(n < 200 ? n : 200), out);
    abort();
  }
  if ((++inputs & 255) == 0) {
    check_still_serving();
  }
  return 0;
}
