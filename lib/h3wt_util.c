/*
 * h3wt_util: the small things left: time, randomness, address and hex
 * formatting, header lists.  Logging and errors (h3wt_log), the send and
 * datagram queues (h3wt_sendq) and the keyed tables (h3wt_cidmap) have
 * files of their own.
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

size_t h3wt_u64_dec(uint64_t v, char *out) {
  char tmp[20];
  size_t k = 0;
  do {
    tmp[k++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < k; ++i) {
    out[i] = tmp[k - 1 - i];
  }
  out[k] = '\0';
  return k;
}

void h3wt_hex(const uint8_t *data, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xf];
  }
  out[2 * len] = '\0';
}

/* ---- worker steering (see h3wt_util.h) ---------------------------------- */

void h3wt_cid_set_worker(uint8_t *cid, uint32_t workers, uint32_t worker) {
  if (workers <= 1) {
    return;
  }
  uint32_t v = (uint32_t)cid[0] << 24 | (uint32_t)cid[1] << 16 |
               (uint32_t)cid[2] << 8 | cid[3];
  /* The nearest multiple of workers below, plus the index: the value stays
     random in its upper bits, and near the top of the range one step down
     keeps it from wrapping. */
  v -= v % workers;
  if (v > UINT32_MAX - workers) {
    v -= workers;
  }
  v += worker;
  cid[0] = (uint8_t)(v >> 24);
  cid[1] = (uint8_t)(v >> 16);
  cid[2] = (uint8_t)(v >> 8);
  cid[3] = (uint8_t)v;
}

uint32_t h3wt_cid_worker(const uint8_t *cid, size_t len, uint32_t workers) {
  if (workers <= 1 || len < 4) {
    return UINT32_MAX;
  }
  uint32_t v = (uint32_t)cid[0] << 24 | (uint32_t)cid[1] << 16 |
               (uint32_t)cid[2] << 8 | cid[3];
  return v % workers;
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

uint64_t h3wt_name_hash(uint64_t seed, const void *p, size_t len) {
  const uint8_t *b = p;
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (size_t i = 0; i < len; ++i) {
    h = (h ^ b[i]) * 0x100000001b3ULL;
  }
  return h;
}

void h3wt_name_table_init(h3wt_name_table *t) {
  memset(t, 0, sizeof(*t));
  h3wt_random(&t->seed, sizeof(t->seed));
}

void h3wt_name_table_free(h3wt_name_table *t) {
  free(t->buckets);
  t->buckets = NULL;
  t->nbuckets = t->count = 0;
}

static size_t name_bucket(const h3wt_name_table *t, const void *name,
                          size_t len, size_t nbuckets) {
  return (size_t)h3wt_name_hash(t->seed, name, len) & (nbuckets - 1);
}

h3wt_name_node *h3wt_name_table_find(const h3wt_name_table *t,
                                     const void *name, size_t len) {
  if (!t->nbuckets) {
    return NULL;
  }
  for (h3wt_name_node *n = t->buckets[name_bucket(t, name, len, t->nbuckets)];
       n; n = n->next) {
    if (n->len == len && memcmp(n->name, name, len) == 0) {
      return n;
    }
  }
  return NULL;
}

int h3wt_name_table_insert(h3wt_name_table *t, h3wt_name_node *n) {
  if (t->count + 1 > t->nbuckets) {
    size_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
    h3wt_name_node **b = calloc(nb, sizeof(*b));
    if (!b) {
      return H3WT_ERR_NOMEM;
    }
    for (size_t i = 0; i < t->nbuckets; ++i) {
      for (h3wt_name_node *m = t->buckets[i], *next; m; m = next) {
        size_t j = name_bucket(t, m->name, m->len, nb);
        next = m->next;
        m->next = b[j];
        b[j] = m;
      }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
  }
  size_t j = name_bucket(t, n->name, n->len, t->nbuckets);
  n->next = t->buckets[j];
  t->buckets[j] = n;
  ++t->count;
  return 0;
}

void h3wt_name_table_remove(h3wt_name_table *t, h3wt_name_node *n) {
  size_t j = name_bucket(t, n->name, n->len, t->nbuckets);
  for (h3wt_name_node **pp = &t->buckets[j]; *pp; pp = &(*pp)->next) {
    if (*pp == n) {
      *pp = n->next;
      --t->count;
      return;
    }
  }
}
