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
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
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

typedef struct app app;

/* One worker: a server of the group on its own loop, with its routes and
   its channel hub.  Worker 0 runs on the main thread (the default loop,
   with the signals and the HTTP/1.1 listener); the others each on a
   thread of their own.  Everything of a worker is touched on its thread
   only, or through h3wt_server_post() on its server. */
typedef struct worker {
  app *app;
  uint32_t index;
  uv_loop_t own_loop; /* workers 1..n-1 */
  uv_loop_t *loop;
  uv_thread_t thread;
  int thread_started;
  h3wt_server *server;
  demo_wt *wt;
  h3wt_channels *hub; /* /wt/channels */
  int closed;         /* its server's close callback ran (its thread) */
} worker;

struct app {
  worker *workers;
  uint32_t nworkers;
  h3wt_server_group *group; /* NULL with one worker */
  /* The channels broker every worker's hub goes through, so a message
     published on one worker reaches subscribers on all of them; NULL:
     each hub on its own. */
  h3wt_broker *broker; /* freed after the hubs (workers_free) */
  h3wt_http1 *http1;
  h3wt_http1 *http1_unused; /* could not listen: freed at exit */
  uv_signal_t sigint, sigterm;
  /* Each worker's server closed: the signals stay until every worker is
     done (a second signal must still find its handler). */
  uv_async_t worker_done;
  atomic_uint workers_closed;
  int workers_counted;
  uint64_t drain_ms; /* --drain-timeout */
  uint64_t started_ns; /* uv_hrtime() at start, for /stats */
  int stopping;
  int closing; /* the workers (as one) and the HTTP/1.1 listener still
                  closing (main thread) */
  struct stats_job *h1_jobs; /* HTTP/1.1 documents being gathered (main
                                thread) */
};

static void orphan_h1_jobs(app *a);

static void one_closed(app *a) {
  if (--a->closing == 0) {
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->worker_done, NULL);
  }
}

/* Main thread: a worker said its server closed. */
static void on_worker_done(uv_async_t *h) {
  app *a = h->data;
  if (!a->workers_counted &&
      atomic_load(&a->workers_closed) == a->nworkers) {
    a->workers_counted = 1;
    one_closed(a);
  }
}

/* A worker's server closed (on its thread).  Worker 0's is the main
   loop's: the HTTP/1.1 documents still waiting for other workers are
   answered now, so the listener can close too. */
static void worker_closed(h3wt_server *server, void *ud) {
  worker *w = ud;
  app *a = w->app;
  (void)server;
  if (w->closed) {
    return;
  }
  w->closed = 1;
  if (w->index == 0) {
    orphan_h1_jobs(a);
  }
  /* The handle lives until every worker counted here (main thread). */
  atomic_fetch_add(&a->workers_closed, 1);
  uv_async_send(&a->worker_done);
}

static void worker_shutdown(void *arg) {
  worker *w = arg;
  h3wt_server_shutdown(w->server, w->app->drain_ms, 0,
                       "server shutting down", worker_closed, w);
}

static void worker_close_now(void *arg) {
  worker *w = arg;
  h3wt_server_close(w->server, worker_closed, w);
}

static void http1_closed(h3wt_http1 *h, void *ud) {
  (void)h;
  one_closed(ud);
}

/* Hands fn to every worker's loop (a worker already closed refuses it,
   and has nothing left to do). */
static void post_all(app *a, void (*fn)(void *)) {
  for (uint32_t i = 0; i < a->nworkers; ++i) {
    h3wt_server_post(a->workers[i].server, fn, &a->workers[i]);
  }
}

/* Main thread: stops every worker (how: worker_shutdown or
   worker_close_now) and the HTTP/1.1 listener; the main loop ends when
   all of them closed. */
static void stop_all(app *a, void (*how)(void *)) {
  a->stopping = 1;
  a->closing = a->http1 ? 2 : 1;
  if (a->http1) {
    h3wt_http1_close(a->http1, http1_closed, a);
  }
  post_all(a, how);
}

/* The first SIGINT/SIGTERM drains every worker: GOAWAY and
   WT_DRAIN_SESSION, what is in flight may finish for --drain-timeout,
   then sessions are closed.  A second one closes at once. */
