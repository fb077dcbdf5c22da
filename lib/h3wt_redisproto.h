/*
 * h3wt_redisproto: the Redis broker's pure parts, no I/O and no hiredis, so
 * a build without hiredis still has them and tests/unit and tests/fuzz can
 * feed them hostile bytes:
 *   - the "redis://[:PASSWORD@]HOST[:PORT][/DB]" address of
 *     h3wt_broker_redis_settings.url;
 *   - the frames nodes publish on a channel's Redis pub/sub name
 *     (docs/broker-redis.md), which another node, or anyone with access
 *     to that Redis, wrote;
 *   - strict decimal numbers, for both and for the broker's replies.
 */
#ifndef H3WT_REDISPROTO_H
#define H3WT_REDISPROTO_H

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

/* ---- frames ------------------------------------------------------------- */

/* The kinds, the frame's first byte:
     'R' EPOCH ' ' OFFSET ' ' PAYLOAD   a reliable message
     'U' PAYLOAD                        an unreliable message
     'J' NODE MEMBER                    a member of node NODE joined
     'L' NODE MEMBER                    ... left
   EPOCH and OFFSET in decimal without leading zeros (the publish script
   writes them so); NODE is H3WT_REDISFRAME_NODE_LEN bytes. */
#define H3WT_REDISFRAME_RELIABLE 'R'
#define H3WT_REDISFRAME_UNRELIABLE 'U'
#define H3WT_REDISFRAME_JOIN 'J'
#define H3WT_REDISFRAME_LEAVE 'L'
#define H3WT_REDISFRAME_NODE_LEN 16
#define H3WT_REDISFRAME_MEMBER_MAX 1024
/* Offsets cross Lua numbers (doubles): exact up to 2^53. */
#define H3WT_REDISFRAME_OFFSET_MAX (1ULL << 53)

typedef struct h3wt_redisframe {
  int kind;               /* H3WT_REDISFRAME_* */
  uint64_t epoch, offset; /* reliable: epoch < 2^62, 1 <= offset <= 2^53 */
  const char *node;       /* join, leave: NODE_LEN bytes */
  const char *data;       /* the payload, or the member (1..MEMBER_MAX) */
  size_t len;
} h3wt_redisframe;

/* Parses p[0..len) into *f (its pointers point into p).  Every field is
   checked against len; nothing is read past it.  Returns 0 or -1 (an
   unknown kind, a missing or non-canonical number, a number out of range,
   a short node id, an empty or too long member). */
int h3wt_redisframe_parse(const char *p, size_t len, h3wt_redisframe *f);

/* The bytes of f into out (cap bytes).  Returns the length, or 0 when it
   does not fit or f is not a frame h3wt_redisframe_parse() accepts.  What
   parses encodes back to the same bytes. */
size_t h3wt_redisframe_encode(const h3wt_redisframe *f, char *out, size_t cap);

#endif /* H3WT_REDISPROTO_H */
