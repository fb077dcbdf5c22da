/*
 * h3wt_chproto: the channels wire format (docs/channels.md), pure
 * functions: no I/O, no event loop, and no allocation except the parser's
 * buffer for a frame that arrives in pieces.
 *
 *  - constants: frame types, datagram types, error codes
 *  - an incremental parser of the channel stream (type, length, payload)
 *  - exact decoders of every frame's payload, client -> server and
 *    server -> client (the hub uses the first, h3wt-client and the tests
 *    the second); decoded fields point into the payload, nothing is copied
 *  - encoders of every frame, with header-only variants for the frames that
 *    carry data, so a message is sent from a shared buffer without a copy
 *  - datagrams: one header encoder, one decoder
 *
 * Every decoder reads peer bytes: each is fuzzed (tests/fuzz/fuzz_chproto.c).
 */
#ifndef H3WT_CHPROTO_H
#define H3WT_CHPROTO_H

#include <stddef.h>
#include <stdint.h>

/* ---- wire constants (docs/channels.md) ---------------------------------- */

/* "Client to server" frames. */
#define H3WT_CH_SUBSCRIBE 0x01
#define H3WT_CH_UNSUBSCRIBE 0x02
#define H3WT_CH_PUBLISH 0x03
#define H3WT_CH_PRESENCE 0x04
/* "Server to client" frames. */
#define H3WT_CH_SUBSCRIBED 0x41
#define H3WT_CH_PUBLISHED 0x42
#define H3WT_CH_UNSUBSCRIBED 0x43
#define H3WT_CH_MESSAGE 0x44
#define H3WT_CH_JOIN 0x45
#define H3WT_CH_LEAVE 0x46
#define H3WT_CH_MEMBERS 0x47
#define H3WT_CH_ERROR 0x48

/* SUBSCRIBE flags: "bit 0: recover" (epoch and offset follow), "bit 1:
   history" (limit follows).  Any other bit is malformed (BAD_FRAME): a
   bit this draft does not know may bring fields it cannot skip. */
#define H3WT_CH_FLAG_RECOVER 0x01
#define H3WT_CH_FLAG_HISTORY 0x02
#define H3WT_CH_FLAGS_KNOWN (H3WT_CH_FLAG_RECOVER | H3WT_CH_FLAG_HISTORY)

/* "Datagrams": the type, then sub, then the data. */
#define H3WT_CH_DGRAM_PUBLISH 0x01 /* client -> server */
#define H3WT_CH_DGRAM_DELIVER 0x02 /* server -> client */

/* "Errors": the codes of ERROR and UNSUBSCRIBED frames. */
#define H3WT_CH_ERR_BAD_FRAME 1
#define H3WT_CH_ERR_UNKNOWN_COMMAND 2
#define H3WT_CH_ERR_FORBIDDEN 3
#define H3WT_CH_ERR_TOO_LARGE 4
#define H3WT_CH_ERR_RATE_LIMITED 5
#define H3WT_CH_ERR_TOO_MANY_CHANNELS 6
#define H3WT_CH_ERR_CHANNEL_FULL 7
#define H3WT_CH_ERR_NOT_SUBSCRIBED 8
#define H3WT_CH_ERR_SLOW_CONSUMER 9
#define H3WT_CH_ERR_BAD_CHANNEL 10
#define H3WT_CH_ERR_ALREADY_SUBSCRIBED 11
/* The broker could not take a publication (ERROR), or lost the history a
   subscription was following (UNSUBSCRIBED: subscribe again, with
   recover, to be told what is left). */
#define H3WT_CH_ERR_BROKER_UNAVAILABLE 12

/* BAD_FRAME closes the session with this WebTransport code ("CH"). */
#define H3WT_CH_CLOSE_CODE 0x4348

/* "Channel names are bytes of 1..255 octets". */
#define H3WT_CH_NAME_MAX 255

/* "max_frame, default 65536 + 64 bytes": the limit on a frame's length
   field, that is its payload. */
#define H3WT_CH_MAX_FRAME_DEFAULT (65536 + 64)

/* Room enough for what the header-only encoders write (8-byte varints
   throughout; a PUBLISH head with a name of at most H3WT_CH_NAME_MAX). */
#define H3WT_CH_MESSAGE_HEAD_MAX (1 + 8 + 8 + 8 + 8)
#define H3WT_CH_PUBLISH_HEAD_MAX (1 + 8 + 8 + 8 + H3WT_CH_NAME_MAX + 8)
#define H3WT_CH_DGRAM_HEAD_MAX (8 + 8)

/* The name of a wire error code ("BAD_FRAME", ...); "(unknown code)" for a
   code outside the table.  Never NULL. */
const char *h3wt_ch_strerror(uint64_t code);

