/*
 * Unit tests of the demo server's configuration (apps/h3wt_config.c): a
 * good file, unknown keys, wrong types, out-of-range and negative values,
 * JSON syntax errors with line and column, command-line text, and the
 * --print-config dump read back; and that GET /stats (apps/h3wt_stats_json.c)
 * carries every counter of h3wt_server_stats.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "h3wt_config.h"
#include "h3wt_stats_json.h"
#include "h3wt_test.h"

static char err[1024];

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *write_file(const char *text) {
  static char path[64];
  snprintf(path, sizeof(path), "/tmp/h3wt-config-XXXXXX");
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK_EQ_INT(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
  }
  return path;
}

/* Loads text as a file into a fresh config; returns the result, err holds
   the message. */
static int load_text(h3wt_app_config *c, const char *text) {
  const char *path = write_file(text);
  err[0] = '\0';
  h3wt_config_init(c);
  int rv = h3wt_config_load_file(c, path, err, sizeof(err));
  unlink(path);
  return rv;
}

static void check_contains(const char *hay, const char *needle) {
  if (!strstr(hay, needle)) {
    CHECK_EQ_STR(hay, needle); /* prints both */
  }
}

TEST(good_file) {
  h3wt_app_config c;
  int rv = load_text(&c, "{\n"
                         "  \"addr\": \"127.0.0.1\",\n"
                         "  \"port\": 8443,\n"
                         "  \"web\": \"/srv/www\",\n"
                         "  \"log_level\": \"debug\",\n"
                         "  \"qlog_dir\": null,\n"
                         "  \"http\": false,\n"
                         "  \"http_port\": 0,\n"
                         "  \"wt_origin\": \"https://game.example\",\n"
                         "  \"drain_timeout\": 250,\n"
                         "  \"max_body\": 65536,\n"
                         "  \"max_connections\": 3,\n"
                         "  \"max_sessions_per_conn\": 0,\n"
                         "  \"max_session_queue\": 0,\n"
                         "  \"max_stream_queue\": 1,\n"
                         "  \"max_handshakes_per_addr\": 4294967295\n"
                         "}\n");
  CHECK_EQ_INT(rv, 0);
  CHECK_EQ_STR(err, "");
  CHECK_EQ_STR(c.server.host, "127.0.0.1");
  CHECK_EQ_INT(c.server.port, 8443);
  CHECK_EQ_STR(c.web_dir, "/srv/www");
  CHECK_EQ_INT(c.server.log_level, H3WT_LOG_DEBUG);
  CHECK(c.server.qlog_dir == NULL);
  CHECK_EQ_INT(c.http, 0);
  CHECK_EQ_INT(c.http_port, 0);
  CHECK_EQ_INT(c.http_port_given, 1);
  CHECK_EQ_STR(c.wt_origin, "https://game.example");
  CHECK_EQ_INT(c.drain_timeout_ms, 250);
  CHECK_EQ_INT(c.server.max_request_body, 65536);
  CHECK_EQ_INT(c.server.max_connections, 3);
  CHECK_EQ_INT(c.server.max_sessions_per_conn, 0);
  CHECK_EQ_INT(c.server.max_session_queue, 0);
  CHECK_EQ_INT(c.server.max_stream_queue, 1);
  CHECK_EQ_INT(c.server.max_handshakes_per_addr, 4294967295u);
  /* Untouched keys keep their defaults. */
  CHECK_EQ_INT(c.server.max_header_bytes, 16384);
  CHECK_EQ_INT(c.server.max_datagram_queue, 256);
  h3wt_config_free(&c);
}

TEST(defaults_and_empty_object) {
  h3wt_app_config c;
  CHECK_EQ_INT(load_text(&c, "{}"), 0);
  CHECK_EQ_STR(c.server.host, "::");
  CHECK_EQ_INT(c.server.port, 4433);
  CHECK_EQ_STR(c.web_dir, "web");
  CHECK_EQ_INT(c.http, 1);
  CHECK_EQ_INT(c.http_port, 8080);
  CHECK_EQ_INT(c.http_port_given, 0);
  CHECK_EQ_INT(c.drain_timeout_ms, 5000);
  CHECK_EQ_INT(c.server.max_session_queue, 1024 * 1024);
  h3wt_config_free(&c);
}

