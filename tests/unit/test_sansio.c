/*
 * The QUIC and HTTP/3 layers without sockets or a loop: a client and a
 * server connection exchange packets through memory under a fake clock.
 * This is what "bytes and a time in, bytes and a deadline out" buys: the
 * whole handshake and a request/response run deterministically, with packet
 * loss injected, and the timers are driven by h3wt_quic_conn_expiry().
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "h3wt_h3.h"
#include "h3wt_streams.h"
#include "h3wt_quic.h"
#include "h3wt_test.h"
#include "h3wt_tls.h"
#include "h3wt_wt.h"

#define MAXPKT 2048
#define QCAP 4096

typedef struct pkt {
  uint8_t data[MAXPKT];
  size_t len;
  unsigned ecn;
} pkt;

typedef struct queue {
  pkt *p;
  size_t n;
} queue;

typedef struct side {
  h3wt_h3_owner owner; /* first: the shared callbacks look for it */
  h3wt_quic_conn *qc;
  queue *out;
  struct sockaddr_in self;
  /* server: the request seen; client: the response seen */
  char path[64];
  int status;
  size_t body_received;
  uint8_t body_hash;
  int closed;
  h3wt_sendq body; /* what the server responds with */
} side;

static uint64_t now = 1000000000ULL;
static unsigned drop_every; /* 0: no loss */
static unsigned sent_count, dropped_count;
/* Packets each side sent per ECN codepoint ([0] server, [1] client), and
   of those the last quarter of the exchange; bleach_ecn: the "network"
   clears every mark on the way, as some middleboxes do. */
static unsigned ecn_sent[2][4];
static int bleach_ecn;
/* The most packets one write call sent, and the send quantum then. */
static size_t max_write_pkts;
static uint32_t lcg_state;

/* Seeded pseudo-random loss: reproducible, but without the fixed rhythm of
   "every Nth packet", which can phase-lock with the protocol's own rhythm
   and starve one direction forever. */
static int lose_this(void) {
  lcg_state = lcg_state * 1103515245u + 12345u;
  return drop_every && ((lcg_state >> 16) % drop_every) == 0;
}
static h3wt_logger quiet = {NULL, NULL, H3WT_LOG_ERROR};

static void q_send(h3wt_quic_conn *qc, const struct sockaddr *remote,
                   const uint8_t *data, size_t len, size_t gso, unsigned ecn,
                   void *ud) {
  side *s = ud;
  size_t seg = gso ? gso : len;
  for (size_t off = 0; off < len; off += seg) {
    size_t n = len - off < seg ? len - off : seg;
    ++sent_count;
    ++ecn_sent[ntohs(s->self.sin_port) == 4433 ? 0 : 1][ecn & 3];
    if (lose_this()) {
      ++dropped_count;
      continue;
    }
    if (s->out->n < QCAP && n <= MAXPKT) {
      memcpy(s->out->p[s->out->n].data, data + off, n);
      s->out->p[s->out->n].ecn = bleach_ecn ? 0 : ecn;
      s->out->p[s->out->n++].len = n;
    }
  }
}

static int q_cid_added(h3wt_quic_conn *qc, const uint8_t *cid, size_t len,
                       void *ud) {
  return 0;
}

/* -- server HTTP/3 side: answers every request with body_chunks * 10 KB
   (100 KB unless a test asks for more) -- */
static int body_chunks = 10;

