/*
 * h3wt: an HTTP/3 and WebTransport server framework on ngtcp2, nghttp3,
 * wolfSSL and libuv.
 *
 * This is the one header an embedding program reads.  The rules, in short:
 *
 *  - The host owns the uv_loop_t and runs it.  h3wt never calls uv_run() and
 *    starts no threads; every callback runs on the host's loop thread.
 *  - Functions return 0 or a negative H3WT_ERR_* code (h3wt_strerror() names
 *    it).  Out of memory is reported as H3WT_ERR_NOMEM, never an abort.
 *  - When a function that takes a callback fails, the callback is never
 *    called (the libuv rule).
 *  - Bytes handed to a callback are borrowed for the duration of the callback
 *    only; copy what you keep.
 *  - Any h3wt function may be called from inside any h3wt callback.  What
 *    frees a connection or writes packets (closing the server, a
 *    connection or the client) is recorded and done once the library's
 *    outermost callback returns, never under ngtcp2's or nghttp3's feet;
 *    objects are freed only after the callback that announced their end
 *    returns.  Debug builds assert these invariants.
 *  - Threads: every h3wt function must be called on the loop thread of
 *    the object it takes, except h3wt_server_post(), which any thread may
 *    call to hand work to a server's loop (its function runs there and may
 *    call anything), and the server group calls (h3wt_server_group_new
 *    and _del), whose object is shared by servers on many threads.  To
 *    use every core, run one server per thread, each on its own loop, all
 *    in one h3wt_server_group; one worker hands work to another with
 *    h3wt_server_post() on the other's server.
 *  - Settings structs are versioned: initialise them with the matching
 *    *_default() function, then change the fields you need.  Fields are only
 *    ever appended.
 */
#ifndef H3WT_H
#define H3WT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h> /* strlen, for H3WT_HEADER */
#include <sys/socket.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define H3WT_VERSION_MAJOR 0
#define H3WT_VERSION_MINOR 2
#define H3WT_VERSION_PATCH 0
#define H3WT_VERSION "0.2.0"
/* 0xMMmmpp: compare with >= in #if to guard newer calls. */
#define H3WT_VERSION_NUM                                                       \
  ((H3WT_VERSION_MAJOR << 16) | (H3WT_VERSION_MINOR << 8) | H3WT_VERSION_PATCH)

/* The version of the library linked at run time ("0.2.0"); *num (if not
   NULL) gets its H3WT_VERSION_NUM.  Compare with the macros to detect a
   header/library mismatch. */
const char *h3wt_version(int *num);

/* ------------------------------------------------------------------------ */
/* Errors.  Banded by layer, like nghttp3: API/state -1xx, I/O -2xx,
   QUIC/TLS -3xx, HTTP/3 -4xx, WebTransport -5xx, fatal <= -900. */

#define H3WT_ERR_INVALID_ARGUMENT -101 /* a parameter is out of range */
#define H3WT_ERR_INVALID_STATE -102    /* not allowed in the current state */
#define H3WT_ERR_WOULDBLOCK -103 /* a queue is full; wait for on_writable */
#define H3WT_ERR_NOT_FOUND -104  /* no such object (route, stream, file) */
#define H3WT_ERR_TOO_LARGE -105  /* exceeds a configured limit */
#define H3WT_ERR_IO -201         /* socket or file I/O failed */
#define H3WT_ERR_ADDRESS -202    /* cannot resolve or bind the address */
#define H3WT_ERR_TLS -301        /* TLS setup failed (certificate, key) */
#define H3WT_ERR_QUIC -302       /* a QUIC-level failure */
#define H3WT_ERR_HANDSHAKE -303  /* the handshake failed or timed out */
#define H3WT_ERR_IDLE_TIMEOUT -304 /* the connection went idle */
#define H3WT_ERR_CLOSED -305     /* the connection or stream is closed */
#define H3WT_ERR_H3 -401         /* an HTTP/3 protocol failure */
/* -501..-503 are the H3WT_SESSION_* reasons of on_session_close. */
#define H3WT_ERR_SESSION_CLOSING -504 /* the session is closing (either side
                                         closed it); on_session_close follows:
                                         not a caller bug */
#define H3WT_ERR_DGRAM_DROPPED -505 /* the datagram queue is full: this
                                       datagram was dropped (counted) */
#define H3WT_ERR_NOMEM -901      /* out of memory */

/* Returns a static description of any code the library returns (the
   H3WT_ERR_* and H3WT_SESSION_* values); "unknown error" otherwise. */
const char *h3wt_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Logging.  The library never prints: it hands formatted lines to the log
   callback.  Messages above the configured level are not even formatted. */

typedef enum h3wt_log_level {
  H3WT_LOG_ERROR = 0,
  H3WT_LOG_WARN = 1,
  H3WT_LOG_INFO = 2,
  H3WT_LOG_DEBUG = 3,
  H3WT_LOG_TRACE = 4
} h3wt_log_level;

/* component is one of "udp", "quic", "h3", "router", "server", "client",
   "static".  msg has no trailing newline. */
typedef void (*h3wt_log_cb)(h3wt_log_level level, const char *component,
                            const char *msg, void *user_data);

/* Parses "error", "warn", "info", "debug", "trace".  Returns 0 or
   H3WT_ERR_INVALID_ARGUMENT. */
int h3wt_log_level_parse(const char *name, h3wt_log_level *out);

/* A ready log callback that writes "LEVEL component: msg" lines to stderr. */
void h3wt_log_stderr(h3wt_log_level level, const char *component,
                     const char *msg, void *user_data);

/* ------------------------------------------------------------------------ */
/* Headers. */

typedef struct h3wt_header {
  const char *name; /* lower-case */
  size_t namelen;
  const char *value;
  size_t valuelen;
} h3wt_header;

/* Builds an h3wt_header from a string literal name and a NUL-terminated
   value (this header includes <string.h> for it). */
#define H3WT_HEADER(N, V) {(N), sizeof(N) - 1, (V), strlen(V)}

/* ------------------------------------------------------------------------ */
/* The server. */

typedef struct h3wt_server h3wt_server;
typedef struct h3wt_request h3wt_request;

#define H3WT_SERVER_SETTINGS_V1 1
#define H3WT_SERVER_SETTINGS_V2 2 /* adds max_session_queue */
#define H3WT_SERVER_SETTINGS_V3 3 /* adds keep_alive_ms, liveness_timeout_ms,
                                     datagram_max_age_ms, datagram_drop_oldest,
                                     log_full_paths */
#define H3WT_SERVER_SETTINGS_V4 4 /* adds secret, secret_len,
                                     orphan_stream_timeout_ms,
                                     max_unvalidated_handshakes */
#define H3WT_SERVER_SETTINGS_V5 5 /* adds group, worker */
#define H3WT_SERVER_SETTINGS_V6 6 /* adds wt_session_max_data */
#define H3WT_SERVER_SETTINGS_V7 7 /* adds early_data, wt_0rtt */
#define H3WT_SERVER_SETTINGS_VERSION H3WT_SERVER_SETTINGS_V7

/* A server group: the servers ("workers") of one process that serve one
   address together, each on its own thread and loop.  Every worker has
   its own UDP socket on the same host:port (SO_REUSEPORT), bound by the
   group in worker order.  Each worker puts its index in every connection
   ID it issues (the first 4 bytes of the ID, read as a big-endian number,
   modulo the number of workers), and a classic BPF program attached to
   the sockets (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5 and later) has the
   kernel deliver each packet to the worker its destination connection ID
   names, so a client whose address changes stays with its worker.  A
   packet that still lands on another worker (the program could not be
   attached: a warning is logged) is copied to its owner's inbox and
   handled there (counted in packets_handed_off; a full inbox drops it and
   counts packets_misrouted_dropped); a worker whose owner has stopped
   handles the packet itself.
   What the workers share: the static secret (the settings' secret if the
   first server to be created has one, else a random one; Retry and
   stateless reset tokens verify on every worker), max_connections and
   max_unvalidated_handshakes (counted over all workers) and the
   per-address handshake rate.  Session ids (h3wt_session_id()) are unique
   across the group: worker w of n issues only ids with id % n == w.
   Every worker must listen (an unread socket would swallow its share of
   the packets), all with the same host and port (the first listen of
   the group binds; port 0 gives every worker the same ephemeral port).
   Each server is used from its own loop thread only, as any server. */
typedef struct h3wt_server_group h3wt_server_group;

/* Makes a group for workers servers (1 to 1024).  Any thread.  Returns 0,
   H3WT_ERR_INVALID_ARGUMENT or H3WT_ERR_NOMEM. */
int h3wt_server_group_new(h3wt_server_group **pgroup, uint32_t workers);
/* Frees the group: any thread, after every server of the group was
   deleted (h3wt_server_del). */
void h3wt_server_group_del(h3wt_server_group *group);

