/*
 * h3wt_util: logging, the send queue, the connection-ID map, time.
 */
#include "h3wt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

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

/* ---- send queue -------------------------------------------------------- */

struct h3wt_sendq_chunk {
  h3wt_sendq_chunk *next;
  uint8_t *data;
  size_t len; /* bytes filled */
  size_t cap; /* 0 for owned buffers: never appended to */
  void (*free_cb)(void *, void *);
  void *free_ud;
};

void h3wt_sendq_init(h3wt_sendq *q) {
  memset(q, 0, sizeof(*q));
}

static void chunk_free(h3wt_sendq_chunk *c) {
  if (c->free_cb) {
    c->free_cb(c->data, c->free_ud);
  }
  free(c);
}

void h3wt_sendq_free(h3wt_sendq *q) {
  h3wt_sendq_chunk *c = q->head, *next;
  for (; c; c = next) {
    next = c->next;
    chunk_free(c);
  }
  h3wt_sendq_init(q);
}

static void link_chunk(h3wt_sendq *q, h3wt_sendq_chunk *c) {
  if (q->tail) {
    q->tail->next = c;
  } else {
    q->head = c;
    q->ack_off = 0;
  }
  q->tail = c;
  if (!q->read) {
    q->read = c;
    q->read_off = 0;
  }
}

int h3wt_sendq_append(h3wt_sendq *q, const void *data, size_t len) {
  const uint8_t *p = data;
  size_t need = len;
  /* What fits in the tail chunk goes there; a fresh chunk takes the rest,
     so the (rare) failure leaves nothing half-queued. */
  h3wt_sendq_chunk *t = q->tail;
  size_t room = (t && t->cap) ? t->cap - t->len : 0;
  h3wt_sendq_chunk *c = NULL;
  if (need > room) {
    size_t rest = need - room;
    size_t cap = rest > H3WT_SENDQ_CHUNK ? rest : H3WT_SENDQ_CHUNK;
    c = malloc(sizeof(*c) + cap);
    if (!c) {
      return H3WT_ERR_NOMEM;
    }
    memset(c, 0, sizeof(*c));
    c->data = (uint8_t *)(c + 1);
    c->cap = cap;
  }
  if (room) {
    size_t n = room < need ? room : need;
    memcpy(t->data + t->len, p, n);
    t->len += n;
    p += n;
    need -= n;
    if (!q->read) {
      /* Everything was read before: resume at the new bytes. */
      q->read = t;
      q->read_off = t->len - n;
    }
  }
  if (c) {
    memcpy(c->data, p, need);
    c->len = need;
    link_chunk(q, c);
  }
  q->unacked += len;
  q->unread += len;
  q->total += len;
  return 0;
}

int h3wt_sendq_append_owned(h3wt_sendq *q, void *data, size_t len,
                            void (*free_cb)(void *, void *), void *ud) {
  h3wt_sendq_chunk *c = calloc(1, sizeof(*c));
  if (!c) {
    return H3WT_ERR_NOMEM;
  }
  c->data = data;
  c->len = len;
  c->free_cb = free_cb;
  c->free_ud = ud;
  link_chunk(q, c);
  q->unacked += len;
  q->unread += len;
  q->total += len;
  return 0;
}

size_t h3wt_sendq_read(h3wt_sendq *q, h3wt_vec *vec, size_t veccnt) {
  size_t n = 0;
  while (n < veccnt && q->read) {
    h3wt_sendq_chunk *c = q->read;
    size_t avail = c->len - q->read_off;
    if (avail) {
      vec[n].base = c->data + q->read_off;
      vec[n].len = avail;
      ++n;
      q->unread -= avail;
      q->read_off = c->len;
    }
    if (c->next) {
      q->read = c->next;
      q->read_off = 0;
    } else {
      /* Stay on the tail: later copied appends may extend it. */
      break;
    }
  }
  return n;
}