/* ---- return codes of the parser and the decoders ------------------------ */

#define H3WT_CH_PARSE_BAD -1       /* malformed: close with BAD_FRAME */
#define H3WT_CH_PARSE_TOO_LARGE -2 /* a frame's length over max_frame */
#define H3WT_CH_PARSE_NOMEM -3     /* the frame buffer could not grow */
#define H3WT_CH_PARSE_BAD_NAME                                                 \
  -4                             /* well-formed, but the channel name          \
                                    breaks the rule: answer BAD_CHANNEL */
#define H3WT_CH_PARSE_UNKNOWN -5 /* a datagram type this draft lacks */

/* 1 when name (len bytes) is a valid channel name: 1..255 octets, none a
   control character (below 0x20, or 0x7f).  Other bytes, UTF-8 included,
   are allowed and not checked further. */
int h3wt_ch_name_valid(const uint8_t *name, size_t len);

/* ---- the channel stream parser -------------------------------------------
 * Fed the channel stream's bytes in any chunking; calls back once per
 * complete frame, in order, known type or not (the hub answers an unknown
 * type with UNKNOWN_COMMAND; its length is known, so it is skipped).
 * A frame whose payload lies wholly inside one call's data is handed over
 * in place; one that arrives in pieces is gathered in a buffer of at most
 * max_frame bytes. */

typedef struct h3wt_ch_parser {
  int state;      /* 0 type, 1 length, 2 payload */
  int err;        /* the first non-zero return, returned ever after */
  uint8_t hdr[8]; /* a varint split across calls */
  size_t hdrlen;
  uint64_t type; /* of the frame being read */
  size_t flen;   /* its payload length */
  size_t have;   /* payload bytes gathered in buf */
  uint8_t *buf;
  size_t bufcap;
  size_t max_frame;
} h3wt_ch_parser;

/* The payload is borrowed: valid only during the call, never NULL (even for
   len 0).  A non-zero return stops the parse and is returned by
   h3wt_ch_parse; a positive value cannot be mistaken for the parser's own
   codes.  The callback must not feed the same parser. */
typedef int (*h3wt_ch_frame_cb)(uint64_t type, const uint8_t *payload,
                                size_t len, void *ud);

/* max_frame: the largest length field accepted (H3WT_CH_MAX_FRAME_DEFAULT
   in the spec).  No allocation until a frame arrives in pieces. */
void h3wt_ch_parser_init(h3wt_ch_parser *p, size_t max_frame);
/* Frees the buffer; the parser may be initialised again. */
void h3wt_ch_parser_free(h3wt_ch_parser *p);
/* Parses len bytes of the stream.  Returns 0, or one of:
     H3WT_CH_PARSE_TOO_LARGE  a frame's length field is over max_frame
                              (found before any of its payload is kept)
     H3WT_CH_PARSE_NOMEM      out of memory
     the callback's non-zero value
   Any non-zero return ends the stream: the rest of data is not looked at
   and every later call returns the same value. */
int h3wt_ch_parse(h3wt_ch_parser *p, const uint8_t *data, size_t len,
                  h3wt_ch_frame_cb on_frame, void *ud);
/* 1 when no frame is half-received (for the stream's FIN: a stream that
   ends inside a frame is malformed), else 0. */
int h3wt_ch_parser_idle(const h3wt_ch_parser *p);

/* ---- decoders --------------------------------------------------------------
 * Each takes a frame's payload (as h3wt_ch_parse hands it) and fills its
 * struct with values and pointers into that payload.  "Payloads are parsed
 * exactly": each returns 0, or H3WT_CH_PARSE_BAD when the payload is too
 * short for its fields or has bytes left over, or H3WT_CH_PARSE_BAD_NAME
 * when it is otherwise well-formed but its channel name breaks the rule
 * (the struct is then filled, so the reply can carry req).  On
 * H3WT_CH_PARSE_BAD the struct's contents are unspecified. */

typedef struct h3wt_ch_subscribe {
  uint64_t req;
  const uint8_t *name;
  size_t namelen;
  uint64_t flags;  /* as sent: only bits of H3WT_CH_FLAGS_KNOWN decode */
  int recover;     /* flags & H3WT_CH_FLAG_RECOVER */
  uint64_t epoch;  /* 0 unless recover */
  uint64_t offset; /* 0 unless recover */
  int history;     /* flags & H3WT_CH_FLAG_HISTORY */
  uint64_t limit;  /* 0 unless history: the most history messages wanted */
} h3wt_ch_subscribe;

