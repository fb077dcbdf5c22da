/*
 * h3wt_udp: batched UDP receive (recvmmsg of its own, with the ECN bits) and
 * GSO send on a libuv poll handle.
 */
#define _GNU_SOURCE /* recvmmsg */
#include "h3wt_udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* One slot per datagram of a batch, each as large as a UDP payload can be
   (QUIC allows peers up to 65527 bytes): only the pages a datagram touches
   become resident. */
#define SLOT 65536
#define SLOTS H3WT_UDP_RX_BATCH
/* recvmmsg calls per wake-up before the loop gets its turn again (the
   descriptor stays readable, so the rest is read on the next iteration). */
#define ROUNDS 8

/* Room for the TOS (IPv4) or traffic class (IPv6) control message. */
#define RX_CMSG_SPACE (CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(int)))

typedef struct rx_meta {
  struct sockaddr_storage name;
  struct iovec iov;
  union {
    char buf[RX_CMSG_SPACE];
    struct cmsghdr align;
  } control;
} rx_meta;

static unsigned rx_ecn(struct msghdr *m) {
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
    if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TOS &&
        cm->cmsg_len >= CMSG_LEN(1)) {
      return CMSG_DATA(cm)[0] & 3;
    }
    if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_TCLASS &&
        cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int tc;
      memcpy(&tc, CMSG_DATA(cm), sizeof(tc));
      return (unsigned)tc & 3;
    }
  }
  return 0;
}

static void poll_cb(uv_poll_t *handle, int status, int events) {
  h3wt_udp *udp = handle->data;
  rx_meta *meta = (rx_meta *)(udp->msgs + SLOTS);
  (void)events;
  if (status < 0) {
    H3WT_LOG(udp->log, H3WT_LOG_WARN, "udp", "poll: %s", uv_strerror(status));
    return;
  }
  for (int round = 0; round < ROUNDS && !udp->closed; ++round) {
    for (int i = 0; i < SLOTS; ++i) {
      struct msghdr *h = &udp->msgs[i].msg_hdr;
      h->msg_namelen = sizeof(meta[i].name);
      h->msg_controllen = sizeof(meta[i].control.buf);
      h->msg_flags = 0;
    }
    int n = recvmmsg(udp->fd, udp->msgs, SLOTS, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        /* ICMP errors (ECONNREFUSED and the like) surface here on some
           kernels: nothing to do but read on. */
        H3WT_LOG(udp->log, H3WT_LOG_DEBUG, "udp", "recvmmsg: %s",
                 strerror(errno));
      }
      return;
    }
    ++udp->stats.rx_syscalls;
    uint64_t ts = h3wt_now_ns();
    for (int i = 0; i < n && !udp->closed; ++i) {
      struct msghdr *h = &udp->msgs[i].msg_hdr;
      size_t len = udp->msgs[i].msg_len;
      if ((h->msg_flags & MSG_TRUNC) || len == 0) {
        continue; /* larger than any QUIC datagram, or empty */
      }
      unsigned ecn = rx_ecn(h);
      ++udp->stats.rx_datagrams;
      ++udp->stats.rx_ecn[ecn];
      udp->stats.rx_bytes += len;
      udp->recv_cb(udp, (const struct sockaddr *)&meta[i].name,
                   (const uint8_t *)meta[i].iov.iov_base, len, ecn, ts,
                   udp->user_data);
    }
    if (n < SLOTS) {
      return; /* drained */
    }
  }
}

/* The common start: udp->fd is bound; sets what the socket is used with
   and starts receiving. */
