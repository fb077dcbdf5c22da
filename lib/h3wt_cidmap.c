/*
 * h3wt_cidmap: hash tables keyed by what peers choose (connection IDs,
 * source addresses), with SipHash under a random key so that no peer can
 * aim its keys at one bucket.
 */
#include "h3wt_cidmap.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

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

