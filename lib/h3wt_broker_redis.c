/*
 * h3wt_broker_redis: the broker kind "redis" (h3wt_broker.h is the
 * contract).  Each hub that attaches gets a node on its own loop with two
 * hiredis async connections (libuv adapter): one for commands, one for
 * pub/sub, since a subscribed Redis connection can do nothing else.
 * Nothing here ever waits on Redis: every command is asynchronous, the
 * host name is resolved with uv_getaddrinfo, and a watchdog timer fails
 * what Redis does not answer in time.
 *
 * Keys (P is the prefix, default "h3wt:"; NAME the channel name as it is,
 * every key and argument sent binary-safe, so ':' or spaces in a name
 * cannot be confused with the layout: the tag before it is fixed):
 *   P m:NAME   hash  e = the epoch (decimal string), o = the last offset
 *   P h:NAME   stream of the kept messages: id "<offset>-1", fields
 *              t (Redis time of the publish, ms) and d (the payload)
 *   P p:NAME   hash  presence: field NODEID MEMBER (NODEID is 16 hex
 *              digits, random per node), value its expiry (Redis time, ms)
 *   P c:NAME   pub/sub channel of the channel's live frames
 *   P n:NODEID pub/sub channel each node subscribes first and keeps, so
 *              its pub/sub connection never drops to zero subscriptions
 *              (hiredis 0.14 leaves subscribed mode then, and asserts on
 *              the next "subscribe" reply)
 * Meta and stream expire history_ttl after the last publish (never with
 * history_ttl 0), and the meta's expiry is also renewed by every node
 * that watches the channel (its sweep, each presence_ttl / 3): a channel
 * nobody watches or publishes to for history_ttl vanishes, and the next
 * publish starts a new epoch (recovery across it says recovered 0, which
 * is honest).  The epoch of a watched channel changes only when Redis
 * loses its data (a restart without persistence, a flush, eviction):
 * messages then arrive with the new epoch and offsets from 1 again.
 *
 * Frames on P c:NAME (what other nodes receive; h3wt_redisproto parses
 * them strictly, never trusting a length: a bad one is counted in errors
 * and dropped):
 *   'R' EPOCH ' ' OFFSET ' ' PAYLOAD   reliable (decimal numbers)
 *   'U' PAYLOAD                        unreliable
 *   'J' NODEID MEMBER                  a member joined
 *   'L' NODEID MEMBER                  a member left
 *
 * Scripts (loaded with SCRIPT LOAD on each connect, run with EVALSHA; a
 * NOSCRIPT answer drops the link, and the reconnect loads them again):
 *   publish   creates the meta with the node's random epoch if it is
 *             missing (and drops a stale stream), HINCRBY the offset,
 *             XADD with MAXLEN history_size (exact: the kept run stays
 *             contiguous), refreshes the expiry and PUBLISHes the frame.
 *             Redis runs a script atomically, so PUBLISH order is offset
 *             order on every subscriber's connection.
 *   history   the recovery rule of docs/channels.md on the stream: the
 *             kept run is walked from the newest entry back while the
 *             offsets are contiguous and younger than history_ttl (the
 *             same run h3wt_chhist keeps), then recovery or the
 *             history-on-join fallback.  It also creates the meta, so a
 *             subscriber of a new channel gets the epoch the first publish
 *             will use.
 *   presence  join/refresh (HSET, a 'J' frame when the field is new),
 *             leave (HDEL, an 'L' frame when it was there) and sweep
 *             (expired fields HDELed with an 'L' frame each: whoever
 *             deletes publishes, so every node hears a dead node's members
 *             leave once).  Every node refreshes its members and sweeps
 *             the channels it watches each presence_ttl / 3.
 *             The hash itself expires 3 presence_ttl after the last
 *             refresh: long enough for the sweepers to see a dead node's
 *             fields expired (and say so) before the key goes.
 *   members   the live fields of other nodes.
 *
 * Link (events.link): the node starts as if linked.  link(0) comes once
 * when the link is lost (a connection closes, a command or a connect is
 * not answered within timeout_ms, an error from Redis that means the
 * connection is unusable); every request then in flight fails with
 * H3WT_ERR_IO (its outcome is unknown: a publish may have been made).
 * While down, reliable publish, history and members wait in a queue of
 * max_queued (full: the call returns H3WT_ERR_IO) and fail with
 * H3WT_ERR_IO after timeout_ms; an unreliable publish returns H3WT_ERR_IO
 * at once (latest-wins state is not worth sending late).  The node reconnects
 * with exponential backoff and jitter; when both connections are ready it
 * SUBSCRIBEs every watched channel again, sends what was queued, re-announces
 * its members (a member whose field is gone is announced with a 'J' frame
 * again) and calls link(1). A history() of a watched channel waits until its
 * SUBSCRIBE is confirmed, so every message after the answer's `last` reaches
 * the node.  A heartbeat (PUBLISH on the node channel each presence_ttl / 3,
 * expected back on the pub/sub connection within timeout_ms) notices a pub/sub
 * connection that died without a word.
 *
 * Ordering the hub sees: a node's own messages come back through pub/sub
 * like anyone's, on the other connection than the publish's answer, so
 * events.message for a publish may come before or after its completion.
 *
 * Memory: the node is freed when its timer handle has closed and no
 * uv_getaddrinfo is pending; hiredis closes its own poll handles.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libuv.h>

#include "h3wt_broker.h"
#include "h3wt_chhist.h"
#include "h3wt_list.h"
#include "h3wt_redisproto.h"

#define MS 1000000ULL /* nanoseconds */
#define PREFIX_MAX 64
#define CHANNEL_MAX 255
#define MEMBER_MAX H3WT_REDISFRAME_MEMBER_MAX
#define NODEID_LEN H3WT_REDISFRAME_NODE_LEN
/* Every key or pub/sub name: prefix, a two-byte tag, a channel name. */
#define KEY_MAX (PREFIX_MAX + 2 + CHANNEL_MAX)
#define OFFSET_MAX H3WT_REDISFRAME_OFFSET_MAX

/* ---- scripts ------------------------------------------------------------- */

enum { SC_PUBLISH, SC_HISTORY, SC_MEMBERS, SC_PRESENCE, SC_COUNT };

/* KEYS meta, stream; ARGV epoch for a new life, history_size,
   history_ttl_ms, payload, pub/sub channel.  Returns {epoch, offset}. */
static const char script_publish[] =
    "local e = redis.call('HGET', KEYS[1], 'e')\n"
    "if not e then\n"
    "  e = ARGV[1]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)\n"
    "end\n"
    "local o = redis.call('HINCRBY', KEYS[1], 'o', 1)\n"
    "local os = string.format('%d', o)\n"
    "local ttl = tonumber(ARGV[3])\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], os .. '-1', 't',\n"
    "    string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000)),\n"
    "    'd', ARGV[4])\n"
    "else\n"
    "  redis.call('DEL', KEYS[2])\n"
    "end\n"
    "if ttl > 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "  redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[5], 'R' .. e .. ' ' .. os .. ' ' .. ARGV[4])\n"
    "return {e, o}\n";

/* KEYS meta, stream; ARGV epoch for a new life, recover (0/1), epoch,
   since, limit, history_ttl_ms, history_size.  Returns {recovered, epoch,
   last, offset, payload, offset, payload, ...}. */
