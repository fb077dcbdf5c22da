/*
 * h3wt_redisproto: see h3wt_redisproto.h.  The URL comes from a
 * configuration file or the command line, the frames from Redis: every
 * byte is checked, every length bounded, nothing is read past the end.
 */
#include "h3wt_redisproto.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "h3wt/h3wt.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

int h3wt_redis_dec(const char *p, size_t len, uint64_t max, uint64_t *v) {
  uint64_t x = 0;
  size_t i;
  if (len == 0 || len > 20) {
    return -1;
  }
  for (i = 0; i < len; ++i) {
    unsigned d;
    if (p[i] < '0' || p[i] > '9') {
      return -1;
    }
    d = (unsigned)(p[i] - '0');
    if (x > (UINT64_MAX - d) / 10) {
      return -1;
    }
    x = x * 10 + d;
  }
  if (x > max) {
    return -1;
  }
  *v = x;
  return 0;
}

/* A host name or IPv4 address: letters, digits, '-', '.', '_'. */
static int host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

int h3wt_redisurl_parse(const char *url, h3wt_redisurl *out) {
  static const char scheme[] = "redis://";
  const char *p, *end, *at, *hp, *hend, *port = NULL, *path = NULL;
  size_t i, n;
  uint64_t v;

  if (!url || !out) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  memset(out, 0, sizeof(*out));
  out->port = 6379;
  for (i = 0; i < sizeof(scheme) - 1; ++i) {
    char c = url[i];
    if (c >= 'A' && c <= 'Z') {
      c = (char)(c - 'A' + 'a');
    }
    if (c != scheme[i]) { /* also stops at a NUL */
      return H3WT_ERR_INVALID_ARGUMENT;
    }
  }
  p = url + sizeof(scheme) - 1;
  end = p + strlen(p);
  for (hp = p; hp < end; ++hp) {
    /* Printable ASCII only: a control character (a newline pasted into a
       config value, say) is a mistake, never a host or a password. */
    if ((unsigned char)*hp < 0x21 || (unsigned char)*hp > 0x7e) {
      return H3WT_ERR_INVALID_ARGUMENT;
    }
  }
  /* The authority ends at the first '/'; a password with '/' or '@' must
     be percent-encoded, so the last '@' before it ends the user info. */
  hend = memchr(p, '/', (size_t)(end - p));
  if (!hend) {
    hend = end;
  }
  at = NULL;
  for (hp = p; hp < hend; ++hp) {
    if (*hp == '@') {
      at = hp;
    }
  }
  if (at) {
    const char *q;
    if (*p != ':') {
      return H3WT_ERR_INVALID_ARGUMENT; /* a user name: not supported */
    }
    out->has_password = 1;
    n = 0;
    for (q = p + 1; q < at; ++q) {
      char c = *q;
      if (c == '%') {
        int hi, lo;
        if (at - q < 3 || (hi = hexval(q[1])) < 0 || (lo = hexval(q[2])) < 0) {
          return H3WT_ERR_INVALID_ARGUMENT;
        }
        c = (char)(hi * 16 + lo);
        if (c == '\0') {
          return H3WT_ERR_INVALID_ARGUMENT;
        }
        q += 2;
      }
      if (n == H3WT_REDISURL_PASSWORD_MAX) {
        return H3WT_ERR_INVALID_ARGUMENT;
      }
      out->password[n++] = c;
    }
    out->password[n] = '\0';
    p = at + 1;
  }
  if (p < hend && *p == '[') {
    /* An IPv6 literal: hex digits, ':' and '.' (an embedded IPv4). */
    const char *close = memchr(p, ']', (size_t)(hend - p));
    if (!close || close == p + 1) {
      return H3WT_ERR_INVALID_ARGUMENT;
    }
    for (hp = p + 1; hp < close; ++hp) {
      if (hexval(*hp) < 0 && *hp != ':' && *hp != '.') {
        return H3WT_ERR_INVALID_ARGUMENT;
      }
    }
    n = (size_t)(close - p - 1);
    if (n > H3WT_REDISURL_HOST_MAX) {
      return H3WT_ERR_INVALID_ARGUMENT;
    }
    memcpy(out->host, p + 1, n);
    out->host[n] = '\0';
    hp = close + 1;
    if (hp < hend) {
      if (*hp != ':') {
        return H3WT_ERR_INVALID_ARGUMENT;
      }
      port = hp + 1;
    }
  } else {
    for (hp = p; hp < hend && *hp != ':'; ++hp) {
      if (!host_char(*hp)) {
        return H3WT_ERR_INVALID_ARGUMENT;
      }
    }
    n = (size_t)(hp - p);
    if (n == 0 || n > H3WT_REDISURL_HOST_MAX) {
      return H3WT_ERR_INVALID_ARGUMENT;
    }
    memcpy(out->host, p, n);
    out->host[n] = '\0';
    if (hp < hend) {
      port = hp + 1;
    }
  }
  if (port) {
    if (h3wt_redis_dec(port, (size_t)(hend - port), 65535, &v) != 0 || v == 0) {
      return H3WT_ERR_INVALID_ARGUMENT;
    }
    out->port = (uint16_t)v;
  }
  if (hend < end) {
    path = hend + 1;
    /* "redis://host/" names no database: the default one. */
    if (path < end) {
      if (h3wt_redis_dec(path, (size_t)(end - path), 0x7fffffff, &v) != 0) {
        return H3WT_ERR_INVALID_ARGUMENT;
      }
      out->db = (uint32_t)v;
    }
  }
  return 0;
}