typedef struct h3wt_server_settings {
  int version; /* H3WT_SERVER_SETTINGS_VERSION */
  /* Listen address (numeric IPv4 or IPv6).  Default "::", which also
     accepts IPv4 where the system allows dual-stack sockets (falling back
     to "0.0.0.0" where it does not). */
  const char *host;
  /* UDP port; 0 picks an ephemeral one (see h3wt_server_port()).  Default
     4433. */
  uint16_t port;
  /* PEM certificate chain and private key.  Required. */
  const char *cert_file;
  const char *key_file;
  /* Directory for one qlog file per connection, or NULL. */
  const char *qlog_dir;
  /* File TLS secrets are appended to (SSLKEYLOGFILE format), or NULL. */
  const char *keylog_file;
  /* The "server" response header. Default "h3wt/" H3WT_VERSION. */
  const char *server_name;
  h3wt_log_cb log_cb; /* NULL: no logging */
  void *log_user_data;
  h3wt_log_level log_level; /* default H3WT_LOG_INFO */
  /* Limits on what a peer controls. */
  uint64_t max_request_body;  /* bytes; default 1 MiB; over it: 413 */
  uint64_t max_header_bytes;  /* request field section; default 16 KiB;
                                 over it: 431 */
  uint32_t max_connections;   /* default 10000 */
  uint32_t max_streams_bidi;  /* concurrent requests per connection; 100 */
  uint64_t idle_timeout_ms;   /* default 30000 */
  size_t max_response_queue;  /* unacknowledged response bytes a handler may
                                 queue per request before writes return
                                 H3WT_ERR_WOULDBLOCK; default 256 KiB */
  /* WebTransport limits. */
  uint32_t max_sessions_per_conn;  /* default 16; over it: 429 */
  uint32_t max_streams_per_session; /* peer-opened, concurrent; default 256 */
  size_t max_stream_queue;   /* unacknowledged bytes per WT stream before
                                writes return WOULDBLOCK; default 256 KiB */
  size_t max_datagram_queue; /* queued datagrams per connection; excess are
                                dropped and counted; default 256 */
  /* New connections per second from one source address beyond which the
     server answers with a Retry, so a client must prove it owns its
     address (one more round trip) before the server keeps any state for
     it.  0: never.  Default 100. */
  uint32_t max_handshakes_per_addr;
  /* V2.  Unacknowledged bytes all the streams of one WebTransport session
     may hold together.  A write to any stream of a session that already
     holds this many is refused with H3WT_ERR_WOULDBLOCK (nothing queued;
     as for max_stream_queue, a write accepted below the limit may carry the
     total past it by its own length), and that stream's
     on_stream_writable follows once the session is back below half of it
     (and the stream below half of max_stream_queue).  Bounds what one
     session can pin in memory however many streams it opens.  0: no
     session budget (only max_stream_queue).  Default 1 MiB. */
  size_t max_session_queue;
  /* V3.  Liveness.  keep_alive_ms: when a connection with a WebTransport
     session has received nothing for this long, the server sends a PING so
     a live peer answers (0: never; default 5000).  liveness_timeout_ms: a
     connection with a session that has received nothing for this long is
     closed (H3_NO_ERROR, reason "liveness timeout"): a dead client (killed
     process, pulled cable) is noticed within this, not the idle timeout
     (0: only the idle timeout; default 15000).  h3wt_session_set_liveness()
     changes it per session. */
  uint64_t keep_alive_ms;
  uint64_t liveness_timeout_ms;
  /* V3.  Datagram policy of new sessions (h3wt_session_set_datagram_policy
     changes it per session).  datagram_max_age_ms: a queued datagram older
     than this when its turn comes is discarded and counted (0: no age
     limit; default 0).  datagram_drop_oldest: when the queue is full, drop
     the session's oldest queued datagram to make room for the new one
     (fresh state beats stale state) instead of refusing the new one
     (default 0: refuse the new one with H3WT_ERR_DGRAM_DROPPED). */
  uint64_t datagram_max_age_ms;
  int datagram_drop_oldest;
  /* V3.  Log request and CONNECT paths with their query values (which may
     carry tokens).  Default 0: query values are logged as "...". */
  int log_full_paths;
  /* V4.  The server's static secret, from which its stateless reset tokens
     and its Retry tokens are derived (SHA-256 of these bytes; at least 16
     of them).  With the same secret, a restarted server (or another
     process behind the same address) still recognises the connection IDs
     it issued: it answers their packets with stateless resets the peers
     accept (they stop at once instead of at their idle timeout) and takes
     its Retry tokens.  Keep it secret: it lets anyone who has it reset
     the server's connections.  NULL (default): a random one per server. */
  const uint8_t *secret;
  size_t secret_len;
  /* V4.  A WebTransport stream may arrive before its session is ready
     (the draft lets a client send right after its CONNECT); it is held
     (at most 16 streams of 16 KiB per connection) for at most this long,
     then refused with WT_BUFFERED_STREAM_REJECTED (counted in
     wt_streams_rejected_buffered): a session that never comes cannot pin
     them.  Default 1000 (0: only the count and size bounds). */
  uint64_t orphan_stream_timeout_ms;
  /* V4.  Handshakes in progress from addresses no Retry has proven beyond
     which the server answers every new connection with a Retry, whatever
     its address: a flood of Initials from spoofed addresses (each under
     max_handshakes_per_addr) then cannot hold every connection slot, and
     a real client pays one round trip more.  Default 1000 (0: never). */
  uint32_t max_unvalidated_handshakes;
  /* V5.  The group this server is a worker of (see h3wt_server_group;
     not owned, must outlive the server), and its index in it, below the
     group's number of workers; each index is used by one server.  NULL
     (default): a server on its own. */
  h3wt_server_group *group;
  uint32_t worker;
  /* V6.  Session flow control (the draft's WT_MAX_DATA / WT_MAX_STREAMS):
     the bytes a client may send on all the streams of one session before
     the server grants more (it grants as bytes arrive, keeping the limit
     this far ahead), announced in SETTINGS with max_streams_per_session
     as the stream limits.  It is on for a connection only when the
     client announces limits too (no browser does yet: for them nothing
     changes); then going over a limit resets the session with
     WT_FLOW_CONTROL_ERROR, and the server keeps to the client's limits
     (a stream waits for credit, h3wt_session_open_stream() returns
     H3WT_ERR_WOULDBLOCK at the stream limit).  Default 16 MiB; 0: flow
     control is not offered. */
  uint64_t wt_session_max_data;
  /* V7.  Session resumption is always on: the server issues TLS session
     tickets sealed with a key derived from the static secret (see
     secret: a group's workers, and a restart with the same secret, take
     each other's tickets) and from the limits a resumed client may rely
     on in 0-RTT (transport parameters and SETTINGS: the stream, data and
     datagram limits, max_header_bytes, wt_session_max_data,
     max_streams_per_session).  Changing any of those makes old tickets
     useless (a full handshake), so 0-RTT never runs on limits the server
     no longer grants (RFC 9000 7.4.1, RFC 9114 7.2.4.2).
     early_data: accept 0-RTT from clients that resume (default 1; 0:
     tickets still resume the handshake, early data is rejected and the
     client sends it again after the handshake).  0-RTT data can be
     replayed by an attacker: requests other than GET, HEAD and OPTIONS
     that arrive in 0-RTT are answered 425 (Too Early, RFC 8470), which
     makes the client send them again after the handshake. */
  int early_data;
  /* V7.  A WebTransport CONNECT that arrives in 0-RTT: 1 takes it as any
     other (the session may then be replayed); 0 (default) answers 425,
     the draft's position ("Clients cannot initiate WebTransport sessions
     in 0-RTT packets, as the CONNECT method is not considered safe"),
     and the client sends it again after the handshake. */
  int wt_0rtt;
} h3wt_server_settings;

/* Fills settings with the defaults. */
void h3wt_server_settings_default(h3wt_server_settings *settings);

/* Creates a server on the host's loop.  It does not listen yet.  Loads the
   certificate and key; returns 0, H3WT_ERR_TLS (the log says why),
   H3WT_ERR_INVALID_ARGUMENT or H3WT_ERR_NOMEM. */
int h3wt_server_new(h3wt_server **pserver, uv_loop_t *loop,
                    const h3wt_server_settings *settings);

/* Binds the UDP socket and starts serving.  Returns 0, H3WT_ERR_ADDRESS or
   H3WT_ERR_IO. */
int h3wt_server_listen(h3wt_server *server);

/* The bound UDP port (useful after listening on port 0), or 0. */
uint16_t h3wt_server_port(const h3wt_server *server);

typedef void (*h3wt_server_close_cb)(h3wt_server *server, void *user_data);

/* Stops serving: every connection gets GOAWAY and a CONNECTION_CLOSE with
   H3_NO_ERROR, handlers see on_close for requests in flight (and sessions
   on_session_close), and the UDP handle is closed.  cb (optional) runs
   once every libuv handle is closed; then h3wt_server_del() may be called.
   From inside a callback the close happens once the library's outermost
   callback returns (later callbacks of that pass still see a working
   server).  A second call is ignored. */
void h3wt_server_close(h3wt_server *server, h3wt_server_close_cb cb,
                       void *user_data);

