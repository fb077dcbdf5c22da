/*
 * h3wt-client: a small curl for HTTP/3, on the h3wt client library.
 *
 *   h3wt-client [options] https://host:port/path
 *
 * Prints the status line, the response headers, a blank line and the body
 * (like curl -i).  With -n N it sends N requests concurrently on one
 * connection and prints a summary line instead of the bodies.
 *
 *   h3wt-client [-k] --wt https://host:port/path [WebTransport options]
 *
 * Opens WebTransport sessions and runs a verified workload on each
 * (datagrams with RTTs, echoed bidi streams, uni streams answered on server
 * uni streams, a mirrored reset, reading server streams), then closes them
 * with a code and reason and prints one summary line per kind of work.
 *
 * With --session-file F it resumes the TLS session saved in F by an
 * earlier run (its GET goes in 0-RTT when the ticket allows) and saves the
 * new one there afterwards.
 *
 * This file parses the command line and makes the HTTP/3 requests; the
 * WebTransport mode is client_wt.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "client_wt.h"
#include "h3wt/h3wt.h"
#include "client_channels.h"
#include "h3wt_url.h"

typedef struct app {
  uv_loop_t *loop;
  h3wt_client *client;
  const char *method, *path;
  h3wt_header headers[64];
  size_t nheaders;
  char *body;
  size_t bodylen;
  long total, started, done, failed, ok_status;
  long status_counts[6]; /* 1xx..5xx */
  int print_body, print_headers, fail_on_error;
  FILE *out;
  int closing;
  int exit_code;
  uv_timer_t timeout;
} app;

static void start_requests(app *a);

static void on_headers(h3wt_client_request *req, int status,
                       const h3wt_header *h, size_t n, void *ud) {
  app *a = ud;
  if (status >= 100 && status < 600) {
    ++a->status_counts[status / 100];
  }
  if (status >= 200 && status < 400) {
    ++a->ok_status;
  }
  if (a->print_headers) {
    printf("HTTP/3 %d\n", status);
    for (size_t i = 0; i < n; ++i) {
      printf("%.*s: %.*s\n", (int)h[i].namelen, h[i].name,
             (int)h[i].valuelen, h[i].value);
    }
    printf("\n");
    fflush(stdout);
  }
}

static void on_body(h3wt_client_request *req, const uint8_t *data, size_t len,
                    void *ud) {
  app *a = ud;
  if (a->print_body) {
    fwrite(data, 1, len, a->out);
  }
}

static void finish(app *a) {
  if (a->closing) {
    return;
  }
  a->closing = 1;
  h3wt_client_close(a->client);
}

static void on_close(h3wt_client_request *req, int err, uint64_t code,
                     void *ud) {
  app *a = ud;
  ++a->done;
  if (err) {
    ++a->failed;
    fprintf(stderr, "h3wt-client: request failed: %s (stream error 0x%llx)\n",
            h3wt_strerror(err), (unsigned long long)code);
  }
  if (a->done == a->total) {
    finish(a);
  } else if (!a->closing) {
    start_requests(a);
  }
}

static const h3wt_response_handler handler = {on_headers, on_body, on_close};

static void start_requests(app *a) {
  while (a->started < a->total) {
    int rv = h3wt_client_request_send(a->client, a->method, a->path,
                                      a->headers, a->nheaders, a->body,
                                      a->bodylen, &handler, a, NULL);
    if (rv == H3WT_ERR_WOULDBLOCK) {
      return; /* no stream credit: continue when one closes */
    }
    if (rv != 0) {
      fprintf(stderr, "h3wt-client: %s\n", h3wt_strerror(rv));
      a->exit_code = 1;
      finish(a);
      return;
    }
    ++a->started;
  }
}

static void on_connected(h3wt_client *c, void *ud) {
  app *a = ud;
  start_requests(a);
}

static void on_closed(h3wt_client *c, int err, void *ud) {
  app *a = ud;
  if (err) {
    fprintf(stderr, "h3wt-client: connection failed: %s\n",
            h3wt_strerror(err));
    a->exit_code = 1;
  }
  uv_close((uv_handle_t *)&a->timeout, NULL);
}

static void on_timeout(uv_timer_t *t) {
  app *a = t->data;
  fprintf(stderr, "h3wt-client: timed out (%ld of %ld done)\n", a->done,
          a->total);
  a->exit_code = 1;
  finish(a);
}