static int s_begin(h3wt_h3_conn *h3, int64_t sid, void *ud, void *sud,
                   void **psud) {
  *psud = ud;
  return 0;
}
static int s_header(h3wt_h3_conn *h3, int64_t sid, const uint8_t *name,
                    size_t namelen, const uint8_t *value, size_t valuelen,
                    void *ud, void *sud) {
  side *s = ud;
  if (namelen == 5 && memcmp(name, ":path", 5) == 0 &&
      valuelen < sizeof(s->path)) {
    memcpy(s->path, value, valuelen);
    s->path[valuelen] = '\0';
  }
  return 0;
}
static int s_end_headers(h3wt_h3_conn *h3, int64_t sid, int fin, void *ud,
                         void *sud) {
  side *s = ud;
  static uint8_t chunk[10000];
  for (size_t i = 0; i < sizeof(chunk); ++i) {
    chunk[i] = (uint8_t)i;
  }
  for (int i = 0; i < body_chunks; ++i) {
    h3wt_sendq_append(&s->body, chunk, sizeof(chunk));
  }
  h3wt_header h[] = {{":status", 7, "200", 3}};
  return h3wt_h3_submit_response(h3, sid, h, 1, 1);
}
static ssize_t s_read_body(h3wt_h3_conn *h3, int64_t sid, h3wt_vec *vec,
                           size_t veccnt, int *eof, void *ud, void *sud) {
  side *s = ud;
  size_t n = h3wt_sendq_read(&s->body, vec, veccnt);
  if (s->body.unread == 0) {
    *eof = 1;
  }
  return (ssize_t)n;
}
static int s_acked(h3wt_h3_conn *h3, int64_t sid, uint64_t n, void *ud,
                   void *sud) {
  h3wt_sendq_ack(&((side *)ud)->body, n);
  return 0;
}

/* -- client HTTP/3 side -- */

static int c_begin(h3wt_h3_conn *h3, int64_t sid, void *ud, void *sud,
                   void **psud) {
  *psud = sud;
  return 0;
}
static int c_header(h3wt_h3_conn *h3, int64_t sid, const uint8_t *name,
                    size_t namelen, const uint8_t *value, size_t valuelen,
                    void *ud, void *sud) {
  side *s = ud;
  if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
    s->status = atoi((const char *)value);
  }
  return 0;
}
static int c_data(h3wt_h3_conn *h3, int64_t sid, const uint8_t *data,
                  size_t len, void *ud, void *sud) {
  side *s = ud;
  for (size_t i = 0; i < len; ++i) {
    /* Order check: byte k of the body is (k % 10000) & 0xff. */
    if (data[i] != (uint8_t)((s->body_received + i) % 10000)) {
      s->body_hash = 1;
    }
  }
  s->body_received += len;
  return 0;
}
static int c_close(h3wt_h3_conn *h3, int64_t sid, uint64_t code, void *ud,
                   void *sud) {
  if ((sid & 3) == 0) {
    ((side *)ud)->closed = 1;
  }
  return 0;
}

static void deliver(side *to, queue *q, const side *from) {
  for (size_t i = 0; i < q->n; ++i) {
    h3wt_quic_conn_read(to->qc, (const struct sockaddr *)&to->self,
                        (const struct sockaddr *)&from->self, q->p[i].data,
                        q->p[i].len, q->p[i].ecn, now);
  }
  q->n = 0;
}

/* The server's answer to a client that must prove its address: a Retry,
   then checks on the Initial that answers it.  Returns 1 once the client
   has its Retry (the caller goes on), 0 when the Initial carries a valid
   token (the caller accepts it). */
static int retry_step(const h3wt_quic_config *scfg, side *srv, side *cli,
                      queue *to_server) {
  uint8_t *data = to_server->p[0].data, out[1500];
  size_t len = to_server->p[0].len;
  ssize_t n = h3wt_quic_write_retry(out, sizeof(out), scfg,
                                    (struct sockaddr *)&cli->self, data, len,
                                    now);
  if (n > 0) {
    to_server->n = 0;
    h3wt_quic_conn_read(cli->qc, (struct sockaddr *)&cli->self,
                        (struct sockaddr *)&srv->self, out, (size_t)n, 0, now);
    return 1;
  }
  CHECK_EQ_INT(n, 0); /* the Initial answers our Retry */
  /* The token is bound to the client's address... */
  h3wt_quic_conn *bad = NULL;
  struct sockaddr_in other = cli->self;
  other.sin_port = htons(50001);
  CHECK_EQ_INT(h3wt_quic_conn_server_new(&bad, scfg,
                                         (struct sockaddr *)&srv->self,
                                         (struct sockaddr *)&other, data, len,
                                         now, srv),
               H3WT_ERR_HANDSHAKE);
  /* ...cannot be altered (the token follows the two connection IDs and its
     length; one flipped bit in it fails authentication)... */
  size_t off = 5 + 1 + data[5];
  off += 1 + data[off];
  uint8_t copy[MAXPKT];
  memcpy(copy, data, len);
  copy[off + 1 + 10] ^= 0x10; /* a 1-byte length (<64) precedes it */
  CHECK(data[off] < 64 && data[off + 1] == 0xb6);
  CHECK_EQ_INT(h3wt_quic_conn_server_new(&bad, scfg,
                                         (struct sockaddr *)&srv->self,
                                         (struct sockaddr *)&cli->self, copy,
                                         len, now, srv),
               H3WT_ERR_HANDSHAKE);
  /* ...and expires. */
  CHECK_EQ_INT(h3wt_quic_conn_server_new(
                   &bad, scfg, (struct sockaddr *)&srv->self,
                   (struct sockaddr *)&cli->self, data, len,
                   now + 11ULL * 1000000000ULL, srv),
               H3WT_ERR_HANDSHAKE);
  return 0;
}