static const char script_history[] =
    "local e = redis.call('HGET', KEYS[1], 'e')\n"
    "local ttl = tonumber(ARGV[6])\n"
    "if not e then\n"
    "  e = ARGV[1]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)\n"
    "  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "end\n"
    "local last = tonumber(redis.call('HGET', KEYS[1], 'o')) or 0\n"
    "local ents = redis.call('XRANGE', KEYS[2], '-', '+')\n"
    "local cutoff = nil\n"
    "if ttl > 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  cutoff = t[1] * 1000 + math.floor(t[2] / 1000) - ttl\n"
    "end\n"
    "local first, want = #ents + 1, last\n"
    "for i = #ents, 1, -1 do\n"
    "  local off = tonumber(string.match(ents[i][1], '^(%d+)%-'))\n"
    "  local f = ents[i][2]\n"
    "  local ts = tonumber(f[2])\n"
    "  if off ~= want or f[1] ~= 't' or f[3] ~= 'd' or ts == nil or\n"
    "     (cutoff and ts < cutoff) then break end\n"
    "  first, want = i, want - 1\n"
    "end\n"
    "local oldest = want + 1\n"
    "local top = first + last - oldest\n"
    "local from, to, rec = 1, 0, 0\n"
    "local since = tonumber(ARGV[4])\n"
    "if ARGV[2] == '1' and ARGV[3] == e and since <= last and\n"
    "   since + 1 >= oldest then\n"
    "  rec, from, to = 1, first + since + 1 - oldest, top\n"
    "elseif tonumber(ARGV[5]) > 0 then\n"
    "  local n = math.min(tonumber(ARGV[5]), tonumber(ARGV[7]),\n"
    "                     top - first + 1)\n"
    "  from, to = top - n + 1, top\n"
    "end\n"
    "local out = {rec, e, last}\n"
    "for i = from, to do\n"
    "  out[#out + 1] = tonumber(string.match(ents[i][1], '^(%d+)%-'))\n"
    "  out[#out + 1] = ents[i][2][4]\n"
    "end\n"
    "return out\n";

/* KEYS presence; ARGV this node's id.  Returns the live members of the
   other nodes. */