/* --session-file: the saved session is a few kilobytes. */
#define SESSION_FILE_MAX (64 * 1024)

/* Reads the saved session from path into *buf (malloc'd).  A missing file
   is no error (the first run makes it): returns 0 with *len 0.  Returns
   -1 on anything else, with a warning. */
static int session_read(const char *path, uint8_t **buf, size_t *len) {
  struct stat st;
  FILE *f = fopen(path, "rb");
  *buf = NULL;
  *len = 0;
  if (!f) {
    if (errno == ENOENT) {
      return 0;
    }
    fprintf(stderr, "h3wt-client: session file %s: %s (full handshake)\n",
            path, strerror(errno));
    return -1;
  }
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size <= 0 || st.st_size > SESSION_FILE_MAX) {
    fprintf(stderr, "h3wt-client: session file %s: not a saved session "
                    "(full handshake)\n", path);
    fclose(f);
    return -1;
  }
  *buf = malloc((size_t)st.st_size);
  if (!*buf || fread(*buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
    fprintf(stderr, "h3wt-client: session file %s: cannot read it (full "
                    "handshake)\n", path);
    free(*buf);
    *buf = NULL;
    fclose(f);
    return -1;
  }
  fclose(f);
  *len = (size_t)st.st_size;
  return 0;
}

/* Writes the connection's session to path: a new file (mode 0600: it holds
   the session's secrets) renamed over the old one.  Returns 0 or -1. */
static int session_write(h3wt_client *c, const char *path) {
  char tmp[4096];
  uint8_t *buf;
  size_t len = 0;
  int fd, rv = -1;
  if (h3wt_client_session_save(c, NULL, 0, &len) != 0 || len == 0) {
    fprintf(stderr, "h3wt-client: no session ticket from the server: %s "
                    "not written\n", path);
    return -1;
  }
  buf = malloc(len);
  if (!buf || h3wt_client_session_save(c, buf, len, &len) != 0) {
    free(buf);
    return -1;
  }
  snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    rv = write(fd, buf, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -1;
    if (close(fd) != 0) {
      rv = -1;
    }
    if (rv == 0 && rename(tmp, path) != 0) {
      rv = -1;
    }
    if (rv != 0) {
      unlink(tmp);
    }
  }
  if (rv != 0) {
    fprintf(stderr, "h3wt-client: cannot write session file %s: %s\n", path,
            strerror(errno));
  }
  free(buf);
  return rv;
}