TEST(unknown_key) {
  h3wt_app_config c;
  CHECK_EQ_INT(load_text(&c, "{\n  \"port\": 1,\n  \"max_conections\": 5\n}"),
               -1);
  check_contains(err, "/tmp/h3wt-config-");
  check_contains(err, ":3:3: max_conections: unknown key");
  h3wt_config_free(&c);
  /* The option spelling is not a file key. */
  CHECK_EQ_INT(load_text(&c, "{\"max-body\": 5}"), -1);
  check_contains(err, "max-body: unknown key");
  h3wt_config_free(&c);
}

TEST(wrong_type) {
  h3wt_app_config c;
  CHECK_EQ_INT(load_text(&c, "{\"max_connections\": \"10\"}"), -1);
  check_contains(err, ":1:2: max_connections: expected an integer from 1 to "
                      "4294967295, got a string");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"port\": 44.5}"), -1);
  check_contains(err, "port: expected an integer");
  check_contains(err, "got a number with a fraction");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"http\": 1}"), -1);
  check_contains(err, "http: expected true or false, got an integer");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"web\": null}"), -1);
  check_contains(err, "web: expected a string, got null");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"cert\": [\"a\"]}"), -1);
  check_contains(err, "cert: expected a string or null, got an array");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"log_level\": \"loud\"}"), -1);
  check_contains(err, "log_level: \"loud\" is not a log level");
  h3wt_config_free(&c);
}

TEST(out_of_range) {
  h3wt_app_config c;
  CHECK_EQ_INT(load_text(&c, "{\n\n    \"port\": 70000}"), -1);
  check_contains(err, ":3:5: port: 70000 is out of range (expected an "
                      "integer from 0 to 65535)");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"max_body\": -1}"), -1);
  check_contains(err, "max_body: -1 is negative");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"max_connections\": 0}"), -1);
  check_contains(err, "max_connections: 0 is out of range");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"max_connections\": 4294967296}"), -1);
  check_contains(err, "max_connections: 4294967296 is out of range");
  h3wt_config_free(&c);
  /* Beyond what jansson's integers hold: a syntax error with position. */
  CHECK_EQ_INT(load_text(&c, "{\"max_body\": 99999999999999999999}"), -1);
  check_contains(err, ":1:");
  h3wt_config_free(&c);
}

/* workers: one per core by default (at least 1), 1 to 1024 when given. */
TEST(workers_key) {
  h3wt_app_config c;
  CHECK_EQ_INT(load_text(&c, "{}"), 0);
  CHECK(c.workers >= 1 && c.workers <= 1024);
  CHECK_EQ_INT(c.workers, uv_available_parallelism() > 1024
                              ? 1024
                              : uv_available_parallelism());
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"workers\": 3}"), 0);
  CHECK_EQ_INT(c.workers, 3);
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"workers\": 0}"), -1);
  check_contains(err, "workers: 0 is out of range");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"workers\": 1025}"), -1);
  check_contains(err, "workers: 1025 is out of range");
  h3wt_config_free(&c);
}

TEST(bad_json_has_line_and_column) {
  h3wt_app_config c;
  CHECK_EQ_INT(load_text(&c, "{\n  \"port\": 1,\n  \"web\": \n}\n"), -1);
  /* jansson points at the '}' that came where a value was due. */
  check_contains(err, ":4:1: ");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"port\": 1,}"), -1);
  check_contains(err, ":1:12: ");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "{\"port\": 1, \"port\": 2}"), -1);
  check_contains(err, "duplicate");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, "[1, 2]"), -1);
  check_contains(err, "the top level must be a JSON object");
  h3wt_config_free(&c);
  CHECK_EQ_INT(load_text(&c, ""), -1);
  check_contains(err, ":1:");
  h3wt_config_free(&c);
  h3wt_config_init(&c);
  CHECK_EQ_INT(h3wt_config_load_file(&c, "/nonexistent/h3wt.json", err,
                                     sizeof(err)),
               -1);
  check_contains(err, "/nonexistent/h3wt.json: cannot open");
  h3wt_config_free(&c);
}