static const char script_members[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local out = {}\n"
    "for i = 1, #all, 2 do\n"
    "  local f, exp = all[i], tonumber(all[i + 1])\n"
    "  if #f > 16 and string.sub(f, 1, 16) ~= ARGV[1] and exp and\n"
    "     exp >= now then\n"
    "    out[#out + 1] = string.sub(f, 17)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS presence, meta; ARGV pub/sub channel, presence_ttl_ms, this node's
   id, mode ('J' join or refresh, 'L' leave, 'S' sweep then refresh),
   history_ttl_ms, the members.  Returns 0.  A sweep (by a node that
   watches the channel) also keeps the meta, so the epoch lives as long as
   anyone watches. */
static const char script_presence[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local ttl, mode = tonumber(ARGV[2]), ARGV[4]\n"
    "if mode == 'S' then\n"
    "  if tonumber(ARGV[5]) > 0 then\n"
    "    redis.call('PEXPIRE', KEYS[2], ARGV[5])\n"
    "  end\n"
    "  local all = redis.call('HGETALL', KEYS[1])\n"
    "  for i = 1, #all, 2 do\n"
    "    local exp = tonumber(all[i + 1])\n"
    "    if (not exp or exp < now) and\n"
    "       redis.call('HDEL', KEYS[1], all[i]) == 1 then\n"
    "      redis.call('PUBLISH', ARGV[1], 'L' .. all[i])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for i = 6, #ARGV do\n"
    "  local f = ARGV[3] .. ARGV[i]\n"
    "  if mode == 'L' then\n"
    "    if redis.call('HDEL', KEYS[1], f) == 1 then\n"
    "      redis.call('PUBLISH', ARGV[1], 'L' .. f)\n"
    "    end\n"
    "  elseif redis.call('HSET', KEYS[1], f,\n"
    "                    string.format('%d', now + ttl)) == 1 then\n"
    "    redis.call('PUBLISH', ARGV[1], 'J' .. f)\n"
    "  end\n"
    "end\n"
    "if mode ~= 'L' and #ARGV >= 6 then\n"
    "  redis.call('PEXPIRE', KEYS[1], 3 * ttl)\n"
    "end\n"
    "return 0\n";

static const char *const scripts[SC_COUNT] = {script_publish, script_history,
                                              script_members, script_presence};

/* ---- objects ------------------------------------------------------------- */

typedef struct rbroker {
  h3wt_broker base;
  h3wt_redisurl url; /* password resolved (settings, environment) */
  char prefix[PREFIX_MAX + 1];
  size_t prefixlen;
  uint64_t presence_ttl_ms, timeout_ms;
  uint64_t reconnect_min_ms, reconnect_max_ms;
  size_t max_queued;
} rbroker;

/* The link, in order. */
enum {
  ST_DOWN,       /* no connection; the next attempt at retry_at */
  ST_RESOLVING,  /* uv_getaddrinfo of the host */
  ST_CONNECTING, /* both connections made, handshakes not all answered */
  ST_UP          /* both ready: commands go out at once */
};

/* A channel's Redis subscription on this node's pub/sub connection. */
enum {
  SUB_NONE, /* not subscribed */
  SUB_SENT, /* SUBSCRIBE sent, not confirmed */
  SUB_ON,   /* confirmed: every later frame reaches the node */
  SUB_OFF   /* UNSUBSCRIBE sent, not confirmed */
};

typedef struct rmember {
  struct rmember *next;
  size_t len;
  char name[];
} rmember;

typedef struct rchan {
  struct rchan *hnext; /* hash chain */
  h3wt_list link;      /* n->chans */
  h3wt_list plink;     /* n->subpending while SUB_SENT or SUB_OFF */
  uint64_t sub_ns;     /* when that command was sent */
  unsigned watch;      /* watch() count */
  int sub;             /* SUB_* */
  /* The last reliable message delivered, so a frame that does not move
     forward (a replay, a hostile frame) is not delivered twice. */
  uint64_t epoch, last;
  rmember *members; /* this node's members */
  uint64_t hash;
  size_t len;
  char name[];
} rchan;

enum { RQ_PUBLISH, RQ_HISTORY, RQ_MEMBERS, RQ_PRESENCE };

typedef struct rnode rnode;

typedef struct rreq {
  h3wt_list link; /* n->queue while waiting, n->inflight once sent */
  rnode *n;
  int kind;
  int reliable;  /* RQ_PUBLISH */
  uint64_t t0;   /* queued at, then sent at (ns) */
  h3wt_buf *buf; /* RQ_PUBLISH: a reference of the request's own */
  int recover;   /* RQ_HISTORY: the hub's arguments */
  uint64_t epoch, since, limit;
  union {
    h3wt_bnode_published_cb pub;
    h3wt_bnode_history_cb hist;
    h3wt_bnode_members_cb mem;
  } cb;
  void *arg;
  size_t chlen;
  char ch[];
} rreq;

struct rnode {
  h3wt_bnode base;
  rbroker *b;
  uv_loop_t *loop;
  const h3wt_logger *log;
  h3wt_bnode_events ev;
  void *ud;
  size_t history_size;
  uint64_t history_ttl_ms;
  char id[NODEID_LEN + 1];
  int state;       /* ST_* */
  int reported_up; /* what the hub was last told (starts 1) */
  int ever_up;
  int closing;
  redisAsyncContext *cmd, *sub;
  int cmd_ready, sub_ready;
  unsigned nscripts;
  char sha[SC_COUNT][41];
  uint64_t connect_ns; /* the current attempt began */
  uint64_t retry_ns;   /* ST_DOWN: next attempt */
  uint64_t backoff_ms;
  uint64_t presence_ns; /* next refresh and sweep */
  /* A heartbeat PUBLISHed on the node channel (through cmd) that has not
     come back on sub yet: a pub/sub connection can die silently while it
     has nothing to say, and only this notices. */
  uint64_t ping_ns;
  uv_timer_t tick;
  int tick_closed;
  uv_getaddrinfo_t gai;
  int gai_busy;
  char addr[64];    /* the resolved address, numeric */
  size_t addr_pick; /* which of the host's addresses (see pick_address) */
  h3wt_list queue;  /* rreq waiting for the link or a subscription */
  size_t nqueued;
  h3wt_list inflight;   /* rreq sent on cmd, oldest first */
  h3wt_list subpending; /* rchan with SUB_SENT or SUB_OFF, oldest first */
  h3wt_list chans;
  rchan **buckets;
  size_t nbuckets, nchans;
  uint64_t hkey[2];
  h3wt_bnode_stats st;
};

static const h3wt_logger silent_logger = {NULL, NULL, H3WT_LOG_ERROR};

#define LOGN(N, LEVEL, ...)                                                    \
  H3WT_LOG((N)->log, (LEVEL), "broker", "[redis " __VA_ARGS__)

/* ---- small helpers ------------------------------------------------------- */

/* docs/channels.md: 1..255 bytes, none below 0x20 nor 0x7f. */
static int name_ok(const char *s, size_t len) {
  size_t i;
  if (!s || len == 0 || len > CHANNEL_MAX) {
    return 0;
  }
  for (i = 0; i < len; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      return 0;
    }
  }
  return 1;
}

/* Prefix, tag (two bytes), then s: a key or a pub/sub name. */
static size_t make_key(const rnode *n, char out[KEY_MAX], const char *tag,
                       const char *s, size_t len) {
  const rbroker *b = n->b;
  memcpy(out, b->prefix, b->prefixlen);
  memcpy(out + b->prefixlen, tag, 2);
  memcpy(out + b->prefixlen + 2, s, len);
  return b->prefixlen + 2 + len;
}

static uint64_t random_u64(void) {
  uint64_t v = 0;
  if (h3wt_random(&v, sizeof(v)) != 0) {
    v = h3wt_now_ns() * 0x9e3779b97f4a7c15ULL; /* never fails in practice */
  }
  return v;
}

/* ---- channels ------------------------------------------------------------ */

static rchan *chan_find(const rnode *n, const char *name, size_t len) {
  uint64_t h;
  rchan *ch;
  if (!n->nbuckets) {
    return NULL;
  }
  h = h3wt_siphash13(n->hkey, (const uint8_t *)name, len);
  for (ch = n->buckets[h & (n->nbuckets - 1)]; ch; ch = ch->hnext) {
    if (ch->hash == h && ch->len == len && memcmp(ch->name, name, len) == 0) {
      return ch;
    }
  }
  return NULL;
}

static int chan_grow(rnode *n) {
  size_t cap = n->nbuckets ? n->nbuckets * 2 : 16, i;
  rchan **nb = calloc(cap, sizeof(*nb));
  if (!nb) {
    return H3WT_ERR_NOMEM;
  }
  for (i = 0; i < n->nbuckets; ++i) {
    rchan *ch = n->buckets[i], *next;
    for (; ch; ch = next) {
      next = ch->hnext;
      ch->hnext = nb[ch->hash & (cap - 1)];
      nb[ch->hash & (cap - 1)] = ch;
    }
  }
  free(n->buckets);
  n->buckets = nb;
  n->nbuckets = cap;
  return 0;
}

/* Finds or makes the channel; NULL when out of memory. */
static rchan *chan_get(rnode *n, const char *name, size_t len) {
  rchan *ch = chan_find(n, name, len);
  size_t slot;
  if (ch) {
    return ch;
  }
  if (n->nchans >= n->nbuckets && chan_grow(n) != 0) {
    return NULL;
  }
  ch = calloc(1, sizeof(*ch) + len);
  if (!ch) {
    return NULL;
  }
  memcpy(ch->name, name, len);
  ch->len = len;
  ch->hash = h3wt_siphash13(n->hkey, (const uint8_t *)name, len);
  h3wt_list_init(&ch->plink);
  h3wt_list_insert_tail(&n->chans, &ch->link);
  slot = ch->hash & (n->nbuckets - 1);
  ch->hnext = n->buckets[slot];
  n->buckets[slot] = ch;
  ++n->nchans;
  return ch;
}

static void chan_free(rnode *n, rchan *ch) {
  rchan **pp = &n->buckets[ch->hash & (n->nbuckets - 1)];
  while (*pp != ch) {
    pp = &(*pp)->hnext;
  }
  *pp = ch->hnext;
  h3wt_list_remove(&ch->link);
  h3wt_list_remove(&ch->plink);
  while (ch->members) {
    rmember *m = ch->members;
    ch->members = m->next;
    free(m);
  }
  --n->nchans;
  free(ch);
}

/* Frees a channel nothing needs any more. */
static void chan_gc(rnode *n, rchan *ch) {
  if (ch->watch == 0 && ch->sub == SUB_NONE && !ch->members) {
    chan_free(n, ch);
  }
}

/* ---- requests ------------------------------------------------------------ */

static void link_lost(rnode *n, const char *why);
static void queue_flush(rnode *n);

static void req_free(rreq *r) {
  h3wt_buf_unref(r->buf);
  free(r);
}

/* Calls the request's callback with an error and frees it. */
static void req_fail(rreq *r, int err) {
  rnode *n = r->n;
  h3wt_list_remove(&r->link);
  if (err != H3WT_ERR_CLOSED) { /* detach() is no failure */
    ++n->st.errors;
  }
  switch (r->kind) {
  case RQ_PUBLISH:
    if (r->cb.pub) {
      r->cb.pub(r->arg, err, 0, 0);
    }
    break;
  case RQ_HISTORY:
    r->cb.hist(r->arg, err, 0, 0, 0, NULL, 0);
    break;
  case RQ_MEMBERS:
    r->cb.mem(r->arg, err, NULL, 0);
    break;
  default:
    break;
  }
  req_free(r);
}

/* An integer reply element (Lua numbers arrive as integers). */
static int reply_u64(const redisReply *e, uint64_t max, uint64_t *v) {
  if (!e || e->type != REDIS_REPLY_INTEGER || e->integer < 0 ||
      (uint64_t)e->integer > max) {
    return -1;
  }
  *v = (uint64_t)e->integer;
  return 0;
}

static int reply_epoch(const redisReply *e, uint64_t *v) {
  if (!e || e->type != REDIS_REPLY_STRING) {
    return -1;
  }
  return h3wt_redis_dec(e->str, e->len, H3WT_CHHIST_EPOCH_MAX, v);
}

/* {epoch, offset} of the publish script.  Returns 0 or -1 (malformed). */
static int done_publish(rreq *r, const redisReply *rep) {
  uint64_t epoch, offset;
  if (!r->reliable) {
    if (rep->type != REDIS_REPLY_INTEGER) {
      return -1;
    }
    if (r->cb.pub) {
      r->cb.pub(r->arg, 0, 0, 0);
    }
    return 0;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
      reply_epoch(rep->element[0], &epoch) != 0 ||
      reply_u64(rep->element[1], OFFSET_MAX, &offset) != 0 || offset == 0) {
    return -1;
  }
  if (r->cb.pub) {
    r->cb.pub(r->arg, 0, epoch, offset);
  }
  return 0;
}

/* {recovered, epoch, last, (offset, payload)*}: checked for shape and for
   what the hub relies on (offsets contiguous, ending at last; a recovery
   starting right after since) before anything is handed over. */
static int done_history(rreq *r, const redisReply *rep) {
  uint64_t rec, epoch, last, off = 0;
  size_t i, count;
  h3wt_bentry *e = NULL;
  int err = 0;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
      (rep->elements - 3) % 2 != 0 || reply_u64(rep->element[0], 1, &rec) ||
      reply_epoch(rep->element[1], &epoch) ||
      reply_u64(rep->element[2], OFFSET_MAX, &last)) {
    return -1;
  }
  count = (rep->elements - 3) / 2;
  if (count > last || (rec && r->since + count != last)) {
    return -1;
  }
  if (count) {
    e = calloc(count, sizeof(*e));
    if (!e) {
      err = H3WT_ERR_NOMEM;
    }
  }
  for (i = 0; i < count && !err; ++i) {
    const redisReply *o = rep->element[3 + 2 * i], *d = rep->element[4 + 2 * i];
    if (reply_u64(o, last, &off) != 0 || off != last - count + 1 + i ||
        d->type != REDIS_REPLY_STRING) {
      err = -1;
      break;
    }
    e[i].offset = off;
    if (h3wt_buf_new(&e[i].buf, d->str, d->len) != 0) {
      err = H3WT_ERR_NOMEM;
    }
  }
  if (!err) {
    r->cb.hist(r->arg, 0, (int)rec, epoch, last, e, count);
  }
  for (i = 0; i < count; ++i) {
    h3wt_buf_unref(e[i].buf);
  }
  free(e);
  if (err == H3WT_ERR_NOMEM) {
    ++r->n->st.errors;
    r->cb.hist(r->arg, err, 0, 0, 0, NULL, 0);
    return 0;
  }
  return err;
}

static int done_members(rreq *r, const redisReply *rep) {
  h3wt_bmember *m = NULL;
  size_t i;
  if (rep->type != REDIS_REPLY_ARRAY) {
    return -1;
  }
  for (i = 0; i < rep->elements; ++i) {
    const redisReply *e = rep->element[i];
    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > MEMBER_MAX) {
      return -1;
    }
  }
  if (rep->elements) {
    m = calloc(rep->elements, sizeof(*m));
    if (!m) {
      ++r->n->st.errors;
      r->cb.mem(r->arg, H3WT_ERR_NOMEM, NULL, 0);
      return 0;
    }
  }
  for (i = 0; i < rep->elements; ++i) {
    m[i].name = rep->element[i]->str;
    m[i].len = rep->element[i]->len;
  }
  r->cb.mem(r->arg, 0, m, rep->elements);
  free(m);
  return 0;
}

