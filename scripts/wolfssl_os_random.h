/*
 * Forced into every wolfSSL source file by scripts/bootstrap.sh (-include)
 * together with
 *   -DCUSTOM_RAND_GENERATE_BLOCK=h3wt_wolfssl_os_random
 *   -DCUSTOM_RAND_GENERATE_SEED=h3wt_wolfssl_os_random
 * so that wolfSSL's random numbers come straight from the kernel's
 * generator (getrandom(2), the same ChaCha20-based CSPRNG wolfSSL's own
 * Hash-DRBG was seeded from) instead of a Hash-DRBG instantiated per use.
 *
 * Why: wolfSSL 5.7.2 instantiates a DRBG, with its SHA-256 known-answer
 * health test, for every WOLFSSL_EVP_PKEY it makes, and its QUIC HKDF
 * (wolfSSL_quic_hkdf_expand, which ngtcp2's crypto layer calls for every
 * packet-protection key, IV and header-protection key, and for stateless
 * reset tokens) makes one per call: 31 per QUIC handshake, about 60% of the
 * server's instructions per handshake (bench/README.md).  Without a DRBG
 * those are a malloc each.
 *
 * Not for the assembler: wolfSSL's .S files see the same CFLAGS.
 */
#ifndef __ASSEMBLER__
#ifndef H3WT_WOLFSSL_OS_RANDOM_H
#define H3WT_WOLFSSL_OS_RANDOM_H

#include <errno.h>
#include <sys/random.h>
#include <sys/types.h>

/* 0, or -1 when the kernel's generator fails (it does not once it is
   seeded; before that, getrandom blocks). */
static inline int h3wt_wolfssl_os_random(unsigned char *out, unsigned int sz) {
  while (sz > 0) {
    ssize_t n = getrandom(out, sz, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -1;
    }
    out += n;
    sz -= (unsigned int)n;
  }
  return 0;
}

#endif /* H3WT_WOLFSSL_OS_RANDOM_H */
#endif /* __ASSEMBLER__ */