static int udp_start(h3wt_udp *udp, uv_loop_t *loop) {
  int one = 1;
  socklen_t len = sizeof(udp->local);
  getsockname(udp->fd, (struct sockaddr *)&udp->local, &len);
  udp->locallen = len;
  udp->gso = 1;
  /* Big socket buffers: a burst of handshakes or a fast sender must not
     overflow the kernel queue between two loop iterations. */
  int sz = 4 * 1024 * 1024;
  setsockopt(udp->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  setsockopt(udp->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  /* The ECN bits of what arrives (RFC 9000 13.4): the TOS byte for IPv4,
     the traffic class for IPv6; a dual-stack socket gets IPv4 traffic's
     TOS as well.  Where the kernel refuses, every datagram reads Not-ECT
     and ngtcp2 simply never validates ECN. */
  if (udp->local.ss_family == AF_INET6) {
    setsockopt(udp->fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one));
  }
  setsockopt(udp->fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
  int rv = uv_poll_init(loop, &udp->handle, udp->fd);
  if (rv != 0) {
    H3WT_LOG(udp->log, H3WT_LOG_ERROR, "udp", "poll_init: %s",
             uv_strerror(rv));
    close(udp->fd);
    udp->fd = -1;
    free(udp->rbuf);
    udp->rbuf = NULL;
    udp->closed = 1;
    return H3WT_ERR_IO;
  }
  udp->handle.data = udp;
  rv = uv_poll_start(&udp->handle, UV_READABLE, poll_cb);
  if (rv != 0) {
    H3WT_LOG(udp->log, H3WT_LOG_ERROR, "udp", "poll_start: %s",
             uv_strerror(rv));
    h3wt_udp_close(udp, NULL, NULL);
    return H3WT_ERR_IO;
  }
  return 0;
}

/* The receive buffer and the recvmmsg headers pointing into it. */
static int udp_init(h3wt_udp *udp, const h3wt_logger *log,
                    h3wt_udp_recv_cb rcb, void *user_data) {
  memset(udp, 0, sizeof(*udp));
  udp->log = log;
  udp->recv_cb = rcb;
  udp->user_data = user_data;
  udp->fd = -1;
  udp->rbuflen = (size_t)SLOT * SLOTS;
  /* One allocation: the slots, then the headers and their metadata. */
  udp->rbuf = malloc(udp->rbuflen + SLOTS * (sizeof(struct mmsghdr) +
                                             sizeof(rx_meta)));
  if (!udp->rbuf) {
    return H3WT_ERR_NOMEM;
  }
  udp->msgs = (struct mmsghdr *)(udp->rbuf + udp->rbuflen);
  rx_meta *meta = (rx_meta *)(udp->msgs + SLOTS);
  memset(udp->msgs, 0, SLOTS * (sizeof(struct mmsghdr) + sizeof(rx_meta)));
  for (int i = 0; i < SLOTS; ++i) {
    struct msghdr *h = &udp->msgs[i].msg_hdr;
    meta[i].iov.iov_base = udp->rbuf + (size_t)i * SLOT;
    meta[i].iov.iov_len = SLOT;
    h->msg_name = &meta[i].name;
    h->msg_iov = &meta[i].iov;
    h->msg_iovlen = 1;
    h->msg_control = meta[i].control.buf;
  }
  return 0;
}

static socklen_t addr_len(const struct sockaddr *sa) {
  return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
}

int h3wt_udp_socket(const struct sockaddr *addr, int reuseport,
                    const h3wt_logger *log) {
  char name[64];
  int one = 1, zero = 0;
  int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  IPPROTO_UDP);
  if (fd < 0) {
    H3WT_LOG(log, H3WT_LOG_ERROR, "udp", "socket: %s", strerror(errno));
    return H3WT_ERR_IO;
  }
  if (reuseport &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    H3WT_LOG(log, H3WT_LOG_ERROR, "udp", "SO_REUSEPORT: %s", strerror(errno));
    close(fd);
    return H3WT_ERR_IO;
  }
  /* Dual-stack on an IPv6 wildcard, whatever the system's default. */
  if (addr->sa_family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  }
  if (bind(fd, addr, addr_len(addr)) != 0) {
    h3wt_addr_format(addr, name, sizeof(name));
    H3WT_LOG(log, H3WT_LOG_ERROR, "udp", "bind %s: %s", name,
             strerror(errno));
    close(fd);
    return H3WT_ERR_ADDRESS;
  }
  return fd;
}

int h3wt_udp_open(h3wt_udp *udp, uv_loop_t *loop, const struct sockaddr *addr,
                  const h3wt_logger *log, h3wt_udp_recv_cb rcb,
                  void *user_data) {
  /* Bound before libuv sees it: a busy address fails here, with no handle
     to close (so the caller may try another address with the same
     struct at once). */
  int fd = h3wt_udp_socket(addr, 0, log);
  if (fd < 0) {
    return fd;
  }
  return h3wt_udp_open_fd(udp, loop, fd, log, rcb, user_data);
}

int h3wt_udp_open_fd(h3wt_udp *udp, uv_loop_t *loop, int fd,
                     const h3wt_logger *log, h3wt_udp_recv_cb rcb,
                     void *user_data) {
  int rv = udp_init(udp, log, rcb, user_data);
  if (rv != 0) {
    close(fd);
    udp->closed = 1;
    return rv;
  }
  udp->fd = fd;
  return udp_start(udp, loop);
}

/* The socket may be IPv6 dual-stack while ngtcp2 hands us the peer address
   as it arrived (v4-mapped), so no conversion is needed; an IPv4 address to
   an IPv6 socket (client side) is mapped here. */
static const struct sockaddr *fit_family(h3wt_udp *udp,
                                         const struct sockaddr *remote,
                                         struct sockaddr_in6 *tmp) {
  if (udp->local.ss_family == AF_INET6 && remote->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)remote;
    memset(tmp, 0, sizeof(*tmp));
    tmp->sin6_family = AF_INET6;
    tmp->sin6_port = in->sin_port;
    tmp->sin6_addr.s6_addr[10] = 0xff;
    tmp->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&tmp->sin6_addr.s6_addr[12], &in->sin_addr, 4);
    return (const struct sockaddr *)tmp;
  }
  return remote;
}

/* An IPv4 destination, or an IPv4 one written v4-mapped for a dual-stack
   socket: its ECN mark goes in IP_TOS, not in the IPv6 traffic class. */
static int is_ipv4(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    return 1;
  }
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
  return sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
}