/* hiredis answers a request sent on cmd (reply NULL: the connection is
   being freed, the request is failed). */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  rreq *r = privdata;
  rnode *n = r->n;
  const redisReply *rep = reply;
  int bad;
  if (!rep) {
    req_fail(r, n->closing ? H3WT_ERR_CLOSED : H3WT_ERR_IO);
    return;
  }
  h3wt_list_remove(&r->link);
  ++n->st.round_trips;
  n->st.rtt_us_sum += (h3wt_now_ns() - r->t0) / 1000;
  if (rep->type == REDIS_REPLY_ERROR) {
    LOGN(n, H3WT_LOG_WARN, "%s] request failed: %.*s", n->id,
         (int)(rep->len > 200 ? 200 : rep->len), rep->str);
    req_fail(r, H3WT_ERR_IO);
    /* NOSCRIPT: the scripts went (SCRIPT FLUSH, a failover): a new
       connection loads them again. */
    if (rep->len >= 8 && memcmp(rep->str, "NOSCRIPT", 8) == 0 && ac == n->cmd) {
      link_lost(n, "scripts missing");
    }
    return;
  }
  switch (r->kind) {
  case RQ_PUBLISH:
    bad = done_publish(r, rep);
    break;
  case RQ_HISTORY:
    bad = done_history(r, rep);
    break;
  case RQ_MEMBERS:
    bad = done_members(r, rep);
    break;
  default:
    bad = rep->type != REDIS_REPLY_INTEGER;
    break;
  }
  if (bad) {
    LOGN(n, H3WT_LOG_WARN, "%s] malformed reply (type %d)", n->id, rep->type);
    req_fail(r, H3WT_ERR_IO);
    return;
  }
  req_free(r);
}

/* Sends argv on cmd for r (tracked in inflight for the watchdog).
   Returns 0, or fails r (its callback runs) and drops the link. */
static int send_argv(rnode *n, rreq *r, int argc, const char **argv,
                     const size_t *lens) {
  if (!n->cmd || redisAsyncCommandArgv(n->cmd, on_reply, r, argc, argv, lens) !=
                     REDIS_OK) {
    req_fail(r, H3WT_ERR_IO);
    link_lost(n, "cannot send a command");
    return -1;
  }
  r->t0 = h3wt_now_ns();
  h3wt_list_insert_tail(&n->inflight, &r->link);
  return 0;
}

static void req_send(rnode *n, rreq *r) {
  char k1[KEY_MAX], k2[KEY_MAX], k3[KEY_MAX];
  char epoch[24], size[24], ttl[24], a4[24], a5[24], a6[24];
  const char *argv[12];
  size_t lens[12];
  int argc = 0;
#define ARG(P, L) (argv[argc] = (P), lens[argc++] = (L))
#define ARGS(S) ARG((S), strlen(S))
  snprintf(epoch, sizeof(epoch), "%" PRIu64,
           (uint64_t)(random_u64() & H3WT_CHHIST_EPOCH_MAX));
  snprintf(size, sizeof(size), "%zu", n->history_size);
  snprintf(ttl, sizeof(ttl), "%" PRIu64, n->history_ttl_ms);
  switch (r->kind) {
  case RQ_PUBLISH:
    if (!r->reliable) {
      ARGS("PUBLISH");
      ARG(k3, make_key(n, k3, "c:", r->ch, r->chlen));
      /* The frame: 'U' then the payload; hiredis takes one argument, so
         the two are joined here (the payload is at most max_message). */
      {
        h3wt_redisframe uf = {H3WT_REDISFRAME_UNRELIABLE,
                              0,
                              0,
                              NULL,
                              (const char *)h3wt_buf_data(r->buf),
                              h3wt_buf_len(r->buf)};
        char *f = malloc(uf.len + 1);
        if (!f) {
          req_fail(r, H3WT_ERR_NOMEM);
          return;
        }
        ARG(f, h3wt_redisframe_encode(&uf, f, uf.len + 1));
        send_argv(n, r, argc, argv, lens);
        free(f);
      }
      return;
    }
    ARGS("EVALSHA");
    ARGS(n->sha[SC_PUBLISH]);
    ARGS("2");
    ARG(k1, make_key(n, k1, "m:", r->ch, r->chlen));
    ARG(k2, make_key(n, k2, "h:", r->ch, r->chlen));
    ARGS(epoch);
    ARGS(size);
    ARGS(ttl);
    ARG((const char *)h3wt_buf_data(r->buf), h3wt_buf_len(r->buf));
    ARG(k3, make_key(n, k3, "c:", r->ch, r->chlen));
    break;
  case RQ_HISTORY:
    snprintf(a4, sizeof(a4), "%" PRIu64, r->epoch);
    snprintf(a5, sizeof(a5), "%" PRIu64, r->since);
    snprintf(a6, sizeof(a6), "%" PRIu64, r->limit);
    ARGS("EVALSHA");
    ARGS(n->sha[SC_HISTORY]);
    ARGS("2");
    ARG(k1, make_key(n, k1, "m:", r->ch, r->chlen));
    ARG(k2, make_key(n, k2, "h:", r->ch, r->chlen));
    ARGS(epoch);
    ARGS(r->recover ? "1" : "0");
    ARGS(a4);
    ARGS(a5);
    ARGS(a6);
    ARGS(ttl);
    ARGS(size);
    break;
  case RQ_MEMBERS:
    ARGS("EVALSHA");
    ARGS(n->sha[SC_MEMBERS]);
    ARGS("1");
    ARG(k1, make_key(n, k1, "p:", r->ch, r->chlen));
    ARG(n->id, NODEID_LEN);
    break;
  default:
    req_fail(r, H3WT_ERR_INVALID_STATE);
    return;
  }
#undef ARG
#undef ARGS
  send_argv(n, r, argc, argv, lens);
}

/* A history() of a watched channel whose subscription is not confirmed
   waits: the hub is promised every message after the answer's last. */
static int req_waits(const rnode *n, const rreq *r) {
  const rchan *ch;
  if (r->kind != RQ_HISTORY) {
    return 0;
  }
  ch = chan_find(n, r->ch, r->chlen);
  return ch && ch->watch > 0 && ch->sub != SUB_ON;
}

static rreq *req_new(rnode *n, int kind, const char *ch, size_t chlen) {
  rreq *r = calloc(1, sizeof(*r) + chlen);
  if (!r) {
    return NULL;
  }
  h3wt_list_init(&r->link);
  r->n = n;
  r->kind = kind;
  memcpy(r->ch, ch, chlen);
  r->chlen = chlen;
  return r;
}

/* Sends r now, or queues it.  Returns 0 (the callback will run) or
   H3WT_ERR_IO (the queue is full, or r is an unreliable publish while
   the link is down; r is freed, no callback). */
static int req_submit(rnode *n, rreq *r) {
  if (n->state == ST_UP && !req_waits(n, r)) {
    req_send(n, r);
    return 0;
  }
  /* Unreliable messages are latest-wins state: one held back until the
     link returns would arrive stale, after fresher ones were dropped. */
  if (n->nqueued >= n->b->max_queued ||
      (r->kind == RQ_PUBLISH && !r->reliable)) {
    ++n->st.errors;
    req_free(r);
    return H3WT_ERR_IO;
  }
  r->t0 = h3wt_now_ns();
  h3wt_list_insert_tail(&n->queue, &r->link);
  ++n->nqueued;
  return 0;
}

/* Sends what waits and may go now, in order. */
static void queue_flush(rnode *n) {
  h3wt_list *it, *tmp;
  h3wt_list_foreach_safe(it, tmp, &n->queue) {
    rreq *r = h3wt_list_entry(it, rreq, link);
    if (n->state != ST_UP) {
      return;
    }
    if (req_waits(n, r)) {
      continue;
    }
    h3wt_list_remove(&r->link);
    --n->nqueued;
    req_send(n, r);
  }
}

/* ---- presence ------------------------------------------------------------ */

