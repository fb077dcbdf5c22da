/*
 * h3wt_wtproto: WebTransport-over-HTTP/3 wire formats, pure functions.
 *
 *  - QUIC variable-length integers (RFC 9000 16)
 *  - capsules on the CONNECT stream (RFC 9297 3.2), parsed incrementally
 *  - the WebTransport <-> HTTP/3 error-code mapping
 *  - the SETTINGS-frame rewrite that adds WebTransport settings to the one
 *    SETTINGS frame nghttp3 writes (it knows nothing of WebTransport, and a
 *    second SETTINGS frame is a connection error: RFC 9114 7.2.4)
 *
 * Every parser here reads peer bytes: each is fuzzed (tests/fuzz/).
 */
#ifndef H3WT_WTPROTO_H
#define H3WT_WTPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- wire constants (draft-ietf-webtrans-http3, RFC 9297, RFC 9220) ---- */

/* Stream signals: the first varint of a WebTransport stream. */
#define H3WT_WT_STREAM_BIDI 0x41 /* WEBTRANSPORT_STREAM frame type */
#define H3WT_WT_STREAM_UNI 0x54  /* WebTransport uni stream type */

/* Capsule types. */
#define H3WT_CAPSULE_DATAGRAM 0x00 /* RFC 9297 */
#define H3WT_CAPSULE_CLOSE_SESSION 0x2843
#define H3WT_CAPSULE_DRAIN_SESSION 0x78ae
/* Session flow control (draft "Flow Control Capsules"): one varint each,
   on the CONNECT stream.  The draft calls the first six "the flow control
   capsules"; the two per-stream ones come from the HTTP/2 draft and are
   prohibited over HTTP/3 ("Endpoints MUST treat receipt of a
   WT_MAX_STREAM_DATA or a WT_STREAM_DATA_BLOCKED capsule as a session
   error"). */
#define H3WT_CAPSULE_MAX_DATA 0x190b4d3dULL
#define H3WT_CAPSULE_MAX_STREAM_DATA 0x190b4d3eULL /* prohibited */
#define H3WT_CAPSULE_MAX_STREAMS_BIDI 0x190b4d3fULL
#define H3WT_CAPSULE_MAX_STREAMS_UNI 0x190b4d40ULL
#define H3WT_CAPSULE_DATA_BLOCKED 0x190b4d41ULL
#define H3WT_CAPSULE_STREAM_DATA_BLOCKED 0x190b4d42ULL /* prohibited */
#define H3WT_CAPSULE_STREAMS_BLOCKED_BIDI 0x190b4d43ULL
#define H3WT_CAPSULE_STREAMS_BLOCKED_UNI 0x190b4d44ULL
/* "This value cannot exceed 2^60, as it is not possible to encode stream
   IDs larger than 2^62-1." */
#define H3WT_MAX_STREAMS_LIMIT (1ULL << 60)

/* WT_CLOSE_SESSION: "The error message MUST be no longer than 1024
   bytes." */
#define H3WT_CLOSE_REASON_MAX 1024

/* SETTINGS identifiers added to nghttp3's frame, with why. */
#define H3WT_SETTINGS_ENABLE_WEBTRANSPORT 0x2b603742ULL /* drafts 02-06:
   Chrome's draft-02 path and Firefox need it */
#define H3WT_SETTINGS_WEBTRANSPORT_MAX_SESSIONS 0xc671706aULL /* draft-07 */
#define H3WT_SETTINGS_WT_MAX_SESSIONS 0x14e9cd29ULL /* drafts 13/14: Safari */
#define H3WT_SETTINGS_WT_ENABLED 0x2c7cf000ULL      /* draft-15+ */
#define H3WT_SETTINGS_H3_DATAGRAM_DRAFT04 0xffd277ULL /* older Chrome */
/* Session flow control's initial limits: flow control is on when both
   endpoints send at least one of them non-zero (draft "Negotiating the
   Use of Flow Control").  Browsers send none. */
#define H3WT_SETTINGS_WT_INITIAL_MAX_DATA 0x2b61ULL
#define H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_UNI 0x2b64ULL
#define H3WT_SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI 0x2b65ULL

/* The HTTP/3 code range that carries WebTransport application codes. */
#define H3WT_WT_CODE_FIRST 0x52e4a40fa8dbULL
#define H3WT_WT_CODE_LAST 0x52e5ac983162ULL

