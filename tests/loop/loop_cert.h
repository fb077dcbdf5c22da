/*
 * loop_cert.h: the development certificate every loop test serves with, in
 * a temporary directory of its own (header-only, like h3wt_test.h).
 *
 *   char dir[] = "/tmp/h3wt-x-XXXXXX", cert[128], key[128];
 *   CHECK_EQ_INT(loop_devcert(dir, cert, sizeof(cert), key, sizeof(key)), 0);
 *   ...
 *   loop_devcert_remove(dir, cert, key);
 */
#ifndef LOOP_CERT_H
#define LOOP_CERT_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "h3wt/h3wt.h"

/* Makes dir (a mkdtemp template) and dir/c.pem, dir/k.pem in it.
   Returns 0, or -1 with the reason on stderr. */
__attribute__((unused)) static int loop_devcert(char *dir, char *cert,
                                                size_t certlen, char *key,
                                                size_t keylen) {
  char err[256];
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return -1;
  }
  snprintf(cert, certlen, "%s/c.pem", dir);
  snprintf(key, keylen, "%s/k.pem", dir);
  if (h3wt_devcert_make(cert, key, err, sizeof(err)) != 0) {
    fprintf(stderr, "development certificate: %s\n", err);
    return -1;
  }
  return 0;
}

__attribute__((unused)) static void loop_devcert_remove(const char *dir,
                                                        const char *cert,
                                                        const char *key) {
  unlink(cert);
  unlink(key);
  rmdir(dir);
}

#endif /* LOOP_CERT_H */
