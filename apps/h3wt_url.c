/*
 * h3wt_url: see h3wt_url.h.
 */
#include <stdlib.h>
#include <string.h>

#include "h3wt_url.h"

int h3wt_url_parse(const char *url, char *host, size_t hostlen, uint16_t *port,
                   const char **path) {
  const char *p = url, *h, *he;
  if (strncmp(p, "https://", 8) != 0) {
    return -1;
  }
  p += 8;
  if (*p == '[') {
    h = p + 1;
    he = strchr(h, ']');
    if (!he) {
      return -1;
    }
    p = he + 1;
  } else {
    h = p;
    he = p + strcspn(p, ":/?");
    p = he;
  }
  if ((size_t)(he - h) >= hostlen || he == h) {
    return -1;
  }
  memcpy(host, h, (size_t)(he - h));
  host[he - h] = '\0';
  *port = 443;
  if (*p == ':') {
    char *end;
    unsigned long v = strtoul(p + 1, &end, 10);
    if (end == p + 1 || v == 0 || v > 65535) {
      return -1;
    }
    *port = (uint16_t)v;
    p = end;
  }
  *path = *p ? p : "/";
  return **path == '/' || **path == '?' ? 0 : -1;
}