/* ---- varints ----------------------------------------------------------- */

#define H3WT_VARINT_MAX 0x3fffffffffffffffULL

/* Decodes a varint at p (len bytes available).  Returns the bytes it takes
   (1, 2, 4 or 8), or 0 when len is too short to tell. */
size_t h3wt_varint_decode(const uint8_t *p, size_t len, uint64_t *v);
/* Bytes needed to encode v (v <= H3WT_VARINT_MAX). */
size_t h3wt_varint_len(uint64_t v);
/* Writes v at p (room for h3wt_varint_len(v) bytes); returns the end. */
uint8_t *h3wt_varint_encode(uint8_t *p, uint64_t v);

/* ---- capsules ----------------------------------------------------------
 * Fed the CONNECT stream's DATA bytes in any chunking; calls back once per
 * complete capsule of a known type.  Values of known types are buffered up
 * to max_value bytes (a longer one is an error); unknown types are skipped
 * without buffering, as RFC 9297 3.2 asks. */

typedef struct h3wt_capsule_parser {
  int state;          /* 0 type, 1 length, 2 value, 3 skipping */
  uint8_t hdr[8];     /* a varint split across chunks */
  size_t hdrlen;
  uint64_t type;
  uint64_t left;      /* value bytes still to come */
  uint8_t *value;     /* buffer for known types */
  size_t valuelen, valuecap;
  size_t max_value;
} h3wt_capsule_parser;

typedef int (*h3wt_capsule_cb)(uint64_t type, const uint8_t *value,
                               size_t len, void *ud);

void h3wt_capsule_parser_init(h3wt_capsule_parser *cp, size_t max_value);
void h3wt_capsule_parser_free(h3wt_capsule_parser *cp);
/* Returns 0, or -1 for a malformed stream (a known capsule longer than
   max_value), or the callback's non-zero value, or -2 out of memory.
   known(type) says which types are delivered. */
int h3wt_capsule_parse(h3wt_capsule_parser *cp, const uint8_t *data,
                       size_t len, int (*known)(uint64_t type),
                       h3wt_capsule_cb cb, void *ud);
/* At the stream's end: 0 when no capsule was left half-received. */
int h3wt_capsule_parser_at_boundary(const h3wt_capsule_parser *cp);

/* Encodes a WT_CLOSE_SESSION capsule (reason truncated to 1024 bytes at a
   UTF-8 boundary) into out (room for 16 + 1024 bytes); returns its length. */
/* How much of a close reason goes on the wire: at most
   H3WT_CLOSE_REASON_MAX bytes, cut at a UTF-8 character boundary. */
size_t h3wt_close_reason_len(const char *reason, size_t reasonlen);
size_t h3wt_capsule_close_session(uint8_t *out, uint32_t code,
                                  const char *reason, size_t reasonlen);
/* Encodes a capsule with an empty value (WT_DRAIN_SESSION). */
size_t h3wt_capsule_empty(uint8_t *out, uint64_t type);
/* The capsule types WebTransport reads (the rest are skipped): close,
   drain and the flow-control ones (including the two prohibited ones,
   which must be seen to be refused). */
int h3wt_capsule_known(uint64_t type);
/* 1 for the capsules whose value is one varint (the flow-control ones). */
int h3wt_capsule_is_flow_control(uint64_t type);
/* Encodes a capsule whose value is one varint v (flow control); out has
   room for 24 bytes.  Returns its length. */
size_t h3wt_capsule_varint(uint8_t *out, uint64_t type, uint64_t v);
/* Reads such a value: 0 and *v when it is exactly one varint, else -1
   (malformed). */
int h3wt_capsule_varint_value(const uint8_t *value, size_t len, uint64_t *v);

/* ---- stream headers ------------------------------------------------------ */

/* Reads the first bytes of a peer-opened stream.  A WebTransport stream
   starts with a signal (the WEBTRANSPORT_STREAM frame type 0x41 on a bidi
   stream, the stream type 0x54 on a uni stream) and its session ID, two
   varints.  Returns 1 (WebTransport: *session_id and *hdrlen, the bytes of
   both varints, are set), 0 (another first varint: the stream is HTTP/3's,
   a request or a control, QPACK or unknown uni stream), or -1 (too few
   bytes to tell; 16 are always enough). */