static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (a->stopping) {
    fprintf(stderr, "h3wt-server: %s again, closing now\n", name);
    post_all(a, worker_close_now);
    return;
  }
  fprintf(stderr, "h3wt-server: %s, shutting down (draining for up to %" PRIu64
          " ms)\n", name, a->drain_ms);
  stop_all(a, worker_shutdown);
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

/* Each worker's counters are read on its own loop thread: the worker that
   got the request (its "home") posts a part of the job to every worker,
   each fills its slot and posts the part back home, and the last one back
   answers.  The job is freed when its last reference goes: home's (gone
   once answered, or once the request went away) and each part's (gone
   when it came back home, or when home refused it because it is
   closing). */
typedef struct stats_part {
  struct stats_job *job;
  uint32_t index;
} stats_part;

typedef struct stats_job {
  app *a;
  worker *home;
  int prometheus;           /* /metrics, else /stats */
  h3wt_request *req;        /* over HTTP/3, until answered or gone */
  h3wt_http1_later *later;  /* over HTTP/1.1, until answered */
  struct stats_job *next;   /* in app->h1_jobs (main thread) */
  uint32_t waiting;         /* parts not back home (home's thread) */
  int answered;             /* (home's thread) */
  atomic_int refs;
  h3wt_stats_set *sets;     /* [nworkers] */
  atomic_int *filled;       /* [nworkers]: the slot is complete */
  stats_part *parts;        /* [nworkers] */
} stats_job;

static void job_free(stats_job *j) {
  free(j->sets);
  free(j->filled);
  free(j->parts);
  free(j);
}

static void job_unref(stats_job *j) {
  if (atomic_fetch_sub(&j->refs, 1) == 1) {
    job_free(j);
  }
}

static void h1_jobs_remove(stats_job *j) {
  for (stats_job **p = &j->a->h1_jobs; *p; p = &(*p)->next) {
    if (*p == j) {
      *p = j->next;
      return;
    }
  }
}

/* On home's thread: the document from the slots filled (a worker that
   was closing has none: the totals are then of the others), or NULL.  A
   slot is read only once its worker said it is filled: when worker 0
   closed, others may still be filling theirs. */
static char *job_document(stats_job *j) {
  h3wt_stats_set *sets = malloc(j->a->nworkers * sizeof(*sets));
  uint32_t n = 0;
  char *doc;
  if (!sets) {
    return NULL;
  }
  for (uint32_t i = 0; i < j->a->nworkers; ++i) {
    if (atomic_load_explicit(&j->filled[i], memory_order_acquire)) {
      sets[n++] = j->sets[i];
    }
  }
  uint64_t up = (uv_hrtime() - j->a->started_ns) / 1000000;
  doc = j->prometheus ? h3wt_stats_prometheus(sets, n, up)
                      : h3wt_stats_json(sets, n, up);
  free(sets);
  return doc;
}

/* On home's thread, once: answers (body NULL: 500, or nobody to answer)
   and lets go of home's reference. */
static void job_answer(stats_job *j, char *body) {
  const char *ctype = j->prometheus ? PROMETHEUS_TYPE : "application/json";
  assert(!j->answered);
  j->answered = 1;
  if (j->req) {
    h3wt_request_set_data(j->req, NULL);
    if (body) {
      h3wt_header h[] = {H3WT_HEADER("content-type", ctype),
                         H3WT_HEADER("cache-control", "no-store")};
      h3wt_request_respond(j->req, 200, h, 2, body, strlen(body));
    } else {
      h3wt_request_respond(j->req, 500, NULL, 0, "out of memory\n", 14);
    }
    free(body);
  } else if (j->later) {
    h1_jobs_remove(j);
    h3wt_http1_answer(j->later, body, body ? strlen(body) : 0, ctype);
  } else {
    free(body);
  }
  j->req = NULL;
  j->later = NULL;
  job_unref(j);
}

/* Home's thread: a part is back. */
static void job_part_home(void *arg) {
  stats_part *p = arg;
  stats_job *j = p->job;
  assert(j->waiting > 0);
  if (--j->waiting == 0 && !j->answered) {
    job_answer(j, job_document(j));
  }
  job_unref(j);
}