/* A client and a server connection wired back to back, with everything
   they need; it must not move once opened (the callbacks point into it). */
typedef struct pair {
  char dir[32], cert[128], key[128];
  h3wt_tls_ctx *stls, *ctls;
  h3wt_quic_callbacks cbs;
  h3wt_quic_config scfg, ccfg;
  h3wt_h3_callbacks shc, chc;
  h3wt_h3_config shcfg, chcfg;
  h3wt_wt_limits wl;
  queue to_server, to_client;
  side srv, cli;
  /* The client's address as the server sees it (a NAT may rebind it). */
  struct sockaddr_in cli_seen;
  uint8_t txbuf[H3WT_QUIC_TXBUF_MIN];
  int retry;
  int rounds;
} pair;

static void pair_open(pair *p, unsigned loss_every, int retry) {
  char err[256];
  h3wt_tls_ctx_opts so = {0}, co = {0};

  memset(p, 0, sizeof(*p));
  drop_every = loss_every;
  sent_count = dropped_count = 0;
  memset(ecn_sent, 0, sizeof(ecn_sent));
  max_write_pkts = 0;
  lcg_state = 12345u + loss_every;
  p->retry = retry;
  snprintf(p->dir, sizeof(p->dir), "/tmp/h3wt-sansio-XXXXXX");
  CHECK(mkdtemp(p->dir) != NULL);
  snprintf(p->cert, sizeof(p->cert), "%s/c.pem", p->dir);
  snprintf(p->key, sizeof(p->key), "%s/k.pem", p->dir);
  CHECK_EQ_INT(h3wt_devcert_make(p->cert, p->key, err, sizeof(err)), 0);
  so.cert_file = p->cert;
  so.key_file = p->key;
  co.insecure = 1;
  CHECK_EQ_INT(h3wt_tls_server_ctx_new(&p->stls, &so, err, sizeof(err)), 0);
  CHECK_EQ_INT(h3wt_tls_client_ctx_new(&p->ctls, &co, err, sizeof(err)), 0);

  h3wt_streams_fill_quic_callbacks(&p->cbs);
  p->cbs.send = q_send;
  p->cbs.cid_added = q_cid_added;
  p->scfg.log = &quiet;
  p->scfg.tls = p->stls;
  p->scfg.cbs = &p->cbs;
  p->scfg.idle_timeout_ns = 30ULL * 1000000000ULL;
  p->scfg.handshake_timeout_ns = 10ULL * 1000000000ULL;
  p->scfg.max_streams_bidi = 10;
  p->scfg.max_streams_uni = 8;
  p->scfg.max_stream_data = 256 * 1024;
  p->scfg.max_data = 1024 * 1024;
  p->scfg.max_datagram_frame_size = 1200;
  p->scfg.txbuf = p->txbuf;
  p->scfg.txbuflen = sizeof(p->txbuf);
  p->scfg.pacing = 1;
  p->ccfg = p->scfg;
  p->ccfg.tls = p->ctls;

  p->shc.begin_headers = s_begin;
  p->shc.recv_header = s_header;
  p->shc.end_headers = s_end_headers;
  p->shc.read_body = s_read_body;
  p->shc.acked_body = s_acked;
  p->shcfg.log = &quiet;
  p->shcfg.cbs = &p->shc;
  p->shcfg.max_field_section_size = 16384;
  p->shcfg.max_streams_bidi = 10;
  p->chc.begin_headers = c_begin;
  p->chc.recv_header = c_header;
  p->chc.recv_data = c_data;
  p->chc.stream_close = c_close;
  /* WebTransport on, each side offering its own session flow-control
     limits: each must read the other's from its SETTINGS (which travel
     under the same loss as everything else). */
  h3wt_wt_limits_default(&p->wl);
  p->shcfg.wt = &p->wl;
  p->shcfg.wt_fc_max_data = 65536;
  p->shcfg.wt_fc_max_streams = 7;
  p->chcfg = p->shcfg;
  p->chcfg.cbs = &p->chc;
  p->chcfg.wt_fc_max_data = 12345;
  p->chcfg.wt_fc_max_streams = 3;

  p->to_server.p = calloc(QCAP, sizeof(pkt));
  p->to_client.p = calloc(QCAP, sizeof(pkt));
  p->srv.out = &p->to_client;
  p->cli.out = &p->to_server;
  h3wt_sendq_init(&p->srv.body);
  p->srv.self.sin_family = p->cli.self.sin_family = AF_INET;
  p->srv.self.sin_port = htons(4433);
  p->cli.self.sin_port = htons(50000);
  inet_pton(AF_INET, "10.0.0.1", &p->srv.self.sin_addr); /* never on a wire */
  inet_pton(AF_INET, "10.0.0.2", &p->cli.self.sin_addr);
  p->cli_seen = p->cli.self;

  CHECK_EQ_INT(h3wt_quic_conn_client_new(&p->cli.qc, &p->ccfg,
                                         (struct sockaddr *)&p->cli.self,
                                         (struct sockaddr *)&p->srv.self,
                                         "localhost", now, &p->cli),
               0);
  CHECK_EQ_INT(
      h3wt_streams_conn_new(&p->cli.owner.h3, &p->chcfg, p->cli.qc, 0, &p->cli),
      0);
}