TEST(command_line_text) {
  h3wt_app_config c;
  h3wt_config_init(&c);
  CHECK_EQ_INT(h3wt_config_set(&c, "max-connections", "12", err, sizeof(err)),
               0);
  CHECK_EQ_INT(c.server.max_connections, 12);
  CHECK_EQ_INT(h3wt_config_set(&c, "max_sessions_per_conn", "2", err,
                               sizeof(err)),
               0);
  CHECK_EQ_INT(c.server.max_sessions_per_conn, 2);
  CHECK_EQ_INT(h3wt_config_set(&c, "http", "off", err, sizeof(err)), 0);
  CHECK_EQ_INT(c.http, 0);
  CHECK_EQ_INT(h3wt_config_set(&c, "http", "yes", err, sizeof(err)), 0);
  CHECK_EQ_INT(c.http, 1);
  CHECK_EQ_INT(h3wt_config_set(&c, "web", "a", err, sizeof(err)), 0);
  CHECK_EQ_INT(h3wt_config_set(&c, "web", "b", err, sizeof(err)), 0);
  CHECK_EQ_STR(c.web_dir, "b");
  CHECK_EQ_INT(h3wt_config_set(&c, "port", "-1", err, sizeof(err)), -1);
  CHECK_EQ_STR(err, "port: '-1' is not an integer from 0 to 65535");
  CHECK_EQ_INT(h3wt_config_set(&c, "port", "+1", err, sizeof(err)), -1);
  CHECK_EQ_INT(h3wt_config_set(&c, "port", "", err, sizeof(err)), -1);
  CHECK_EQ_INT(h3wt_config_set(&c, "port", "65536", err, sizeof(err)), -1);
  CHECK_EQ_STR(err, "port: 65536 is out of range (an integer from 0 to "
                    "65535)");
  CHECK_EQ_INT(h3wt_config_set(&c, "max_body", "99999999999999999999999", err,
                               sizeof(err)),
               -1);
  check_contains(err, "out of range");
  CHECK_EQ_INT(h3wt_config_set(&c, "http", "maybe", err, sizeof(err)), -1);
  CHECK_EQ_INT(h3wt_config_set(&c, "web", "", err, sizeof(err)), -1);
  CHECK_EQ_INT(h3wt_config_set(&c, "nope", "1", err, sizeof(err)), -1);
  CHECK_EQ_STR(err, "unknown key 'nope' (--help lists them)");
  h3wt_config_free(&c);
}

/* --print-config's output is a valid config file giving the same values. */
TEST(dump_reads_back) {
  h3wt_app_config a, b;
  h3wt_config_init(&a);
  CHECK_EQ_INT(h3wt_config_set(&a, "max_body", "777", err, sizeof(err)), 0);
  CHECK_EQ_INT(h3wt_config_set(&a, "keylog", "/tmp/k", err, sizeof(err)), 0);
  CHECK_EQ_INT(h3wt_config_set(&a, "log_level", "warn", err, sizeof(err)), 0);
  char *text = h3wt_config_dump(&a);
  CHECK(text != NULL);
  if (!text) {
    h3wt_config_free(&a);
    return;
  }
  /* Every key is in it. */
  for (size_t i = 0; i < h3wt_config_nkeys(); ++i) {
    char q[64];
    snprintf(q, sizeof(q), "\"%s\":", h3wt_config_key_at(i)->name);
    check_contains(text, q);
  }
  CHECK_EQ_INT(load_text(&b, text), 0);
  CHECK_EQ_STR(err, "");
  CHECK_EQ_INT(b.server.max_request_body, 777);
  CHECK_EQ_STR(b.server.keylog_file, "/tmp/k");
  CHECK_EQ_INT(b.server.log_level, H3WT_LOG_WARN);
  char *again = h3wt_config_dump(&b);
  CHECK(again != NULL);
  if (again) {
    CHECK_EQ_STR(again, text);
  }
  free(again);
  free(text);
  h3wt_config_free(&a);
  h3wt_config_free(&b);
}

/* A password in the broker URL never reaches --print-config's output. */
TEST(dump_hides_broker_password) {
  h3wt_app_config a;
  h3wt_config_init(&a);
  CHECK_EQ_INT(h3wt_config_set(&a, "broker", "redis://:s3cret@10.0.0.1:6380/2",
                               err, sizeof(err)),
               0);
  char *text = h3wt_config_dump(&a);
  CHECK(text != NULL);
  if (text) {
    check_contains(text, "\"broker\": \"redis://:***@10.0.0.1:6380/2\"");
    CHECK(strstr(text, "s3cret") == NULL);
  }
  free(text);
  CHECK_EQ_INT(h3wt_config_set(&a, "broker", "redis://10.0.0.1", err,
                               sizeof(err)),
               0);
  text = h3wt_config_dump(&a);
  if (text) {
    check_contains(text, "\"broker\": \"redis://10.0.0.1\"");
  }
  free(text);
  h3wt_config_free(&a);
}