/* UNSUBSCRIBE and PRESENCE: req, channel. */
typedef struct h3wt_ch_chanreq {
  uint64_t req;
  const uint8_t *name;
  size_t namelen;
} h3wt_ch_chanreq;
typedef h3wt_ch_chanreq h3wt_ch_unsubscribe;
typedef h3wt_ch_chanreq h3wt_ch_presence;

typedef struct h3wt_ch_publish {
  uint64_t req;
  const uint8_t *name;
  size_t namelen;
  const uint8_t *data;
  size_t datalen;
} h3wt_ch_publish;

typedef struct h3wt_ch_subscribed {
  uint64_t req;
  const uint8_t *name;
  size_t namelen;
  uint64_t sub;
  int recovered; /* 0 or 1; any other value is malformed */
  uint64_t epoch;
  uint64_t offset; /* the channel's last offset */
  uint64_t missed; /* MESSAGE frames that follow: the recovery's, or
                      (recovered 0) the history asked for */
} h3wt_ch_subscribed;

typedef struct h3wt_ch_published {
  uint64_t req;
  uint64_t epoch;
  uint64_t offset;
} h3wt_ch_published;

typedef struct h3wt_ch_unsubscribed {
  uint64_t req; /* 0 when the server ended it */
  uint64_t sub;
  uint64_t code;
  const uint8_t *reason;
  size_t reasonlen;
} h3wt_ch_unsubscribed;

typedef struct h3wt_ch_message {
  uint64_t sub;
  uint64_t offset;
  const uint8_t *data;
  size_t datalen;
} h3wt_ch_message;

/* JOIN and LEAVE: sub, member.  Members are bytes with no rule of their
   own (a client id or a session id in decimal). */
typedef struct h3wt_ch_member_event {
  uint64_t sub;
  const uint8_t *member;
  size_t memberlen;
} h3wt_ch_member_event;
typedef h3wt_ch_member_event h3wt_ch_join;
typedef h3wt_ch_member_event h3wt_ch_leave;

typedef struct h3wt_ch_members {
  uint64_t req;
  uint64_t sub;
  uint64_t count;
  const uint8_t *list; /* the count members, each as bytes */
  size_t listlen;
} h3wt_ch_members;

typedef struct h3wt_ch_error {
  uint64_t req;
  uint64_t code;
  const uint8_t *text;
  size_t textlen;
} h3wt_ch_error;

int h3wt_ch_decode_subscribe(const uint8_t *payload, size_t len,
                             h3wt_ch_subscribe *f);
int h3wt_ch_decode_unsubscribe(const uint8_t *payload, size_t len,
                               h3wt_ch_unsubscribe *f);
int h3wt_ch_decode_presence(const uint8_t *payload, size_t len,
                            h3wt_ch_presence *f);
int h3wt_ch_decode_publish(const uint8_t *payload, size_t len,
                           h3wt_ch_publish *f);
int h3wt_ch_decode_subscribed(const uint8_t *payload, size_t len,
                              h3wt_ch_subscribed *f);
int h3wt_ch_decode_published(const uint8_t *payload, size_t len,
                             h3wt_ch_published *f);
int h3wt_ch_decode_unsubscribed(const uint8_t *payload, size_t len,
                                h3wt_ch_unsubscribed *f);
int h3wt_ch_decode_message(const uint8_t *payload, size_t len,
                           h3wt_ch_message *f);
int h3wt_ch_decode_join(const uint8_t *payload, size_t len, h3wt_ch_join *f);
int h3wt_ch_decode_leave(const uint8_t *payload, size_t len, h3wt_ch_leave *f);
/* Checks every member (count of them, exactly filling the payload). */
int h3wt_ch_decode_members(const uint8_t *payload, size_t len,
                           h3wt_ch_members *f);
int h3wt_ch_decode_error(const uint8_t *payload, size_t len, h3wt_ch_error *f);

/* Walks the members of a decoded MEMBERS frame.  *pos starts at 0.  Returns
   1 with the next member in *member, *memberlen, or 0 after the last. */
int h3wt_ch_members_next(const h3wt_ch_members *f, size_t *pos,
                         const uint8_t **member, size_t *memberlen);

/* ---- encoders
 * ---------------------------------------------------------------- Each writes
 * one whole frame (type, length, payload) at out and returns its size, or 0
 * when it does not fit in cap bytes or a value does not fit a varint (over 2^62
 * - 1); nothing past out + cap is written.  Varints are written in their
 * shortest form.  Names are written as given (h3wt_ch_name_valid checks one),
 * so tests can build refused frames. */

/* Epoch and offset are written only with H3WT_CH_FLAG_RECOVER in flags, a
   limit (0) only with H3WT_CH_FLAG_HISTORY; other bits are written as
   given (so tests can build refused frames). */
