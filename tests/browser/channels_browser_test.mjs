#!/usr/bin/env node
/*
 * Browser test of web/channels.js (docs/channels.md): a real browser
 * (Debian's Chromium through playwright-core, or Firefox ESR through
 * puppeteer-core over WebDriver BiDi) loads the demo page from
 * h3wt-server's HTTP/1.1 listener in two pages, A and B; each imports
 * /channels.js and runs a ChannelsClient against the server's
 * /wt/channels route.
 *
 *   node channels_browser_test.mjs --server build/apps/h3wt-server \
 *        [--browser chromium|firefox] [--web DIR] [--log-level info|debug]
 *        [--keep]
 *
 * Checks: the codec in the page (varints, frames split anyhow), reliable
 * publish and delivery in order with offsets, joins and members,
 * unreliable publish (datagrams), a refused channel, a lost session
 * recovered by the client itself with exactly the missed messages,
 * unsubscribe and close.  One line per check; ends with "N passed, M
 * failed"; exit status 0 only when nothing failed.  Every wait is bounded.
 * The command line, the results, the server and the browsers are
 * harness.mjs's, shared with the other browser tests.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  check, deadline, eq, finish, launchBrowser, log, parseArgs, saveServerLog, setupFailed, step, stopStep,
  testServer,
} from './harness.mjs';

const opts = parseArgs(process.argv.slice(2), { script: 'channels_browser_test.mjs' });

/* ---- in the page -------------------------------------------------------------
 * installHarness runs in each page: it imports /channels.js and keeps
 * window.T, where a client's events are recorded as plain JSON (epochs as
 * strings) for the checks to read.  T.wait(cond, ms, what) resolves with
 * cond()'s first truthy value, tried again on every event (not on a timer:
 * Firefox runs a background tab's timers once a second); a timeout
 * rejects (no hangs). */

async function installHarness(tag) {
  const mod = await import('/channels.js');
  const cfg = await (await fetch('/config.json', { cache: 'no-store' })).json();
  const hash = Uint8Array.from(cfg.cert_sha256.match(/../g), (h) => parseInt(h, 16));
  const dec = new TextDecoder();
  const T = {
    mod,
    tag,
    url: `https://${location.hostname}:${cfg.h3_port}/wt/channels`,
    hash,
    client: null,
    states: [],
    subs: {}, // channel -> subscription
    events: [], // {sub, ev, ...}
    clientErrors: [],
    waiters: new Set(),
    poke() {
      for (const w of T.waiters) w();
    },
    newClient(reconnect) {
      T.client = new mod.ChannelsClient(T.url, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }],
        reconnect,
        onStateChange: (s) => { T.states.push(s); T.poke(); },
        onError: (e) => { T.clientErrors.push(e); T.poke(); },
      });
      return T.client;
    },
    subscribe(channel) {
      const rec = (ev, extra) => {
        T.events.push({ sub: channel, ev, ...extra });
        T.poke();
      };
      const sub = T.client.subscribe(channel, {
        onMessage: (data, m) => rec('message', { text: dec.decode(data), ...m }),
        onJoin: (member) => rec('join', { member }),
        onLeave: (member) => rec('leave', { member }),
        onSubscribed: (s) => rec('subscribed', { ...s, epoch: String(s.epoch) }),
        onUnsubscribed: (u) => rec('unsubscribed', u),
        onError: (e) => rec('error', e),
      });
      T.subs[channel] = sub;
      return sub;
    },
    of(channel, ev) {
      return T.events.filter((e) => e.sub === channel && (!ev || e.ev === ev));
    },
    wait(cond, ms, what) {
      return new Promise((resolve, reject) => {
        const w = () => {
          const v = cond();
          if (!v) return;
          T.waiters.delete(w);
          clearTimeout(timer);
          resolve(v);
        };
        const timer = setTimeout(() => {
          T.waiters.delete(w);
          reject(new Error(`${tag}: ${what}: not within ${ms} ms`));
        }, ms);
        T.waiters.add(w);
        w();
      });
    },
  };
  window.T = T;
  return { url: T.url, secure: window.isSecureContext, wt: typeof WebTransport };
}

