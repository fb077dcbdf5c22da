/*
 * h3wt_log: error names, the version, and the log line path (the level is
 * checked before formatting, in H3WT_LOG).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "h3wt_util.h"

/* ---- errors and logging ------------------------------------------------ */

const char *h3wt_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
  case H3WT_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case H3WT_ERR_INVALID_STATE:
    return "invalid state";
  case H3WT_ERR_WOULDBLOCK:
    return "queue full, wait until writable";
  case H3WT_ERR_NOT_FOUND:
    return "not found";
  case H3WT_ERR_TOO_LARGE:
    return "over a configured limit";
  case H3WT_ERR_IO:
    return "I/O error";
  case H3WT_ERR_ADDRESS:
    return "cannot resolve or bind address";
  case H3WT_ERR_TLS:
    return "TLS setup failed";
  case H3WT_ERR_QUIC:
    return "QUIC error";
  case H3WT_ERR_HANDSHAKE:
    return "handshake failed";
  case H3WT_ERR_IDLE_TIMEOUT:
    return "idle timeout";
  case H3WT_ERR_CLOSED:
    return "closed";
  case H3WT_ERR_H3:
    return "HTTP/3 protocol error";
  case H3WT_SESSION_RESET:
    return "session reset (the CONNECT stream was reset)";
  case H3WT_SESSION_REJECTED:
    return "session rejected by the server";
  case H3WT_SESSION_CONN_LOST:
    return "session lost with its connection";
  case H3WT_ERR_SESSION_CLOSING:
    return "session closing";
  case H3WT_ERR_DGRAM_DROPPED:
    return "datagram dropped: queue full";
  case H3WT_ERR_NOMEM:
    return "out of memory";
  default:
    return "unknown error";
  }
}

const char *h3wt_version(int *num) {
  if (num) {
    *num = H3WT_VERSION_NUM;
  }
  return H3WT_VERSION;
}

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

int h3wt_log_level_parse(const char *name, h3wt_log_level *out) {
  for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); ++i) {
    if (strcmp(name, level_names[i]) == 0) {
      *out = (h3wt_log_level)i;
      return 0;
    }
  }
  return H3WT_ERR_INVALID_ARGUMENT;
}

void h3wt_log_stderr(h3wt_log_level level, const char *component,
                     const char *msg, void *user_data) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%02d:%02d:%02d.%03ld %-5s %-6s %s\n", tm.tm_hour,
          tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
          level_names[level <= H3WT_LOG_TRACE ? level : H3WT_LOG_TRACE],
          component, msg);
}

void h3wt_log_emit(const h3wt_logger *lg, h3wt_log_level level,
                   const char *component, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  lg->cb(level, component, buf, lg->user_data);
}

