/*
 * demo_channels: the demo server's channels route (docs/channels.md).
 *
 *   /wt/channels   the channel hub; a CONNECT may carry ?token=T, checked
 *                  against the configured token (none configured: any
 *                  session is welcome); channels named "private.*" are
 *                  refused to everyone (the permission hook at work)
 */
#ifndef DEMO_CHANNELS_H
#define DEMO_CHANNELS_H

#include "h3wt/h3wt.h"

/* Makes the hub on server.  token may be NULL.  Returns 0 or an H3WT_ERR_*
   code; free with h3wt_channels_del() after the server closed. */
int demo_channels_new(h3wt_server *server, const char *token,
                      const h3wt_channels_settings *settings,
                      h3wt_channels **phub);

#endif /* DEMO_CHANNELS_H */