size_t h3wt_sendq_peek(const h3wt_sendq *q, h3wt_vec *vec, size_t veccnt,
                       size_t *total) {
  size_t n = 0, off = q->read_off;
  *total = 0;
  for (h3wt_sendq_chunk *c = q->read; c && n < veccnt; c = c->next, off = 0) {
    if (c->len > off) {
      vec[n].base = c->data + off;
      vec[n].len = c->len - off;
      *total += vec[n].len;
      ++n;
    }
  }
  return n;
}

void h3wt_sendq_consume(h3wt_sendq *q, size_t n) {
  if (n > q->unread) {
    n = (size_t)q->unread;
  }
  q->unread -= n;
  while (n && q->read) {
    h3wt_sendq_chunk *c = q->read;
    size_t avail = c->len - q->read_off;
    if (n < avail) {
      q->read_off += n;
      return;
    }
    n -= avail;
    q->read_off = c->len;
    if (c->next) {
      q->read = c->next;
      q->read_off = 0;
    }
  }
}

void h3wt_sendq_ack(h3wt_sendq *q, uint64_t n) {
  if (n > q->unacked) {
    n = q->unacked;
  }
  q->unacked -= n;
  while (n && q->head) {
    h3wt_sendq_chunk *c = q->head;
    size_t left = c->len - q->ack_off;
    if (n < left) {
      q->ack_off += (size_t)n;
      return;
    }
    n -= left;
    /* A chunk can go only once it is fully acknowledged and nothing more
       can be appended to it (it is not the tail, or it is full/owned). */
    if (c == q->tail && c->cap && c->len < c->cap) {
      q->ack_off = c->len;
      return;
    }
    q->head = c->next;
    q->ack_off = 0;
    if (q->read == c) {
      q->read = c->next;
      q->read_off = 0;
    }
    if (q->tail == c) {
      q->tail = NULL;
    }
    chunk_free(c);
  }
}

/* ---- datagram queue ------------------------------------------------------ */

void h3wt_dgramq_init(h3wt_dgramq *q, size_t max_count, size_t max_bytes) {
  memset(q, 0, sizeof(*q));
  q->max_count = max_count;
  q->max_bytes = max_bytes;
}

void h3wt_dgramq_free(h3wt_dgramq *q) {
  free(q->buf);
  q->buf = NULL;
  q->cap = q->head = q->tail = q->count = 0;
}

int h3wt_dgramq_push(h3wt_dgramq *q, const uint8_t *prefix, size_t prefixlen,
                     const uint8_t *data, size_t len) {
  size_t need = 2 + prefixlen + len;
  if (q->count >= q->max_count || prefixlen + len > 0xffff) {
    ++q->dropped;
    return H3WT_ERR_WOULDBLOCK;
  }
  if (q->tail + need > q->cap && q->head > 0) {
    /* Slide the live entries to the front before growing. */
    memmove(q->buf, q->buf + q->head, q->tail - q->head);
    q->tail -= q->head;
    q->head = 0;
  }
  if (q->tail + need > q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 4096;
    while (cap < q->tail + need) {
      cap *= 2;
    }
    if (cap > q->max_bytes) {
      cap = q->max_bytes;
    }
    uint8_t *nb = cap >= q->tail + need ? realloc(q->buf, cap) : NULL;
    if (!nb) {
      ++q->dropped;
      return H3WT_ERR_WOULDBLOCK;
    }
    q->buf = nb;
    q->cap = cap;
  }
  uint8_t *p = q->buf + q->tail;
  p[0] = (uint8_t)((prefixlen + len) >> 8);
  p[1] = (uint8_t)(prefixlen + len);
  if (prefixlen) {
    memcpy(p + 2, prefix, prefixlen);
  }
  if (len) {
    memcpy(p + 2 + prefixlen, data, len);
  }
  q->tail += need;
  ++q->count;
  return 0;
}

const uint8_t *h3wt_dgramq_front(const h3wt_dgramq *q, size_t *len) {
  if (!q->count) {
    return NULL;
  }
  const uint8_t *p = q->buf + q->head;
  *len = ((size_t)p[0] << 8) | p[1];
  return p + 2;
}

