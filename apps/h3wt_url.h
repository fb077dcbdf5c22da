/*
 * h3wt_url: the https URLs the command-line tools take
 * (https://host[:port][/path]; host may be [v6]), split into parts.
 */
#ifndef H3WT_URL_H
#define H3WT_URL_H

#include <stddef.h>
#include <stdint.h>

/* Splits url: host (copied, brackets removed) into host[hostlen], the port
   (443 when absent) and the path (pointing into url; "/" when absent).
   Returns 0, or -1 for anything else (another scheme, an empty or
   too-long host, a port outside 1..65535, a path not starting with '/' or
   '?'). */
int h3wt_url_parse(const char *url, char *host, size_t hostlen, uint16_t *port,
                   const char **path);

#endif /* H3WT_URL_H */