/* Stops serving gracefully: no new connections; every connection gets
   GOAWAY (requests already received complete, later ones are refused) and
   every WebTransport session WT_DRAIN_SESSION.  A connection closes once
   nothing is in flight on it; when none is left, or after timeout_ms, the
   server closes as h3wt_server_close() does, first closing the sessions
   still open with code and reason (e.g. "restarting, reconnect in 30 s";
   NULL: "server shutting down").  cb as for h3wt_server_close(); calling
   that during the drain cuts it short.  From inside a callback, the drain
   starts when the library's outermost callback returns. */
void h3wt_server_shutdown(h3wt_server *server, uint64_t timeout_ms,
                          uint32_t code, const char *reason,
                          h3wt_server_close_cb cb, void *user_data);

/* The one h3wt call that is safe from any thread: runs fn(arg) on the
   server's loop thread soon after, where fn may call anything in h3wt
   (find a session by its id and send to it, say).  Between the workers
   of a server group this is how one worker hands work to another: it
   posts to the other's server (and gets an answer by posting back to its
   own).  Work runs in the order posted.  Valid from h3wt_server_listen()
   returning 0 until h3wt_server_del(); work posted before
   h3wt_server_close() (or the end of a shutdown) still runs, later posts
   are refused.  Returns 0,
   H3WT_ERR_CLOSED (closing: fn will not run), H3WT_ERR_INVALID_STATE (not
   listening yet) or H3WT_ERR_NOMEM. */
int h3wt_server_post(h3wt_server *server, void (*fn)(void *arg), void *arg);

/* Frees the server.  Call after the close callback (or before listening). */
void h3wt_server_del(h3wt_server *server);

/* Counters of what the server did since h3wt_server_new().  Every counter
   only grows, except the *_current ones.  They are plain increments on the
   loop thread (no locks, no allocation): read them from that thread.
   Fields are only ever appended; a new version macro names each addition. */
#define H3WT_SERVER_STATS_V1 1
#define H3WT_SERVER_STATS_V2 2 /* adds datagrams_dropped_oldest,
                                  datagrams_dropped_expired,
                                  liveness_closes */
#define H3WT_SERVER_STATS_V3 3 /* adds limit_max_unvalidated_handshakes */
#define H3WT_SERVER_STATS_V4 4 /* adds packets_handed_off,
                                  packets_misrouted_dropped */
#define H3WT_SERVER_STATS_V5 5 /* adds the wt_fc_* counters */
#define H3WT_SERVER_STATS_V6 6 /* adds the udp_*_ecn_* counters and the
                                  resumption and 0-RTT counters */
#define H3WT_SERVER_STATS_VERSION H3WT_SERVER_STATS_V6

typedef struct h3wt_server_stats {
  int version; /* set by the caller: H3WT_SERVER_STATS_VERSION */
  /* QUIC connections. */
  uint64_t connections_current;
  uint64_t connections_total;  /* state created for a new connection */
  uint64_t handshake_failures; /* ended (error, timeout) before the TLS
                                  handshake completed */
  /* HTTP/3 requests: each is a peer-opened bidirectional stream. */
  uint64_t requests_total; /* header sections received, CONNECTs included */
  uint64_t responses_2xx, responses_3xx, responses_4xx, responses_5xx;
  /* WebTransport sessions. */
  uint64_t sessions_current;
  uint64_t sessions_total;          /* accepted */
  uint64_t sessions_rejected;       /* every refused CONNECT, as below */
  uint64_t sessions_rejected_404;   /* no WebTransport route for the path */
  uint64_t sessions_rejected_403;   /* the handler said 403 (origin) */
  uint64_t sessions_rejected_429;   /* over max_sessions_per_conn */
  uint64_t sessions_rejected_other; /* any other status */
  /* WebTransport streams opened, by the peer and by the server. */
  uint64_t wt_streams_bidi_peer, wt_streams_uni_peer;
  uint64_t wt_streams_bidi_local, wt_streams_uni_local;
  uint64_t wt_streams_rejected_buffered; /* reset with
                                            WT_BUFFERED_STREAM_REJECTED */
  /* WebTransport datagrams (payloads, per DATAGRAM frame). */
  uint64_t datagrams_received;
  uint64_t datagrams_received_dropped; /* malformed, or for no session */
  uint64_t datagrams_sent;
  uint64_t datagrams_dropped_queue_full; /* = limit_max_datagram_queue */
  uint64_t datagrams_dropped_too_large;  /* over the path's datagram size */
  /* UDP payload bytes and datagrams on the socket. */
  uint64_t udp_bytes_received, udp_datagrams_received;
  uint64_t udp_bytes_sent, udp_datagrams_sent;
  uint64_t udp_send_dropped; /* socket buffer full: left to QUIC's
                                retransmission */
  /* What each limit of h3wt_server_settings refused. */
  uint64_t limit_max_connections;       /* Initial packets dropped */
  uint64_t limit_max_handshakes_per_addr; /* Retry packets sent */
  uint64_t limit_max_request_body;      /* 413 answers */
  uint64_t limit_max_header_bytes;      /* 431 answers */
  uint64_t limit_max_response_queue;    /* request writes: WOULDBLOCK */
  uint64_t limit_max_sessions_per_conn; /* 429 answers */
  uint64_t limit_max_streams_per_session; /* peer streams reset */
  uint64_t limit_max_stream_queue;      /* stream writes: WOULDBLOCK */
  uint64_t limit_max_session_queue;     /* stream writes: WOULDBLOCK */
  uint64_t limit_max_datagram_queue;    /* datagrams dropped */
  /* V2. */
  uint64_t datagrams_dropped_oldest;  /* made room under drop-oldest (also
                                         in limit_max_datagram_queue) */
  uint64_t datagrams_dropped_expired; /* older than their max age */
  uint64_t liveness_closes; /* connections closed by liveness_timeout_ms */
  /* V3. */
  uint64_t limit_max_unvalidated_handshakes; /* Retry packets sent to any
                                                address (also counted in
                                                limit_max_handshakes_per_addr) */
  /* V4.  A server of a group: packets this worker received for another
     worker's connection IDs and copied to that worker's inbox, and those
     it could not (the inbox full or closed, or the packet larger than an
     inbox slot). */
  uint64_t packets_handed_off;
  uint64_t packets_misrouted_dropped;
  /* V5.  Session flow control (sessions where both sides announced it). */
  uint64_t wt_fc_capsules_sent;     /* WT_MAX_DATA, WT_MAX_STREAMS,
                                       WT_DATA_BLOCKED, WT_STREAMS_BLOCKED */
  uint64_t wt_fc_capsules_received; /* the same, from clients */
  uint64_t wt_fc_errors;            /* sessions reset with
                                       WT_FLOW_CONTROL_ERROR */
  uint64_t wt_fc_data_blocked;      /* times a stream waited for a
                                       client's WT_MAX_DATA */
  uint64_t wt_fc_streams_blocked;   /* opens refused (WOULDBLOCK) at a
                                       client's WT_MAX_STREAMS */
  /* V6.  ECN (RFC 9000 13.4): UDP datagrams received per codepoint of
     their IP header (all 0 where the socket cannot read it), and sent
     marked ECT (QUIC marks once the path has shown it passes the marks
     through). */
  uint64_t udp_rx_ecn_ect0, udp_rx_ecn_ect1, udp_rx_ecn_ce;
  uint64_t udp_tx_ecn_ect;
  /* V6 too.  Resumption and 0-RTT. */
  uint64_t handshakes_resumed;  /* completed handshakes that resumed a
                                   session from a ticket */
  uint64_t early_data_accepted; /* handshakes that took the client's
                                   0-RTT data */
  uint64_t early_data_rejected; /* handshakes that refused it (a ticket
                                   not ours; with early_data off wolfSSL
                                   does not tell, and it is not counted) */
  uint64_t requests_0rtt;       /* requests (CONNECTs too) received in
                                   0-RTT */
  uint64_t requests_too_early;  /* of those, answered 425 (see early_data
                                   and wt_0rtt) */
} h3wt_server_stats;

/* Copies the counters into *stats, whose version field the caller sets:
   only the fields of that version are written (a caller built against an
   older header passes a shorter struct).  Returns 0 or
   H3WT_ERR_INVALID_ARGUMENT (unknown version). */
int h3wt_server_get_stats(const h3wt_server *server,
                          h3wt_server_stats *stats);

/* A request handler: callbacks for one route.  route_data is what was
   passed to h3wt_server_route().  Callbacks are only ever appended; the
   registration macro passes the layout the caller was compiled with
   (H3WT_REQUEST_HANDLER_VERSION) and the library copies that much. */
#define H3WT_REQUEST_HANDLER_V1 1
#define H3WT_REQUEST_HANDLER_VERSION H3WT_REQUEST_HANDLER_V1
typedef struct h3wt_request_handler {
  /* Required.  The request headers are complete.  The handler may respond
     now, or later (after on_end, or asynchronously). */
  void (*on_request)(h3wt_request *req, void *route_data);
  /* Optional.  A piece of the request body (borrowed).  Without it the body
     is discarded.  The server has already checked max_request_body. */
  void (*on_body)(h3wt_request *req, const uint8_t *data, size_t len,
                  void *route_data);
  /* Optional.  The request body is complete. */
  void (*on_end)(h3wt_request *req, void *route_data);
  /* Optional.  After h3wt_request_write() returned H3WT_ERR_WOULDBLOCK:
     the response queue has drained below half its limit. */
  void (*on_writable)(h3wt_request *req, void *route_data);
  /* Optional.  The request is finished (response fully acknowledged) or
     aborted (app_error_code is the HTTP/3 error code, 0 on success).  req
     is freed when this returns. */
  void (*on_close)(h3wt_request *req, uint64_t app_error_code,
                   void *route_data);
} h3wt_request_handler;