/* Packets the server sent go to the client whatever address they were
   sent to (a NAT in between maps the client's new address back). */
static void deliver_to_client(pair *p) {
  deliver(&p->cli, &p->to_client, &p->srv);
}

static void deliver_to_server(pair *p) {
  for (size_t i = 0; i < p->to_server.n; ++i) {
    h3wt_quic_conn_read(p->srv.qc, (const struct sockaddr *)&p->srv.self,
                        (const struct sockaddr *)&p->cli_seen,
                        p->to_server.p[i].data, p->to_server.p[i].len,
                        p->to_server.p[i].ecn, now);
  }
  p->to_server.n = 0;
}

/* One round: each side writes and reads what the other wrote; when
   nothing is in flight the clock jumps to the next deadline (at most to
   limit), as a loop would.  Returns 0 when no deadline is left. */
static int pair_step(pair *p, uint64_t limit) {
  side *srv = &p->srv, *cli = &p->cli;
  ++p->rounds;
  h3wt_quic_conn_write(cli->qc, now);
  if (!srv->qc && p->to_server.n && p->retry &&
      retry_step(&p->scfg, srv, cli, &p->to_server)) {
    return 1;
  }
  if (!srv->qc && p->to_server.n) {
    /* The server side sees its first datagram: accept it. */
    CHECK_EQ_INT(h3wt_quic_conn_server_new(
                     &srv->qc, &p->scfg, (struct sockaddr *)&srv->self,
                     (struct sockaddr *)&p->cli_seen, p->to_server.p[0].data,
                     p->to_server.p[0].len, now, srv),
                 0);
    CHECK_EQ_INT(h3wt_streams_conn_new(&srv->owner.h3, &p->shcfg, srv->qc, 1,
                                       srv),
                 0);
  }
  if (srv->qc) {
    deliver_to_server(p);
    size_t before = p->to_client.n;
    h3wt_quic_conn_write(srv->qc, now);
    if (p->to_client.n - before > max_write_pkts) {
      max_write_pkts = p->to_client.n - before;
    }
  } else {
    p->to_server.n = 0; /* the first Initial was lost */
  }
  deliver_to_client(p);
  if (p->to_server.n == 0 && p->to_client.n == 0) {
    uint64_t e1 = h3wt_quic_conn_expiry(cli->qc);
    uint64_t e2 = srv->qc ? h3wt_quic_conn_expiry(srv->qc) : UINT64_MAX;
    uint64_t e = e1 < e2 ? e1 : e2;
    if (e == UINT64_MAX) {
      return 0;
    }
    if (e > limit) {
      e = limit;
    }
    if (e > now) {
      now = e;
    }
    h3wt_quic_conn_handle_expiry(cli->qc, now);
    if (srv->qc) {
      h3wt_quic_conn_handle_expiry(srv->qc, now);
    }
  }
  return 1;
}