/* Every key has an option, a distinct name, and sane metadata. */
TEST(key_table) {
  for (size_t i = 0; i < h3wt_config_nkeys(); ++i) {
    const h3wt_config_key *k = h3wt_config_key_at(i);
    TEST_CONTEXT("key %s", k->name);
    CHECK_EQ_INT(h3wt_config_find(k->name), (long long)i);
    CHECK_EQ_INT(h3wt_config_find(k->opt), (long long)i);
    CHECK(k->help && *k->help);
    CHECK(k->type == H3WT_CONFIG_BOOL || k->arg);
    if (k->type == H3WT_CONFIG_UINT) {
      CHECK(k->min <= k->max);
      CHECK(k->size == 2 || k->size == 4 || k->size == 8);
      /* The range fits the field. */
      CHECK(k->size == 8 || k->max < (1ULL << (8 * k->size)));
    }
  }
}

/* GET /stats lists every counter: the table in h3wt_stats_json.c has one
   entry per uint64_t after the version field. */
TEST(stats_json_covers_every_counter) {
  size_t counters = (sizeof(h3wt_server_stats) -
                     offsetof(h3wt_server_stats, connections_current)) /
                    sizeof(uint64_t);
  CHECK_EQ_INT(h3wt_stats_json_nfields(), counters);
}

/* Two workers' counters: the totals are their sums (channels too), the
   workers array has each one's under the same keys, /metrics the sums. */
TEST(stats_json_adds_up_workers) {
  h3wt_stats_set w[2];
  memset(w, 0, sizeof(w));
  for (int i = 0; i < 2; ++i) {
    w[i].server.connections_total = 10 + (uint64_t)i;
    w[i].server.packets_handed_off = 100 * (uint64_t)(i + 1);
    w[i].server.limit_max_unvalidated_handshakes = 7;
    w[i].channels.subscribes = 3 + (uint64_t)i;
    w[i].has_channels = 1;
  }
  char *text = h3wt_stats_json(w, 2, 1234);
  CHECK(text != NULL);
  json_error_t e;
  json_t *doc = text ? json_loads(text, 0, &e) : NULL;
  CHECK(doc != NULL);
  if (doc) {
    CHECK_EQ_INT(json_integer_value(json_object_get(doc, "connections_total")),
                 21);
    CHECK_EQ_INT(json_integer_value(json_object_get(doc, "packets_handed_off")),
                 300);
    CHECK_EQ_INT(json_integer_value(json_object_get(
                     doc, "limit_max_unvalidated_handshakes")),
                 14);
    CHECK_EQ_INT(json_integer_value(json_object_get(
                     json_object_get(doc, "channels"), "subscribes")),
                 7);
    CHECK_EQ_INT(json_integer_value(json_object_get(doc, "uptime_ms")), 1234);
    json_t *arr = json_object_get(doc, "workers");
    CHECK_EQ_INT(json_array_size(arr), 2);
    json_t *w1 = json_array_get(arr, 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(w1, "connections_total")),
                 11);
    CHECK_EQ_INT(json_integer_value(json_object_get(
                     json_object_get(w1, "channels"), "subscribes")),
                 4);
    /* Each worker carries every counter the totals do. */
    CHECK_EQ_INT(json_object_size(w1) + 3, json_object_size(doc));
  }
  json_decref(doc);
  free(text);
  text = h3wt_stats_prometheus(w, 2, 1234);
  CHECK(text != NULL);
  if (text) {
    CHECK(strstr(text, "\nh3wt_connections_total 21\n") != NULL);
    CHECK(strstr(text, "\nh3wt_packets_handed_off_total 300\n") != NULL);
    CHECK(strstr(text, "\nh3wt_channels_subscribes_total 7\n") != NULL);
  }
  free(text);
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(good_file),
      TEST_ENTRY(defaults_and_empty_object),
      TEST_ENTRY(unknown_key),
      TEST_ENTRY(wrong_type),
      TEST_ENTRY(out_of_range),
      TEST_ENTRY(workers_key),
      TEST_ENTRY(bad_json_has_line_and_column),
      TEST_ENTRY(command_line_text),
      TEST_ENTRY(dump_reads_back),
      TEST_ENTRY(dump_hides_broker_password),
      TEST_ENTRY(key_table),
      TEST_ENTRY(stats_json_covers_every_counter),
      TEST_ENTRY(stats_json_adds_up_workers),
  };
  /* The environment gives defaults: keep it out of these tests. */
  unsetenv("SSLKEYLOGFILE");
  unsetenv("H3WT_CERT_DIR");
  return TEST_MAIN(argc, argv, tests);
}