/* Routes requests whose :path (without the query) equals path, or starts
   with it when path ends in '*', to handler.  method is an exact method
   ("GET") or NULL for any; a path that matches with another method gets 405
   with an allow header.  Exact routes win over prefix routes (a path that
   has an exact route is never served by a prefix route: other methods get
   405), longer prefixes over shorter.  The handler is copied.  Unmatched
   paths get 404.  Returns 0, H3WT_ERR_INVALID_ARGUMENT (also for an
   unknown handler version) or H3WT_ERR_NOMEM. */
int h3wt_server_route_versioned(h3wt_server *server, const char *method,
                                const char *path, int handler_version,
                                const h3wt_request_handler *handler,
                                void *route_data);
#define h3wt_server_route(SERVER, METHOD, PATH, HANDLER, ROUTE_DATA)           \
  h3wt_server_route_versioned((SERVER), (METHOD), (PATH),                      \
                              H3WT_REQUEST_HANDLER_VERSION, (HANDLER),         \
                              (ROUTE_DATA))

/* Serves the files below dir for GET and HEAD requests under prefix (which
   must end in '/'): "/x/a.css" with prefix "/x/" is dir/a.css.  Files up
   to 64 KiB are answered from a cache the server's mounts share (at most
   8 MiB, least recently used out), checked against the disk at most every
   100 ms: a change is served within that; larger files are read
   asynchronously and streamed in chunks.  Paths that try to leave dir get
   404, malformed ones 400.  Returns 0 or an error. */
int h3wt_server_static(h3wt_server *server, const char *prefix,
                       const char *dir);

/* Request accessors.  Strings are NUL-terminated and live as long as req. */
const char *h3wt_request_method(const h3wt_request *req);
const char *h3wt_request_path(const h3wt_request *req); /* with query */
const char *h3wt_request_authority(const h3wt_request *req);
const char *h3wt_request_scheme(const h3wt_request *req);
/* The first header with this lower-case name, or NULL. */
const char *h3wt_request_header(const h3wt_request *req, const char *name);
/* All request headers (pseudo-headers excluded). */
size_t h3wt_request_headers(const h3wt_request *req,
                            const h3wt_header **headers);
/* content-length, or -1 when absent. */
int64_t h3wt_request_content_length(const h3wt_request *req);
const struct sockaddr *h3wt_request_peer(const h3wt_request *req);
int64_t h3wt_request_stream_id(const h3wt_request *req);
void h3wt_request_set_data(h3wt_request *req, void *data);
void *h3wt_request_get_data(const h3wt_request *req);
h3wt_server *h3wt_request_server(const h3wt_request *req);

/* Sends a complete response: status, headers (the server adds "server"
   and, unless given, "content-length"), and body (copied).  Returns 0,
   H3WT_ERR_INVALID_STATE (already responded), H3WT_ERR_CLOSED or
   H3WT_ERR_NOMEM. */
int h3wt_request_respond(h3wt_request *req, int status,
                         const h3wt_header *headers, size_t nheaders,
                         const void *body, size_t bodylen);

/* Starts a streamed response: the headers now, the body through
   h3wt_request_write*() and h3wt_request_end(). */
int h3wt_request_respond_start(h3wt_request *req, int status,
                               const h3wt_header *headers, size_t nheaders);

/* Queues body bytes (copied).  Returns 0, or H3WT_ERR_WOULDBLOCK when the
   queue already holds max_response_queue bytes (nothing was queued: retry
   from on_writable), H3WT_ERR_INVALID_STATE or H3WT_ERR_CLOSED. */
int h3wt_request_write(h3wt_request *req, const void *data, size_t len);

/* Like h3wt_request_write() but takes ownership of data without copying:
   free_cb(data, user_data) runs once the peer acknowledged it, or the
   request ended.  On error, ownership stays with the caller. */
int h3wt_request_write_owned(h3wt_request *req, void *data, size_t len,
                             void (*free_cb)(void *data, void *user_data),
                             void *user_data);

/* Ends the response body (FIN after the queued bytes). */
int h3wt_request_end(h3wt_request *req);

/* Stops receiving the request body: asks the peer with STOP_SENDING
   (H3_NO_ERROR, RFC 9114 section 4.1.1) and drops whatever still arrives.
   Use it when responding before the body is complete. */
void h3wt_request_stop_reading(h3wt_request *req);

/* Aborts the request: resets the stream with the HTTP/3 error code. */
void h3wt_request_reset(h3wt_request *req, uint64_t h3_error_code);

/* The standard reason phrase of an HTTP status, or "". */
const char *h3wt_status_text(int status);

/* ------------------------------------------------------------------------ */
/* The client: one QUIC connection that carries HTTP/3 requests. */

typedef struct h3wt_client h3wt_client;
typedef struct h3wt_client_request h3wt_client_request;

#define H3WT_CLIENT_SETTINGS_V1 1
#define H3WT_CLIENT_SETTINGS_V2 2 /* adds the WebTransport queue limits */
#define H3WT_CLIENT_SETTINGS_V3 3 /* adds wt_session_max_data */
#define H3WT_CLIENT_SETTINGS_V4 4 /* adds session, session_len, early_data,
                                     early_connect */
#define H3WT_CLIENT_SETTINGS_VERSION H3WT_CLIENT_SETTINGS_V4

typedef struct h3wt_client_settings {
  int version;         /* H3WT_CLIENT_SETTINGS_VERSION */
  const char *host;    /* name or address to connect to (required) */
  uint16_t port;       /* default 443 */
  const char *sni;     /* server name; default host */
  const char *ca_file; /* PEM CAs; NULL: system defaults */
  int insecure;        /* skip certificate verification */
  const char *keylog_file;
  const char *qlog_dir;
  h3wt_log_cb log_cb;
  void *log_user_data;
  h3wt_log_level log_level;  /* default H3WT_LOG_WARN */
  uint64_t handshake_timeout_ms; /* default 10000 */
  uint64_t idle_timeout_ms;      /* default 30000 */
  /* V2.  WebTransport write limits, as the server's of the same names:
     per stream (default 256 KiB) and per session (default 1 MiB; 0: no
     session budget). */
  size_t max_stream_queue;
  size_t max_session_queue;
  /* V3.  Session flow control, as the server's setting of the same name
     (the stream limits announced are 256 of each kind).  Default 16 MiB;
     0: not offered, so it stays off whatever the server says. */
  uint64_t wt_session_max_data;
  /* V4.  Resumption: a session saved from an earlier connection to the
     same server (h3wt_client_session_save(); read during
     h3wt_client_new(), not kept).  One that cannot be used (damaged, cut,
     for another server name, refused by the server) is logged as a
     warning and the handshake is a full one.  NULL: none. */
  const uint8_t *session;
  size_t session_len;
  /* V4.  With a session whose ticket allows it, send requests in 0-RTT,
     before the handshake completes: GET and HEAD without a body go
     early, others wait for the handshake.  If the server rejects the
     early data they are sent again after the handshake, as is a request
     it answers with 425 (Too Early).  Default 1. */
  int early_data;
  /* V4.  Also send WebTransport CONNECTs in 0-RTT, when the saved session
     remembers the server's SETTINGS enabling WebTransport (extended
     CONNECT, HTTP datagrams, WebTransport).  The draft says clients do
     not (CONNECT is not a safe method); a server may still take it
     (h3wt's wt_0rtt) or answer 425, after which the CONNECT is sent
     again once the handshake is done.  Default 0. */
  int early_connect;
} h3wt_client_settings;

void h3wt_client_settings_default(h3wt_client_settings *settings);

typedef struct h3wt_client_callbacks {
  /* Optional.  The handshake completed and requests may flow (requests
     made before are queued and sent then). */
  void (*on_connected)(h3wt_client *client, void *user_data);
  /* Optional.  The connection is gone: err is 0 after h3wt_client_close(),
     or an H3WT_ERR_* code; every request still open got on_response_close
     first.  After this returns the client may be freed with
     h3wt_client_del(). */
  void (*on_closed)(h3wt_client *client, int err, void *user_data);
} h3wt_client_callbacks;

/* Resolves the host (blocking getaddrinfo: pass an address to avoid it),
   creates the connection and starts the handshake on loop.  Returns 0 or
   an error; on error no callback is called. */
int h3wt_client_new(h3wt_client **pclient, uv_loop_t *loop,
                    const h3wt_client_settings *settings,
                    const h3wt_client_callbacks *callbacks, void *user_data);