int h3wt_stream_header_parse(const uint8_t *p, size_t len, int bidi,
                             uint64_t *session_id, size_t *hdrlen);

/* ---- error codes -------------------------------------------------------- */

uint64_t h3wt_wt_code_to_h3(uint32_t n);
/* Returns 1 and sets *n when h3 carries a WebTransport code, else 0 (a
   reserved GREASE codepoint inside the range is not a code either). */
int h3wt_wt_code_from_h3(uint64_t h3, uint32_t *n);

/* ---- SETTINGS rewrite --------------------------------------------------- */

typedef struct h3wt_setting {
  uint64_t id;
  uint64_t value;
} h3wt_setting;

/* in/inlen: the first bytes nghttp3 wrote on its control stream (the
   stream type, then the SETTINGS frame, maybe more).  Writes into out the
   same bytes with extra[] appended to the SETTINGS frame (settings already
   present are not duplicated).  Returns the output length, 0 when in does
   not yet hold the whole SETTINGS frame, or -1 when it is not a control
   stream starting with SETTINGS or out is too small. */
ssize_t h3wt_settings_rewrite(const uint8_t *in, size_t inlen,
                              const h3wt_setting *extra, size_t nextra,
                              uint8_t *out, size_t outcap);

/* The rows WebTransport adds to the one SETTINGS frame (several draft
   vintages at once; see h3wt_wtproto.c), then the flow-control initial
   limits that are not 0 (all 0: flow control is not offered); at most max
   written. */
size_t h3wt_wt_settings(h3wt_setting *out, size_t max, uint64_t max_data,
                        uint64_t max_streams_bidi, uint64_t max_streams_uni);

/* RFC 9220 and RFC 9297: extended CONNECT and HTTP datagrams. */
#define H3WT_SETTINGS_ENABLE_CONNECT_PROTOCOL 0x08ULL
#define H3WT_SETTINGS_H3_DATAGRAM 0x33ULL

/* What a peer's SETTINGS say about session flow control, and whether it
   takes WebTransport sessions (what a client must have seen, or
   remembered for 0-RTT, before it sends a CONNECT). */
typedef struct h3wt_peer_fc {
  uint64_t max_data, max_streams_bidi, max_streams_uni; /* 0: not sent */
  uint8_t connect_protocol; /* ENABLE_CONNECT_PROTOCOL = 1 */
  uint8_t h3_datagram;      /* H3_DATAGRAM (or draft-04's) = 1 */
  uint8_t webtransport;     /* any vintage's WebTransport setting on */
} h3wt_peer_fc;

/* Reads the peer's control stream from its first byte (the stream type,
   then the SETTINGS frame RFC 9114 6.2.1 puts first).  Returns the bytes
   up to the end of the SETTINGS frame (>0, *fc filled), 0 when more bytes
   are needed, or -1 when this is not a control stream starting with a
   SETTINGS frame that parses (nghttp3 judges the stream itself; this
   reader only gives up). */
ssize_t h3wt_peer_settings_parse(const uint8_t *in, size_t inlen,
                                 h3wt_peer_fc *fc);

/* ---- subprotocol negotiation ------------------------------------------
 * WT-Available-Protocols is a structured-field List of Strings (RFC 8941
 * 3.1, 3.3.3), e.g. `"chat-v2", "chat"`; WT-Protocol is one String.
 * Parameters after a member (`;q=1`) are allowed and ignored. */

#define H3WT_MAX_PROTOCOLS 32 /* offered protocols kept; more are ignored */

/* Calls cb(string, len, ud) for each member (the unescaped string, not
   NUL-terminated, valid for the call).  Returns 0, -1 when the list is
   malformed (a member that is not a String, a bad escape, a character
   outside 0x20-0x7e, a dangling comma) or cb's non-zero return. */
int h3wt_sf_string_list_parse(const char *v, size_t len,
                              int (*cb)(const char *s, size_t len, void *ud),
                              void *ud);
/* Writes str as a String ("..." with \" and \\ escaped) and a NUL into
   buf.  Returns the length without the NUL, or 0 when it does not fit or
   str has a character a String cannot carry. */
size_t h3wt_sf_string_encode(char *buf, size_t buflen, const char *str);

#endif /* H3WT_WTPROTO_H */
