/*
 * bench_common.h: what h3wt-bench and udp_echo share, so that their figures
 * mean the same thing: a fixed-size latency histogram (no allocation per
 * sample), the server's CPU time and resident memory from /proc, the
 * process's own CPU time, and the one-line JSON result.
 *
 * Header-only (static functions): each program is one C file.
 */
#ifndef H3WT_BENCH_COMMON_H
#define H3WT_BENCH_COMMON_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ---- time ----------------------------------------------------------------- */

/* The probe header inside each echoed payload: host byte order (both ends
   are this program), unaligned. */
static inline void bench_put32(uint8_t *p, uint32_t v) {
  memcpy(p, &v, 4);
}
static inline uint32_t bench_get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline void bench_put64(uint8_t *p, uint64_t v) {
  memcpy(p, &v, 8);
}
static inline uint64_t bench_get64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram ------------------------------------------------------
 * Log-linear, like HdrHistogram with 5 significant bits: values below 32 ns
 * exactly, above in 32 buckets per power of two (about 3% wide).  Enough
 * for 2^48 ns (three days). */

#define BENCH_HIST_SUB 32
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB + 44 * BENCH_HIST_SUB)

typedef struct bench_hist {
  uint64_t count;
  uint64_t max;
  uint64_t n[BENCH_HIST_BUCKETS];
} bench_hist;

static inline size_t bench_hist_index(uint64_t v) {
  if (v < BENCH_HIST_SUB) {
    return (size_t)v;
  }
  int e = 63 - __builtin_clzll(v); /* >= 5 */
  if (e > 47) {
    return BENCH_HIST_BUCKETS - 1;
  }
  size_t sub = (size_t)(v >> (e - 5)) - BENCH_HIST_SUB;
  return BENCH_HIST_SUB + (size_t)(e - 5) * BENCH_HIST_SUB + sub;
}

/* The middle of bucket i. */
static inline uint64_t bench_hist_value(size_t i) {
  if (i < BENCH_HIST_SUB) {
    return i;
  }
  size_t e = (i - BENCH_HIST_SUB) / BENCH_HIST_SUB + 5;
  uint64_t sub = (i - BENCH_HIST_SUB) % BENCH_HIST_SUB + BENCH_HIST_SUB;
  uint64_t lo = sub << (e - 5), width = (uint64_t)1 << (e - 5);
  return lo + width / 2;
}

static inline void bench_hist_add(bench_hist *h, uint64_t v) {
  ++h->n[bench_hist_index(v)];
  ++h->count;
  if (v > h->max) {
    h->max = v;
  }
}

/* The q quantile (0 < q <= 1), nearest rank; 0 without samples. */
static inline uint64_t bench_hist_quantile(const bench_hist *h, double q) {
  if (h->count == 0) {
    return 0;
  }
  uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999), seen = 0;
  if (rank < 1) {
    rank = 1;
  }
  for (size_t i = 0; i < BENCH_HIST_BUCKETS; ++i) {
    seen += h->n[i];
    if (seen >= rank) {
      uint64_t v = bench_hist_value(i);
      return v > h->max ? h->max : v;
    }
  }
  return h->max;
}

/* ---- /proc --------------------------------------------------------------- */

/* utime + stime of a process (all its threads) in microseconds from
   /proc/PID/stat, or -1.  Counted in clock ticks (10 ms at USER_HZ 100):
   too coarse for runs of a second or less, hence bench_proc_cpu_us(). */
static inline int64_t bench_proc_stat_cpu_us(long pid) {
  char path[64], buf[1024];
  FILE *f;
  size_t n;
  snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
  f = fopen(path, "r");
  if (!f) {
    return -1;
  }
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name may hold spaces and parentheses: fields are counted
     from the last ')'.  Then: state (3) ... utime (14), stime (15). */
  char *p = strrchr(buf, ')');
  if (!p) {
    return -1;
  }
  unsigned long long utime = 0, stime = 0;
  if (sscanf(p + 1,
             " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &utime, &stime) != 2) {
    return -1;
  }
  long tck = sysconf(_SC_CLK_TCK);
  if (tck <= 0) {
    tck = 100;
  }
  return (int64_t)((utime + stime) * 1000000ull / (unsigned long long)tck);
}

/* The same quantity, user + system time of every thread of the process,
   from its CPU-time clock (clock_getcpuclockid), which the kernel keeps in
   nanoseconds: a 0.2 s smoke run still gets a figure.  Falls back to
   /proc/PID/stat; -1 when the process is gone. */
static inline int64_t bench_proc_cpu_us(long pid) {
  clockid_t id;
  struct timespec ts;
  if (clock_getcpuclockid((pid_t)pid, &id) == 0 &&
      clock_gettime(id, &ts) == 0) {
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
  }
  return bench_proc_stat_cpu_us(pid);
}

/* VmRSS of a process in KiB, or -1. */
static inline int64_t bench_proc_rss_kib(long pid) {
  char path[64], line[256];
  FILE *f;
  int64_t kib = -1;
  snprintf(path, sizeof(path), "/proc/%ld/status", pid);
  f = fopen(path, "r");
  if (!f) {
    return -1;
  }
  while (fgets(line, sizeof(line), f)) {
    long long v;
    if (sscanf(line, "VmRSS: %lld kB", &v) == 1) {
      kib = v;
      break;
    }
  }
  fclose(f);
  return kib;
}

/* This process's CPU time (user + system) in microseconds. */
static inline int64_t bench_self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
         (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

/* UDP datagrams received by the whole host (IPv4 + IPv6 counters of
   /proc/net/snmp{,6}).  On loopback every packet sent is received once, so
   the difference over a run is the packets both ways, other programs'
   included. */
static inline int64_t bench_udp_in_datagrams(void) {
  char line[4096], hdr[4096];
  int64_t total = 0;
  FILE *f = fopen("/proc/net/snmp", "r");
  if (!f) {
    return -1;
  }
  /* "Udp: InDatagrams NoPorts ..." then "Udp: 123 4 ...". */
  hdr[0] = '\0';
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "Udp: ", 5) != 0) {
      continue;
    }
    if (!hdr[0]) {
      memcpy(hdr, line, sizeof(hdr));
      continue;
    }
    long long v;
    if (strncmp(hdr, "Udp: InDatagrams", 16) == 0 &&
        sscanf(line, "Udp: %lld", &v) == 1) {
      total += v;
    }
    break;
  }
  fclose(f);
  f = fopen("/proc/net/snmp6", "r");
  if (f) {
    while (fgets(line, sizeof(line), f)) {
      long long v;
      if (sscanf(line, "Udp6InDatagrams %lld", &v) == 1) {
        total += v;
        break;
      }
    }
    fclose(f);
  }
  return total;
}