static void usage(FILE *f) {
  fprintf(f,
          "Usage: h3wt-client [options] URL\n"
          "  -X, --request METHOD   method (default GET, or POST with -d)\n"
          "  -d, --data DATA        request body; @FILE reads it from a file\n"
          "  -H, --header 'N: V'    add a request header (repeatable; with "
          "--wt,\n"
          "                         to each session's CONNECT)\n"
          "  -k, --insecure         do not verify the server certificate\n"
          "      --cacert FILE      verify with these CAs (PEM)\n"
          "  -n, --requests N       send N requests concurrently on one "
          "connection\n"
          "                         and print a summary line\n"
          "  -o, --output FILE      write the body to FILE\n"
          "  -f, --fail             exit 22 if a status is 400 or above\n"
          "  -s, --silent           print only the body\n"
          "  -v, --verbose          library log at debug level (-vv: trace)\n"
          "      --keylog FILE      append TLS secrets (also SSLKEYLOGFILE)\n"
          "      --qlog-dir DIR     write a qlog file\n"
          "      --timeout SEC      give up after SEC seconds (default 30)\n"
          "      --session-file F   resume the TLS session saved in F (its "
          "GET goes\n"
          "                         in 0-RTT when the ticket allows) and save "
          "the\n"
          "                         new one there (mode 0600); says on stderr "
          "whether\n"
          "                         it resumed and whether 0-RTT was "
          "accepted\n"
          "      --no-early-data    resume, but send nothing before the "
          "handshake\n"
          "  -h, --help\n"
          "\n"
          "WebTransport: h3wt-client [-k] --wt URL [options]\n"
          "      --wt URL           open WebTransport sessions to URL\n"
          "      --origin ORIGIN    send this origin header\n"
          "      --sessions K       K sessions on the one connection (default "
          "1);\n"
          "                         each runs the whole workload\n"
          "      --datagrams N      send N datagrams per session (sequence "
          "number\n"
          "                         and send time inside) and time their "
          "echoes\n"
          "      --dgram-size B     datagram payload bytes (default 64; 'max': "
          "the\n"
          "                         session's maximum; never more than it)\n"
          "      --rate R           datagrams per second per session (default "
          "1000)\n"
          "      --window W         datagrams in flight per session (default "
          "32)\n"
          "      --max-loss L       datagrams that may go unanswered (default "
          "0)\n"
          "      --streams N        N concurrent bidi streams per session, "
          "echo\n"
          "                         verified byte for byte\n"
          "      --stream-bytes B   bytes per stream (K, M, G suffixes; "
          "default 1000)\n"
          "      --uni N            N uni streams per session (a 16-byte tag "
          "and\n"
          "                         --stream-bytes), each to come back on a "
          "server\n"
          "                         uni stream\n"
          "      --reset-code C     reset one bidi stream with WT code C and "
          "check\n"
          "                         the mirrored reset\n"
          "      --read-server-streams SEC\n"
          "                         print what server-opened streams and "
          "other\n"
          "                         datagrams deliver for SEC seconds\n"
          "      --close-code C     close each session with code C (default "
          "0)\n"
          "      --close-reason R   ... and reason R (default '')\n"
          "      --close-after SEC  close each session SEC seconds after it is "
          "ready,\n"
          "                         even with work in flight (cut short, not "
          "failed)\n"
          "      --linger MS        wait MS after the last session ended "
          "before\n"
          "                         closing the connection (default 100; 0: "
          "close\n"
          "                         from inside on_session_close)\n"
          "  Output: 'sessions: K ready', 'datagrams: sent N, received M, lost "
          "L,\n"
          "  rtt p50 X ms, p99 Y ms, p999 Z ms, max payload P', 'streams: N "
          "ok, F\n"
          "  failed, bytes B', 'uni: N ok, F failed', 'reset: sent C, received "
          "C2',\n"
          "  'session drain: sN' when the server asks to wind down,\n"
          "  'session closed: err E code C reason 'R'' per session.  Exit 0 "
          "only\n"
          "  if everything was verified.\n"
          "\n"
          "Channels (docs/channels.md): one JSON line per event on stdout\n"
          "  h3wt-client [-k] --subscribe CHANNEL [--since EPOCH:OFFSET]\n"
          "              [--history N] [--count N] URL\n"
          "      prints subscribed, message, join, leave, unsubscribed and "
          "error\n"
          "      events until N messages arrived (or --timeout; without "
          "--count\n"
          "      that is a normal end); --history N: the channel's last N\n"
          "      kept messages first, unless --since recovers\n"
          "  h3wt-client [-k] --publish CHANNEL -d TEXT [--unreliable]\n"
          "              [--repeat N] [--interval MS] URL\n"
          "      subscribes, then publishes TEXT N times (default 1), MS apart;"
          "\n"
          "      reliable ones print a published event each\n");
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0, r;
  if (!f) {
    return NULL;
  }
  do {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    r = fread(buf + n, 1, cap - n, f);
    n += r;
  } while (r > 0);
  fclose(f);
  *len = n;
  return buf ? buf : calloc(1, 1);
}

/* Parses a count or size: decimal or 0x hex, with an optional K/M/G
   (binary) suffix when sizes is set.  Returns 0 or -1. */
static int parse_num(const char *arg, int sizes, uint64_t max, uint64_t *out) {
  char *end;
  uint64_t v, mul = 1;
  if (!arg || !*arg || *arg == '-' || *arg == ' ') {
    return -1;
  }
  errno = 0;
  v = strtoull(arg, &end, 0);
  if (errno || end == arg) {
    return -1;
  }
  if (sizes && *end) {
    switch (*end) {
    case 'k': case 'K': mul = 1024; break;
    case 'm': case 'M': mul = 1024 * 1024; break;
    case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
    default: return -1;
    }
    ++end;
    if (*end == 'i' || *end == 'B') {
      end += *end == 'i' ? 1 : 0;
      end += *end == 'B' ? 1 : 0;
    }
  }
  if (*end || (mul > 1 && v > max / mul) || v * mul > max) {
    return -1;
  }
  *out = v * mul;
  return 0;
}