/* ---- frames ------------------------------------------------------------- */

/* The largest epoch: a QUIC varint (docs/channels.md). */
#define EPOCH_MAX 0x3fffffffffffffffULL

/* A canonical decimal up to the next ' ' in p[0..len): *used gets the
   digits' length.  The publish script never writes leading zeros, so a
   number with one is no frame of ours. */
static int frame_dec(const char *p, size_t len, uint64_t max, uint64_t *v,
                     size_t *used) {
  const char *sp = memchr(p, ' ', len);
  size_t n;
  if (!sp) {
    return -1;
  }
  n = (size_t)(sp - p);
  if (n > 1 && p[0] == '0') {
    return -1;
  }
  *used = n;
  return h3wt_redis_dec(p, n, max, v);
}

int h3wt_redisframe_parse(const char *p, size_t len, h3wt_redisframe *f) {
  size_t n;
  memset(f, 0, sizeof(*f));
  if (len == 0) {
    return -1;
  }
  f->kind = p[0];
  ++p;
  --len;
  switch (f->kind) {
  case H3WT_REDISFRAME_RELIABLE:
    if (frame_dec(p, len, EPOCH_MAX, &f->epoch, &n) != 0) {
      return -1;
    }
    p += n + 1;
    len -= n + 1;
    if (frame_dec(p, len, H3WT_REDISFRAME_OFFSET_MAX, &f->offset, &n) != 0 ||
        f->offset == 0) {
      return -1;
    }
    p += n + 1;
    len -= n + 1;
    break;
  case H3WT_REDISFRAME_UNRELIABLE:
    break;
  case H3WT_REDISFRAME_JOIN:
  case H3WT_REDISFRAME_LEAVE:
    if (len <= H3WT_REDISFRAME_NODE_LEN ||
        len - H3WT_REDISFRAME_NODE_LEN > H3WT_REDISFRAME_MEMBER_MAX) {
      return -1;
    }
    f->node = p;
    p += H3WT_REDISFRAME_NODE_LEN;
    len -= H3WT_REDISFRAME_NODE_LEN;
    break;
  default:
    return -1;
  }
  f->data = p;
  f->len = len;
  return 0;
}

size_t h3wt_redisframe_encode(const h3wt_redisframe *f, char *out, size_t cap) {
  char head[48];
  size_t hl;
  switch (f->kind) {
  case H3WT_REDISFRAME_RELIABLE:
    if (f->epoch > EPOCH_MAX || f->offset == 0 ||
        f->offset > H3WT_REDISFRAME_OFFSET_MAX) {
      return 0;
    }
    hl = (size_t)snprintf(head, sizeof(head), "R%" PRIu64 " %" PRIu64 " ",
                          f->epoch, f->offset);
    break;
  case H3WT_REDISFRAME_UNRELIABLE:
    head[0] = 'U';
    hl = 1;
    break;
  case H3WT_REDISFRAME_JOIN:
  case H3WT_REDISFRAME_LEAVE:
    if (!f->node || f->len == 0 || f->len > H3WT_REDISFRAME_MEMBER_MAX) {
      return 0;
    }
    head[0] = (char)f->kind;
    memcpy(head + 1, f->node, H3WT_REDISFRAME_NODE_LEN);
    hl = 1 + H3WT_REDISFRAME_NODE_LEN;
    break;
  default:
    return 0;
  }
  if (cap < hl || cap - hl < f->len) {
    return 0;
  }
  memcpy(out, head, hl);
  if (f->len) {
    memcpy(out + hl, f->data, f->len);
  }
  return hl + f->len;
}