/* Sends GET /sansio and runs until the whole answer (body_chunks x 10 KB)
   is in; returns 1 if it is. */
static int pair_get(pair *p, int max_rounds) {
  side *cli = &p->cli;
  int requested = 0, start = p->rounds;
  cli->closed = 0;
  cli->status = 0;
  cli->body_received = 0;
  cli->body_hash = 0;
  p->srv.path[0] = '\0';
  while (!cli->closed && p->rounds - start < max_rounds) {
    if (!requested && h3wt_h3_started(cli->owner.h3)) {
      int64_t sid;
      h3wt_header h[] = {{":method", 7, "GET", 3},
                         {":scheme", 7, "https", 5},
                         {":authority", 10, "localhost", 9},
                         {":path", 5, "/sansio", 7}};
      CHECK_EQ_INT(h3wt_h3_submit_request(cli->owner.h3, h, 4, 0, NULL, &sid),
                   0);
      requested = 1;
    }
    if (!pair_step(p, UINT64_MAX)) {
      break;
    }
  }
  if (getenv("H3WT_TEST_VERBOSE")) {
    fprintf(stderr, "rounds %d, burst %zu, sent %u, dropped %u, now %llu ms, closing %d/%d\n", p->rounds, max_write_pkts, sent_count, dropped_count, (unsigned long long)(now / 1000000), h3wt_quic_conn_is_closing(cli->qc), p->srv.qc ? h3wt_quic_conn_is_closing(p->srv.qc) : -1);
  }
  TEST_CONTEXT("loss 1/%u: closed %d status %d body %zu order-ok %d path %s",
               drop_every, cli->closed, cli->status, cli->body_received,
               !cli->body_hash, p->srv.path);
  return cli->closed && cli->status == 200 &&
         cli->body_received == (size_t)body_chunks * 10000 &&
         cli->body_hash == 0 && strcmp(p->srv.path, "/sansio") == 0;
}

/* Lets the pair run for ns of virtual time with nothing to do but what
   their timers ask for (acknowledgements, keep-alives). */
static void pair_idle(pair *p, uint64_t ns) {
  uint64_t until = now + ns;
  while (now < until && pair_step(p, until)) {
  }
}

static void pair_close(pair *p) {
  h3wt_streams_conn_del(p->cli.owner.h3);
  h3wt_quic_conn_del(p->cli.qc);
  if (p->srv.qc) {
    h3wt_streams_conn_del(p->srv.owner.h3);
    h3wt_quic_conn_del(p->srv.qc);
  }
  h3wt_sendq_free(&p->srv.body);
  h3wt_tls_ctx_del(p->stls);
  h3wt_tls_ctx_del(p->ctls);
  free(p->to_server.p);
  free(p->to_client.p);
  unlink(p->cert);
  unlink(p->key);
  rmdir(p->dir);
}

/* Runs the exchange; returns 1 when the client saw the whole response.
   With retry the server first answers with a Retry. */