void h3wt_dgramq_pop(h3wt_dgramq *q) {
  size_t len;
  if (!h3wt_dgramq_front(q, &len)) {
    return;
  }
  q->head += 2 + len;
  if (--q->count == 0) {
    q->head = q->tail = 0;
  }
}

/* ---- connection-ID map ------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
  do {                                                                         \
    v0 += v1;                                                                  \
    v1 = ROTL(v1, 13);                                                         \
    v1 ^= v0;                                                                  \
    v0 = ROTL(v0, 32);                                                         \
    v2 += v3;                                                                  \
    v3 = ROTL(v3, 16);                                                         \
    v3 ^= v2;                                                                  \
    v0 += v3;                                                                  \
    v3 = ROTL(v3, 21);                                                         \
    v3 ^= v0;                                                                  \
    v2 += v1;                                                                  \
    v1 = ROTL(v1, 17);                                                         \
    v1 ^= v2;                                                                  \
    v2 = ROTL(v2, 32);                                                         \
  } while (0)

uint64_t h3wt_siphash13(const uint64_t key[2], const uint8_t *data,
                        size_t len) {
  uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
  uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
  uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
  uint64_t v3 = 0x7465646279746573ULL ^ key[1];
  uint64_t b = (uint64_t)len << 56, m;
  size_t i, full = len & ~(size_t)7;
  for (i = 0; i < full; i += 8) {
    memcpy(&m, data + i, 8); /* little-endian hosts only (x86-64, arm64) */
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
  }
  for (size_t j = 0; i + j < len; ++j) {
    b |= (uint64_t)data[i + j] << (8 * j);
  }
  v3 ^= b;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

#define TOMBSTONE 0xff

/* ---- per-address event rate --------------------------------------------- */

int h3wt_ratemap_init(h3wt_ratemap *m, size_t nslots, uint32_t limit,
                      const uint8_t key[16]) {
  memset(m, 0, sizeof(*m));
  memcpy(m->key, key, 16);
  m->slots = calloc(nslots, sizeof(*m->slots));
  if (!m->slots) {
    return H3WT_ERR_NOMEM;
  }
  m->nslots = nslots;
  m->limit = limit;
  return 0;
}

void h3wt_ratemap_free(h3wt_ratemap *m) {
  free(m->slots);
  m->slots = NULL;
  m->nslots = 0;
}

int h3wt_ratemap_hit(h3wt_ratemap *m, const struct sockaddr *sa, uint64_t ts) {
  const uint8_t *addr;
  size_t len;
  if (sa->sa_family == AF_INET6) {
    addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    len = 16;
  } else {
    addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    len = 4;
  }
  uint64_t h = h3wt_siphash13(m->key, addr, len) | 1; /* never 0 */
  h3wt_rate_slot *s = &m->slots[(h >> 1) % m->nslots];
  if (s->hash != h || ts - s->window_start >= 1000000000ULL) {
    s->hash = h;
    s->window_start = ts;
    s->count = 0;
  }
  if (s->count < UINT32_MAX) {
    ++s->count;
  }
  return s->count > m->limit;
}

int h3wt_cidmap_init(h3wt_cidmap *m, const uint8_t key[16]) {
  memset(m, 0, sizeof(*m));
  memcpy(m->key, key, 16);
  m->cap = 64;
  m->slots = calloc(m->cap, sizeof(*m->slots));
  return m->slots ? 0 : H3WT_ERR_NOMEM;
}

void h3wt_cidmap_free(h3wt_cidmap *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->count = m->used = 0;
}

static h3wt_cid_entry *cid_lookup(const h3wt_cidmap *m, const uint8_t *cid,
                                  size_t len, h3wt_cid_entry **pfree) {
  size_t mask = m->cap - 1;
  size_t i = (size_t)h3wt_siphash13(m->key, cid, len) & mask;
  h3wt_cid_entry *firstfree = NULL;
  for (;; i = (i + 1) & mask) {
    h3wt_cid_entry *e = &m->slots[i];
    if (e->len == 0) {
      if (pfree) {
        *pfree = firstfree ? firstfree : e;
      }
      return NULL;
    }
    if (e->len == TOMBSTONE) {
      if (!firstfree) {
        firstfree = e;
      }
      continue;
    }
    if (e->len == len && memcmp(e->data, cid, len) == 0) {
      return e;
    }
  }
}

