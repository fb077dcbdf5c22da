/*
 * h3wt-server: the demo server.
 *
 * HTTP/3 (UDP, --port):
 *   GET /         a hello text
 *   POST /echo    JSON parsed and re-serialised (pretty) with jansson
 *   GET /<file>   files below the web folder (the demo page)
 *   WebTransport  /wt/echo, /wt/chat, /wt/ticker (see demo_routes.h)
 *
 * HTTP/1.1 on localhost only (TCP, --http-port, default 8080): the demo
 * page from the web folder and /config.json (the HTTP/3 port and the
 * certificate hash), so a browser can open http://localhost:8080/ and
 * reach WebTransport with serverCertificateHashes (see h3wt_http1.h).
 *
 * With no --cert/--key it makes (or reuses) an ECDSA P-256 development
 * certificate valid for 13 days, and prints its SHA-256 so browsers can
 * pin it with serverCertificateHashes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "demo_routes.h"
#include "h3wt/h3wt.h"
#include "h3wt_http1.h"
#include "h3wt_tls.h"
#include "h3wt_util.h"

/* ---- command line ---------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "Usage: h3wt-server [options]\n"
          "  -a, --addr ADDR        listen address (default :: = IPv6 and "
          "IPv4)\n"
          "  -p, --port PORT        UDP port (default 4433; 0 = ephemeral)\n"
          "  -c, --cert FILE        PEM certificate chain\n"
          "  -k, --key FILE         PEM private key\n"
          "      --cert-dir DIR     where the development certificate is kept\n"
          "                         (default $H3WT_CERT_DIR or "
          "~/.cache/h3wt)\n"
          "  -w, --web DIR          folder served for GET (default: web)\n"
          "  -l, --log-level LEVEL  error|warn|info|debug|trace (default "
          "info)\n"
          "  -q, --qlog-dir DIR     write one qlog file per connection\n"
          "      --keylog FILE      append TLS secrets (also SSLKEYLOGFILE)\n"
          "      --max-body BYTES   request body limit (default 1048576)\n"
          "      --http-port PORT   HTTP/1.1 port of the demo page on "
          "localhost\n"
          "                         (default 8080; 0 = ephemeral)\n"
          "      --no-http          no HTTP/1.1 demo page listener\n"
          "      --wt-origin ORIGIN accept WebTransport sessions only from "
          "this\n"
          "                         origin (default: any)\n"
          "      --drain-timeout MS on SIGINT/SIGTERM, let requests and "
          "sessions\n"
          "                         finish for up to MS (default 5000; a "
          "second\n"
          "                         signal stops at once)\n"
          "      --max-handshakes-per-addr N\n"
          "                         new connections per second from one "
          "address\n"
          "                         before Retry (default 100; 0 = never)\n"
          "  -h, --help\n");
}

typedef struct app {
  uv_loop_t *loop;
  h3wt_server *server;
  h3wt_http1 *http1;
  h3wt_http1 *http1_unused; /* could not listen: freed at exit */
  demo_wt *wt;
  uv_signal_t sigint, sigterm;
  uint64_t drain_ms; /* --drain-timeout */
  int stopping;
  int closing; /* the server and the HTTP/1.1 listener still closing */
} app;

static void one_closed(app *a) {
  if (--a->closing == 0) {
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
  }
}

static void server_closed(h3wt_server *server, void *ud) {
  (void)server;
  one_closed(ud);
}

static void http1_closed(h3wt_http1 *h, void *ud) {
  (void)h;
  one_closed(ud);
}

/* The first SIGINT/SIGTERM drains: GOAWAY and WT_DRAIN_SESSION, what is in
   flight may finish for --drain-timeout, then sessions are closed.  A
   second one closes at once. */
static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (a->stopping) {
    fprintf(stderr, "h3wt-server: %s again, closing now\n", name);
    h3wt_server_close(a->server, server_closed, a);
    return;
  }
  a->stopping = 1;
  fprintf(stderr, "h3wt-server: %s, shutting down (draining for up to %" PRIu64
          " ms)\n", name, a->drain_ms);
  a->closing = a->http1 ? 2 : 1;
  if (a->http1) {
    h3wt_http1_close(a->http1, http1_closed, a);
  }
  h3wt_server_shutdown(a->server, a->drain_ms, server_closed, a);
}