static int parse_secs(const char *arg, double *out) {
  char *end;
  double v;
  if (!arg || !*arg) {
    return -1;
  }
  v = strtod(arg, &end);
  if (*end || !(v >= 0) || v > 86400 * 365) {
    return -1;
  }
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"request", required_argument, 0, 'X'},
      {"data", required_argument, 0, 'd'},
      {"header", required_argument, 0, 'H'},
      {"insecure", no_argument, 0, 'k'},
      {"cacert", required_argument, 0, 'C'},
      {"requests", required_argument, 0, 'n'},
      {"output", required_argument, 0, 'o'},
      {"fail", no_argument, 0, 'f'},
      {"silent", no_argument, 0, 's'},
      {"verbose", no_argument, 0, 'v'},
      {"keylog", required_argument, 0, 'K'},
      {"qlog-dir", required_argument, 0, 'Q'},
      {"timeout", required_argument, 0, 'T'},
      {"session-file", required_argument, 0, 'S'},
      {"no-early-data", no_argument, 0, 'E'},
      {"help", no_argument, 0, 'h'},
      {"wt", required_argument, 0, 1000},
      {"origin", required_argument, 0, 1001},
      {"sessions", required_argument, 0, 1002},
      {"datagrams", required_argument, 0, 1003},
      {"dgram-size", required_argument, 0, 1004},
      {"rate", required_argument, 0, 1005},
      {"window", required_argument, 0, 1006},
      {"max-loss", required_argument, 0, 1007},
      {"streams", required_argument, 0, 1008},
      {"stream-bytes", required_argument, 0, 1009},
      {"uni", required_argument, 0, 1010},
      {"reset-code", required_argument, 0, 1011},
      {"read-server-streams", required_argument, 0, 1012},
      {"close-code", required_argument, 0, 1013},
      {"close-reason", required_argument, 0, 1014},
      {"close-after", required_argument, 0, 1015},
      {"linger", required_argument, 0, 1016},
      {"subscribe", required_argument, 0, 1020},
      {"since", required_argument, 0, 1021},
      {"count", required_argument, 0, 1022},
      {"history", required_argument, 0, 1027},
      {"publish", required_argument, 0, 1023},
      {"unreliable", no_argument, 0, 1024},
      {"repeat", required_argument, 0, 1025},
      {"interval", required_argument, 0, 1026},
      {0, 0, 0, 0}};
  app a;
  wt_opts wo;
  ch_opts co;
  const char *wt_url = NULL;
  int http_only = 0; /* an option that makes no sense with --wt */
  uint64_t num;
  h3wt_client_settings s;
  h3wt_client_callbacks cbs = {on_connected, on_closed};
  char host[256];
  const char *outfile = NULL;
  const char *session_file = NULL;
  uint8_t *session = NULL;
  size_t session_len = 0;
  double timeout_s = 30;
  int c, verbose = 0, rv;

  memset(&a, 0, sizeof(a));
  wt_opts_default(&wo);
  ch_opts_default(&co);
  a.total = 1;
  a.print_body = a.print_headers = 1;
  a.out = stdout;
  h3wt_client_settings_default(&s);
  s.log_cb = h3wt_log_stderr;
  s.keylog_file = getenv("SSLKEYLOGFILE");
  while ((c = getopt_long(argc, argv, "X:d:H:kn:o:fsvh", opts, NULL)) != -1) {
    switch (c) {
    case 'X':
      http_only = 1;
      a.method = optarg;
      break;
    case 'd':
      http_only = 1;
      if (optarg[0] == '@') {
        a.body = read_file(optarg + 1, &a.bodylen);
        if (!a.body) {
          fprintf(stderr, "h3wt-client: cannot read %s: %s\n", optarg + 1,
                  strerror(errno));
          return 2;
        }
      } else {
        a.body = strdup(optarg);
        a.bodylen = strlen(optarg);
      }
      break;
    case 'H': {
      char *colon = strchr(optarg, ':');
      if (!colon || colon == optarg || a.nheaders == 64) {
        fprintf(stderr, "h3wt-client: bad header '%s'\n", optarg);
        return 2;
      }
      /* HTTP/3 field names are lower-case (RFC 9114 4.2). */
      for (char *p = optarg; p < colon; ++p) {
        if (*p >= 'A' && *p <= 'Z') {
          *p = (char)(*p - 'A' + 'a');
        }
      }
      const char *v = colon + 1;
      while (*v == ' ') {
        ++v;
      }
      a.headers[a.nheaders++] =
          (h3wt_header){optarg, (size_t)(colon - optarg), v, strlen(v)};
      break;
    }
    case 'k':
      s.insecure = 1;
      break;
    case 'C':
      s.ca_file = optarg;
      break;
    case 'n':
      http_only = 1;
      a.total = strtol(optarg, NULL, 10);
      if (a.total < 1) {
        fprintf(stderr, "h3wt-client: bad -n '%s'\n", optarg);
        return 2;
      }
      break;
    case 'o':
      http_only = 1;
      outfile = optarg;
      break;
    case 'f':
      http_only = 1;
      a.fail_on_error = 1;
      break;
    case 's':
      http_only = 1;
      a.print_headers = 0;
      break;
    case 'v':
      ++verbose;
      break;
    case 'K':
      s.keylog_file = optarg;
      break;
    case 'Q':
      s.qlog_dir = optarg;
      break;
    case 'T':
      timeout_s = strtod(optarg, NULL);
      break;
    case 'S':
      http_only = 1;
      session_file = optarg;
      break;
    case 'E':
      http_only = 1;
      s.early_data = 0;
      break;
    case 1000:
      wt_url = optarg;
      break;
    case 1001:
      wo.origin = optarg;
      break;
    case 1002:
      if (parse_num(optarg, 0, 1000, &wo.sessions) != 0 || !wo.sessions) {
        fprintf(stderr, "h3wt-client: bad --sessions '%s' (1 to 1000)\n",
                optarg);
        return 2;
      }
      break;
    case 1003:
      if (parse_num(optarg, 0, 10000000, &wo.datagrams) != 0) {
        fprintf(stderr, "h3wt-client: bad --datagrams '%s'\n", optarg);
        return 2;
      }
      break;
    case 1004:
      if (strcmp(optarg, "max") == 0) {
        wo.dgram_max = 1;
      } else if (parse_num(optarg, 0, 65535, &num) != 0 || num < WT_DG_HDR) {
        fprintf(stderr,
                "h3wt-client: bad --dgram-size '%s' (%d to 65535, or max)\n",
                optarg, WT_DG_HDR);
        return 2;
      } else {
        wo.dgram_size = (size_t)num;
        wo.dgram_max = 0;
      }
      break;
    case 1005:
      if (parse_secs(optarg, &wo.rate) != 0 || wo.rate <= 0) {
        fprintf(stderr, "h3wt-client: bad --rate '%s'\n", optarg);
        return 2;
      }
      break;
    case 1006:
      if (parse_num(optarg, 0, 1000000, &wo.window) != 0 || !wo.window) {
        fprintf(stderr, "h3wt-client: bad --window '%s'\n", optarg);
        return 2;
      }
      break;
    case 1007:
      if (parse_num(optarg, 0, UINT64_MAX, &wo.max_loss) != 0) {
        fprintf(stderr, "h3wt-client: bad --max-loss '%s'\n", optarg);
        return 2;
      }
      break;
    case 1008:
      if (parse_num(optarg, 0, 100000, &wo.streams) != 0) {
        fprintf(stderr, "h3wt-client: bad --streams '%s'\n", optarg);
        return 2;
      }
      break;
    case 1009:
      if (parse_num(optarg, 1, (uint64_t)1 << 40, &wo.stream_bytes) != 0) {
        fprintf(stderr, "h3wt-client: bad --stream-bytes '%s'\n", optarg);
        return 2;
      }
      break;
    case 1010:
      if (parse_num(optarg, 0, 100000, &wo.uni) != 0) {
        fprintf(stderr, "h3wt-client: bad --uni '%s'\n", optarg);
        return 2;
      }
      break;
    case 1011:
    case 1013:
      if (parse_num(optarg, 0, UINT32_MAX, &num) != 0) {
        fprintf(stderr, "h3wt-client: bad --%s '%s' (0 to 0xffffffff)\n",
                c == 1011 ? "reset-code" : "close-code", optarg);
        return 2;
      }
      if (c == 1011) {
        wo.reset = 1;
        wo.reset_code = (uint32_t)num;
      } else {
        wo.close_code = (uint32_t)num;
      }
      break;
    case 1012:
      if (parse_secs(optarg, &wo.read_secs) != 0) {
        fprintf(stderr, "h3wt-client: bad --read-server-streams '%s'\n",
                optarg);
        return 2;
      }
      break;
    case 1014:
      if (strlen(optarg) > 1024) {
        fprintf(stderr, "h3wt-client: --close-reason is over 1024 bytes\n");
        return 2;
      }
      wo.close_reason = optarg;
      break;
    case 1015:
      if (parse_secs(optarg, &wo.close_after) != 0) {
        fprintf(stderr, "h3wt-client: bad --close-after '%s'\n", optarg);
        return 2;
      }
      break;
    case 1016:
      if (parse_secs(optarg, &wo.linger_ms) != 0) {
        fprintf(stderr, "h3wt-client: bad --linger '%s'\n", optarg);
        return 2;
      }
      break;
    case 1020:
      co.subscribe = optarg;
      break;
    case 1021:
      if (ch_parse_since(optarg, &co.epoch, &co.offset) != 0) {
        fprintf(stderr, "h3wt-client: bad --since '%s' (EPOCH:OFFSET)\n",
                optarg);
        return 2;
      }
      co.recover = 1;
      break;
    case 1027:
      if (parse_num(optarg, 0, (UINT64_C(1) << 62) - 1, &co.history_limit) !=
          0) {
        fprintf(stderr, "h3wt-client: bad --history '%s'\n", optarg);
        return 2;
      }
      co.history = 1;
      break;
    case 1022:
      if (parse_num(optarg, 0, UINT64_MAX, &co.count) != 0) {
        fprintf(stderr, "h3wt-client: bad --count '%s'\n", optarg);
        return 2;
      }
      break;
    case 1023:
      co.publish = optarg;
      break;
    case 1024:
      co.unreliable = 1;
      break;
    case 1025:
      if (parse_num(optarg, 1, 100000000, &co.repeat) != 0) {
        fprintf(stderr, "h3wt-client: bad --repeat '%s'\n", optarg);
        return 2;
      }
      break;
    case 1026:
      if (parse_secs(optarg, &co.interval_ms) != 0) {
        fprintf(stderr, "h3wt-client: bad --interval '%s'\n", optarg);
        return 2;
      }
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (co.subscribe || co.publish) {
    if ((co.subscribe && co.publish) || wt_url || optind + 1 != argc) {
      fprintf(stderr, "h3wt-client: --subscribe or --publish, then the URL\n");
      return 2;
    }
    if (co.publish && !a.body) {
      fprintf(stderr, "h3wt-client: --publish needs -d TEXT\n");
      return 2;
    }
    co.data = a.body;
    rv = h3wt_url_parse(argv[optind], co.host, sizeof(co.host), &co.port,
                        &co.path);
    if (rv != 0 || co.path[0] != '/' || !(timeout_s > 0)) {
      fprintf(stderr, "h3wt-client: bad URL '%s' or --timeout\n",
              argv[optind]);
      return 2;
    }
    co.origin = wo.origin;
    co.timeout_s = timeout_s;
    co.headers = a.headers;
    co.nheaders = a.nheaders;
    s.log_level = verbose >= 2 ? H3WT_LOG_TRACE
                  : verbose ? H3WT_LOG_DEBUG
                            : H3WT_LOG_WARN;
    rv = ch_run(&co, &s);
    free(a.body);
    return rv;
  }
  if (wt_url) {
    if (optind != argc) {
      fprintf(stderr, "h3wt-client: --wt takes the URL; unexpected '%s'\n",
              argv[optind]);
      return 2;
    }
    if (http_only) {
      fprintf(stderr, "h3wt-client: -X, -d, -n, -o, -f, -s, --session-file "
                      "and --no-early-data are for HTTP requests, not --wt\n");
      return 2;
    }
    if (!(timeout_s > 0)) {
      fprintf(stderr, "h3wt-client: bad --timeout\n");
      return 2;
    }
    rv = h3wt_url_parse(wt_url, wo.host, sizeof(wo.host), &wo.port, &wo.path);
    if (rv != 0 || wo.path[0] != '/') {
      fprintf(stderr,
              "h3wt-client: bad URL '%s' (want https://host:port/path)\n",
              wt_url);
      return 2;
    }
    if (wo.uni && (double)wo.stream_bytes + WT_UNI_TAG > (double)((uint64_t)1 << 40)) {
      fprintf(stderr, "h3wt-client: --stream-bytes too large\n");
      return 2;
    }
    wo.timeout_s = timeout_s;
    wo.verbose = verbose;
    wo.headers = a.headers;
    wo.nheaders = a.nheaders;
    s.log_level = verbose >= 2 ? H3WT_LOG_TRACE
                  : verbose ? H3WT_LOG_DEBUG
                            : H3WT_LOG_WARN;
    return wt_run(&wo, &s);
  }
  if (optind + 1 != argc) {
    usage(stderr);
    return 2;
  }
  if (h3wt_url_parse(argv[optind], host, sizeof(host), &s.port, &a.path) != 0) {
    fprintf(stderr, "h3wt-client: bad URL '%s' (want https://host:port/path)\n",
            argv[optind]);
    return 2;
  }
  if (!a.method) {
    a.method = a.body ? "POST" : "GET";
  }
  if (a.total > 1) {
    a.print_body = a.print_headers = 0;
  }
  if (outfile) {
    a.out = fopen(outfile, "wb");
    if (!a.out) {
      fprintf(stderr, "h3wt-client: cannot open %s: %s\n", outfile,
              strerror(errno));
      return 2;
    }
  }
  s.host = host;
  s.log_level = verbose >= 2 ? H3WT_LOG_TRACE
                : verbose ? H3WT_LOG_DEBUG
                          : H3WT_LOG_WARN;
  if (session_file) {
    (void)session_read(session_file, &session, &session_len);
    s.session = session;
    s.session_len = session_len;
  }
  a.loop = uv_default_loop();
  rv = h3wt_client_new(&a.client, a.loop, &s, &cbs, &a);
  free(session); /* read by h3wt_client_new, not kept */
  if (rv != 0) {
    fprintf(stderr, "h3wt-client: cannot connect to %s: %s\n", host,
            h3wt_strerror(rv));
    if (a.client) {
      uv_run(a.loop, UV_RUN_DEFAULT);
      h3wt_client_del(a.client);
    }
    return 1;
  }
  uv_timer_init(a.loop, &a.timeout);
  a.timeout.data = &a;
  uv_timer_start(&a.timeout, on_timeout, (uint64_t)(timeout_s * 1000), 0);
  /* Requests start in on_connected, when the stream credit is known; with
     a saved session at once, so that they can go in 0-RTT (within the
     server's remembered limits; the rest wait inside the library). */
  if (session_len) {
    start_requests(&a);
  }
  uv_run(a.loop, UV_RUN_DEFAULT);
  if (session_file) {
    unsigned r = h3wt_client_resumption(a.client);
    if (a.print_headers || verbose) {
      fprintf(stderr, "h3wt-client: session %s, 0-RTT %s\n",
              r & H3WT_RESUMED ? "resumed" : "not resumed (full handshake)",
              r & H3WT_EARLY_DATA_ACCEPTED ? "accepted"
              : r & H3WT_EARLY_DATA_SENT   ? "rejected (sent again)"
                                           : "not sent");
    }
    if (a.exit_code == 0) {
      (void)session_write(a.client, session_file); /* a warning at most */
    }
  }
  h3wt_client_del(a.client);
  uv_loop_close(a.loop);
  if (a.out != stdout) {
    fclose(a.out);
  }
  free(a.body);
  if (a.total > 1) {
    printf("requests: %ld, completed: %ld, failed: %ld, 2xx: %ld, 3xx: %ld, "
           "4xx: %ld, 5xx: %ld\n",
           a.total, a.done - a.failed, a.failed + (a.total - a.done),
           a.status_counts[2], a.status_counts[3], a.status_counts[4],
           a.status_counts[5]);
  }
  if (a.exit_code == 0 && (a.failed || a.done < a.total)) {
    a.exit_code = 1;
  }
  if (a.exit_code == 0 && a.fail_on_error && a.ok_status < a.total) {
    a.exit_code = 22;
  }
  return a.exit_code;
}
