/*
 * h3wt_udp: batched UDP receive and GSO send on a libuv handle.
 */
#include "h3wt_udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* libuv's recvmmsg path splits the buffer into 64 KiB slots, one datagram
   each, and reads as many datagrams per call as there are slots, but never
   more than 20 (UV__MMSG_MAXWIDTH in src/unix/udp.c, libuv 1.x): slots past
   that are never filled, so the buffer has exactly 20 (1.25 MiB, not 2). */
#define SLOT 65536
#define SLOTS 20

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  h3wt_udp *udp = handle->data;
  /* One buffer, reused for every batch: libuv hands all its datagrams to
     recv_cb before asking for the buffer again. */
  buf->base = (char *)udp->rbuf;
  buf->len = udp->rbuflen;
}

static void recv_cb(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags) {
  h3wt_udp *udp = handle->data;
  if (udp->closed) {
    /* Closed by an earlier datagram of this batch: libuv still hands us
       the rest of it. */
    return;
  }
  if (nread < 0) {
    H3WT_LOG(udp->log, H3WT_LOG_WARN, "udp", "recv: %s",
             uv_strerror((int)nread));
    return;
  }
  if (!(flags & UV_UDP_MMSG_CHUNK)) {
    ++udp->stats.rx_syscalls;
  }
  if (nread == 0 || addr == NULL) {
    return; /* end of a batch, or nothing read */
  }
  if (flags & UV_UDP_PARTIAL) {
    return; /* larger than any QUIC datagram we accept */
  }
  ++udp->stats.rx_datagrams;
  udp->stats.rx_bytes += (uint64_t)nread;
  udp->recv_cb(udp, addr, (const uint8_t *)buf->base, (size_t)nread,
               h3wt_now_ns(), udp->user_data);
}

/* The common start: udp->handle has its socket (bound); sets what the
   socket is used with and starts receiving. */
static int udp_start(h3wt_udp *udp) {
  int len = (int)sizeof(udp->local);
  uv_udp_getsockname(&udp->handle, (struct sockaddr *)&udp->local, &len);
  udp->locallen = (socklen_t)len;
  uv_os_fd_t fd;
  uv_fileno((uv_handle_t *)&udp->handle, &fd);
  udp->fd = fd;
  udp->gso = 1;
  /* Big socket buffers: a burst of handshakes or a fast sender must not
     overflow the kernel queue between two loop iterations. */
  int sz = 4 * 1024 * 1024;
  uv_recv_buffer_size((uv_handle_t *)&udp->handle, &sz);
  sz = 4 * 1024 * 1024;
  uv_send_buffer_size((uv_handle_t *)&udp->handle, &sz);
  int rv = uv_udp_recv_start(&udp->handle, alloc_cb, recv_cb);
  if (rv != 0) {
    H3WT_LOG(udp->log, H3WT_LOG_ERROR, "udp", "recv_start: %s",
             uv_strerror(rv));
    h3wt_udp_close(udp, NULL, NULL);
    return H3WT_ERR_IO;
  }
  return 0;
}

/* The handle with recvmmsg, for a socket of ours (AF_UNSPEC: libuv makes
   none). */
static int udp_init(h3wt_udp *udp, uv_loop_t *loop, const h3wt_logger *log,
                    h3wt_udp_recv_cb rcb, void *user_data) {
  memset(udp, 0, sizeof(*udp));
  udp->log = log;
  udp->recv_cb = rcb;
  udp->user_data = user_data;
  udp->fd = -1;
  udp->rbuflen = SLOT * SLOTS;
  udp->rbuf = malloc(udp->rbuflen);
  if (!udp->rbuf) {
    return H3WT_ERR_NOMEM;
  }
  int rv = uv_udp_init_ex(loop, &udp->handle, AF_UNSPEC | UV_UDP_RECVMMSG);
  if (rv != 0) {
    free(udp->rbuf);
    udp->rbuf = NULL;
    H3WT_LOG(log, H3WT_LOG_ERROR, "udp", "socket: %s", uv_strerror(rv));
    return H3WT_ERR_IO;
  }
  udp->handle.data = udp;
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
  int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
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
  int rv = udp_init(udp, loop, log, rcb, user_data);
  if (rv != 0) {
    close(fd);
    return rv;
  }
  rv = uv_udp_open(&udp->handle, fd);
  if (rv != 0) {
    H3WT_LOG(log, H3WT_LOG_ERROR, "udp", "uv_udp_open: %s", uv_strerror(rv));
    close(fd);
    h3wt_udp_close(udp, NULL, NULL);
    return H3WT_ERR_IO;
  }
  /* uv_udp_open sets SO_REUSEADDR, with which another process's socket
     that sets it too could bind this port: off again. */
  int zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &zero, sizeof(zero));
  return udp_start(udp);
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

static ssize_t send_one(h3wt_udp *udp, const struct sockaddr *remote,
                        const uint8_t *data, size_t len, size_t gso_size) {
  struct iovec iov = {(void *)data, len};
  struct msghdr msg;
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } u;
  ssize_t n;
  memset(&msg, 0, sizeof(msg));
  msg.msg_name = (void *)remote;
  msg.msg_namelen = addr_len(remote);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (gso_size && len > gso_size) {
    uint16_t seg = (uint16_t)gso_size;
    memset(&u, 0, sizeof(u));
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(seg));
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
  }
  do {
    n = sendmsg(udp->fd, &msg, 0);
  } while (n < 0 && errno == EINTR);
  ++udp->stats.tx_syscalls;
  return n < 0 ? -errno : n;
}

int h3wt_udp_send(h3wt_udp *udp, const struct sockaddr *remote,
                  const uint8_t *data, size_t len, size_t gso_size) {
  struct sockaddr_in6 tmp;
  size_t npkts = gso_size && len > gso_size ? (len + gso_size - 1) / gso_size
                                            : 1;
  if (udp->fd < 0 || udp->closed) {
    return H3WT_ERR_IO;
  }
  remote = fit_family(udp, remote, &tmp);
  if (npkts > 1 && udp->gso) {
    ssize_t n = send_one(udp, remote, data, len, gso_size);
    if (n >= 0) {
      udp->stats.tx_datagrams += npkts;
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
    ssize_t n = send_one(udp, remote, data + off, n1, 0);
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
  udp->fd = -1;
  udp->close_cb = close_cb;
  udp->close_data = close_data;
  if (!uv_is_closing((uv_handle_t *)&udp->handle)) {
    uv_close((uv_handle_t *)&udp->handle, udp_closed);
  }
}