static void base64(const uint8_t *in, size_t len, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) {
      v |= (uint32_t)in[i + 1] << 8;
    }
    if (i + 2 < len) {
      v |= in[i + 2];
    }
    out[o++] = t[(v >> 18) & 63];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = i + 1 < len ? t[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < len ? t[v & 63] : '=';
  }
  out[o] = '\0';
}

/* The document GET /config.json serves: what the page needs to open
   WebTransport sessions.  h3_host is null unless the HTTP/3 server listens
   on one address only (the page then uses it instead of its own host). */
static char *config_json(const char *host, uint16_t port,
                         const uint8_t hash[32]) {
  char hex[65], b64[45];
  json_t *h3host, *doc;
  char *text;
  h3wt_hex(hash, 32, hex);
  base64(hash, 32, b64);
  h3host = host && strcmp(host, "::") != 0 && strcmp(host, "0.0.0.0") != 0
               ? json_string(host)
               : json_null();
  doc = json_pack("{s:i, s:o, s:s, s:s, s:{s:s, s:s, s:s}}", "h3_port",
                  (int)port, "h3_host", h3host, "cert_sha256", hex,
                  "cert_sha256_b64", b64, "paths", "echo", "/wt/echo",
                  "chat", "/wt/chat", "ticker", "/wt/ticker");
  text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
  json_decref(doc);
  return text;
}

/* Closes whatever was made after a failed start, runs the loop until every
   handle is closed, and frees it all.  Returns 1 (the exit status). */
static int fail_after_start(app *a) {
  if (a->http1) {
    h3wt_http1_close(a->http1, NULL, NULL);
  }
  h3wt_server_close(a->server, NULL, NULL);
  uv_run(a->loop, UV_RUN_DEFAULT);
  h3wt_server_del(a->server);
  h3wt_http1_del(a->http1);
  h3wt_http1_del(a->http1_unused);
  demo_wt_del(a->wt);
  uv_loop_close(a->loop);
  return 1;
}

/* A decimal number made of digits only (strtoull alone takes "", " 1" and
   "-1"), at most max.  Returns 0 or -1. */
static int parse_uint(const char *text, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  if (!*text) {
    return -1;
  }
  for (const char *p = text; *p; ++p) {
    if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
      return -1;
    }
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (v > max) {
    return -1;
  }
  *out = v;
  return 0;
}

static int mkdir_p(const char *dir) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s", dir);
  for (char *p = tmp + 1; *p; ++p) {
    if (*p == '/') {
      *p = '\0';
      if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return -1;
      }
      *p = '/';
    }
  }
  return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* Reuses the development certificate while it has a day left, else makes a
   new one.  Fills cert/key paths. */
