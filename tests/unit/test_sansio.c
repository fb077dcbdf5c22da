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

/* Runs the exchange; returns 1 when the client saw the whole response.
   With retry the server first answers with a Retry. */
static int run_exchange(unsigned loss_every, int retry, size_t *pkts,
                        uint64_t *ms) {
  char dir[] = "/tmp/h3wt-sansio-XXXXXX", cert[128], key[128], err[256];
  h3wt_tls_ctx *stls, *ctls;
  h3wt_tls_ctx_opts so = {0}, co = {0};
  h3wt_quic_callbacks cbs = {0};
  h3wt_quic_config scfg = {0}, ccfg;
  h3wt_h3_callbacks shc = {0}, chc = {0};
  h3wt_h3_config shcfg = {0}, chcfg = {0};
  h3wt_wt_limits wl;
  queue to_server = {calloc(QCAP, sizeof(pkt)), 0};
  queue to_client = {calloc(QCAP, sizeof(pkt)), 0};
  side srv = {0}, cli = {0};
  uint8_t txbuf[H3WT_QUIC_TXBUF_MIN];
  int rounds = 0, ok;

  drop_every = loss_every;
  sent_count = dropped_count = 0;
  memset(ecn_sent, 0, sizeof(ecn_sent));
  max_write_pkts = 0;
  lcg_state = 12345u + loss_every;
  CHECK(mkdtemp(dir) != NULL);
  snprintf(cert, sizeof(cert), "%s/c.pem", dir);
  snprintf(key, sizeof(key), "%s/k.pem", dir);
  CHECK_EQ_INT(h3wt_devcert_make(cert, key, err, sizeof(err)), 0);
  so.cert_file = cert;
  so.key_file = key;
  co.insecure = 1;
  CHECK_EQ_INT(h3wt_tls_server_ctx_new(&stls, &so, err, sizeof(err)), 0);
  CHECK_EQ_INT(h3wt_tls_client_ctx_new(&ctls, &co, err, sizeof(err)), 0);

  h3wt_streams_fill_quic_callbacks(&cbs);
  cbs.send = q_send;
  cbs.cid_added = q_cid_added;
  scfg.log = &quiet;
  scfg.tls = stls;
  scfg.cbs = &cbs;
  scfg.idle_timeout_ns = 30ULL * 1000000000ULL;
  scfg.handshake_timeout_ns = 10ULL * 1000000000ULL;
  scfg.max_streams_bidi = 10;
  scfg.max_streams_uni = 8;
  scfg.max_stream_data = 256 * 1024;
  scfg.max_data = 1024 * 1024;
  scfg.max_datagram_frame_size = 1200;
  scfg.txbuf = txbuf;
  scfg.txbuflen = sizeof(txbuf);
  scfg.pacing = 1;
  ccfg = scfg;
  ccfg.tls = ctls;

  shc.begin_headers = s_begin;
  shc.recv_header = s_header;
  shc.end_headers = s_end_headers;
  shc.read_body = s_read_body;
  shc.acked_body = s_acked;
  shcfg.log = &quiet;
  shcfg.cbs = &shc;
  shcfg.max_field_section_size = 16384;
  shcfg.max_streams_bidi = 10;
  chc.begin_headers = c_begin;
  chc.recv_header = c_header;
  chc.recv_data = c_data;
  chc.stream_close = c_close;
  /* WebTransport on, each side offering its own session flow-control
     limits: each must read the other's from its SETTINGS (which travel
     under the same loss as everything else). */
  h3wt_wt_limits_default(&wl);
  shcfg.wt = &wl;
  shcfg.wt_fc_max_data = 65536;
  shcfg.wt_fc_max_streams = 7;
  chcfg = shcfg;
  chcfg.cbs = &chc;
  chcfg.wt_fc_max_data = 12345;
  chcfg.wt_fc_max_streams = 3;

  srv.out = &to_client;
  cli.out = &to_server;
  h3wt_sendq_init(&srv.body);
  srv.self.sin_family = cli.self.sin_family = AF_INET;
  srv.self.sin_port = htons(4433);
  cli.self.sin_port = htons(50000);
  inet_pton(AF_INET, "10.0.0.1", &srv.self.sin_addr); /* never on a wire */
  inet_pton(AF_INET, "10.0.0.2", &cli.self.sin_addr);

  CHECK_EQ_INT(h3wt_quic_conn_client_new(&cli.qc, &ccfg,
                                         (struct sockaddr *)&cli.self,
                                         (struct sockaddr *)&srv.self,
                                         "localhost", now, &cli),
               0);
  CHECK_EQ_INT(h3wt_streams_conn_new(&cli.owner.h3, &chcfg, cli.qc, 0, &cli), 0);
  int requested = 0;
  while (!cli.closed && rounds < 2000) {
    ++rounds;
    h3wt_quic_conn_write(cli.qc, now);
    if (!srv.qc && to_server.n && retry &&
        retry_step(&scfg, &srv, &cli, &to_server)) {
      continue;
    }
    if (!srv.qc && to_server.n) {
      /* The server side sees its first datagram: accept it. */
      CHECK_EQ_INT(h3wt_quic_conn_server_new(
                       &srv.qc, &scfg, (struct sockaddr *)&srv.self,
                       (struct sockaddr *)&cli.self, to_server.p[0].data,
                       to_server.p[0].len, now, &srv),
                   0);
      CHECK_EQ_INT(h3wt_streams_conn_new(&srv.owner.h3, &shcfg, srv.qc, 1, &srv),
                   0);
    }
    if (srv.qc) {
      deliver(&srv, &to_server, &cli);
      size_t before = to_client.n;
      h3wt_quic_conn_write(srv.qc, now);
      if (to_client.n - before > max_write_pkts) {
        max_write_pkts = to_client.n - before;
      }
    } else {
      to_server.n = 0; /* the first Initial was lost */
    }
    deliver(&cli, &to_client, &srv);
    if (!requested && h3wt_h3_started(cli.owner.h3)) {
      int64_t sid;
      h3wt_header h[] = {{":method", 7, "GET", 3},
                         {":scheme", 7, "https", 5},
                         {":authority", 10, "localhost", 9},
                         {":path", 5, "/sansio", 7}};
      CHECK_EQ_INT(h3wt_h3_submit_request(cli.owner.h3, h, 4, 0, NULL, &sid),
                   0);
      requested = 1;
    }
    if (to_server.n == 0 && to_client.n == 0) {
      /* Quiet: jump the clock to the next deadline, as a loop would. */
      uint64_t e1 = h3wt_quic_conn_expiry(cli.qc);
      uint64_t e2 = srv.qc ? h3wt_quic_conn_expiry(srv.qc) : UINT64_MAX;
      uint64_t e = e1 < e2 ? e1 : e2;
      if (e == UINT64_MAX) {
        break;
      }
      if (e > now) {
        now = e;
      }
      h3wt_quic_conn_handle_expiry(cli.qc, now);
      if (srv.qc) {
        h3wt_quic_conn_handle_expiry(srv.qc, now);
      }
    }
  }
  if (getenv("H3WT_TEST_VERBOSE")) {
    fprintf(stderr, "rounds %d, burst %zu, sent %u, dropped %u, now %llu ms, closing %d/%d\n", rounds, max_write_pkts, sent_count, dropped_count, (unsigned long long)(now / 1000000), h3wt_quic_conn_is_closing(cli.qc), srv.qc ? h3wt_quic_conn_is_closing(srv.qc) : -1);
  }
  ok = cli.closed && cli.status == 200 &&
       cli.body_received == (size_t)body_chunks * 10000 &&
       cli.body_hash == 0 && strcmp(srv.path, "/sansio") == 0;
  TEST_CONTEXT("loss 1/%u: closed %d status %d body %zu order-ok %d path %s",
               loss_every, cli.closed, cli.status, cli.body_received,
               !cli.body_hash, srv.path);
  CHECK(ok);
  h3wt_peer_fc pf;
  CHECK_EQ_INT(h3wt_h3_peer_fc(srv.owner.h3, &pf), 1);
  CHECK(pf.max_data == 12345 && pf.max_streams_bidi == 3 &&
        pf.max_streams_uni == 3);
  CHECK_EQ_INT(h3wt_h3_peer_fc(cli.owner.h3, &pf), 1);
  CHECK(pf.max_data == 65536 && pf.max_streams_bidi == 7 &&
        pf.max_streams_uni == 7);
  *pkts = sent_count;
  *ms = 0;
  h3wt_streams_conn_del(cli.owner.h3);
  h3wt_quic_conn_del(cli.qc);
  h3wt_streams_conn_del(srv.owner.h3);
  h3wt_quic_conn_del(srv.qc);
  h3wt_sendq_free(&srv.body);
  h3wt_tls_ctx_del(stls);
  h3wt_tls_ctx_del(ctls);
  free(to_server.p);
  free(to_client.p);
  unlink(cert);
  unlink(key);
  rmdir(dir);
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
  };
  return TEST_MAIN(argc, argv, tests);
}