/* Worker p->index's thread: its counters, then back home. */
static void job_part_gather(void *arg) {
  stats_part *p = arg;
  stats_job *j = p->job;
  worker *w = &j->a->workers[p->index];
  if (h3wt_stats_gather(w->server, w->hub, &j->sets[p->index]) == 0) {
    atomic_store_explicit(&j->filled[p->index], 1, memory_order_release);
  }
  if (h3wt_server_post(j->home->server, job_part_home, p) != 0) {
    job_unref(j); /* home is closing: its request goes with it */
  }
}

/* Home's thread: starts gathering for a request.  Returns the job or NULL
   (out of memory). */
static stats_job *job_start(worker *home, int prometheus) {
  app *a = home->app;
  stats_job *j = calloc(1, sizeof(*j));
  if (!j) {
    return NULL;
  }
  j->a = a;
  j->home = home;
  j->prometheus = prometheus;
  j->sets = calloc(a->nworkers, sizeof(*j->sets));
  j->filled = calloc(a->nworkers, sizeof(*j->filled));
  j->parts = calloc(a->nworkers, sizeof(*j->parts));
  if (!j->sets || !j->filled || !j->parts) {
    job_free(j);
    return NULL;
  }
  atomic_init(&j->refs, 1); /* home's */
  return j;
}

/* Home's thread, after the request is attached: the parts go out.  A
   worker that is closing refuses its part and is left out. */
static void job_send(stats_job *j) {
  /* Held for the loop, so the last part back cannot answer (and free)
     before every part is out. */
  atomic_fetch_add(&j->refs, 1);
  ++j->waiting;
  for (uint32_t i = 0; i < j->a->nworkers; ++i) {
    j->parts[i] = (stats_part){j, i};
    atomic_fetch_add(&j->refs, 1);
    ++j->waiting;
    if (h3wt_server_post(j->a->workers[i].server, job_part_gather,
                         &j->parts[i]) != 0) {
      --j->waiting;
      job_unref(j);
    }
  }
  stats_part self = {j, UINT32_MAX};
  job_part_home(&self);
}

/* Main thread: worker 0 closed, so parts still out cannot come back; the
   HTTP/1.1 requests waiting for them get what is known (the listener
   waits for their answers before it closes). */
static void orphan_h1_jobs(app *a) {
  while (a->h1_jobs) {
    stats_job *j = a->h1_jobs;
    job_answer(j, job_document(j)); /* takes it off the list */
  }
}

static int stats_path(const char *path, size_t n, int *prometheus) {
  if (n == 6 && memcmp(path, "/stats", 6) == 0) {
    *prometheus = 0;
    return 1;
  }
  if (n == 8 && memcmp(path, "/metrics", 8) == 0) {
    *prometheus = 1;
    return 1;
  }
  return 0;
}

/* The HTTP/1.1 listener's documents (on worker 0's loop, the main one). */
static int stats_document(const char *path, h3wt_http1_later *later,
                          void *data) {
  worker *home = data;
  int prometheus;
  if (!stats_path(path, strlen(path), &prometheus)) {
    return 0;
  }
  stats_job *j = job_start(home, prometheus);
  if (!j) {
    h3wt_http1_answer(later, NULL, 0, NULL);
    return 1;
  }
  j->later = later;
  j->next = home->app->h1_jobs;
  home->app->h1_jobs = j;
  job_send(j);
  return 1;
}

static void stats_request(h3wt_request *req, void *data) {
  worker *home = data;
  const char *path = h3wt_request_path(req);
  int prometheus = 0;
  /* Routed here only for /stats and /metrics (a query may follow). */
  stats_path(path, strcspn(path, "?#"), &prometheus);
  stats_job *j = job_start(home, prometheus);
  if (!j) {
    h3wt_request_respond(req, 500, NULL, 0, "out of memory\n", 14);
    return;
  }
  j->req = req;
  h3wt_request_set_data(req, j);
  job_send(j);
}

/* The request went before its answer (its connection closed): nobody to
   answer. */
static void stats_request_close(h3wt_request *req, uint64_t code,
                                void *data) {
  stats_job *j = h3wt_request_get_data(req);
  (void)code;
  (void)data;
  if (j) {
    j->req = NULL;
    job_answer(j, NULL);
  }
}

static const h3wt_request_handler stats_handler = {
    .on_request = stats_request, .on_close = stats_request_close};

/* ---- the workers --------------------------------------------------------- */

/* After every worker's loop ended (or before any ran): frees the workers
   and the group.  Returns 0, or -1 when a loop still had handles. */