/* Closes the connection (CONNECTION_CLOSE with H3_NO_ERROR, after what is
   already queued); on_closed follows.  Called from outside the client's
   callbacks, it closes before it returns.  Called from inside one (any
   callback of the client, its requests or its sessions), it only records
   the request and the client's flush pass closes later in the same loop
   iteration: the packet being read may still call back (a response's
   on_close, say), nothing more is read, and new requests and sessions are
   refused with H3WT_ERR_CLOSED. */
void h3wt_client_close(h3wt_client *client);

/* Frees the client: from on_closed or any time after it (the memory goes
   once libuv has released the client's handles, within a loop iteration),
   or if it never connected.  Called before on_closed (from inside any of
   the client's callbacks too), it first closes as h3wt_client_close() does
   but without on_closed; requests and sessions still get on_close and
   on_session_close. */
void h3wt_client_del(h3wt_client *client);

/* Writes the connection's session, for a later connection to resume
   (h3wt_client_settings.session): the TLS session with the server's
   latest ticket, the server's transport parameters and SETTINGS that
   0-RTT may rely on.  A ticket arrives just after the handshake; call
   this once a response came, or after on_closed (until
   h3wt_client_del()).  buf NULL (or too small): only *len is set, to the
   size needed.  Returns 0, H3WT_ERR_INVALID_STATE (no ticket from the
   server yet), H3WT_ERR_TOO_LARGE (buf too small) or H3WT_ERR_NOMEM.  It
   holds the session's secrets: keep it as private as a key. */
int h3wt_client_session_save(h3wt_client *client, uint8_t *buf,
                             size_t buflen, size_t *len);

/* What the handshake did with a saved session, as flags (after
   on_connected; 0 before). */
#define H3WT_RESUMED 0x1             /* the TLS session was resumed */
#define H3WT_EARLY_DATA_SENT 0x2     /* requests went in 0-RTT */
#define H3WT_EARLY_DATA_ACCEPTED 0x4 /* and the server took them */
unsigned h3wt_client_resumption(const h3wt_client *client);

typedef struct h3wt_response_handler {
  /* Optional.  The response headers: status and the fields (borrowed). */
  void (*on_headers)(h3wt_client_request *req, int status,
                     const h3wt_header *headers, size_t nheaders,
                     void *user_data);
  /* Optional.  A piece of the response body (borrowed). */
  void (*on_body)(h3wt_client_request *req, const uint8_t *data, size_t len,
                  void *user_data);
  /* Required.  The exchange ended: err is 0 when the response was complete,
     else an H3WT_ERR_* code (app_error_code is the peer's stream error
     code, if it reset).  req is freed when this returns. */
  void (*on_close)(h3wt_client_request *req, int err, uint64_t app_error_code,
                   void *user_data);
} h3wt_response_handler;

/* Sends a request: method and path ("/x?y"), extra headers, and a body
   (copied; NULL/0 for none).  :authority is the settings' host.  handler
   must stay valid until on_close.  Requests beyond the server's stream
   limit wait inside the library and go out, in order, as it grants more.
   Returns 0, H3WT_ERR_CLOSED or H3WT_ERR_NOMEM. */
int h3wt_client_request_send(h3wt_client *client, const char *method,
                             const char *path, const h3wt_header *headers,
                             size_t nheaders, const void *body,
                             size_t bodylen,
                             const h3wt_response_handler *handler,
                             void *user_data, h3wt_client_request **preq);

/* ------------------------------------------------------------------------ */
/* WebTransport over HTTP/3 (draft-ietf-webtrans-http3; browsers speak
   several vintages, all accepted).  A session is opened by an extended
   CONNECT (:protocol "webtransport" or "webtransport-h3") to a path with a
   registered session handler; it carries bidirectional and unidirectional
   streams and datagrams, and ends with a code and a reason. */

typedef struct h3wt_session h3wt_session;
typedef struct h3wt_stream h3wt_stream;

/* WebTransport error codes (the draft's error-code registry). */
#define H3WT_WT_SESSION_GONE 0x170d7b68u
#define H3WT_WT_BUFFERED_STREAM_REJECTED 0x3994bd84u
#define H3WT_WT_FLOW_CONTROL_ERROR 0x045d4487u

/* on_session_request's answer "later": the application answers with
   h3wt_session_respond() (e.g. once an auth service replied). */
#define H3WT_SESSION_PENDING 0

/* Why a session ended (the err argument of on_session_close). */
#define H3WT_SESSION_CLOSED 0        /* a close capsule or FIN, either side */
#define H3WT_SESSION_RESET -501      /* the CONNECT stream was reset */
#define H3WT_SESSION_REJECTED -502   /* (client) the server answered != 2xx */
#define H3WT_SESSION_CONN_LOST -503  /* the connection closed under it */

/* Callbacks of one WebTransport route (server) or session (client).  All
   optional except on_session_request on a server route.  route_data is the
   pointer given when registering.  Callbacks are only ever appended: the
   registration macros pass H3WT_SESSION_HANDLER_VERSION, the layout the
   caller was compiled with. */
#define H3WT_SESSION_HANDLER_V1 1
#define H3WT_SESSION_HANDLER_V2 2 /* adds on_streams_available */
#define H3WT_SESSION_HANDLER_VERSION H3WT_SESSION_HANDLER_V2

typedef struct h3wt_session_handler {
  /* Server: a session is requested.  Inspect it (h3wt_session_path() with
     its query, _origin(), _authority(), _header(), _headers(),
     _protocols()) and return 200 to accept, a status >= 400 to reject
     (404, 403 for a refused origin, 429 over a limit...), or
     H3WT_SESSION_PENDING to answer later with h3wt_session_respond().  A
     session rejected here never gets on_session_close; a pending one
     does, if it ends before the answer (the peer gave up, the connection
     went: err H3WT_SESSION_RESET or H3WT_SESSION_CONN_LOST). */
  int (*on_session_request)(h3wt_session *s, void *route_data);
  /* The session is established (server: after accepting; client: on the
     2xx answer).  Streams and datagrams may flow. */
  void (*on_session_ready)(h3wt_session *s, void *route_data);
  /* The peer opened a stream (bidi: both directions). */
  void (*on_stream_open)(h3wt_stream *st, void *route_data);
  /* Bytes of a stream, in order (borrowed); fin: the peer finished. */
  void (*on_stream_data)(h3wt_stream *st, const uint8_t *data, size_t len,
                         int fin, void *route_data);
  /* The peer reset its sending side (RESET_STREAM) or asked us to stop
     sending (STOP_SENDING).  code is the WebTransport application error
     code, mapped back from the HTTP/3 code space; has_code is 0 when the
     peer used a code outside that space. */
  void (*on_stream_reset)(h3wt_stream *st, uint32_t code, int has_code,
                          void *route_data);
  void (*on_stream_stop_sending)(h3wt_stream *st, uint32_t code,
                                 int has_code, void *route_data);
  /* After a write returned H3WT_ERR_WOULDBLOCK: the stream's queue is
     below half of max_stream_queue and its session's below half of
     max_session_queue. */
  void (*on_stream_writable)(h3wt_stream *st, void *route_data);
  /* The stream is finished in both directions (or reset); its memory goes
     when this returns. */
  void (*on_stream_close)(h3wt_stream *st, void *route_data);
  /* A datagram (borrowed). */
  void (*on_datagram)(h3wt_session *s, const uint8_t *data, size_t len,
                      void *route_data);
  /* The peer asked to wind the session down (WT_DRAIN_SESSION). */
  void (*on_session_drain)(h3wt_session *s, void *route_data);
  /* The session ended: err is one of H3WT_SESSION_*; code and reason are
     those of the WT_CLOSE_SESSION capsule, whichever side sent it (0 and ""
     otherwise).  Every stream of the session got on_stream_close first;
     the session's memory goes when this returns. */
  void (*on_session_close)(h3wt_session *s, int err, uint32_t code,
                           const char *reason, size_t reasonlen,
                           void *route_data);
  /* V2.  After h3wt_session_open_stream() returned H3WT_ERR_WOULDBLOCK
     (the peer allows no more streams of that kind now): the peer raised
     its limit; bidi says which kind may be opened again. */
  void (*on_streams_available)(h3wt_session *s, int bidi, void *route_data);
} h3wt_session_handler;

/* Server: routes WebTransport sessions for exactly this path (the query
   is ignored) to handler, which is copied.  Extended CONNECTs to other
   paths get 404 without any handler called.  Returns 0,
   H3WT_ERR_INVALID_ARGUMENT or H3WT_ERR_NOMEM. */
int h3wt_server_webtransport_versioned(h3wt_server *server, const char *path,
                                       int handler_version,
                                       const h3wt_session_handler *handler,
                                       void *route_data);
#define h3wt_server_webtransport(SERVER, PATH, HANDLER, ROUTE_DATA)            \
  h3wt_server_webtransport_versioned((SERVER), (PATH),                         \
                                     H3WT_SESSION_HANDLER_VERSION, (HANDLER),  \
                                     (ROUTE_DATA))

/* Server: the session with this id (h3wt_session_id()), established or
   pending an answer, or NULL. */
h3wt_session *h3wt_server_find_session(const h3wt_server *server,
                                       uint64_t id);