static int run_exchange(unsigned loss_every, int retry, size_t *pkts,
                        uint64_t *ms) {
  static pair p;
  int ok;

  pair_open(&p, loss_every, retry);
  ok = pair_get(&p, 2000);
  CHECK(ok);
  h3wt_peer_fc pf;
  CHECK_EQ_INT(h3wt_h3_peer_fc(p.srv.owner.h3, &pf), 1);
  CHECK(pf.max_data == 12345 && pf.max_streams_bidi == 3 &&
        pf.max_streams_uni == 3);
  CHECK_EQ_INT(h3wt_h3_peer_fc(p.cli.owner.h3, &pf), 1);
  CHECK(pf.max_data == 65536 && pf.max_streams_bidi == 7 &&
        pf.max_streams_uni == 7);
  *pkts = sent_count;
  *ms = 0;
  pair_close(&p);
  return ok;
}

TEST(request_without_sockets) {
  size_t pkts;
  uint64_t ms;
  CHECK(run_exchange(0, 0, &pkts, &ms));
  CHECK(pkts > 10);
  CHECK_EQ_INT(dropped_count, 0);
}

TEST(request_after_retry) {
  size_t pkts;
  uint64_t ms;
  /* Address validation: a Retry, then the client's Initial with the token
     (checked against forgery, another address and expiry), then the whole
     exchange; ngtcp2 on the client checks the server's transport
     parameters name the Retry's connection IDs. */
  CHECK(run_exchange(0, 1, &pkts, &ms));
}

TEST(request_with_packet_loss) {
  size_t pkts;
  uint64_t ms;
  /* One packet in 7, then one in 3, lost at random (seeded), handshake
     included: loss recovery and the PTO timer (driven by expiry) must
     still deliver the 100 KB in order. */
  CHECK(run_exchange(7, 0, &pkts, &ms));
  CHECK(dropped_count > 0);
  CHECK(run_exchange(3, 0, &pkts, &ms));
  CHECK(dropped_count > 0);
}

/* After its handshake a server keeps no TLS session (h3wt_quic.c,
   tls_release): what needed one must still work without it. */

#define SEC 1000000000ULL

static void open_and_get(pair *p) {
  pair_open(p, 0, 0);
  CHECK(pair_get(p, 2000));
  CHECK(h3wt_quic_conn_tls(p->srv.qc) == NULL);
  /* A client keeps its own: session tickets come after the handshake. */
  CHECK(h3wt_quic_conn_tls(p->cli.qc) != NULL);
}

TEST(key_updates_without_server_tls) {
  static pair p;
  open_and_get(&p);
  /* RFC 9001 6: each side may update the keys; the server follows the
     client's update and makes its own from the secrets ngtcp2 keeps.  A
     key it could not derive would lose every packet after the update. */
  for (int i = 0; i < 4; ++i) {
    h3wt_quic_conn *qc = i % 2 ? p.srv.qc : p.cli.qc;
    TEST_CONTEXT("key update %d by the %s", i + 1, i % 2 ? "server" : "client");
    /* ngtcp2 allows one once the last is confirmed and its old keys gone
       (3 PTO), with the next keys made at a read or write after that. */
    pair_idle(&p, 2 * SEC);
    pair_step(&p, now);
    CHECK_EQ_INT(h3wt_quic_conn_initiate_key_update(qc, now), 0);
    CHECK(pair_get(&p, 2000));
  }
  CHECK(!h3wt_quic_conn_is_closing(p.srv.qc));
  CHECK(!h3wt_quic_conn_is_closing(p.cli.qc));
  pair_close(&p);
}

TEST(nat_rebinding_without_server_tls) {
  static pair p;
  open_and_get(&p);
  /* The client's packets now come from another port, then another
     address: the server validates each new path (PATH_CHALLENGE) and
     moves the connection to it. */
  p.cli_seen.sin_port = htons(50001);
  CHECK(pair_get(&p, 2000));
  const struct sockaddr_in *r =
      (const struct sockaddr_in *)h3wt_quic_conn_remote(p.srv.qc);
  CHECK_EQ_INT(ntohs(r->sin_port), 50001);
  inet_pton(AF_INET, "10.0.0.3", &p.cli_seen.sin_addr);
  CHECK(pair_get(&p, 2000));
  r = (const struct sockaddr_in *)h3wt_quic_conn_remote(p.srv.qc);
  CHECK(r->sin_addr.s_addr == p.cli_seen.sin_addr.s_addr);
  pair_close(&p);
}