static int dev_cert(const char *dir, char *cert, char *key, size_t len) {
  char err[512];
  if (mkdir_p(dir) != 0) {
    fprintf(stderr, "h3wt-server: cannot create %s: %s\n", dir,
            strerror(errno));
    return -1;
  }
  if (snprintf(cert, len, "%s/dev-cert.pem", dir) >= (int)len ||
      snprintf(key, len, "%s/dev-key.pem", dir) >= (int)len) {
    fprintf(stderr, "h3wt-server: certificate folder name too long\n");
    return -1;
  }
  int64_t left = h3wt_tls_cert_seconds_left(cert);
  if (left > 24 * 3600 && access(key, R_OK) == 0) {
    return 0;
  }
  if (h3wt_tls_devcert_make(cert, key, err, sizeof(err)) != 0) {
    fprintf(stderr, "h3wt-server: development certificate: %s\n", err);
    return -1;
  }
  fprintf(stderr, "h3wt-server: made a development certificate in %s\n",
          dir);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"addr", required_argument, 0, 'a'},
      {"port", required_argument, 0, 'p'},
      {"cert", required_argument, 0, 'c'},
      {"key", required_argument, 0, 'k'},
      {"cert-dir", required_argument, 0, 'C'},
      {"web", required_argument, 0, 'w'},
      {"log-level", required_argument, 0, 'l'},
      {"qlog-dir", required_argument, 0, 'q'},
      {"keylog", required_argument, 0, 'K'},
      {"max-body", required_argument, 0, 'B'},
      {"http-port", required_argument, 0, 'H'},
      {"no-http", no_argument, 0, 'N'},
      {"wt-origin", required_argument, 0, 'O'},
      {"drain-timeout", required_argument, 0, 'D'},
      {"max-handshakes-per-addr", required_argument, 0, 'R'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  h3wt_server_settings s;
  app a;
  char devcert[4096], devkey[4096], certdir[4096];
  const char *web = "web", *cert_dir = getenv("H3WT_CERT_DIR");
  const char *wt_origin = NULL;
  uint64_t http_port = 8080;
  int http_port_given = 0, no_http = 0;
  int c, rv;

  memset(&a, 0, sizeof(a));
  a.drain_ms = 5000;
  h3wt_server_settings_default(&s);
  s.log_cb = h3wt_log_stderr;
  s.keylog_file = getenv("SSLKEYLOGFILE");
  if (s.keylog_file && !*s.keylog_file) {
    s.keylog_file = NULL;
  }
  while ((c = getopt_long(argc, argv, "a:p:c:k:w:l:q:h", opts, NULL)) != -1) {
    switch (c) {
    case 'a':
      s.host = optarg;
      break;
    case 'p': {
      uint64_t p;
      if (parse_uint(optarg, 65535, &p) != 0) {
        fprintf(stderr, "h3wt-server: bad port '%s'\n", optarg);
        return 2;
      }
      s.port = (uint16_t)p;
      break;
    }
    case 'c':
      s.cert_file = optarg;
      break;
    case 'k':
      s.key_file = optarg;
      break;
    case 'C':
      cert_dir = optarg;
      break;
    case 'w':
      web = optarg;
      break;
    case 'l':
      if (h3wt_log_level_parse(optarg, &s.log_level) != 0) {
        fprintf(stderr, "h3wt-server: bad log level '%s'\n", optarg);
        return 2;
      }
      break;
    case 'q':
      s.qlog_dir = optarg;
      break;
    case 'K':
      s.keylog_file = optarg;
      break;
    case 'B':
      if (parse_uint(optarg, UINT64_MAX, &s.max_request_body) != 0) {
        fprintf(stderr, "h3wt-server: bad --max-body '%s'\n", optarg);
        return 2;
      }
      break;
    case 'H':
      if (parse_uint(optarg, 65535, &http_port) != 0) {
        fprintf(stderr, "h3wt-server: bad --http-port '%s'\n", optarg);
        return 2;
      }
      http_port_given = 1;
      break;
    case 'D':
      if (parse_uint(optarg, 3600000, &a.drain_ms) != 0) {
        fprintf(stderr, "h3wt-server: bad --drain-timeout '%s' (milliseconds)\n",
                optarg);
        return 2;
      }
      break;
    case 'R': {
      uint64_t v;
      if (parse_uint(optarg, UINT32_MAX, &v) != 0) {
        fprintf(stderr, "h3wt-server: bad --max-handshakes-per-addr '%s'\n",
                optarg);
        return 2;
      }
      s.max_handshakes_per_addr = (uint32_t)v;
      break;
    }
    case 'N':
      no_http = 1;
      break;
    case 'O':
      wt_origin = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return 2;
  }
  if (!s.cert_file != !s.key_file) {
    fprintf(stderr, "h3wt-server: --cert and --key go together\n");
    return 2;
  }
  if (!s.cert_file) {
    if (!cert_dir) {
      const char *home = getenv("HOME");
      snprintf(certdir, sizeof(certdir), "%s/.cache/h3wt",
               home ? home : ".");
      cert_dir = certdir;
    }
    if (dev_cert(cert_dir, devcert, devkey, sizeof(devcert)) != 0) {
      return 1;
    }
    s.cert_file = devcert;
    s.key_file = devkey;
  }
  if (s.qlog_dir && mkdir_p(s.qlog_dir) != 0) {
    fprintf(stderr, "h3wt-server: cannot create %s: %s\n", s.qlog_dir,
            strerror(errno));
    return 1;
  }

  a.loop = uv_default_loop();
  rv = h3wt_server_new(&a.server, a.loop, &s);
  if (rv != 0) {
    fprintf(stderr, "h3wt-server: %s\n", h3wt_strerror(rv));
    return 1;
  }
  {
    demo_wt_opts wo = {wt_origin, s.log_cb, s.log_user_data, s.log_level};
    if (demo_routes_http(a.server) != 0 ||
        h3wt_server_static(a.server, "/", web) != 0 ||
        demo_routes_wt(a.server, a.loop, &wo, &a.wt) != 0) {
      fprintf(stderr, "h3wt-server: cannot set up routes\n");
      h3wt_server_del(a.server);
      demo_wt_del(a.wt);
      return 1;
    }
  }
  rv = h3wt_server_listen(a.server);
  if (rv != 0) {
    fprintf(stderr, "h3wt-server: cannot listen on %s port %u: %s\n",
            s.host, s.port, h3wt_strerror(rv));
    return fail_after_start(&a);
  }
  uint8_t hash[32];
  char hex[65];
  h3wt_tls_cert_sha256(s.cert_file, hash);
  h3wt_hex(hash, 32, hex);
  if (!no_http) {
    h3wt_http1_settings hs;
    char *config = config_json(s.host, h3wt_server_port(a.server), hash);
    h3wt_http1_settings_default(&hs);
    hs.web_root = web;
    hs.port = (uint16_t)http_port;
    hs.config_json = config;
    hs.log_cb = s.log_cb;
    hs.log_user_data = s.log_user_data;
    hs.log_level = s.log_level;
    rv = config ? h3wt_http1_new(&a.http1, a.loop, &hs) : H3WT_ERR_NOMEM;
    free(config);
    if (rv != 0) {
      fprintf(stderr, "h3wt-server: demo page listener: %s\n",
              h3wt_strerror(rv));
      return fail_after_start(&a);
    }
    rv = h3wt_http1_listen(a.http1);
    if (rv != 0 && http_port_given) {
      fprintf(stderr,
              "h3wt-server: cannot listen on localhost port %" PRIu64
              " (HTTP/1.1, demo page): %s\n",
              http_port, h3wt_strerror(rv));
      return fail_after_start(&a);
    }
    if (rv != 0) {
      /* The default port is taken (another server, another test): the
         HTTP/3 server is still useful without its demo page. */
      fprintf(stderr,
              "h3wt-server: no demo page: localhost port %" PRIu64
              " is busy (choose one with --http-port, or --no-http)\n",
              http_port);
      h3wt_http1_close(a.http1, NULL, NULL); /* freed at exit */
      a.http1_unused = a.http1;
      a.http1 = NULL;
    }
  }
  printf("h3wt-server: listening on %s port %u (UDP, HTTP/3)\n", s.host,
         h3wt_server_port(a.server));
  printf("h3wt-server: certificate %s\n", s.cert_file);
  printf("h3wt-server: certificate sha256 %s\n", hex);
  printf("h3wt-server: try: curl --http3-only -k https://localhost:%u/\n",
         h3wt_server_port(a.server));
  if (a.http1) {
    printf("h3wt-server: demo page http://localhost:%u/\n",
           h3wt_http1_port(a.http1));
  }
  fflush(stdout);

  uv_signal_init(a.loop, &a.sigint);
  uv_signal_init(a.loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);

  uv_run(a.loop, UV_RUN_DEFAULT);
  h3wt_server_del(a.server);
  h3wt_http1_del(a.http1);
  h3wt_http1_del(a.http1_unused);
  demo_wt_del(a.wt);
  rv = uv_loop_close(a.loop);
  if (rv != 0) {
    fprintf(stderr, "h3wt-server: loop not empty at exit: %s\n",
            uv_strerror(rv));
    return 1;
  }
  fprintf(stderr, "h3wt-server: stopped\n");
  return 0;
}