static int cid_grow(h3wt_cidmap *m) {
  h3wt_cidmap n = *m;
  /* Rehash in place of tombstones when they are what fills the table. */
  n.cap = m->count * 4 >= m->cap ? m->cap * 2 : m->cap;
  n.slots = calloc(n.cap, sizeof(*n.slots));
  if (!n.slots) {
    return H3WT_ERR_NOMEM;
  }
  n.count = n.used = 0;
  for (size_t i = 0; i < m->cap; ++i) {
    h3wt_cid_entry *e = &m->slots[i], *slot = NULL;
    if (e->len == 0 || e->len == TOMBSTONE) {
      continue;
    }
    cid_lookup(&n, e->data, e->len, &slot);
    *slot = *e;
    ++n.count;
    ++n.used;
  }
  free(m->slots);
  *m = n;
  return 0;
}

int h3wt_cidmap_insert(h3wt_cidmap *m, const uint8_t *cid, size_t len,
                       void *value) {
  h3wt_cid_entry *slot = NULL;
  if (len == 0 || len > H3WT_CID_MAXLEN) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  if ((m->used + 1) * 4 > m->cap * 3) {
    int rv = cid_grow(m);
    if (rv != 0) {
      return rv;
    }
  }
  if (cid_lookup(m, cid, len, &slot)) {
    return H3WT_ERR_INVALID_STATE;
  }
  if (slot->len == 0) {
    ++m->used;
  }
  slot->len = (uint8_t)len;
  memcpy(slot->data, cid, len);
  slot->value = value;
  ++m->count;
  return 0;
}

void *h3wt_cidmap_find(const h3wt_cidmap *m, const uint8_t *cid, size_t len) {
  if (len == 0 || len > H3WT_CID_MAXLEN) {
    return NULL;
  }
  h3wt_cid_entry *e = cid_lookup(m, cid, len, NULL);
  return e ? e->value : NULL;
}

void *h3wt_cidmap_remove(h3wt_cidmap *m, const uint8_t *cid, size_t len) {
  if (len == 0 || len > H3WT_CID_MAXLEN) {
    return NULL;
  }
  h3wt_cid_entry *e = cid_lookup(m, cid, len, NULL);
  if (!e) {
    return NULL;
  }
  void *v = e->value;
  e->len = TOMBSTONE;
  e->value = NULL;
  --m->count;
  return v;
}

/* ---- misc -------------------------------------------------------------- */

uint64_t h3wt_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int h3wt_random(void *buf, size_t len) {
  uint8_t *p = buf;
  while (len) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

void h3wt_addr_format(const struct sockaddr *sa, char *buf, size_t buflen) {
  char host[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    snprintf(buf, buflen, "%s:%u", host, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    snprintf(buf, buflen, "[%s]:%u", host, ntohs(in6->sin6_port));
  } else {
    snprintf(buf, buflen, "?");
  }
}

void h3wt_hex(const uint8_t *data, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xf];
  }
  out[2 * len] = '\0';
}

/* ---- header lists ------------------------------------------------------- */

int h3wt_headers_append(h3wt_header **hs, size_t *n, size_t *cap,
                        const void *name, size_t namelen, const void *value,
                        size_t valuelen) {
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 8;
    h3wt_header *nh = realloc(*hs, ncap * sizeof(*nh));
    if (!nh) {
      return H3WT_ERR_NOMEM;
    }
    *hs = nh;
    *cap = ncap;
  }
  char *buf = malloc(namelen + valuelen + 2);
  if (!buf) {
    return H3WT_ERR_NOMEM;
  }
  memcpy(buf, name, namelen);
  buf[namelen] = '\0';
  memcpy(buf + namelen + 1, value, valuelen);
  buf[namelen + 1 + valuelen] = '\0';
  (*hs)[(*n)++] = (h3wt_header){buf, namelen, buf + namelen + 1, valuelen};
  return 0;
}