static ssize_t send_one(h3wt_udp *udp, const struct sockaddr *remote,
                        const uint8_t *data, size_t len, size_t gso_size,
                        unsigned ecn) {
  struct iovec iov = {(void *)data, len};
  struct msghdr msg;
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  size_t clen = 0;
  ssize_t n;
  memset(&msg, 0, sizeof(msg));
  msg.msg_name = (void *)remote;
  msg.msg_namelen = addr_len(remote);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if ((gso_size && len > gso_size) || ecn) {
    memset(&u, 0, sizeof(u));
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
  }
  struct cmsghdr *cm = msg.msg_control ? CMSG_FIRSTHDR(&msg) : NULL;
  if (gso_size && len > gso_size) {
    uint16_t seg = (uint16_t)gso_size;
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(seg));
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    clen += CMSG_SPACE(sizeof(seg));
    cm = CMSG_NXTHDR(&msg, cm);
  }
  if (ecn) {
    int tos = (int)(ecn & 3);
    cm->cmsg_level = is_ipv4(remote) ? IPPROTO_IP : IPPROTO_IPV6;
    cm->cmsg_type = is_ipv4(remote) ? IP_TOS : IPV6_TCLASS;
    cm->cmsg_len = CMSG_LEN(sizeof(tos));
    memcpy(CMSG_DATA(cm), &tos, sizeof(tos));
    clen += CMSG_SPACE(sizeof(tos));
  }
  msg.msg_controllen = clen;
  if (clen == 0) {
    msg.msg_control = NULL;
  }
  do {
    n = sendmsg(udp->fd, &msg, 0);
  } while (n < 0 && errno == EINTR);
  ++udp->stats.tx_syscalls;
  return n < 0 ? -errno : n;
}

int h3wt_udp_send(h3wt_udp *udp, const struct sockaddr *remote,
                  const uint8_t *data, size_t len, size_t gso_size,
                  unsigned ecn) {
  struct sockaddr_in6 tmp;
  size_t npkts = gso_size && len > gso_size ? (len + gso_size - 1) / gso_size
                                            : 1;
  if (udp->fd < 0 || udp->closed) {
    return H3WT_ERR_IO;
  }
  remote = fit_family(udp, remote, &tmp);
  if (npkts > 1 && udp->gso) {
    ssize_t n = send_one(udp, remote, data, len, gso_size, ecn);
    if (n >= 0) {
      udp->stats.tx_datagrams += npkts;
      udp->stats.tx_ect += (ecn == 1 || ecn == 2) ? npkts : 0;
      udp->stats.tx_bytes += len;
      return 0;
    }
    if (n != -EIO && n != -EINVAL && n != -ENOPROTOOPT && n != -EOPNOTSUPP) {
      /* A full socket buffer: drop the burst, loss recovery resends. */
      udp->stats.tx_dropped += npkts;
      H3WT_LOG(udp->log, H3WT_LOG_DEBUG, "udp", "sendmsg (GSO): %s",
               strerror((int)-n));
      return 0;
    }
    /* No GSO here (old kernel, or a device without checksum offload):
       fall back to one packet per call from now on. */
    H3WT_LOG(udp->log, H3WT_LOG_INFO, "udp", "UDP GSO unavailable (%s)",
             strerror((int)-n));
    udp->gso = 0;
  }
  for (size_t off = 0; off < len;) {
    size_t n1 = npkts > 1 ? (len - off < gso_size ? len - off : gso_size)
                          : len;
    ssize_t n = send_one(udp, remote, data + off, n1, 0, ecn);
    if (n < 0) {
      udp->stats.tx_dropped += (len - off + n1 - 1) / n1;
      if (n == -EAGAIN || n == -EWOULDBLOCK || n == -ENOBUFS) {
        return 0; /* dropped; loss recovery resends */
      }
      H3WT_LOG(udp->log, H3WT_LOG_DEBUG, "udp", "sendmsg: %s",
               strerror((int)-n));
      return H3WT_ERR_IO;
    }
    ++udp->stats.tx_datagrams;
    udp->stats.tx_ect += ecn == 1 || ecn == 2;
    udp->stats.tx_bytes += n1;
    off += n1;
  }
  return 0;
}

static void udp_closed(uv_handle_t *h) {
  h3wt_udp *udp = h->data;
  uv_close_cb cb = udp->close_cb;
  /* Only now is libuv done with the receive buffer. */
  free(udp->rbuf);
  udp->rbuf = NULL;
  udp->msgs = NULL;
  h->data = udp->close_data;
  if (cb) {
    cb(h);
  }
}

void h3wt_udp_close(h3wt_udp *udp, uv_close_cb close_cb, void *close_data) {
  if (udp->closed) {
    return;
  }
  udp->closed = 1;
  udp->close_cb = close_cb;
  udp->close_data = close_data;
  if (!uv_is_closing((uv_handle_t *)&udp->handle)) {
    /* uv_close stops watching the descriptor at once, so it may go. */
    uv_close((uv_handle_t *)&udp->handle, udp_closed);
  }
  if (udp->fd >= 0) {
    close(udp->fd);
  }
  udp->fd = -1;
}