/* Runs the presence script for ch: mode 'J', 'L' or 'S'; members: one
   (m, mlen) or, with m NULL, all of this node's members of ch. */
static void presence_send(rnode *n, rchan *ch, char mode, const char *m,
                          size_t mlen) {
  char k1[KEY_MAX], k2[KEY_MAX], k3[KEY_MAX], ttl[24], httl[24];
  char md[2] = {mode, 0};
  const char **argv;
  size_t *lens, count = 0, argc = 0;
  rmember *it;
  rreq *r;
  if (n->state != ST_UP) {
    return; /* announced again when the link comes back */
  }
  if (!m) {
    for (it = ch->members; it; it = it->next) {
      ++count;
    }
  } else {
    count = 1;
  }
  argv = malloc((10 + count) * sizeof(*argv));
  lens = malloc((10 + count) * sizeof(*lens));
  r = req_new(n, RQ_PRESENCE, "", 0);
  if (!argv || !lens || !r) {
    ++n->st.errors;
    free(argv);
    free(lens);
    free(r);
    return;
  }
  snprintf(ttl, sizeof(ttl), "%" PRIu64, n->b->presence_ttl_ms);
  snprintf(httl, sizeof(httl), "%" PRIu64, n->history_ttl_ms);
  argv[argc] = "EVALSHA", lens[argc++] = 7;
  argv[argc] = n->sha[SC_PRESENCE], lens[argc++] = 40;
  argv[argc] = "2", lens[argc++] = 1;
  argv[argc] = k1, lens[argc++] = make_key(n, k1, "p:", ch->name, ch->len);
  argv[argc] = k3, lens[argc++] = make_key(n, k3, "m:", ch->name, ch->len);
  argv[argc] = k2, lens[argc++] = make_key(n, k2, "c:", ch->name, ch->len);
  argv[argc] = ttl, lens[argc++] = strlen(ttl);
  argv[argc] = n->id, lens[argc++] = NODEID_LEN;
  argv[argc] = md, lens[argc++] = 1;
  argv[argc] = httl, lens[argc++] = strlen(httl);
  if (m) {
    argv[argc] = m, lens[argc++] = mlen;
  } else {
    for (it = ch->members; it; it = it->next) {
      argv[argc] = it->name, lens[argc++] = it->len;
    }
  }
  send_argv(n, r, (int)argc, argv, lens);
  free(argv);
  free(lens);
}

/* PUBLISH "ping" on this node's own channel; on_sub clears ping_ns when
   it arrives. */
static void ping_send(rnode *n) {
  char k[KEY_MAX];
  const char *argv[3] = {"PUBLISH", k, "ping"};
  size_t lens[3] = {7, make_key(n, k, "n:", n->id, NODEID_LEN), 4};
  rreq *r = req_new(n, RQ_PRESENCE, "", 0);
  if (!r) {
    ++n->st.errors;
    return;
  }
  if (send_argv(n, r, 3, argv, lens) == 0 && !n->ping_ns) {
    n->ping_ns = h3wt_now_ns();
  }
}

/* Every presence_ttl / 3: this node's members refreshed (and announced
   again if their field went), the watched channels swept, a heartbeat
   through pub/sub. */
static void presence_refresh(rnode *n) {
  h3wt_list *it, *tmp;
  n->presence_ns = h3wt_now_ns() + n->b->presence_ttl_ms * MS / 3;
  ping_send(n);
  h3wt_list_foreach_safe(it, tmp, &n->chans) {
    rchan *ch = h3wt_list_entry(it, rchan, link);
    if (n->state != ST_UP) {
      return;
    }
    if (ch->watch > 0) {
      presence_send(n, ch, 'S', NULL, 0);
    } else if (ch->members) {
      presence_send(n, ch, 'J', NULL, 0);
    }
  }
}

/* ---- pub/sub ------------------------------------------------------------- */

static void on_sub(redisAsyncContext *ac, void *reply, void *privdata);

/* (UN)SUBSCRIBE of ch.  hiredis 0.14 keeps one callback per subscribed
   name, the one given with SUBSCRIBE, and calls it for every message and
   for the confirmations of both commands. */
static void send_sub(rnode *n, rchan *ch, int on) {
  char k[KEY_MAX];
  const char *argv[2] = {on ? "SUBSCRIBE" : "UNSUBSCRIBE", k};
  size_t lens[2] = {strlen(argv[0]), make_key(n, k, "c:", ch->name, ch->len)};
  if (!n->sub || redisAsyncCommandArgv(n->sub, on ? on_sub : NULL, NULL, 2,
                                       argv, lens) != REDIS_OK) {
    link_lost(n, "cannot send (UN)SUBSCRIBE");
    return;
  }
  ch->sub = on ? SUB_SENT : SUB_OFF;
  ch->sub_ns = h3wt_now_ns();
  h3wt_list_remove(&ch->plink);
  h3wt_list_insert_tail(&n->subpending, &ch->plink);
}

/* A frame of a channel this node watches.  Never trusts the frame: every
   field is checked against the length Redis gave. */
static void on_frame(rnode *n, rchan *ch, const char *p, size_t len) {
  h3wt_redisframe f;
  h3wt_buf *buf;
  if (h3wt_redisframe_parse(p, len, &f) != 0) {
    ++n->st.errors;
    LOGN(n, H3WT_LOG_WARN, "%s] malformed frame on channel %.*s (%zu bytes)",
         n->id, (int)ch->len, ch->name, len);
    return;
  }
  switch (f.kind) {
  case H3WT_REDISFRAME_RELIABLE:
    /* Offsets only move forward within an epoch: anything else is a
       replay and was delivered already. */
    if (f.epoch == ch->epoch && f.offset <= ch->last) {
      return;
    }
    ch->epoch = f.epoch;
    ch->last = f.offset;
    break;
  case H3WT_REDISFRAME_JOIN:
  case H3WT_REDISFRAME_LEAVE:
    if (memcmp(f.node, n->id, NODEID_LEN) == 0) {
      return; /* our own: the hub knows */
    }
    n->ev.presence(n->ud, ch->name, ch->len, f.data, f.len,
                   f.kind == H3WT_REDISFRAME_JOIN);
    return;
  default:
    break;
  }
  if (h3wt_buf_new(&buf, f.data, f.len) != 0) {
    ++n->st.errors;
    return;
  }
  n->ev.message(n->ud, ch->name, ch->len, f.kind == H3WT_REDISFRAME_RELIABLE,
                f.epoch, f.offset, buf);
  h3wt_buf_unref(buf);
}

static void maybe_up(rnode *n);

/* Everything the pub/sub connection receives (privdata unused). */
static void on_sub(redisAsyncContext *ac, void *reply, void *privdata) {
  rnode *n = ac->data;
  const redisReply *rep = reply, *kind, *name;
  char nodech[KEY_MAX];
  size_t nodechlen, pl;
  rchan *ch;
  (void)privdata;
  if (!rep || !n || ac != n->sub) {
    return;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
      rep->element[0]->type != REDIS_REPLY_STRING ||
      rep->element[1]->type != REDIS_REPLY_STRING) {
    ++n->st.errors;
    return;
  }
  kind = rep->element[0];
  name = rep->element[1];
  pl = n->b->prefixlen;
  nodechlen = make_key(n, nodech, "n:", n->id, NODEID_LEN);
  if (name->len == nodechlen && memcmp(name->str, nodech, nodechlen) == 0) {
    if (kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0 &&
        n->state == ST_CONNECTING) {
      n->sub_ready = 1;
      maybe_up(n);
    } else if (kind->len == 7 && memcmp(kind->str, "message", 7) == 0) {
      n->ping_ns = 0; /* the heartbeat came round */
    }
    return;
  }
  if (name->len <= pl + 2 || memcmp(name->str, n->b->prefix, pl) != 0 ||
      memcmp(name->str + pl, "c:", 2) != 0) {
    ++n->st.errors;
    return;
  }
  ch = chan_find(n, name->str + pl + 2, name->len - pl - 2);
  if (!ch) {
    return;
  }
  if (kind->len == 7 && memcmp(kind->str, "message", 7) == 0) {
    if (rep->element[2]->type != REDIS_REPLY_STRING) {
      ++n->st.errors;
    } else if (ch->watch > 0 && ch->sub == SUB_ON) {
      on_frame(n, ch, rep->element[2]->str, rep->element[2]->len);
    }
  } else if (kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0) {
    if (ch->sub != SUB_SENT) {
      return;
    }
    ch->sub = SUB_ON;
    h3wt_list_remove(&ch->plink);
    if (ch->watch == 0) {
      send_sub(n, ch, 0);
    } else {
      queue_flush(n);
    }
  } else if (kind->len == 11 && memcmp(kind->str, "unsubscribe", 11) == 0) {
    if (ch->sub != SUB_OFF) {
      return;
    }
    ch->sub = SUB_NONE;
    h3wt_list_remove(&ch->plink);
    if (ch->watch > 0) {
      send_sub(n, ch, 1);
    } else {
      chan_gc(n, ch);
    }
  }
}