/* ---- the test ------------------------------------------------------------------ */

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'h3wt-channels-'));
  const server = testServer(opts, tmp);
  let browser = null;
  const watchdog = deadline(() => server);
  const channel = `room.${opts.browser}.${Math.random().toString(36).slice(2, 8)}`;

  try {
    await server.start();
    log(`server: HTTP/3 port ${server.h3Port}, page ${server.pageUrl}`);
    // The drivers' default window size (this test never set one).
    browser = await launchBrowser(opts.browser, { viewport: null });
    const a = await browser.newPage('A');
    const b = await browser.newPage('B');
    await a.goto(server.pageUrl); // localhost
    await b.goto(`http://127.0.0.1:${server.httpPort}/`); // the other loopback name
    const ia = await a.eval(installHarness, 'A');
    const ib = await b.eval(installHarness, 'B');
    log(`A uses ${ia.url}, B uses ${ib.url}`);
    check(ia.secure && ib.secure && ia.wt === 'function', `secure context with WebTransport: ${JSON.stringify(ia)}`);

    await step('codec in the page: varints at every length, frames split anyhow', async () => {
      const r = await a.eval(() => {
        const { encodeVarint, decodeVarint, FrameParser, PayloadWriter } = window.T.mod;
        const out = { varints: [], frames: [] };
        for (const v of [0, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, 2n ** 53n + 1n, 2n ** 62n - 1n]) {
          const b = encodeVarint(v);
          const d = decodeVarint(b, 0);
          out.varints.push([String(v), b.length, String(d.value), typeof d.value, d.next]);
        }
        out.twoByte = decodeVarint(Uint8Array.of(0x40, 0x41), 0).value; // 0x41 as the server writes it
        out.short = decodeVarint(Uint8Array.of(0x80, 0, 0), 0);
        const f1 = new PayloadWriter().varint(7).bytes(new TextEncoder().encode('chat ✓'))
          .varint(1).varint(1).varint(2n ** 61n + 5n).varint(3).varint(0).frame(0x41);
        const f2 = new PayloadWriter().varint(1).varint(4).bytes(new Uint8Array(3000).fill(9)).frame(0x44);
        const f3 = new PayloadWriter().frame(0x99); // empty payload, unknown type
        const all = new Uint8Array([...f1, ...f2, ...f3, ...f1]);
        // Byte by byte, in random cuts, and all at once: the same frames.
        const cuts = [[1], [7, 1, 3000, 2], [all.length]];
        for (let r = 0; r < 20; r++) cuts.push([1 + Math.floor(Math.random() * 500)]);
        for (const sizes of cuts) {
          const p = new FrameParser();
          const got = [];
          for (let pos = 0, i = 0; pos < all.length; i++) {
            const n = sizes[i % sizes.length];
            got.push(...p.push(all.subarray(pos, pos + n)));
            pos += n;
          }
          out.frames.push(`${got.map((f) => `${f.type}:${f.payload.length}`).join(',')} idle=${p.idle}`);
        }
        out.frameHead = Array.from(f1.subarray(0, 3));
        return out;
      });
      eq(r.varints, [['0', 1, '0', 'number', 1], ['63', 1, '63', 'number', 1], ['64', 2, '64', 'number', 2],
        ['16383', 2, '16383', 'number', 2], ['16384', 4, '16384', 'number', 4],
        ['1073741823', 4, '1073741823', 'number', 4], ['1073741824', 8, '1073741824', 'number', 8],
        ['9007199254740993', 8, '9007199254740993', 'bigint', 8],
        ['4611686018427387903', 8, '4611686018427387903', 'bigint', 8]], 'varints');
      eq(r.twoByte, 0x41, 'two-byte 0x41');
      eq(r.short, null, 'a cut varint');
      eq(r.frameHead, [0x40, 0x41, 22], 'SUBSCRIBED head');
      for (const f of r.frames) eq(f, '65:22,68:3004,153:0,65:22 idle=true', 'frames');
    });

    await step('connect: A and B open sessions to /wt/channels', async () => {
      const ra = await a.eval(async () => {
        await window.T.newClient({ minDelayMs: 250, maxDelayMs: 5000 }).connect();
        return { state: window.T.client.state, states: window.T.states };
      });
      // B reconnects no sooner than 1 s: time for A to publish meanwhile.
      const rb = await b.eval(async () => {
        await window.T.newClient({ minDelayMs: 1000, maxDelayMs: 4000 }).connect();
        return { state: window.T.client.state, states: window.T.states };
      });
      eq(ra.states, ['connecting', 'connected'], 'A states');
      eq(rb.states, ['connecting', 'connected'], 'B states');
    });

    let joinA = null;
    let epoch = null;
    await step('reliable: A publishes 3, B gets offsets 1..3 in order; B sees A join', async () => {
      const sb = await b.eval(async (ch) => {
        window.T.subscribe(ch);
        return window.T.wait(() => window.T.of(ch, 'subscribed')[0], 5000, 'B subscribed');
      }, channel);
      eq([sb.recovered, sb.offset, sb.missed, sb.channel], [false, 0, 0, channel], 'B subscribed');
      const sa = await a.eval(async (ch) => {
        window.T.subscribe(ch);
        return window.T.wait(() => window.T.of(ch, 'subscribed')[0], 5000, 'A subscribed');
      }, channel);
      eq(sa.epoch, sb.epoch, 'the same epoch for A and B');
      epoch = sa.epoch;
      const joins = await b.eval((ch) => window.T.wait(
        () => window.T.of(ch, 'join').length >= 2 && window.T.of(ch, 'join'), 5000, 'two joins'), channel);
      joinA = joins[1].member; // B's own join comes first
      check(joins[0].member !== joinA && /^\d+(\.[0-9a-f]{6})?$/.test(joinA), `join members ${JSON.stringify(joins)}`);
      const pub = await a.eval(async (ch) => {
        const s = window.T.subs[ch];
        const r = await Promise.all(['one', 'two ✓', 'three'].map((t) => s.publish(t)));
        return r.map((x) => ({ epoch: String(x.epoch), offset: x.offset }));
      }, channel);
      eq(pub, [1, 2, 3].map((offset) => ({ epoch, offset })), 'PUBLISHED epoch and offsets');
      const got = await b.eval((ch) => window.T.wait(
        () => window.T.of(ch, 'message').length >= 3 && window.T.of(ch, 'message'), 5000, '3 messages'), channel);
      eq(got.map((m) => [m.offset, m.text, m.unreliable, m.recovered]),
        [[1, 'one', false, false], [2, 'two ✓', false, false], [3, 'three', false, false]], 'B got');
      // A is subscribed too: it gets its own messages.
      const own = await a.eval((ch) => window.T.wait(
        () => window.T.of(ch, 'message').length >= 3 && window.T.of(ch, 'message'), 5000, 'own messages'), channel);
      eq(own.map((m) => m.offset), [1, 2, 3], 'A got its own');
      const members = await a.eval((ch) => window.T.subs[ch].members(), channel);
      eq([...members].sort(), [joins[0].member, joinA].sort(), 'members() from A');
    });

    await step('unreliable: B publishes datagrams, A gets them as unreliable', async () => {
      const r = await b.eval(async (ch) => {
        const s = window.T.subs[ch];
        const sent = [];
        // Datagrams may be lost: a few rounds until A has one (A polls).
        for (let i = 0; i < 10; i++) {
          sent.push(s.publish(`dg ${i}`, { reliable: false }));
          await new Promise((res) => setTimeout(res, 30));
        }
        return sent;
      }, channel);
      eq(r, Array(10).fill(true), 'publish({reliable: false}) handed to the browser');
      const got = await a.eval((ch) => window.T.wait(() => {
        const u = window.T.of(ch, 'message').filter((m) => m.unreliable);
        return u.length && u;
      }, 5000, 'an unreliable message'), channel);
      for (const m of got) {
        check(/^dg \d$/.test(m.text), `datagram text ${m.text}`);
        eq([m.unreliable, m.offset], [true, null], 'datagram meta');
      }
      log(`  A got ${got.length} of 10 datagrams`);
      // Datagrams take no offset: the reliable count is still 3.
      const bm = await b.eval((ch) => window.T.subs[ch].position.offset, channel);
      eq(bm, 3, "B's last offset after datagrams");
    });

    await step('private.x is refused: onError code 3 (FORBIDDEN)', async () => {
      const r = await a.eval(async () => {
        const s = window.T.subscribe('private.x');
        const e = await window.T.wait(() => window.T.of('private.x', 'error')[0], 5000, 'error');
        const pub = await s.publish('nope').then(() => 'resolved', (x) => `${x.name} ${x.code}`);
        return { e, subscribed: s.subscribed, inSet: window.T.client.subscriptions.has(s), pub };
      });
      eq([r.e.code, r.e.name], [3, 'FORBIDDEN'], 'error');
      eq([r.subscribed, r.inSet], [false, false], 'the refused subscription is over');
      eq(r.pub, 'ChannelsError 8', 'publish on it');
    });

    await step('reconnect: B loses its session, A publishes 2, B recovers exactly 4 and 5', async () => {
      const s0 = Date.now();
      // A lost connection, not close(): the client must notice by itself.
      await b.eval(async () => {
        window.T.states.length = 0;
        window.T.client.transport.close({ closeCode: 7, reason: 'test: connection lost' });
        await window.T.wait(() => window.T.client.state === 'disconnected', 5000, 'disconnected');
      });
      const leave = await a.eval((ch) => window.T.wait(() => window.T.of(ch, 'leave')[0], 5000, 'B leaves'), channel);
      check(leave.member !== joinA, `A saw a leave of ${leave.member}`);
      const pub = await a.eval(async (ch) => {
        const s = window.T.subs[ch];
        const r = await Promise.all([s.publish('four'), s.publish('five')]);
        return { r: r.map((x) => x.offset) };
      }, channel);
      eq(pub.r, [4, 5], 'offsets of the publications meanwhile');
      const r = await b.eval(async (ch) => {
        const T = window.T;
        const sub = await T.wait(() => T.of(ch, 'subscribed')[1], 10000, 'subscribed again');
        await T.wait(() => T.of(ch, 'message').filter((m) => !m.unreliable).length >= 5, 5000, '5 messages');
        await new Promise((res) => setTimeout(res, 300)); // nothing more comes
        return {
          sub,
          states: T.states,
          msgs: T.of(ch, 'message').filter((m) => !m.unreliable).map((m) => [m.offset, m.text, m.recovered]),
          reconnects: T.client.reconnects,
          position: String(T.subs[ch].position.epoch) + ':' + T.subs[ch].position.offset,
        };
      }, channel);
      log(`  B back after ${Date.now() - s0} ms (${r.reconnects} attempt(s)), states ${r.states.join(' > ')}`);
      eq([r.sub.recovered, r.sub.epoch, r.sub.offset, r.sub.missed], [true, epoch, 5, 2], 'B subscribed again');
      eq(r.msgs, [[1, 'one', false], [2, 'two ✓', false], [3, 'three', false], [4, 'four', true], [5, 'five', true]],
        'B messages (4 and 5 once each, recovered)');
      eq(r.states, ['disconnected', 'connecting', 'connected'], 'B states');
      eq(r.position, `${epoch}:5`, "B's position");
      // A joined after B's first session: A hears only B's new session join.
      const rejoin = await a.eval(([ch, m]) => window.T.wait(
        () => window.T.of(ch, 'join').find((e) => e.member !== m), 5000, 'B joins again'), [channel, joinA]);
      check(rejoin.member !== leave.member, `B's new session joined as ${rejoin.member}, the old one was ${leave.member}`);
      // The new session works both ways.
      await b.eval((ch) => window.T.subs[ch].publish('six'), channel);
      const six = await a.eval((ch) => window.T.wait(
        () => window.T.of(ch, 'message').find((m) => m.offset === 6), 5000, 'six'), channel);
      eq(six.text, 'six', 'A got B\'s message after the reconnect');
    });

    await step('unsubscribe: A leaves the channel, B hears it; A hears nothing more', async () => {
      const u = await a.eval((ch) => window.T.subs[ch].unsubscribe(), channel);
      eq(u, { code: 0, reason: '' }, 'unsubscribe result');
      const ev = await a.eval((ch) => window.T.of(ch, 'unsubscribed'), channel);
      eq(ev.map((e) => e.code), [0], 'A onUnsubscribed');
      const leave = await b.eval(([ch, m]) => window.T.wait(
        () => window.T.of(ch, 'leave').find((e) => e.member === m), 5000, 'A leaves'), [channel, joinA]);
      check(leave, 'B heard A leave');
      await b.eval((ch) => window.T.subs[ch].publish('seven'), channel);
      const n = await a.eval(async (ch) => {
        await new Promise((r) => setTimeout(r, 300));
        return window.T.of(ch, 'message').filter((m) => !m.unreliable).length;
      }, channel);
      eq(n, 6, 'messages A has (none after unsubscribing)');
    });

    await step('close(): state closed, no reconnection', async () => {
      const r = await b.eval(async () => {
        const T = window.T;
        T.states.length = 0;
        T.client.close();
        await new Promise((res) => setTimeout(res, 1500)); // past B's reconnect delay
        let err = null;
        try { T.client.subscribe('after.close'); } catch (e) { err = e.message; }
        return { states: T.states, transport: T.client.transport, err };
      });
      eq(r.states, ['closed'], 'B states after close()');
      eq(r.transport, null, 'no transport');
      check(r.err, 'subscribe after close() throws');
      await a.eval(() => window.T.client.close());
    });
  } catch (e) {
    setupFailed(e);
  } finally {
    if (browser) await browser.close().catch((e) => log(`browser close: ${e}`));
    await stopStep(server, 'server stops cleanly on SIGTERM, no sanitizer report');
    clearTimeout(watchdog);
    saveServerLog(tmp, server, { keep: opts.keep });
  }
  finish();
}

main();
