/*
 * h3wt_udp: the UDP socket on the host's libuv loop.  Receives in batches
 * with recvmmsg of its own (a uv_poll_t on the descriptor: libuv's UDP
 * handle reads at most 20 datagrams per call and hands over no control
 * messages) into one buffer owned by the socket, so the receive path
 * allocates nothing, and reads the ECN bits of every datagram; sends with
 * sendmsg directly on the descriptor, several equal-sized packets per call
 * with UDP GSO where the kernel has it, marked with the ECN codepoint QUIC
 * asks for.
 */
#ifndef H3WT_UDP_H
#define H3WT_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "h3wt_util.h"

typedef struct h3wt_udp h3wt_udp;

/* One received datagram.  data is borrowed for the call; ecn is the ECN
   codepoint it arrived with (the low two bits of the IP TOS or IPv6
   traffic class: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE). */
typedef void (*h3wt_udp_recv_cb)(h3wt_udp *udp, const struct sockaddr *remote,
                                 const uint8_t *data, size_t len,
                                 unsigned ecn, uint64_t ts, void *user_data);

typedef struct h3wt_udp_stats {
  uint64_t rx_datagrams, rx_bytes, rx_syscalls;
  uint64_t rx_ecn[4]; /* datagrams received per ECN codepoint */
  uint64_t tx_datagrams, tx_bytes, tx_syscalls, tx_dropped;
  uint64_t tx_ect; /* datagrams sent marked ECT(0) or ECT(1) */
} h3wt_udp_stats;

/* Datagrams per recvmmsg call. */
#define H3WT_UDP_RX_BATCH 32

struct h3wt_udp {
  uv_poll_t handle;
  uint8_t *rbuf; /* H3WT_UDP_RX_BATCH slots of 64 KiB, and the headers */
  size_t rbuflen;
  struct mmsghdr *msgs;
  h3wt_udp_recv_cb recv_cb;
  void *user_data;
  const h3wt_logger *log;
  struct sockaddr_storage local; /* as bound */
  socklen_t locallen;
  int fd;
  int gso;    /* 1 while UDP_SEGMENT works */
  int closed; /* uv_close was called */
  uv_close_cb close_cb;
  void *close_data;
  h3wt_udp_stats stats;
};

/* A UDP socket bound to addr (with SO_REUSEPORT when reuseport is set;
   dual-stack for an IPv6 wildcard).  Returns it, or H3WT_ERR_ADDRESS or
   H3WT_ERR_IO (with the reason logged). */
int h3wt_udp_socket(const struct sockaddr *addr, int reuseport,
                    const h3wt_logger *log);

/* Binds to addr (port 0: ephemeral) on loop and starts receiving.  For an
   IPv6 wildcard, dual-stack is requested.  Returns 0, H3WT_ERR_ADDRESS or
   H3WT_ERR_IO (with the reason logged). */
int h3wt_udp_open(h3wt_udp *udp, uv_loop_t *loop, const struct sockaddr *addr,
                  const h3wt_logger *log, h3wt_udp_recv_cb recv_cb,
                  void *user_data);

/* The same on a socket made and bound elsewhere (a server group's), which
   the handle owns from now on (closed with it, or here on failure). */
int h3wt_udp_open_fd(h3wt_udp *udp, uv_loop_t *loop, int fd,
                     const h3wt_logger *log, h3wt_udp_recv_cb recv_cb,
                     void *user_data);

/* Sends len bytes to remote.  With gso_size > 0 and len > gso_size, data is
   several packets of gso_size bytes (the last may be shorter) sent in one
   call.  ecn (0-3) goes into the IP TOS / traffic class of each.  A full
   socket buffer drops the datagrams (QUIC retransmits) and counts them.
   Returns 0 or H3WT_ERR_IO. */
int h3wt_udp_send(h3wt_udp *udp, const struct sockaddr *remote,
                  const uint8_t *data, size_t len, size_t gso_size,
                  unsigned ecn);

/* Closes the handle; safe from inside the receive callback (the rest of
   the batch is ignored, and the receive buffer lives until libuv lets go).
   close_cb (may be NULL) runs when libuv is done with the handle, with
   handle->data set to close_data; then the memory may be reused. */
void h3wt_udp_close(h3wt_udp *udp, uv_close_cb close_cb, void *close_data);

#endif /* H3WT_UDP_H */