/* A CPU/wall snapshot taken at the start and the end of a measurement. */
typedef struct bench_snap {
  uint64_t wall_ns;
  int64_t server_cpu_us;      /* -1: no --server-pid */
  int64_t server_stat_cpu_us; /* the same from /proc/PID/stat (cross-check) */
  int64_t self_cpu_us;
  int64_t udp_in; /* bench_udp_in_datagrams() */
} bench_snap;

static inline void bench_snap_take(bench_snap *s, long server_pid) {
  s->wall_ns = bench_now_ns();
  s->server_cpu_us = server_pid > 0 ? bench_proc_cpu_us(server_pid) : -1;
  s->server_stat_cpu_us =
      server_pid > 0 ? bench_proc_stat_cpu_us(server_pid) : -1;
  s->self_cpu_us = bench_self_cpu_us();
  s->udp_in = bench_udp_in_datagrams();
}

/* ---- the result line --------------------------------------------------------
 * One JSON object per run on one line, flat, numbers only besides the
 * strings: run.sh and the smoke test read it with sed. */

typedef struct bench_json {
  char buf[4096];
  size_t len;
} bench_json;

static inline void bench_json_begin(bench_json *j) {
  j->len = 0;
  j->buf[0] = '\0';
}

static inline void bench_json_add(bench_json *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void bench_json_add(bench_json *j, const char *fmt, ...) {
  va_list ap;
  if (j->len >= sizeof(j->buf) - 1) {
    return;
  }
  j->buf[j->len] = j->len == 0 ? '{' : ',';
  ++j->len;
  va_start(ap, fmt);
  int n = vsnprintf(j->buf + j->len, sizeof(j->buf) - j->len, fmt, ap);
  va_end(ap);
  if (n > 0) {
    j->len += (size_t)n;
  }
  if (j->len > sizeof(j->buf) - 2) {
    j->len = sizeof(j->buf) - 2;
  }
}

static inline void bench_json_str(bench_json *j, const char *key,
                                  const char *v) {
  bench_json_add(j, "\"%s\":\"%s\"", key, v);
}

static inline void bench_json_num(bench_json *j, const char *key, double v) {
  bench_json_add(j, "\"%s\":%.6g", key, v);
}

static inline void bench_json_int(bench_json *j, const char *key,
                                  uint64_t v) {
  bench_json_add(j, "\"%s\":%" PRIu64, key, v);
}

/* Writes the object and a newline to f. */
static inline void bench_json_end(bench_json *j, FILE *f) {
  fprintf(f, "%.*s}\n", (int)j->len, j->buf);
  fflush(f);
}

/* The common figures of a measurement: wall time, operations, the rate,
   and CPU per operation (server and self) with unit_scale operations per
   "op" (1 for echoes and requests; bytes/MB for throughput). */
static inline void bench_json_cpu(bench_json *j, const bench_snap *a,
                                  const bench_snap *b, double ops) {
  double secs = (double)(b->wall_ns - a->wall_ns) / 1e9;
  double self = (double)(b->self_cpu_us - a->self_cpu_us);
  bench_json_num(j, "secs", secs);
  if (a->server_cpu_us >= 0 && b->server_cpu_us >= 0) {
    double srv = (double)(b->server_cpu_us - a->server_cpu_us);
    bench_json_num(j, "server_cpu_us", srv);
    bench_json_num(j, "server_cpu_pct", secs > 0 ? srv / secs / 1e4 : 0);
    bench_json_num(j, "server_cpu_us_per_op", ops > 0 ? srv / ops : 0);
  }
  if (a->server_stat_cpu_us >= 0 && b->server_stat_cpu_us >= 0) {
    bench_json_num(j, "server_stat_cpu_us",
                   (double)(b->server_stat_cpu_us - a->server_stat_cpu_us));
  }
  if (a->udp_in >= 0 && b->udp_in >= a->udp_in && ops > 0) {
    bench_json_num(j, "udp_pkts_per_op", (double)(b->udp_in - a->udp_in) / ops);
  }
  bench_json_num(j, "client_cpu_pct", secs > 0 ? self / secs / 1e4 : 0);
  bench_json_num(j, "client_cpu_us_per_op", ops > 0 ? self / ops : 0);
}

#endif /* H3WT_BENCH_COMMON_H */