size_t h3wt_ch_encode_subscribe(uint8_t *out, size_t cap, uint64_t req,
                                const uint8_t *name, size_t namelen,
                                uint64_t flags, uint64_t epoch,
                                uint64_t offset);
/* The same with the history limit (written only with
   H3WT_CH_FLAG_HISTORY in flags). */
size_t h3wt_ch_encode_subscribe_ex(uint8_t *out, size_t cap, uint64_t req,
                                   const uint8_t *name, size_t namelen,
                                   uint64_t flags, uint64_t epoch,
                                   uint64_t offset, uint64_t limit);
size_t h3wt_ch_encode_unsubscribe(uint8_t *out, size_t cap, uint64_t req,
                                  const uint8_t *name, size_t namelen);
size_t h3wt_ch_encode_presence(uint8_t *out, size_t cap, uint64_t req,
                               const uint8_t *name, size_t namelen);
size_t h3wt_ch_encode_publish(uint8_t *out, size_t cap, uint64_t req,
                              const uint8_t *name, size_t namelen,
                              const uint8_t *data, size_t datalen);
size_t h3wt_ch_encode_subscribed(uint8_t *out, size_t cap, uint64_t req,
                                 const uint8_t *name, size_t namelen,
                                 uint64_t sub, int recovered, uint64_t epoch,
                                 uint64_t offset, uint64_t missed);
size_t h3wt_ch_encode_published(uint8_t *out, size_t cap, uint64_t req,
                                uint64_t epoch, uint64_t offset);
size_t h3wt_ch_encode_unsubscribed(uint8_t *out, size_t cap, uint64_t req,
                                   uint64_t sub, uint64_t code,
                                   const uint8_t *reason, size_t reasonlen);
size_t h3wt_ch_encode_message(uint8_t *out, size_t cap, uint64_t sub,
                              uint64_t offset, const uint8_t *data,
                              size_t datalen);
size_t h3wt_ch_encode_join(uint8_t *out, size_t cap, uint64_t sub,
                           const uint8_t *member, size_t memberlen);
size_t h3wt_ch_encode_leave(uint8_t *out, size_t cap, uint64_t sub,
                            const uint8_t *member, size_t memberlen);
size_t h3wt_ch_encode_error(uint8_t *out, size_t cap, uint64_t req,
                            uint64_t code, const uint8_t *text, size_t textlen);

/* A member for h3wt_ch_encode_members. */
typedef struct h3wt_ch_str {
  const uint8_t *p;
  size_t len;
} h3wt_ch_str;

size_t h3wt_ch_encode_members(uint8_t *out, size_t cap, uint64_t req,
                              uint64_t sub, const h3wt_ch_str *members,
                              size_t count);

/* Header-only variants: everything up to the data (or the member list),
   the length field already counting it.  The frame is the head followed by
   datalen bytes of data; the hub sends one message to many subscribers
   from one buffer this way. */
size_t h3wt_ch_encode_publish_head(uint8_t *out, size_t cap, uint64_t req,
                                   const uint8_t *name, size_t namelen,
                                   size_t datalen);
size_t h3wt_ch_encode_message_head(uint8_t *out, size_t cap, uint64_t sub,
                                   uint64_t offset, size_t datalen);
/* MEMBERS in parts: the head, for count members whose encodings
   (h3wt_ch_encode_member, or h3wt_ch_member_size each) add up to listlen
   bytes, then each member. */
size_t h3wt_ch_encode_members_head(uint8_t *out, size_t cap, uint64_t req,
                                   uint64_t sub, uint64_t count,
                                   size_t listlen);
size_t h3wt_ch_encode_member(uint8_t *out, size_t cap, const uint8_t *member,
                             size_t memberlen);
/* The bytes h3wt_ch_encode_member writes (0 when len is over 2^62 - 1). */
size_t h3wt_ch_member_size(size_t memberlen);

/* ---- datagrams -------------------------------------------------------------
 * "type sub (varint) data": the data runs to the datagram's end. */

/* Writes type and sub (up to H3WT_CH_DGRAM_HEAD_MAX bytes); the data
   follows.  Returns the bytes written, or 0 when they do not fit. */
size_t h3wt_ch_encode_dgram_head(uint8_t *out, size_t cap, uint64_t type,
                                 uint64_t sub);
/* Splits a datagram.  Returns 0 (a known type: *type, *sub, *data and
   *datalen set; data points into d), H3WT_CH_PARSE_UNKNOWN (a type this
   draft does not define: only *type is set; drop it and count it), or
   H3WT_CH_PARSE_BAD (it ends inside the type or sub). */
int h3wt_ch_decode_dgram(const uint8_t *d, size_t len, uint64_t *type,
                         uint64_t *sub, const uint8_t **data, size_t *datalen);

#endif /* H3WT_CHPROTO_H */