/* Calls cb for every established session of this server (of the route
   path, or all when path is NULL), oldest first, until cb returns
   non-zero.  cb may close sessions and write to them.  Returns how many
   sessions cb was called for. */
size_t h3wt_server_foreach_session(h3wt_server *server, const char *path,
                                   int (*cb)(h3wt_session *s, void *ud),
                                   void *ud);

/* Server: answers a session whose on_session_request returned
   H3WT_SESSION_PENDING: a 2xx status accepts it (on_session_ready
   follows), any other rejects it (no on_session_close then).  headers are
   extra response headers (copied).  Returns 0, H3WT_ERR_INVALID_STATE
   (already answered, or not a server session), H3WT_ERR_INVALID_ARGUMENT
   or H3WT_ERR_NOMEM. */
int h3wt_session_respond(h3wt_session *s, int status,
                         const h3wt_header *headers, size_t nheaders);

/* Session accessors.  Strings live as long as the session. */
const char *h3wt_session_path(const h3wt_session *s); /* with the query */
const char *h3wt_session_origin(const h3wt_session *s); /* "" if none */
const char *h3wt_session_authority(const h3wt_session *s);
/* A request header of the CONNECT (server side), or NULL. */
const char *h3wt_session_header(const h3wt_session *s, const char *name);
/* Every request header of the CONNECT (server side; pseudo-headers are
   the accessors above). */
size_t h3wt_session_headers(const h3wt_session *s,
                            const h3wt_header **headers);
const struct sockaddr *h3wt_session_peer(const h3wt_session *s);
/* A stable id, unique among all sessions of the server (or client) for
   its lifetime; never reused.  Find a session by it with
   h3wt_server_find_session(). */
uint64_t h3wt_session_id(const h3wt_session *s);
/* The WebTransport session ID on the wire (the CONNECT stream's ID). */
int64_t h3wt_session_stream_id(const h3wt_session *s);
/* 1 while the session is established and not closing: streams and
   datagrams may be sent.  0 before it is ready and from the moment
   either side closes it (calls then return H3WT_ERR_SESSION_CLOSING). */
int h3wt_session_is_open(const h3wt_session *s);

/* Subprotocols (the browser's `protocols` option).  Server: the list the
   client offered in WT-Available-Protocols (a structured-field list of
   strings; a malformed list offers nothing); select one before accepting
   (it must be in the list), and the answer carries it in WT-Protocol.
   Client: h3wt_session_protocol() is the server's choice once ready.
   Returns 0, H3WT_ERR_NOT_FOUND (not offered) or H3WT_ERR_INVALID_STATE
   (already answered). */
size_t h3wt_session_protocols(const h3wt_session *s,
                              const char *const **protocols);
int h3wt_session_select_protocol(h3wt_session *s, const char *protocol);
/* The negotiated subprotocol, or NULL. */
const char *h3wt_session_protocol(const h3wt_session *s);
void h3wt_session_set_data(h3wt_session *s, void *data);
void *h3wt_session_get_data(const h3wt_session *s);
/* Client: the status of the CONNECT answer (0 before it). */
int h3wt_session_status(const h3wt_session *s);

/* Opens a stream in the session.  Returns 0, H3WT_ERR_WOULDBLOCK (the peer
   allows no more streams now, on the connection (QUIC) or, with session
   flow control, in this session (its WT_MAX_STREAMS):
   on_streams_available follows when it does), H3WT_ERR_SESSION_CLOSING,
   H3WT_ERR_INVALID_STATE (not ready yet) or H3WT_ERR_NOMEM.  With session
   flow control, bytes written to the session's streams go out as the
   peer's WT_MAX_DATA allows (the queue limits above still apply). */
int h3wt_session_open_stream(h3wt_session *s, int bidi, h3wt_stream **pst);

/* Sends a datagram (copied).  Returns 0 (queued; under drop-oldest an
   older datagram of the session may have been dropped for it, counted),
   H3WT_ERR_DGRAM_DROPPED (the queue is full: this one was dropped and
   counted; datagrams never block and there is no writable callback for
   them), H3WT_ERR_TOO_LARGE (over h3wt_session_max_datagram(): never
   sent), H3WT_ERR_SESSION_CLOSING or H3WT_ERR_INVALID_STATE (not ready). */
int h3wt_session_send_datagram(h3wt_session *s, const void *data, size_t len);
/* The largest datagram payload that fits in one packet now (0 if the peer
   accepts no datagrams). */
size_t h3wt_session_max_datagram(const h3wt_session *s);
/* Datagrams of this session queued and not yet sent. */
size_t h3wt_session_datagram_queue(const h3wt_session *s);
/* The session's datagram policy (defaults from the server settings of the
   same names): max_age_ms 0 means no age limit. */
int h3wt_session_set_datagram_policy(h3wt_session *s, int drop_oldest,
                                     uint64_t max_age_ms);
/* A liveness timeout for this session's connection (the smallest of its
   sessions' counts): nothing received for timeout_ms closes the
   connection.  0: the server default.  Returns 0 or
   H3WT_ERR_SESSION_CLOSING. */
int h3wt_session_set_liveness(h3wt_session *s, uint64_t timeout_ms);

/* Transport figures of the connection that carries a session. */
#define H3WT_TRANSPORT_INFO_V1 1
#define H3WT_TRANSPORT_INFO_VERSION H3WT_TRANSPORT_INFO_V1
typedef struct h3wt_transport_info {
  int version; /* set by the caller: H3WT_TRANSPORT_INFO_VERSION */
  uint64_t smoothed_rtt_us, min_rtt_us, rttvar_us, latest_rtt_us;
  uint64_t cwnd, bytes_in_flight;
  uint64_t bytes_sent, bytes_received;     /* UDP payload bytes */
  uint64_t packets_sent, packets_received; /* UDP datagrams */
  /* Packets lost: only where ngtcp2 reports it (1.12 and later); has_lost
     says whether packets_lost/bytes_lost mean anything. */
  int has_lost;
  uint64_t packets_lost, bytes_lost;
  uint64_t idle_ms;      /* since the last packet from the peer */
  size_t max_datagram;   /* h3wt_session_max_datagram() */
  size_t datagram_queue; /* h3wt_session_datagram_queue() */
} h3wt_transport_info;
/* Fills *info (whose version the caller sets).  Returns 0,
   H3WT_ERR_INVALID_ARGUMENT or H3WT_ERR_SESSION_CLOSING (the connection is
   gone). */
int h3wt_session_get_transport(const h3wt_session *s,
                               h3wt_transport_info *info);

/* Closes the whole QUIC connection that carries the session (and its other
   sessions and requests): CONNECTION_CLOSE with the HTTP/3 error code
   (H3_NO_ERROR is 0x100) and reason (at most 127 bytes kept).  From
   anywhere, including callbacks: it happens in the flush pass.  Sessions
   get on_session_close with H3WT_SESSION_CONN_LOST.  Returns 0 or
   H3WT_ERR_SESSION_CLOSING (already gone). */
int h3wt_session_close_connection(h3wt_session *s, uint64_t h3_error_code,
                                  const char *reason);

/* Closes the session: a WT_CLOSE_SESSION capsule (code, reason of at most
   1024 bytes, truncated), then FIN on the CONNECT stream; every stream of
   the session is reset with WT_SESSION_GONE.  on_session_close follows
   (after the current callback returns).  Returns 0,
   H3WT_ERR_SESSION_CLOSING (already closing: no-op), H3WT_ERR_INVALID_STATE
   (a server session not answered yet: use h3wt_session_respond) or
   H3WT_ERR_NOMEM. */
int h3wt_session_close(h3wt_session *s, uint32_t code, const char *reason);
/* Asks the peer to wind down (WT_DRAIN_SESSION). */
int h3wt_session_drain(h3wt_session *s);

/* Stream accessors. */
h3wt_session *h3wt_stream_session(const h3wt_stream *st);
int64_t h3wt_stream_id(const h3wt_stream *st);
int h3wt_stream_is_bidi(const h3wt_stream *st);
int h3wt_stream_is_local(const h3wt_stream *st); /* we opened it */
void h3wt_stream_set_data(h3wt_stream *st, void *data);
void *h3wt_stream_get_data(const h3wt_stream *st);

/* Queues bytes on a stream (copied).  Returns 0, H3WT_ERR_WOULDBLOCK (the
   stream already holds max_stream_queue unacknowledged bytes, or its
   session max_session_queue across all its streams; nothing queued;
   on_stream_writable follows), H3WT_ERR_INVALID_STATE (finished, reset,
   or a peer-opened unidirectional stream) or H3WT_ERR_SESSION_CLOSING. */
int h3wt_stream_write(h3wt_stream *st, const void *data, size_t len);

/* The stream's send order (default 0), as the browser's sendOrder: when
   several streams of a connection have data to send, those of a higher
   order go first; streams of equal order share the connection round
   robin.  A game puts state updates above bulk transfers.  Datagrams go
   before any stream data (they wait for nothing).  Returns 0 or
   H3WT_ERR_INVALID_STATE (finished, reset, or a peer-opened
   unidirectional stream). */
int h3wt_stream_set_send_order(h3wt_stream *st, int64_t order);
int64_t h3wt_stream_send_order(const h3wt_stream *st);

