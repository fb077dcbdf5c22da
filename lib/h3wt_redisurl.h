/*
 * h3wt_redisurl: the "redis://[:PASSWORD@]HOST[:PORT][/DB]" address of
 * h3wt_broker_redis_settings.url, parsed strictly.  Pure (no I/O, no
 * hiredis), so a build without hiredis still has it and tests/unit can
 * feed it hostile strings.
 */
#ifndef H3WT_REDISURL_H
#define H3WT_REDISURL_H

#include <stddef.h>
#include <stdint.h>

#define H3WT_REDISURL_HOST_MAX 255
#define H3WT_REDISURL_PASSWORD_MAX 512

typedef struct h3wt_redisurl {
  /* A DNS name or an IPv4 address, or an IPv6 address without its
     brackets; NUL-terminated. */
  char host[H3WT_REDISURL_HOST_MAX + 1];
  uint16_t port;    /* 6379 when the URL has none */
  uint32_t db;      /* 0 when the URL has none; at most 2^31 - 1 */
  int has_password; /* the URL had ":PASSWORD@" (it may be empty) */
  /* Percent-decoded (%40 is '@'), so any byte but NUL can be given;
     NUL-terminated. */
  char password[H3WT_REDISURL_PASSWORD_MAX + 1];
} h3wt_redisurl;

/* Parses url into *out.  The scheme is "redis" in any case; a user name
   before the colon (Redis 6 ACL users), a query, a fragment, an empty
   host, a port outside 1..65535, control characters or bytes above 0x7e,
   a bad percent escape or a decoded NUL are refused.  Returns 0 or
   H3WT_ERR_INVALID_ARGUMENT (*out then undefined). */
int h3wt_redisurl_parse(const char *url, h3wt_redisurl *out);

/* Strict decimal, for the URL and for what Redis sends (frames, replies):
   p[0..len) is 1..20 digits, no sign, no space, no overflow, at most max.
   Returns 0 (*v set) or -1. */
int h3wt_redis_dec(const char *p, size_t len, uint64_t max, uint64_t *v);

#endif /* H3WT_REDISURL_H */
