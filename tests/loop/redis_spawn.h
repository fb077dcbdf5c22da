/*
 * redis_spawn.h: a private redis-server for a test or a benchmark (never
 * the system's service): a free loopback port, and the server started on
 * it in the foreground as a child that dies with its parent.  Header-only;
 * used by tests/loop/test_broker_redis.c and bench/broker_bench.c.
 */
#ifndef H3WT_REDIS_SPAWN_H
#define H3WT_REDIS_SPAWN_H

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* A TCP port on 127.0.0.1 nothing listens on (the kernel's pick, closed
   again: another process could take it meanwhile, which the callers'
   connect loops would notice).  Exits on failure. */
static inline int redis_spawn_free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    perror("redis_spawn: a free port");
    exit(1);
  }
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* Starts `redis-server --port PORT --bind 127.0.0.1 --save ''
   --appendonly no` (and --enable-debug-command yes if debug, for DEBUG
   SLEEP), its log on stderr only.  Returns its pid; it may not listen yet.
   It is SIGKILLed if this process dies first. */
static inline pid_t redis_spawn(int port, int debug) {
  char p[16];
  pid_t pid;
  snprintf(p, sizeof(p), "%d", port);
  pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Its log (startup warnings about the machine) is noise here. */
    if (!freopen("/dev/null", "w", stdout)) {
      _exit(126);
    }
    execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--loglevel", "warning",
           "--enable-debug-command", debug ? "yes" : "no", (char *)NULL);
    _exit(127);
  }
  return pid;
}

#endif /* H3WT_REDIS_SPAWN_H */