/* Pauses reading a stream: on_stream_data is not called, and what the
   peer sends is held without returning its flow-control credit, so the
   peer stops once the stream's window (1 MiB) is full: a slow consumer
   makes the peer wait instead of making the application buffer.  Resume
   delivers what was held (in the flush pass, after the current callback)
   and returns the credit.  Return 0 or H3WT_ERR_INVALID_STATE. */
int h3wt_stream_pause_reading(h3wt_stream *st);
int h3wt_stream_resume_reading(h3wt_stream *st);

/* ---- Shared buffers: one payload written to many streams and sent as a
   datagram to many sessions without a copy per receiver.  Reference
   counted; the bytes never change after h3wt_buf_new(); freed when the
   last reference goes (the library holds one per queued use until the
   peer acknowledged it, or the datagram left).  The count is atomic:
   any thread may take and drop references (the memory broker hands one
   buffer to every worker's loop). */
typedef struct h3wt_buf h3wt_buf;
/* Copies len bytes into a new buffer with one reference (the caller's).
   Returns 0 or H3WT_ERR_NOMEM. */
int h3wt_buf_new(h3wt_buf **pbuf, const void *data, size_t len);
h3wt_buf *h3wt_buf_ref(h3wt_buf *buf); /* +1; returns buf */
void h3wt_buf_unref(h3wt_buf *buf);    /* -1; frees at 0; NULL is a no-op */
const uint8_t *h3wt_buf_data(const h3wt_buf *buf);
size_t h3wt_buf_len(const h3wt_buf *buf);
/* As h3wt_stream_write() and h3wt_session_send_datagram(), taking a
   reference of their own on success (the caller keeps its own). */
int h3wt_stream_write_buf(h3wt_stream *st, h3wt_buf *buf);
int h3wt_session_send_datagram_buf(h3wt_session *s, h3wt_buf *buf);
/* Finishes our sending side (FIN after the queued bytes). */
int h3wt_stream_finish(h3wt_stream *st);
/* Resets our sending side / asks the peer to stop sending, with a
   WebTransport error code (mapped into the HTTP/3 code space on the
   wire). */
int h3wt_stream_reset(h3wt_stream *st, uint32_t code);
int h3wt_stream_stop_sending(h3wt_stream *st, uint32_t code);

/* The HTTP/3 error code that carries WebTransport code n, and back
   (returns 0 when h3 is outside the WebTransport range). */
uint64_t h3wt_wt_code_to_h3(uint32_t n);
int h3wt_wt_code_from_h3(uint64_t h3, uint32_t *n);

/* Client: opens a WebTransport session to path on this connection (queued
   until the handshake completes).  origin may be NULL.  headers (copied;
   NULL/0 for none) go on the CONNECT after the pseudo-headers and origin:
   a token, say, which browsers cannot send but a native client can; names
   are lower-case, and pseudo-headers (":...") are the library's; offer
   subprotocols with a wt-available-protocols header.  The handler is
   copied (the macro passes H3WT_SESSION_HANDLER_VERSION).  Returns 0,
   H3WT_ERR_INVALID_ARGUMENT, H3WT_ERR_CLOSED or H3WT_ERR_NOMEM. */
int h3wt_client_webtransport_versioned(h3wt_client *client, const char *path,
                                       const char *origin,
                                       const h3wt_header *headers,
                                       size_t nheaders, int handler_version,
                                       const h3wt_session_handler *handler,
                                       void *route_data, h3wt_session **ps);
#define h3wt_client_webtransport(CLIENT, PATH, ORIGIN, HEADERS, NHEADERS,      \
                                 HANDLER, ROUTE_DATA, PS)                      \
  h3wt_client_webtransport_versioned((CLIENT), (PATH), (ORIGIN), (HEADERS),    \
                                     (NHEADERS), H3WT_SESSION_HANDLER_VERSION, \
                                     (HANDLER), (ROUTE_DATA), (PS))

/* The size of the caller's h3wt_session_handler of that version, or 0 for
   a version this library does not know. */
size_t h3wt_session_handler_size(int handler_version);

/* ------------------------------------------------------------------------ */
/* Channels: publish/subscribe over WebTransport (wire format:
   docs/channels.md).  A hub serves one WebTransport route; each session of
   it subscribes to named channels, publishes into them reliably (ordered,
   kept in history, recoverable after a reconnect) or unreliably
   (datagrams, latest-wins), and hears who joins and leaves.  C code on the
   loop publishes, subscribes sessions and reads the members too. */

typedef struct h3wt_channels h3wt_channels;

/* Codes a permission hook may refuse with (the wire's error codes). */
#define H3WT_CHANNELS_FORBIDDEN 3
#define H3WT_CHANNELS_TOO_LARGE 4
#define H3WT_CHANNELS_RATE_LIMITED 5

/* A broker links hubs so that a channel spans them: the hubs of several
   worker threads of one process (h3wt_broker_memory_new), or of many
   processes on many machines (h3wt_broker_redis_new).  It keeps each
   channel's offsets, epoch and history, and the members of the other hubs.
   A hub without one (settings broker NULL) makes a private memory broker:
   the channel ends at that hub. */
typedef struct h3wt_broker h3wt_broker;

/* A broker in this process's memory, for hubs on any loops (one per
   worker thread): its calls and its hubs' use of it are thread-safe.  A
   reliable message gets its offset at once, and reaches the hubs on other
   loops through their loops (in offset order).  Returns 0 or
   H3WT_ERR_NOMEM. */
int h3wt_broker_memory_new(h3wt_broker **pbroker);

#define H3WT_BROKER_REDIS_SETTINGS_V1 1
#define H3WT_BROKER_REDIS_SETTINGS_VERSION H3WT_BROKER_REDIS_SETTINGS_V1
typedef struct h3wt_broker_redis_settings {
  int version; /* H3WT_BROKER_REDIS_SETTINGS_VERSION */
  /* "redis://[:PASSWORD@]HOST[:PORT][/DB]"; port 6379, db 0 by default. */
  const char *url;
  /* The password when the URL has none; NULL: the environment variable
     H3WT_REDIS_PASSWORD, if set. */
  const char *password;
  /* Prefix of every key and pub/sub channel name; default "h3wt:". */
  const char *prefix;
  /* A node refreshes its members' presence every third of this; the
     members of a node that stops (killed, cut off) leave within it.
     Default 15000. */
  uint64_t presence_ttl_ms;
  /* A request Redis has not answered within this fails (H3WT_ERR_IO) and
     the connection is dropped and made again.  Default 2000. */
  uint64_t timeout_ms;
  /* Requests (publishes, history reads) a node holds while it has no
     connection; beyond this they fail at once (H3WT_ERR_IO).  Default
     1000. */
  size_t max_queued;
  /* Reconnection backoff: the first retry after reconnect_min_ms, each
     next one twice as late up to reconnect_max_ms (with jitter).
     Defaults 100 and 5000. */
  uint64_t reconnect_min_ms, reconnect_max_ms;
} h3wt_broker_redis_settings;

void h3wt_broker_redis_settings_default(h3wt_broker_redis_settings *settings);

/* A broker on a Redis server: live messages through Redis pub/sub (one
   Redis subscription per channel per hub that has subscribers), history
   and offsets in Redis streams (so a client that reconnects to another
   server recovers there), presence in Redis with a time to live.  Each hub
   attached gets its own connections, on its own loop.  Nothing connects
   until a hub attaches.  Returns 0, H3WT_ERR_INVALID_ARGUMENT (a bad URL),
   H3WT_ERR_INVALID_STATE (this library was built without hiredis) or
   H3WT_ERR_NOMEM. */
int h3wt_broker_redis_new(h3wt_broker **pbroker,
                          const h3wt_broker_redis_settings *settings);

/* Frees a broker.  Call after every hub attached to it was deleted (and
   their loops ran). */
void h3wt_broker_del(h3wt_broker *broker);

#define H3WT_CHANNELS_SETTINGS_V1 1
#define H3WT_CHANNELS_SETTINGS_V2 2 /* adds broker */
#define H3WT_CHANNELS_SETTINGS_VERSION H3WT_CHANNELS_SETTINGS_V2
typedef struct h3wt_channels_settings {
  int version;                /* H3WT_CHANNELS_SETTINGS_VERSION */
  size_t history_size;        /* reliable messages kept per channel; 100 */
  uint64_t history_ttl_ms;    /* and at most this old; 300000 (0: no age) */
  uint32_t max_channels_per_session;    /* 64 */
  uint32_t max_subscribers_per_channel; /* 100000 */
  size_t max_message;         /* bytes per publication; 65536 */
  uint32_t publish_rate;      /* publications per second per session
                                 (token bucket); 100 (0: no limit) */
  uint32_t publish_burst;     /* the bucket; 200 */
  /* JOIN and LEAVE frames go to the members of channels of at most this
     many subscribers.  Each join costs a frame to every member: N^2/2
     frames for a channel of N, which at 10,000 members is 50 million
     frames and half a minute of CPU.  Above it, clients see no joins and
     leaves and ask PRESENCE for the members; the on_join / on_leave hooks
     run at any size.  1000 (0: never send them). */
  uint32_t presence_events_max;
  /* V2.  The broker the hub's channels go through (not owned; must outlive
     the hub).  NULL: a private memory broker (the channels end at this
     hub). */
  h3wt_broker *broker;
} h3wt_channels_settings;

