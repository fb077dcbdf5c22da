/*
 * demo_channels: the demo server's channels route (see demo_channels.h).
 */
#include "demo_channels.h"

#include <stdlib.h>
#include <string.h>

/* The token lives as long as the process (the server's settings). */
static const char *demo_token;

/* The value of key in the query of path ("/x?a=1&token=T"), or NULL. */
static int query_has(const char *path, const char *key, const char *want) {
  const char *q = strchr(path, '?');
  size_t klen = strlen(key), wlen = strlen(want);
  while (q) {
    ++q;
    if (strncmp(q, key, klen) == 0 && q[klen] == '=') {
      const char *v = q + klen + 1;
      size_t vlen = strcspn(v, "&#");
      /* Constant time in the value's length: a token is a secret. */
      unsigned diff = (unsigned)(vlen ^ wlen);
      for (size_t i = 0; i < vlen && i < wlen; ++i) {
        diff |= (unsigned)(v[i] ^ want[i]);
      }
      return diff == 0;
    }
    q = strchr(q, '&');
  }
  return 0;
}

static int on_connect(h3wt_channels *hub, h3wt_session *s, void *ud) {
  if (demo_token && !query_has(h3wt_session_path(s), "token", demo_token)) {
    return 403;
  }
  return 200;
}

static int on_subscribe(h3wt_channels *hub, h3wt_session *s,
                        const char *channel, void *ud) {
  return strncmp(channel, "private.", 8) == 0 ? H3WT_CHANNELS_FORBIDDEN : 0;
}

static const h3wt_channels_handler demo_handler = {
    .on_connect = on_connect,
    .on_subscribe = on_subscribe,
};

int demo_channels_new(h3wt_server *server, const char *token,
                      const h3wt_channels_settings *settings,
                      h3wt_channels **phub) {
  demo_token = token;
  return h3wt_channels_new(phub, server, "/wt/channels", settings,
                           &demo_handler, NULL);
}
