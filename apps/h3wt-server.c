/*
 * h3wt-server: the demo server.
 *
 * HTTP/3 (UDP, --port):
 *   GET /         a hello text
 *   POST /echo    JSON parsed and re-serialised (pretty) with jansson
 *   GET /stats    the server's counters as JSON (h3wt_server_get_stats)
 *   GET /metrics  the same in the Prometheus text format
 *   GET /<file>   files below the web folder (the demo page)
 *   WebTransport  /wt/echo, /wt/ticker (see demo_routes.h), /wt/channels
 *                 (demo_channels.h)
 *
 * HTTP/1.1 on localhost only (TCP, --http-port, default 8080): the demo
 * page from the web folder and /config.json (the HTTP/3 port and the
 * certificate hash), so a browser can open http://localhost:8080/ and
 * reach WebTransport with serverCertificateHashes (see h3wt_http1.h).
 *
 * Settings come from the command line and, with --config FILE, from a
 * JSON file (h3wt_config.h: every key is also an option; the command line
 * wins).  The HTTP/1.1 listener serves GET /stats too.
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

#include "demo_channels.h"
#include "demo_routes.h"
#include "h3wt/h3wt.h"
#include "h3wt_config.h"
#include "h3wt_http1.h"
#include "h3wt_stats_json.h"

/* ---- command line ---------------------------------------------------------- */

/* Long options of their own; every config key is an option too. */
enum { OPT_CONFIG = 1000, OPT_SET, OPT_PRINT, OPT_NO_HTTP, OPT_KEY = 2000 };

static void usage(FILE *f) {
  fprintf(f,
          "Usage: h3wt-server [options]\n"
          "      --config FILE      read settings from a JSON file (keys as "
          "below,\n"
          "                         '-' written '_'); options override it\n"
          "      --set KEY=VALUE    set any key, as in the file\n"
          "      --print-config     print the effective settings as JSON, "
          "exit\n");
  for (size_t i = 0; i < h3wt_config_nkeys(); ++i) {
    const h3wt_config_key *k = h3wt_config_key_at(i);
    char left[64];
    const char *help = k->help, *nl;
    if (k->type == H3WT_CONFIG_BOOL) {
      snprintf(left, sizeof(left), "--%s, --no-%s", k->opt, k->opt);
    } else {
      snprintf(left, sizeof(left), "--%s %s", k->opt, k->arg);
    }
    if (k->short_opt) {
      fprintf(f, "  -%c, ", k->short_opt);
    } else {
      fprintf(f, "      ");
    }
    if (strlen(left) > 18) {
      fprintf(f, "%s\n%25s", left, ""); /* too wide: help on the next line */
    } else {
      fprintf(f, "%-18s ", left);
    }
    /* Help texts may span lines: indent the continuation. */
    while ((nl = strchr(help, '\n'))) {
      fprintf(f, "%.*s\n%25s", (int)(nl - help), help, "");
      help = nl + 1;
    }
    fprintf(f, "%s\n", help);
  }
  fprintf(f, "  -h, --help\n");
}

typedef struct app {
  uv_loop_t *loop;
  h3wt_server *server;
  h3wt_http1 *http1;
  h3wt_http1 *http1_unused; /* could not listen: freed at exit */
  demo_wt *wt;
  h3wt_channels *hub; /* /wt/channels */
  uv_signal_t sigint, sigterm;
  uint64_t drain_ms; /* --drain-timeout */
  uint64_t started; /* uv_now() at start, for /stats */
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
  h3wt_server_shutdown(a->server, a->drain_ms, 0, "server shutting down",
                       server_closed, a);
}

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
static void to_hex(const uint8_t *in, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 0xf];
  }
  out[2 * len] = '\0';
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
  char hexhash[65], b64[45];
  json_t *h3host, *doc;
  char *text;
  to_hex(hash, 32, hexhash);
  base64(hash, 32, b64);
  h3host = host && strcmp(host, "::") != 0 && strcmp(host, "0.0.0.0") != 0
               ? json_string(host)
               : json_null();
  doc = json_pack("{s:i, s:o, s:s, s:s, s:{s:s, s:s, s:s}}", "h3_port",
                  (int)port, "h3_host", h3host, "cert_sha256", hexhash,
                  "cert_sha256_b64", b64, "paths", "echo", "/wt/echo",
                  "ticker", "/wt/ticker", "channels", "/wt/channels");
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
  h3wt_channels_del(a->hub);
  uv_run(a->loop, UV_RUN_DEFAULT);
  h3wt_server_del(a->server);
  h3wt_http1_del(a->http1);
  h3wt_http1_del(a->http1_unused);
  demo_wt_del(a->wt);
  uv_loop_close(a->loop);
  return 1;
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
  int64_t left = h3wt_cert_seconds_left(cert);
  if (left > 24 * 3600 && access(key, R_OK) == 0) {
    return 0;
  }
  if (h3wt_devcert_make(cert, key, err, sizeof(err)) != 0) {
    fprintf(stderr, "h3wt-server: development certificate: %s\n", err);
    return -1;
  }
  fprintf(stderr, "h3wt-server: made a development certificate in %s\n",
          dir);
  return 0;
}