/* ---- the link ------------------------------------------------------------ */

static void schedule_retry(rnode *n) {
  rbroker *b = n->b;
  uint64_t d = n->backoff_ms ? n->backoff_ms : b->reconnect_min_ms;
  /* Jitter: between half and all of the backoff, so nodes that lost Redis
     together do not all come back in the same millisecond. */
  uint64_t j = d / 2 + (d > 1 ? random_u64() % (d - d / 2) : 0);
  n->retry_ns = h3wt_now_ns() + j * MS;
  n->backoff_ms = d * 2 > b->reconnect_max_ms ? b->reconnect_max_ms : d * 2;
}

/* Drops both connections (each request in flight fails: H3WT_ERR_IO, or
   H3WT_ERR_CLOSED when closing), schedules the next attempt, and tells
   the hub once.  Callers set a context hiredis is freeing itself to NULL
   first. */
static void link_lost(rnode *n, const char *why) {
  redisAsyncContext *c = n->cmd, *s = n->sub;
  h3wt_list *it, *tmp;
  if (n->state == ST_DOWN) {
    return;
  }
  if (!n->closing) {
    LOGN(n, n->state == ST_UP ? H3WT_LOG_WARN : H3WT_LOG_INFO,
         "%s] link to %s:%u lost: %s", n->id, n->b->url.host,
         (unsigned)n->b->url.port, why);
  }
  if (n->state != ST_UP) {
    ++n->addr_pick; /* this address did not work: the next one */
  }
  n->cmd = n->sub = NULL;
  n->state = ST_DOWN;
  n->cmd_ready = n->sub_ready = 0;
  n->nscripts = 0;
  n->ping_ns = 0;
  n->st.link_up = 0;
  h3wt_list_foreach_safe(it, tmp, &n->chans) {
    rchan *ch = h3wt_list_entry(it, rchan, link);
    ch->sub = SUB_NONE;
    h3wt_list_remove(&ch->plink);
    chan_gc(n, ch);
  }
  schedule_retry(n);
  /* Inside one of their callbacks, hiredis frees later (when it
     returns); either way the pending callbacks run with a NULL reply. */
  if (c) {
    redisAsyncFree(c);
  }
  if (s) {
    redisAsyncFree(s);
  }
  if (n->reported_up && !n->closing) {
    n->reported_up = 0;
    n->ev.link(n->ud, 0);
  }
}

static void maybe_up(rnode *n) {
  h3wt_list *it, *tmp;
  if (!n->cmd_ready || !n->sub_ready || n->state != ST_CONNECTING) {
    return;
  }
  n->state = ST_UP;
  n->st.link_up = 1;
  n->backoff_ms = 0;
  if (n->ever_up) {
    ++n->st.reconnects;
  }
  n->ever_up = 1;
  LOGN(n, H3WT_LOG_INFO, "%s] linked to %s:%u", n->id, n->b->url.host,
       (unsigned)n->b->url.port);
  h3wt_list_foreach_safe(it, tmp, &n->chans) {
    rchan *ch = h3wt_list_entry(it, rchan, link);
    if (ch->watch > 0 && ch->sub == SUB_NONE) {
      send_sub(n, ch, 1);
      if (n->state != ST_UP) {
        return;
      }
    }
  }
  queue_flush(n);
  presence_refresh(n);
  if (n->state == ST_UP && !n->reported_up) {
    n->reported_up = 1;
    n->ev.link(n->ud, 1);
  }
}

/* A handshake command answered (AUTH, SELECT, SCRIPT LOAD). */
static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata) {
  rnode *n = ac->data;
  const redisReply *rep = reply;
  int script = privdata != NULL;
  if (!rep || !n || (ac != n->cmd && ac != n->sub)) {
    return;
  }
  if (rep->type == REDIS_REPLY_ERROR ||
      (script && (rep->type != REDIS_REPLY_STRING || rep->len != 40))) {
    LOGN(n, H3WT_LOG_WARN, "%s] handshake refused: %.*s", n->id,
         rep->type == REDIS_REPLY_ERROR ? (int)(rep->len > 200 ? 200 : rep->len)
                                        : 0,
         rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    link_lost(n, "handshake refused");
    return;
  }
  if (script && n->nscripts < SC_COUNT) {
    memcpy(n->sha[n->nscripts], rep->str, 40);
    n->sha[n->nscripts][40] = '\0';
    if (++n->nscripts == SC_COUNT) {
      n->cmd_ready = 1;
      maybe_up(n);
    }
  }
}

/* hiredis is freeing ac (its connect failed, or it closed): forget it and
   drop the link, unless it is one we dropped already. */
static void context_gone(const redisAsyncContext *ac, const char *why) {
  rnode *n = ac->data;
  if (!n) {
    return;
  }
  if (ac == n->cmd) {
    n->cmd = NULL;
  } else if (ac == n->sub) {
    n->sub = NULL;
  } else {
    return;
  }
  link_lost(n, ac->errstr[0] ? ac->errstr : why);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  if (status != REDIS_OK) {
    context_gone(ac, "cannot connect");
  }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  context_gone(ac, "connection closed");
}

static redisAsyncContext *open_context(rnode *n) {
  redisAsyncContext *ac = redisAsyncConnect(n->addr, n->b->url.port);
  if (!ac) {
    return NULL;
  }
  if (ac->err) {
    LOGN(n, H3WT_LOG_INFO, "%s] connect: %s", n->id, ac->errstr);
    redisAsyncFree(ac);
    return NULL;
  }
  if (redisLibuvAttach(ac, n->loop) != REDIS_OK) {
    /* The adapter sets its hooks before it can fail: without its data
       they must not run. */
    memset(&ac->ev, 0, sizeof(ac->ev));
    redisAsyncFree(ac);
    return NULL;
  }
  /* Like every handle of a hub's, the connection keeps no loop alive: a
     host's loop ends when its server and hub are closed, wherever Redis
     is.  (The flag stays through the adapter's poll starts and stops.) */
  uv_unref((uv_handle_t *)&((redisLibuvEvents *)ac->ev.data)->handle);
  ac->data = n;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  return ac;
}

/* Both connections, and every handshake command at once: hiredis keeps
   them until the TCP connection is made.  The link is up when the last
   script is loaded and the node channel's SUBSCRIBE is confirmed. */
static void start_contexts(rnode *n) {
  const rbroker *b = n->b;
  char db[16], k[KEY_MAX];
  const char *argv[3];
  size_t lens[3];
  int i, ok = 1;
  n->state = ST_CONNECTING;
  n->cmd = open_context(n);
  n->sub = n->cmd ? open_context(n) : NULL;
  if (!n->cmd || !n->sub) {
    link_lost(n, "cannot connect");
    return;
  }
  if (b->url.has_password) {
    argv[0] = "AUTH", lens[0] = 4;
    argv[1] = b->url.password, lens[1] = strlen(b->url.password);
    ok = redisAsyncCommandArgv(n->cmd, on_handshake, NULL, 2, argv, lens) ==
             REDIS_OK &&
         redisAsyncCommandArgv(n->sub, on_handshake, NULL, 2, argv, lens) ==
             REDIS_OK;
  }
  if (ok && b->url.db) {
    snprintf(db, sizeof(db), "%" PRIu32, b->url.db);
    argv[0] = "SELECT", lens[0] = 6;
    argv[1] = db, lens[1] = strlen(db);
    ok = redisAsyncCommandArgv(n->cmd, on_handshake, NULL, 2, argv, lens) ==
         REDIS_OK;
  }
  for (i = 0; ok && i < SC_COUNT; ++i) {
    argv[0] = "SCRIPT", lens[0] = 6;
    argv[1] = "LOAD", lens[1] = 4;
    argv[2] = scripts[i], lens[2] = strlen(scripts[i]);
    /* privdata non-NULL marks a script load. */
    ok = redisAsyncCommandArgv(n->cmd, on_handshake, n, 3, argv, lens) ==
         REDIS_OK;
  }
  if (ok) {
    argv[0] = "SUBSCRIBE", lens[0] = 9;
    argv[1] = k, lens[1] = make_key(n, k, "n:", n->id, NODEID_LEN);
    ok = redisAsyncCommandArgv(n->sub, on_sub, NULL, 2, argv, lens) == REDIS_OK;
  }
  if (!ok) {
    link_lost(n, "cannot send the handshake");
  }
}

static void maybe_free(rnode *n);

/* Which address of the host to try: "localhost" gives ::1 first, and a
   Redis bound to 127.0.0.1 only refuses it, so IPv4 ones come first, and
   each failed attempt moves on to the next address (addr_pick stays where
   it worked).  Returns 0, or -1 when the host has neither kind. */
static int pick_address(rnode *n, const struct addrinfo *res) {
  const struct addrinfo *ai;
  size_t count = 0, k = 0, want;
  int pass;
  for (ai = res; ai; ai = ai->ai_next) {
    count += ai->ai_family == AF_INET || ai->ai_family == AF_INET6;
  }
  want = count ? n->addr_pick % count : 0;
  for (pass = 0; pass < 2; ++pass) {
    for (ai = res; ai; ai = ai->ai_next) {
      if (ai->ai_family != (pass == 0 ? AF_INET : AF_INET6) || k++ != want) {
        continue;
      }
      if (ai->ai_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, n->addr,
                    sizeof(n->addr));
      } else {
        uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, n->addr,
                    sizeof(n->addr));
      }
      return 0;
    }
  }
  return -1;
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  rnode *n = req->data;
  n->gai_busy = 0;
  if (n->closing) {
    uv_freeaddrinfo(res);
    maybe_free(n);
    return;
  }
  if (n->state != ST_RESOLVING) {
    uv_freeaddrinfo(res); /* timed out meanwhile */
    return;
  }
  if (status < 0 || !res) {
    uv_freeaddrinfo(res);
    LOGN(n, H3WT_LOG_WARN, "%s] cannot resolve %s: %s", n->id, n->b->url.host,
         uv_strerror(status));
    link_lost(n, "cannot resolve the host");
    return;
  }
  if (pick_address(n, res) != 0) {
    uv_freeaddrinfo(res);
    link_lost(n, "the host has no IPv4 or IPv6 address");
    return;
  }
  uv_freeaddrinfo(res);
  start_contexts(n);
}