TEST(hours_idle_without_server_tls) {
  static pair p;
  open_and_get(&p);
  /* Three hours of virtual time kept alive by the client's PINGs every
     10 s (the idle timeout is 30 s), then a request, a key update and
     another request. */
  h3wt_quic_set_keep_alive(p.cli.qc, 10 * SEC);
  unsigned sent_before = sent_count;
  pair_idle(&p, 3 * 3600 * SEC);
  CHECK(sent_count - sent_before >= 3 * 360); /* PINGs and their ACKs */
  CHECK(!h3wt_quic_conn_is_closing(p.srv.qc));
  CHECK(pair_get(&p, 2000));
  pair_step(&p, now);
  CHECK_EQ_INT(h3wt_quic_conn_initiate_key_update(p.srv.qc, now), 0);
  CHECK(pair_get(&p, 2000));
  pair_close(&p);
}

static int alert_seen;
static void log_alert(h3wt_log_level level, const char *component,
                      const char *msg, void *ud) {
  if (strstr(msg, "TLS alert 10 after the handshake")) {
    ++alert_seen;
  }
}

TEST(crypto_data_after_handshake_closes) {
  static pair p;
  static h3wt_logger catch_alert = {log_alert, NULL, H3WT_LOG_INFO};
  open_and_get(&p);
  /* A client has nothing to say in TLS after its handshake (RFC 9001 6:
     no KeyUpdate): the server, with no TLS session left to hand it to,
     answers CRYPTO_ERROR with unexpected_message (0x10a), as wolfSSL
     would have. */
  p.scfg.log = &catch_alert;
  alert_seen = 0;
  static const uint8_t key_update[] = {24, 0, 0, 1, 0}; /* KeyUpdate */
  CHECK_EQ_INT(h3wt_quic_conn_submit_crypto_1rtt(p.cli.qc, key_update,
                                                 sizeof(key_update)),
               0);
  for (int i = 0; i < 50 && !h3wt_quic_conn_is_closing(p.cli.qc); ++i) {
    pair_step(&p, UINT64_MAX);
  }
  CHECK_EQ_INT(alert_seen, 1);
  CHECK(h3wt_quic_conn_is_closing(p.srv.qc));
  CHECK(h3wt_quic_conn_is_closing(p.cli.qc));
  CHECK_EQ_INT(h3wt_quic_conn_end_reason(p.srv.qc), H3WT_ERR_QUIC);
  CHECK_EQ_INT(h3wt_quic_conn_end_reason(p.cli.qc), H3WT_ERR_QUIC);
  pair_close(&p);
}

TEST(ecn_marks_sent_and_validated) {
  size_t pkts;
  uint64_t ms;
  /* Marks travel both ways (h3wt_quic_conn_read hands them to ngtcp2,
     which echoes their counts in ACK frames): ECN validation succeeds and
     the data packets go ECT(0). */
  CHECK(run_exchange(0, 0, &pkts, &ms));
  TEST_CONTEXT("server sent not-ECT %u ECT(0) %u; client %u/%u",
               ecn_sent[0][0], ecn_sent[0][2], ecn_sent[1][0], ecn_sent[1][2]);
  CHECK(ecn_sent[0][2] > 50); /* the 100 KB response, ECT(0) */
  CHECK(ecn_sent[0][2] > ecn_sent[0][0]);
  CHECK(ecn_sent[1][2] > 0);
  CHECK_EQ_INT(ecn_sent[0][1] + ecn_sent[0][3], 0);
}