/* ---- GET /stats and GET /metrics ------------------------------------------ */

#define PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The documents made per request: /stats (JSON) and /metrics (Prometheus
   text), for the HTTP/3 routes and the HTTP/1.1 listener alike (this is
   its dynamic callback).  Returns 1 with *body (malloc'd), 0 for another
   path, -1 when out of memory. */
static int stats_document(const char *path, char **body, size_t *len,
                          const char **ctype, void *data) {
  app *a = data;
  uint64_t up = uv_now(a->loop) - a->started;
  if (strcmp(path, "/stats") == 0) {
    *body = h3wt_stats_json(a->server, a->hub, up);
    *ctype = "application/json";
  } else if (strcmp(path, "/metrics") == 0) {
    *body = h3wt_stats_prometheus(a->server, a->hub, up);
    *ctype = PROMETHEUS_TYPE;
  } else {
    return 0;
  }
  if (!*body) {
    return -1;
  }
  *len = strlen(*body);
  return 1;
}

static void stats_request(h3wt_request *req, void *data) {
  const char *path = h3wt_request_path(req);
  char p[16];
  char *body = NULL;
  size_t len = 0, n = strcspn(path, "?#");
  const char *ctype = NULL;
  /* Routed here only for /stats and /metrics (a query may follow). */
  snprintf(p, sizeof(p), "%.*s", (int)n, path);
  if (stats_document(p, &body, &len, &ctype, data) != 1) {
    free(body);
    h3wt_request_respond(req, 500, NULL, 0, "out of memory\n", 14);
    return;
  }
  h3wt_header h[] = {H3WT_HEADER("content-type", ctype),
                     H3WT_HEADER("cache-control", "no-store")};
  h3wt_request_respond(req, 200, h, 2, body, len);
  free(body);
}

static const h3wt_request_handler stats_handler = {.on_request = stats_request};

/* ---- main ---------------------------------------------------------------------- */

typedef struct cli_item {
  const char *key, *value;
  const char *how; /* "--" for an option, "--set " for --set */
} cli_item;

/* Reads the command line: --config and the settings, applied in that
   order (the file first, so options override it wherever they stand).
   Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, h3wt_app_config *cfg) {
  static const struct option fixed[] = {
      {"config", required_argument, 0, OPT_CONFIG},
      {"set", required_argument, 0, OPT_SET},
      {"print-config", no_argument, 0, OPT_PRINT},
      {"no-http", no_argument, 0, OPT_NO_HTTP},
      {"help", no_argument, 0, 'h'}};
  size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
  struct option opts[H3WT_CONFIG_MAX_KEYS + 8];
  char shorts[2 * H3WT_CONFIG_MAX_KEYS + 4] = "h";
  cli_item *items = calloc((size_t)argc + 1, sizeof(*items));
  const char *config = NULL;
  size_t nitems = 0, nopts = 0;
  int c, print = 0, status = -1;
  char err[1024];

  if (!items) {
    fprintf(stderr, "h3wt-server: out of memory\n");
    return 1;
  }
  memcpy(opts, fixed, sizeof(fixed));
  nopts = nfixed;
  for (size_t i = 0; i < h3wt_config_nkeys(); ++i) {
    const h3wt_config_key *k = h3wt_config_key_at(i);
    opts[nopts++] = (struct option){
        k->opt, k->type == H3WT_CONFIG_BOOL ? no_argument : required_argument,
        0, OPT_KEY + (int)i};
    if (k->short_opt) {
      size_t n = strlen(shorts);
      shorts[n] = k->short_opt;
      shorts[n + 1] = ':';
      shorts[n + 2] = '\0';
    }
  }
  opts[nopts] = (struct option){0, 0, 0, 0};
  while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
    if (c >= OPT_KEY) {
      const h3wt_config_key *k = h3wt_config_key_at((size_t)(c - OPT_KEY));
      items[nitems++] = (cli_item){
          k->opt, k->type == H3WT_CONFIG_BOOL ? "true" : optarg, "--"};
      continue;
    }
    switch (c) {
    case OPT_CONFIG:
      config = optarg;
      break;
    case OPT_SET: {
      char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg) {
        fprintf(stderr, "h3wt-server: --set wants KEY=VALUE, not '%s'\n",
                optarg);
        status = 2;
        goto out;
      }
      *eq = '\0'; /* argv is ours to change */
      items[nitems++] = (cli_item){optarg, eq + 1, "--set "};
      break;
    }
    case OPT_PRINT:
      print = 1;
      break;
    case OPT_NO_HTTP:
      items[nitems++] = (cli_item){"http", "false", "--no-"};
      break;
    case 'h':
      usage(stdout);
      status = 0;
      goto out;
    default: {
      /* A short option of a key. */
      int found = 0;
      for (size_t i = 0; i < h3wt_config_nkeys() && !found; ++i) {
        if (h3wt_config_key_at(i)->short_opt == c) {
          items[nitems++] =
              (cli_item){h3wt_config_key_at(i)->opt, optarg, "--"};
          found = 1;
        }
      }
      if (found) {
        break;
      }
      usage(stderr);
      status = 2;
      goto out;
    }
    }
  }
  if (optind != argc) {
    fprintf(stderr, "h3wt-server: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    status = 2;
    goto out;
  }
  if (config && h3wt_config_load_file(cfg, config, err, sizeof(err)) != 0) {
    fprintf(stderr, "h3wt-server: %s\n", err);
    status = 2;
    goto out;
  }
  for (size_t i = 0; i < nitems; ++i) {
    if (h3wt_config_set(cfg, items[i].key, items[i].value, err,
                        sizeof(err)) != 0) {
      fprintf(stderr, "h3wt-server: %s%s\n", items[i].how, err);
      status = 2;
      goto out;
    }
  }
  if (!cfg->server.cert_file != !cfg->server.key_file) {
    fprintf(stderr, "h3wt-server: --cert and --key (keys \"cert\" and "
                    "\"key\") go together\n");
    status = 2;
    goto out;
  }
  if (print) {
    char *text = h3wt_config_dump(cfg);
    if (!text) {
      fprintf(stderr, "h3wt-server: out of memory\n");
      status = 1;
      goto out;
    }
    printf("%s\n", text);
    free(text);
    status = 0;
  }
out:
  free(items);
  return status;
}