static void link_start(rnode *n) {
  struct addrinfo hints;
  int rv;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  n->state = ST_RESOLVING;
  n->connect_ns = h3wt_now_ns();
  n->gai.data = n;
  rv = uv_getaddrinfo(n->loop, &n->gai, on_resolved, n->b->url.host, NULL,
                      &hints);
  if (rv < 0) {
    LOGN(n, H3WT_LOG_WARN, "%s] uv_getaddrinfo: %s", n->id, uv_strerror(rv));
    link_lost(n, "cannot resolve the host");
    return;
  }
  n->gai_busy = 1;
}

/* The watchdog: queued requests past their time, the link's deadlines,
   the next connection attempt, the presence refresh. */
static void on_tick(uv_timer_t *t) {
  rnode *n = t->data;
  uint64_t now = h3wt_now_ns(), tmo = n->b->timeout_ms * MS;
  while (!h3wt_list_empty(&n->queue)) {
    rreq *r = h3wt_list_entry(n->queue.next, rreq, link);
    if (now - r->t0 < tmo) {
      break;
    }
    --n->nqueued;
    req_fail(r, H3WT_ERR_IO);
  }
  switch (n->state) {
  case ST_DOWN:
    if (!n->gai_busy && now >= n->retry_ns) {
      link_start(n);
    }
    break;
  case ST_RESOLVING:
  case ST_CONNECTING:
    if (now - n->connect_ns >= tmo) {
      link_lost(n, "connecting timed out");
    }
    break;
  default:
    if (!h3wt_list_empty(&n->inflight) &&
        now - h3wt_list_entry(n->inflight.next, rreq, link)->t0 >= tmo) {
      link_lost(n, "a request timed out");
    } else if (!h3wt_list_empty(&n->subpending) &&
               now - h3wt_list_entry(n->subpending.next, rchan, plink)
                           ->sub_ns >=
                   tmo) {
      link_lost(n, "a (un)subscription timed out");
    } else if (n->ping_ns && now - n->ping_ns >= tmo) {
      link_lost(n, "the pub/sub connection went silent");
    } else if (now >= n->presence_ns) {
      presence_refresh(n);
    }
    break;
  }
}

/* ---- the node's ops ------------------------------------------------------ */

#define NODE(BN) ((rnode *)(void *)(BN))

/* What publish, history and members check first: a new request, or
   NULL and *err. */
static rreq *op_begin(rnode *n, int kind, const char *ch, size_t chlen,
                      int args_ok, int *err) {
  rreq *r = NULL;
  if (n->closing) {
    *err = H3WT_ERR_CLOSED;
  } else if (!args_ok || !name_ok(ch, chlen)) {
    *err = H3WT_ERR_INVALID_ARGUMENT;
  } else if (!(r = req_new(n, kind, ch, chlen))) {
    *err = H3WT_ERR_NOMEM;
  }
  return r;
}

static int rn_publish(h3wt_bnode *bn, const char *ch, size_t chlen,
                      h3wt_buf *buf, int reliable, h3wt_bnode_published_cb cb,
                      void *arg) {
  rnode *n = NODE(bn);
  int err = 0;
  rreq *r = op_begin(n, RQ_PUBLISH, ch, chlen, buf != NULL, &err);
  if (!r) {
    return err;
  }
  r->reliable = reliable != 0;
  r->buf = h3wt_buf_ref(buf);
  r->cb.pub = cb;
  r->arg = arg;
  err = req_submit(n, r);
  if (err == 0) {
    ++n->st.publishes;
  }
  return err;
}

static int rn_watch(h3wt_bnode *bn, const char *name, size_t len) {
  rnode *n = NODE(bn);
  rchan *ch;
  if (n->closing) {
    return H3WT_ERR_CLOSED;
  }
  if (!name_ok(name, len)) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  ch = chan_get(n, name, len);
  if (!ch) {
    ++n->st.errors;
    return H3WT_ERR_NOMEM;
  }
  if (++ch->watch == 1 && n->state == ST_UP && ch->sub == SUB_NONE) {
    send_sub(n, ch, 1);
  }
  return 0;
}

static void rn_unwatch(h3wt_bnode *bn, const char *name, size_t len) {
  rnode *n = NODE(bn);
  rchan *ch = n->closing ? NULL : chan_find(n, name, len);
  if (!ch || ch->watch == 0) {
    return;
  }
  if (--ch->watch > 0) {
    return;
  }
  if (ch->sub == SUB_ON) {
    send_sub(n, ch, 0);
  } else {
    chan_gc(n, ch); /* SUB_SENT and SUB_OFF finish in on_sub */
  }
  /* A history() that waited for the subscription need not any more. */
  if (n->state == ST_UP) {
    queue_flush(n);
  }
}

static int rn_history(h3wt_bnode *bn, const char *ch, size_t chlen, int recover,
                      uint64_t epoch, uint64_t since, uint64_t limit,
                      h3wt_bnode_history_cb cb, void *arg) {
  rnode *n = NODE(bn);
  int err = 0;
  rreq *r = op_begin(n, RQ_HISTORY, ch, chlen, cb != NULL, &err);
  if (!r) {
    return err;
  }
  r->recover = recover != 0;
  r->epoch = epoch;
  r->since = since;
  r->limit = limit;
  r->cb.hist = cb;
  r->arg = arg;
  return req_submit(n, r);
}