static int workers_free(app *a) {
  int rv = 0;
  for (uint32_t i = 0; a->workers && i < a->nworkers; ++i) {
    worker *w = &a->workers[i];
    h3wt_server_del(w->server);
    demo_wt_del(w->wt);
    if (w->loop && uv_loop_close(w->loop) != 0) {
      fprintf(stderr, "h3wt-server: worker %u: loop not empty at exit\n",
              i);
      rv = -1;
    }
  }
  free(a->workers);
  a->workers = NULL;
  h3wt_server_group_del(a->group);
  a->group = NULL;
  h3wt_broker_del(a->broker); /* every hub on it is gone */
  a->broker = NULL;
  return rv;
}

/* A worker's loop until its server closed, then until its hub's handles
   are closed too. */
static void worker_run(worker *w) {
  uv_run(w->loop, UV_RUN_DEFAULT);
  h3wt_channels_del(w->hub); /* its sessions ended with the server */
  w->hub = NULL;
  uv_run(w->loop, UV_RUN_DEFAULT);
}

static void worker_main(void *arg) {
  worker_run(arg);
}

/* Closes whatever was made after a failed start (no worker thread runs
   yet: each loop is run here), and frees it all.  Returns 1 (the exit
   status). */
static int fail_after_start(app *a) {
  if (a->http1) {
    h3wt_http1_close(a->http1, NULL, NULL); /* on worker 0's loop */
  }
  for (uint32_t i = 0; i < a->nworkers; ++i) {
    worker *w = &a->workers[i];
    if (w->server) {
      h3wt_server_close(w->server, NULL, NULL);
    }
    if (w->loop) {
      worker_run(w);
    }
  }
  h3wt_http1_del(a->http1);
  h3wt_http1_del(a->http1_unused);
  workers_free(a);
  return 1;
}

/* Makes worker w's server with its routes and hub (main thread, before
   any worker thread runs).  Returns 0 or -1 (said on stderr). */