/* Runs the server with the settings until it stops.  Returns the exit
   status. */
static int run(h3wt_app_config *cfg) {
  h3wt_server_settings s = cfg->server;
  app a;
  char devcert[4096], devkey[4096], certdir[4096];
  const char *web = cfg->web_dir, *cert_dir = cfg->cert_dir;
  const char *wt_origin = cfg->wt_origin;
  uint64_t http_port = cfg->http_port;
  int http_port_given = cfg->http_port_given, no_http = !cfg->http;
  int rv;

  memset(&a, 0, sizeof(a));
  a.drain_ms = cfg->drain_timeout_ms;
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
  uint8_t secret[1024];
  if (cfg->secret_file) {
    /* Read whole: at least 16 bytes, at most what the buffer holds (a
       secret longer than that is a mistake, not a secret). */
    FILE *f = fopen(cfg->secret_file, "rb");
    size_t n = f ? fread(secret, 1, sizeof(secret), f) : 0;
    int more = f ? fgetc(f) != EOF : 0;
    if (!f || ferror(f) || n < 16 || more) {
      fprintf(stderr,
              "h3wt-server: secret file %s: %s\n", cfg->secret_file,
              !f ? strerror(errno)
              : n < 16 ? "shorter than 16 bytes"
              : more   ? "longer than 1024 bytes"
                       : "read error");
      if (f) {
        fclose(f);
      }
      return 1;
    }
    fclose(f);
    s.secret = secret;
    s.secret_len = n;
  }
  if (s.qlog_dir && mkdir_p(s.qlog_dir) != 0) {
    fprintf(stderr, "h3wt-server: cannot create %s: %s\n", s.qlog_dir,
            strerror(errno));
    return 1;
  }

  a.loop = uv_default_loop();
  a.started = uv_now(a.loop);
  rv = h3wt_server_new(&a.server, a.loop, &s);
  if (rv != 0) {
    fprintf(stderr, "h3wt-server: %s\n", h3wt_strerror(rv));
    return 1;
  }
  {
    demo_wt_opts wo = {wt_origin, s.log_cb, s.log_user_data, s.log_level};
    if (demo_routes_http(a.server) != 0 ||
        h3wt_server_route(a.server, "GET", "/stats", &stats_handler, &a) !=
            0 ||
        h3wt_server_route(a.server, "GET", "/metrics", &stats_handler, &a) !=
            0 ||
        h3wt_server_static(a.server, "/", web) != 0 ||
        demo_routes_wt(a.server, a.loop, &wo, &a.wt) != 0 ||
        demo_channels_new(a.server, cfg->channels_token, &cfg->channels,
                          &a.hub) != 0) {
      fprintf(stderr, "h3wt-server: cannot set up routes\n");
      h3wt_channels_del(a.hub);
      uv_run(a.loop, UV_RUN_DEFAULT);
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
  char hexhash[65];
  h3wt_cert_sha256(s.cert_file, hash);
  to_hex(hash, 32, hexhash);
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
    hs.dynamic = stats_document;
    hs.dynamic_user_data = &a;
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
  printf("h3wt-server: certificate sha256 %s\n", hexhash);
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
  h3wt_channels_del(a.hub); /* its sessions ended with the server */
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

int main(int argc, char **argv) {
  h3wt_app_config cfg;
  int rv;
  h3wt_config_init(&cfg);
  rv = parse_args(argc, argv, &cfg);
  if (rv < 0) {
    rv = run(&cfg);
  }
  h3wt_config_free(&cfg);
  return rv;
}