static int rn_join(h3wt_bnode *bn, const char *name, size_t len,
                   const char *member, size_t mlen) {
  rnode *n = NODE(bn);
  rchan *ch;
  rmember *m;
  if (n->closing) {
    return H3WT_ERR_CLOSED;
  }
  if (!name_ok(name, len) || !member || mlen == 0 || mlen > MEMBER_MAX) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  ch = chan_get(n, name, len);
  m = ch ? malloc(sizeof(*m) + mlen) : NULL;
  if (!m) {
    if (ch) {
      chan_gc(n, ch);
    }
    return H3WT_ERR_NOMEM;
  }
  memcpy(m->name, member, mlen);
  m->len = mlen;
  m->next = ch->members;
  ch->members = m;
  presence_send(n, ch, 'J', member, mlen);
  return 0;
}

static void rn_leave(h3wt_bnode *bn, const char *name, size_t len,
                     const char *member, size_t mlen) {
  rnode *n = NODE(bn);
  rchan *ch = n->closing ? NULL : chan_find(n, name, len);
  rmember **pp;
  if (!ch) {
    return;
  }
  for (pp = &ch->members; *pp; pp = &(*pp)->next) {
    if ((*pp)->len == mlen && memcmp((*pp)->name, member, mlen) == 0) {
      rmember *m = *pp;
      *pp = m->next;
      free(m);
      /* Down: the field expires and a sweeping node says it left. */
      presence_send(n, ch, 'L', member, mlen);
      chan_gc(n, ch);
      return;
    }
  }
}

static int rn_members(h3wt_bnode *bn, const char *ch, size_t chlen,
                      h3wt_bnode_members_cb cb, void *arg) {
  rnode *n = NODE(bn);
  int err = 0;
  rreq *r = op_begin(n, RQ_MEMBERS, ch, chlen, cb != NULL, &err);
  if (!r) {
    return err;
  }
  r->cb.mem = cb;
  r->arg = arg;
  return req_submit(n, r);
}

static void rn_stats(const h3wt_bnode *bn, h3wt_bnode_stats *out) {
  const rnode *n = (const rnode *)(const void *)bn;
  *out = n->st;
  out->queued = n->nqueued;
}

static void maybe_free(rnode *n) {
  if (n->tick_closed && !n->gai_busy) {
    free(n->buckets);
    free(n);
  }
}

static void on_tick_closed(uv_handle_t *h) {
  rnode *n = h->data;
  n->tick_closed = 1;
  maybe_free(n);
}

static void rn_detach(h3wt_bnode *bn) {
  rnode *n = NODE(bn);
  h3wt_list *it, *tmp;
  if (n->closing) {
    return;
  }
  n->closing = 1; /* no event from here on */
  /* This node's members leave, best effort: the commands are written
     now, without waiting (a node that cannot write them is as good as
     dead, and the sweepers remove its members within presence_ttl). */
  if (n->state == ST_UP) {
    int done = 0;
    h3wt_list_foreach_safe(it, tmp, &n->chans) {
      rchan *ch = h3wt_list_entry(it, rchan, link);
      if (ch->members && n->state == ST_UP) {
        presence_send(n, ch, 'L', NULL, 0);
      }
    }
    if (n->cmd) {
      redisBufferWrite(&n->cmd->c, &done);
    }
  }
  while (!h3wt_list_empty(&n->queue)) {
    --n->nqueued;
    req_fail(h3wt_list_entry(n->queue.next, rreq, link), H3WT_ERR_CLOSED);
  }
  if (n->state != ST_DOWN) {
    link_lost(n, "detached"); /* in flight: H3WT_ERR_CLOSED */
  }
  h3wt_list_foreach_safe(it, tmp, &n->chans) {
    chan_free(n, h3wt_list_entry(it, rchan, link));
  }
  if (n->gai_busy) {
    uv_cancel((uv_req_t *)&n->gai);
  }
  uv_close((uv_handle_t *)&n->tick, on_tick_closed);
}

static const h3wt_bnode_ops rnode_ops = {
    rn_publish, rn_watch,   rn_unwatch, rn_history, rn_join,
    rn_leave,   rn_members, rn_stats,   rn_detach,
};

/* ---- the broker ---------------------------------------------------------- */

static int rb_attach(h3wt_broker *bb, const h3wt_battach *a,
                     h3wt_bnode **pnode) {
  rbroker *b = (rbroker *)(void *)bb;
  rnode *n;
  uint8_t id[NODEID_LEN / 2];
  uint64_t period;
  if (!a || !pnode || !a->loop || !a->events || !a->events->message ||
      !a->events->presence || !a->events->link) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  n = calloc(1, sizeof(*n));
  if (!n) {
    return H3WT_ERR_NOMEM;
  }
  n->base.ops = &rnode_ops;
  n->b = b;
  n->loop = a->loop;
  n->log = a->log ? a->log : &silent_logger;
  n->ev = *a->events;
  n->ud = a->ud;
  n->history_size = a->history_size;
  n->history_ttl_ms = a->history_ttl_ms;
  n->reported_up = 1;
  if (h3wt_random(id, sizeof(id)) != 0 ||
      h3wt_random(n->hkey, sizeof(n->hkey)) != 0) {
    free(n);
    return H3WT_ERR_IO;
  }
  h3wt_hex(id, sizeof(id), n->id);
  h3wt_list_init(&n->queue);
  h3wt_list_init(&n->inflight);
  h3wt_list_init(&n->subpending);
  h3wt_list_init(&n->chans);
  if (uv_timer_init(a->loop, &n->tick) != 0) {
    free(n);
    return H3WT_ERR_IO;
  }
  n->tick.data = n;
  /* Fine enough for timeout_ms and presence_ttl / 3, and at most every
     100 ms. */
  period = b->timeout_ms / 4;
  if (period > b->presence_ttl_ms / 6) {
    period = b->presence_ttl_ms / 6;
  }
  if (period > 100) {
    period = 100;
  }
  if (period < 5) {
    period = 5;
  }
  /* The first tick connects: attach() itself calls no event. */
  uv_timer_start(&n->tick, on_tick, 0, period);
  uv_unref((uv_handle_t *)&n->tick); /* see open_context() */
  *pnode = &n->base;
  return 0;
}

static void rb_del(h3wt_broker *bb) {
  rbroker *b = (rbroker *)(void *)bb;
  memset(b->url.password, 0, sizeof(b->url.password));
  free(b);
}

static const h3wt_broker_kind redis_kind = {"redis", rb_attach, rb_del};

int h3wt_broker_redis_new(h3wt_broker **pbroker,
                          const h3wt_broker_redis_settings *settings) {
  h3wt_broker_redis_settings def;
  const char *pw, *prefix;
  rbroker *b;
  if (!pbroker) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  *pbroker = NULL;
  h3wt_broker_redis_settings_default(&def);
  if (!settings) {
    settings = &def;
  }
  if (settings->version < H3WT_BROKER_REDIS_SETTINGS_V1) {
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  b = calloc(1, sizeof(*b));
  if (!b) {
    return H3WT_ERR_NOMEM;
  }
  b->base.kind = &redis_kind;
  if (h3wt_redisurl_parse(settings->url ? settings->url : def.url, &b->url) !=
      0) {
    free(b);
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  if (!b->url.has_password) {
    pw =
        settings->password ? settings->password : getenv("H3WT_REDIS_PASSWORD");
    if (pw) {
      if (strlen(pw) > H3WT_REDISURL_PASSWORD_MAX) {
        free(b);
        return H3WT_ERR_INVALID_ARGUMENT;
      }
      strcpy(b->url.password, pw);
      b->url.has_password = 1;
    }
  }
  prefix = settings->prefix ? settings->prefix : def.prefix;
  b->prefixlen = strlen(prefix);
  if (b->prefixlen > PREFIX_MAX) {
    free(b);
    return H3WT_ERR_INVALID_ARGUMENT;
  }
  memcpy(b->prefix, prefix, b->prefixlen);
#define OR(F) (settings->F ? settings->F : def.F)
  b->presence_ttl_ms = OR(presence_ttl_ms);
  b->timeout_ms = OR(timeout_ms);
  b->max_queued = OR(max_queued);
  b->reconnect_min_ms = OR(reconnect_min_ms);
  b->reconnect_max_ms = OR(reconnect_max_ms);
#undef OR
  if (b->reconnect_max_ms < b->reconnect_min_ms) {
    b->reconnect_max_ms = b->reconnect_min_ms;
  }
  *pbroker = &b->base;
  return 0;
}