void h3wt_channels_settings_default(h3wt_channels_settings *settings);

#define H3WT_CHANNELS_HANDLER_V1 1
#define H3WT_CHANNELS_HANDLER_VERSION H3WT_CHANNELS_HANDLER_V1
/* Every callback is optional.  Channel names are NUL-terminated. */
typedef struct h3wt_channels_handler {
  /* A session asks for the route: as on_session_request (200 accepts,
     >= 400 refuses, H3WT_SESSION_PENDING answers later); check a token in
     h3wt_session_path()'s query here.  Default: accept. */
  int (*on_connect)(h3wt_channels *hub, h3wt_session *s, void *ud);
  /* May s subscribe to channel?  0 allows; otherwise the client gets
     ERROR with this code (e.g. H3WT_CHANNELS_FORBIDDEN). */
  int (*on_subscribe)(h3wt_channels *hub, h3wt_session *s,
                      const char *channel, void *ud);
  /* s publishes (data borrowed; reliable or a datagram): 0 delivers it,
     otherwise the client gets ERROR with this code (reliable) or it is
     dropped (unreliable).  This is also where the application receives
     what clients publish. */
  int (*on_publish)(h3wt_channels *hub, h3wt_session *s, const char *channel,
                    const uint8_t *data, size_t len, int reliable, void *ud);
  /* Presence: s joined or left channel (a closed session leaves all). */
  void (*on_join)(h3wt_channels *hub, const char *channel, h3wt_session *s,
                  void *ud);
  void (*on_leave)(h3wt_channels *hub, const char *channel, h3wt_session *s,
                   void *ud);
} h3wt_channels_handler;

/* Makes a hub serving the WebTransport route path of server (settings and
   handler may be NULL for the defaults; both copied).  The hub owns the
   session user data of its route.  Returns 0, H3WT_ERR_INVALID_ARGUMENT or
   H3WT_ERR_NOMEM. */
int h3wt_channels_new_versioned(h3wt_channels **phub, h3wt_server *server,
                                const char *path,
                                const h3wt_channels_settings *settings,
                                int handler_version,
                                const h3wt_channels_handler *handler,
                                void *ud);
#define h3wt_channels_new(PHUB, SERVER, PATH, SETTINGS, HANDLER, UD)          \
  h3wt_channels_new_versioned((PHUB), (SERVER), (PATH), (SETTINGS),           \
                              H3WT_CHANNELS_HANDLER_VERSION, (HANDLER), (UD))
/* Frees the hub once its sessions are gone (after the server's close
   callback); its memory goes within a loop iteration. */
void h3wt_channels_del(h3wt_channels *hub);

/* Publishes to a channel from C: reliable (kept in history; *offset, if
   not NULL, gets its offset, or 0 when the broker assigns it later, as
   Redis does) or as datagrams.  The payload is copied once (or, _buf,
   referenced) whatever the number of subscribers.  Returns 0,
   H3WT_ERR_INVALID_ARGUMENT (a bad channel name), H3WT_ERR_IO (the broker
   cannot take it: Redis unreachable and its queue full) or
   H3WT_ERR_NOMEM. */
int h3wt_channels_publish(h3wt_channels *hub, const char *channel,
                          const void *data, size_t len, int reliable,
                          uint64_t *offset);
int h3wt_channels_publish_buf(h3wt_channels *hub, const char *channel,
                              h3wt_buf *buf, int reliable, uint64_t *offset);
/* Subscribes / unsubscribes a session of the hub's route (the client hears
   SUBSCRIBED / UNSUBSCRIBED as if it had asked).  Returns 0,
   H3WT_ERR_INVALID_ARGUMENT, H3WT_ERR_INVALID_STATE (already in it),
   H3WT_ERR_TOO_LARGE (a limit or the permission hook refused),
   H3WT_ERR_NOT_FOUND (not in it). */
int h3wt_channels_subscribe(h3wt_channels *hub, h3wt_session *s,
                            const char *channel);
int h3wt_channels_unsubscribe(h3wt_channels *hub, h3wt_session *s,
                              const char *channel);
/* Calls cb for every member of channel that is a session of this hub (may
   be NULL: just count); members on other hubs of a shared broker are not
   sessions here (clients see them in MEMBERS).  Returns how many there
   are. */
size_t h3wt_channels_members(h3wt_channels *hub, const char *channel,
                             void (*cb)(h3wt_session *s, void *ud), void *ud);

#define H3WT_CHANNELS_STATS_V1 1
#define H3WT_CHANNELS_STATS_V2 2 /* adds the broker_* counters */
#define H3WT_CHANNELS_STATS_VERSION H3WT_CHANNELS_STATS_V2
typedef struct h3wt_channels_stats {
  int version; /* set by the caller: H3WT_CHANNELS_STATS_VERSION */
  uint64_t sessions_current, channels_current, subscriptions_current;
  uint64_t subscribes, recoveries, recoveries_failed;
  uint64_t publishes_reliable, publishes_unreliable;
  uint64_t deliveries_reliable, deliveries_unreliable;
  uint64_t deliveries_unreliable_dropped; /* datagram queue full, too big */
  uint64_t slow_consumers;   /* subscriptions cut: SLOW_CONSUMER */
  uint64_t presence_dropped; /* joins/leaves a full queue could not take */
  uint64_t presence_skipped; /* joins/leaves not sent: the channel is over
                                presence_events_max (one per event) */
  uint64_t frames_received, unknown_frames, errors_sent, protocol_errors;
  uint64_t datagrams_dropped; /* malformed, unknown subscription, refused */
  uint64_t refused_subscribe, refused_publish; /* by the hooks */
  uint64_t limit_channels_per_session, limit_subscribers_per_channel;
  uint64_t limit_message_size, limit_publish_rate;
  /* V2: this hub's node of its broker. */
  uint64_t broker_publishes;   /* handed to the broker */
  uint64_t broker_errors;      /* requests that failed (publish: the client
                                  got ERROR BROKER_UNAVAILABLE) */
  uint64_t broker_round_trips; /* answered requests to a remote store */
  uint64_t broker_rtt_us_sum;  /* their round-trip times, summed (us) */
  uint64_t broker_reconnects;  /* link to the store regained */
  uint64_t broker_link_up;     /* gauge: 1 while linked (memory: always) */
  uint64_t broker_queued;      /* gauge: requests waiting for the link */
  uint64_t broker_gaps;        /* subscriptions re-recovered after a link
                                  loss (recovered or told recovered 0) */
} h3wt_channels_stats;
/* Copies the counters.  Returns 0 or H3WT_ERR_INVALID_ARGUMENT. */
int h3wt_channels_get_stats(const h3wt_channels *hub,
                            h3wt_channels_stats *stats);

/* ------------------------------------------------------------------------ */
/* Development certificates.  Browsers accept a self-signed certificate for
   WebTransport when the page pins its SHA-256 (serverCertificateHashes),
   provided it is an ECDSA certificate valid for at most 14 days.  These
   calls make one, give the hash a page needs, and say when to make the
   next.  They are plain file operations (blocking, no loop needed): call
   them before h3wt_server_new(). */

/* Makes a self-signed X.509v3 certificate with a fresh ECDSA P-256 key,
   valid for 13 days from an hour ago, for localhost (subjectAltName
   DNS:localhost, IP:127.0.0.1, IP:::1), and writes it and its key as PEM
   files (the key with mode 0600).  Each file is written under a temporary
   name and renamed, key first, so a reader never sees half a file.  err
   (errlen bytes, may be NULL) gets a human-readable reason on failure.
   Returns 0, H3WT_ERR_INVALID_ARGUMENT (a NULL or too long file name, or
   the same name twice), H3WT_ERR_IO (cannot write or rename a file),
   H3WT_ERR_TLS (the key or certificate could not be made) or
   H3WT_ERR_NOMEM. */
int h3wt_devcert_make(const char *cert_file, const char *key_file, char *err,
                      size_t errlen);

/* The SHA-256 of the DER encoding of the first certificate in a PEM file:
   what a page passes as serverCertificateHashes ({algorithm: "sha-256",
   value}).  Any certificate file works, not only development ones.
   Returns 0, H3WT_ERR_INVALID_ARGUMENT (a NULL argument), H3WT_ERR_IO
   (cannot read the file, or it is over 1 MiB), H3WT_ERR_TLS (no PEM
   certificate in it) or H3WT_ERR_NOMEM. */
int h3wt_cert_sha256(const char *cert_file, uint8_t out[32]);

/* Seconds until the first certificate in a PEM file expires (negative when
   it already has), or INT64_MIN when the file cannot be read or holds no
   certificate.  A host reuses its development certificate while this is
   comfortably positive (h3wt-server: more than a day) and makes a new one
   otherwise. */
int64_t h3wt_cert_seconds_left(const char *cert_file);

#ifdef __cplusplus
}
#endif

#endif /* H3WT_H */