static int worker_setup(app *a, worker *w, const h3wt_server_settings *base,
                        const h3wt_app_config *cfg) {
  h3wt_server_settings s = *base;
  h3wt_channels_settings chs = cfg->channels;
  demo_wt_opts wo = {cfg->wt_origin, s.log_cb, s.log_user_data, s.log_level};
  int rv;
  w->app = a;
  if (w->index == 0) {
    w->loop = uv_default_loop();
  } else if (uv_loop_init(&w->own_loop) == 0) {
    w->loop = &w->own_loop;
  } else {
    fprintf(stderr, "h3wt-server: worker %u: no loop\n", w->index);
    return -1;
  }
  s.group = a->group;
  s.worker = w->index;
  rv = h3wt_server_new(&w->server, w->loop, &s);
  if (rv != 0) {
    fprintf(stderr, "h3wt-server: %s\n", h3wt_strerror(rv));
    return -1;
  }
  chs.broker = a->broker;
  if (demo_routes_http(w->server) != 0 ||
      h3wt_server_route(w->server, "GET", "/stats", &stats_handler, w) != 0 ||
      h3wt_server_route(w->server, "GET", "/metrics", &stats_handler, w) !=
          0 ||
      h3wt_server_static(w->server, "/", cfg->web_dir) != 0 ||
      demo_routes_wt(w->server, w->loop, &wo, &w->wt) != 0 ||
      demo_channels_new(w->server, cfg->channels_token, &chs, &w->hub) !=
          0) {
    fprintf(stderr, "h3wt-server: cannot set up routes\n");
    return -1;
  }
  /* Worker 0 listens first: the group binds every worker's socket then,
     and the others get the same port, ephemeral or not. */
  rv = h3wt_server_listen(w->server);
  if (rv != 0) {
    fprintf(stderr, "h3wt-server: cannot listen on %s port %u: %s\n",
            s.host, s.port, h3wt_strerror(rv));
    return -1;
  }
  return 0;
}

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

  a.started_ns = uv_hrtime();
  a.nworkers = cfg->workers ? cfg->workers : 1;
  a.workers = calloc(a.nworkers, sizeof(*a.workers));
  if (!a.workers) {
    fprintf(stderr, "h3wt-server: out of memory\n");
    return 1;
  }
  /* One worker keeps the plain layout: no group, one socket. */
  if (a.nworkers > 1 &&
      (rv = h3wt_server_group_new(&a.group, a.nworkers)) != 0) {
    fprintf(stderr, "h3wt-server: %s\n", h3wt_strerror(rv));
    free(a.workers);
    return 1;
  }
  /* The channels' broker: Redis when asked (every worker's hub gets its
     own connections on its own loop), else one in this process's memory
     shared by the workers (one worker alone needs none: its hub makes
     its own). */
  if (cfg->broker_url && strcmp(cfg->broker_url, "memory") != 0) {
    h3wt_broker_redis_settings rs = cfg->redis;
    rs.url = cfg->broker_url;
    rv = h3wt_broker_redis_new(&a.broker, &rs);
    if (rv != 0) {
      fprintf(stderr, "h3wt-server: --broker: %s\n",
              rv == H3WT_ERR_INVALID_ARGUMENT
                  ? "not a redis://[:PASSWORD@]HOST[:PORT][/DB] URL"
              : rv == H3WT_ERR_INVALID_STATE
                  ? "this build has no Redis broker (hiredis was not found)"
                  : h3wt_strerror(rv));
      return fail_after_start(&a);
    }
  } else if (a.nworkers > 1 && (rv = h3wt_broker_memory_new(&a.broker)) != 0) {
    fprintf(stderr, "h3wt-server: %s\n", h3wt_strerror(rv));
    return fail_after_start(&a);
  }
  for (uint32_t i = 0; i < a.nworkers; ++i) {
    a.workers[i].index = i;
    if (worker_setup(&a, &a.workers[i], &s, cfg) != 0) {
      return fail_after_start(&a);
    }
  }
  worker *w0 = &a.workers[0];
  uint8_t hash[32];
  char hexhash[65];
  h3wt_cert_sha256(s.cert_file, hash);
  to_hex(hash, 32, hexhash);
  if (!no_http) {
    h3wt_http1_settings hs;
    char *config = config_json(s.host, h3wt_server_port(w0->server), hash);
    h3wt_http1_settings_default(&hs);
    hs.web_root = web;
    hs.port = (uint16_t)http_port;
    hs.config_json = config;
    hs.log_cb = s.log_cb;
    hs.log_user_data = s.log_user_data;
    hs.log_level = s.log_level;
    hs.dynamic = stats_document;
    hs.dynamic_user_data = w0;
    rv = config ? h3wt_http1_new(&a.http1, w0->loop, &hs) : H3WT_ERR_NOMEM;
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
  printf("h3wt-server: listening on %s port %u (UDP, HTTP/3, %u worker%s)\n",
         s.host, h3wt_server_port(w0->server), a.nworkers,
         a.nworkers == 1 ? "" : "s");
  printf("h3wt-server: certificate %s\n", s.cert_file);
  printf("h3wt-server: certificate sha256 %s\n", hexhash);
  printf("h3wt-server: try: curl --http3-only -k https://localhost:%u/\n",
         h3wt_server_port(w0->server));
  if (a.http1) {
    printf("h3wt-server: demo page http://localhost:%u/\n",
           h3wt_http1_port(a.http1));
  }
  fflush(stdout);

  uv_signal_init(w0->loop, &a.sigint);
  uv_signal_init(w0->loop, &a.sigterm);
  uv_async_init(w0->loop, &a.worker_done, on_worker_done);
  a.sigint.data = a.sigterm.data = a.worker_done.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);

  /* From here each worker's objects belong to its thread. */
  for (uint32_t i = 1; i < a.nworkers; ++i) {
    worker *w = &a.workers[i];
    if (uv_thread_create(&w->thread, worker_main, w) == 0) {
      w->thread_started = 1;
      continue;
    }
    fprintf(stderr, "h3wt-server: worker %u: no thread, stopping\n", i);
    stop_all(&a, worker_close_now);
    for (uint32_t k = i; k < a.nworkers; ++k) {
      /* Never started: closed here, on this thread. */
      worker_close_now(&a.workers[k]);
      worker_run(&a.workers[k]);
    }
    break;
  }

  worker_run(w0);
  for (uint32_t i = 1; i < a.nworkers; ++i) {
    if (a.workers[i].thread_started) {
      uv_thread_join(&a.workers[i].thread);
    }
  }
  h3wt_http1_del(a.http1);
  h3wt_http1_del(a.http1_unused);
  if (workers_free(&a) != 0) {
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
