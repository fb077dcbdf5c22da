"""A UDP proxy that impairs traffic: drops, duplicates and reorders packets.

Clients send to the proxy's port; for each client address the proxy opens
its own socket towards the server, so the server sees one stable peer
address per client and QUIC needs no migration.  Every packet, in either
direction, is dropped with probability `loss`, otherwise sent and, with
probability `dup`, sent a second time; with probability `reorder` it is held
back for a few milliseconds so that later packets overtake it.

Runs in a thread of the test process (select() over non-blocking sockets,
one heap of delayed sends); the random generator is seeded so that a run
can be repeated.  Standard library only.
"""

import heapq
import random
import selectors
import socket
import threading
import time


class LossyProxy:
    def __init__(self, server_addr, loss=0.05, dup=0.01, reorder=0.02,
                 delay_ms=(2, 15), seed=1):
        self.server_addr = server_addr
        self.loss, self.dup, self.reorder = loss, dup, reorder
        self.delay = (delay_ms[0] / 1000.0, delay_ms[1] / 1000.0)
        self.rng = random.Random(seed)
        self.sel = selectors.DefaultSelector()
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.front.setblocking(False)
        self.port = self.front.getsockname()[1]
        self.sel.register(self.front, selectors.EVENT_READ, None)
        self.upstream = {}  # client address -> socket towards the server
        self.held = []  # heap of (due, seq, socket, bytes, address)
        self.seq = 0
        self.stats = {"in": 0, "dropped": 0, "duplicated": 0, "reordered": 0}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        self.thread.join(5)
        for s in self.upstream.values():
            s.close()
        self.front.close()

    def _forward(self, sock, data, addr, now):
        st = self.stats
        st["in"] += 1
        r = self.rng.random()
        if r < self.loss:
            st["dropped"] += 1
            return
        copies = 1
        if self.rng.random() < self.dup:
            copies = 2
            st["duplicated"] += 1
        for _ in range(copies):
            if self.rng.random() < self.reorder:
                st["reordered"] += 1
                due = now + self.rng.uniform(*self.delay)
                self.seq += 1
                heapq.heappush(self.held, (due, self.seq, sock, data, addr))
            else:
                self._send(sock, data, addr)

    @staticmethod
    def _send(sock, data, addr):
        try:
            sock.sendto(data, addr)
        except (BlockingIOError, OSError):
            pass  # a full socket buffer is one more loss

    def _run(self):
        while not self.stop_flag.is_set():
            now = time.monotonic()
            while self.held and self.held[0][0] <= now:
                _, _, sock, data, addr = heapq.heappop(self.held)
                self._send(sock, data, addr)
            timeout = 0.05
            if self.held:
                timeout = max(0.0, min(timeout, self.held[0][0] - now))
            for key, _ in self.sel.select(timeout):
                sock = key.fileobj
                client = key.data
                for _ in range(64):  # drain a burst, then look at timers
                    try:
                        data, addr = sock.recvfrom(65536)
                    except (BlockingIOError, OSError):
                        break
                    now = time.monotonic()
                    if client is None:  # from a client, towards the server
                        up = self.upstream.get(addr)
                        if up is None:
                            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            up.bind(("127.0.0.1", 0))
                            up.setblocking(False)
                            self.upstream[addr] = up
                            self.sel.register(up, selectors.EVENT_READ, addr)
                        self._forward(up, data, self.server_addr, now)
                    else:  # from the server, back to its client
                        self._forward(self.front, data, client, now)