TEST(ecn_bleached_path_falls_back) {
  size_t pkts;
  uint64_t ms;
  /* A path that clears the marks: the ACKs count none, validation fails
     (RFC 9000 13.4.2) and the sender stops marking; the exchange
     completes all the same. */
  bleach_ecn = 1;
  int ok = run_exchange(0, 0, &pkts, &ms);
  bleach_ecn = 0;
  CHECK(ok);
  TEST_CONTEXT("server sent not-ECT %u ECT(0) %u", ecn_sent[0][0],
               ecn_sent[0][2]);
  /* Only the validation packets (at most 10, RFC 9000 A.4) carry it. */
  CHECK(ecn_sent[0][2] <= 10);
  CHECK(ecn_sent[0][0] > 50);
}

TEST(writes_stay_within_the_send_quantum) {
  size_t pkts;
  uint64_t ms;
  /* A 3 MB response, which lets the congestion window outgrow the send
     quantum (64 KiB for CUBIC: 45 packets of 1,452 bytes): it leaves in
     bursts no larger than that, paced (unpaced, up to 64 at once). */
  body_chunks = 300;
  int ok = run_exchange(0, 0, &pkts, &ms);
  body_chunks = 10;
  CHECK(ok);
  TEST_CONTEXT("largest burst %zu packets", max_write_pkts);
  CHECK(max_write_pkts > 1);
  CHECK(max_write_pkts <= 65536 / 1452);
}

TEST(endpoint_helpers) {
  uint8_t vn[1200], out[1500];
  h3wt_quic_pkt_info pi;
  uint8_t secret[32] = {7};
  memset(vn, 0, sizeof(vn));
  /* A long header with an unknown version asks for version negotiation. */
  vn[0] = 0xc0;
  vn[1] = 0x1a;
  vn[2] = 0x2a;
  vn[3] = 0x3a;
  vn[4] = 0x4a;
  vn[5] = 8;
  memset(vn + 6, 0xaa, 8);
  vn[14] = 8;
  memset(vn + 15, 0xbb, 8);
  CHECK_EQ_INT(h3wt_quic_decode(vn, sizeof(vn), &pi), 1);
  ssize_t n = h3wt_quic_write_version_negotiation(out, sizeof(out), &pi);
  CHECK(n > 0);
  CHECK(out[0] & 0x80);
  CHECK(out[1] == 0 && out[2] == 0 && out[3] == 0 && out[4] == 0);
  /* It echoes the client's IDs swapped (RFC 9000 17.2.1). */
  CHECK_EQ_INT(out[5], 8);
  CHECK(out[6] == 0xbb);
  /* Garbage is not QUIC. */
  CHECK_EQ_INT(h3wt_quic_decode(vn, 3, &pi), -1);
  uint8_t bad[] = {0xc0, 0, 0, 0, 1, 30}; /* DCID length 30 > 20 */
  CHECK_EQ_INT(h3wt_quic_decode(bad, sizeof(bad), &pi), -1);
  /* A stateless reset is always shorter than what triggered it. */
  uint8_t dcid[18];
  memset(dcid, 1, sizeof(dcid));
  for (size_t len = 0; len < 1500; len += 37) {
    size_t r = h3wt_quic_write_stateless_reset(out, sizeof(out), secret, dcid,
                                               sizeof(dcid), len);
    TEST_CONTEXT("packet of %zu bytes -> reset of %zu", len, r);
    CHECK(r == 0 || r < len);
    CHECK(len < 41 || r >= 21 + 1);
  }
}

int main(int argc, char **argv) {
  static const h3wt_test_case tests[] = {
      TEST_ENTRY(request_without_sockets),
      TEST_ENTRY(request_after_retry),
      TEST_ENTRY(ecn_marks_sent_and_validated),
      TEST_ENTRY(ecn_bleached_path_falls_back),
      TEST_ENTRY(writes_stay_within_the_send_quantum),
      TEST_ENTRY(request_with_packet_loss),
      TEST_ENTRY(endpoint_helpers),
      TEST_ENTRY(key_updates_without_server_tls),
      TEST_ENTRY(nat_rebinding_without_server_tls),
      TEST_ENTRY(hours_idle_without_server_tls),
      TEST_ENTRY(crypto_data_after_handshake_closes),
  };
  return TEST_MAIN(argc, argv, tests);
}
