#!/usr/bin/env node
/*
 * Browser test of channels across two servers through Redis (issue 10,
 * docs/channels.md "Across hubs: brokers"): the test starts its own
 * redis-server (Debian's, on a free TCP port of 127.0.0.1, nothing saved;
 * never the system service) and two h3wt-servers with --broker
 * redis://127.0.0.1:PORT; a real browser (Debian's Chromium through
 * playwright-core, or Firefox ESR through puppeteer-core over WebDriver
 * BiDi) loads server A's demo page in page A and server B's in page B;
 * each imports /channels.js and runs a ChannelsClient against its own
 * server's /wt/channels.
 *
 *   node redis_browser_test.mjs --server build/apps/h3wt-server \
 *        [--browser chromium|firefox] [--web DIR] [--log-level info|debug]
 *        [--keep] [--no-broker]
 *
 * Checks: A and B subscribe to one channel and are told one epoch; A sees
 * B join under another member name and members() lists both; A and B
 * publish 10 reliable messages each at once and both pages receive all 20
 * once each, offsets 1..20, in the same order (the order of the PUBLISHED
 * acknowledgements); B's unreliable publications (datagrams, every 30 ms)
 * reach A; B closes its client and A sees it leave; a page C on server B
 * subscribes with recovery from A's position at offset 10 and receives
 * exactly 11..20, recovered; both servers stop cleanly.  One line per
 * check; ends with "N passed, M failed"; exit status 0 only when nothing
 * failed.  Every wait is bounded; redis-server is killed whatever happens.
 *
 * --no-broker is a development aid only: the servers start without
 * --broker (each keeps its channels to itself), so everything runs but the
 * checks that need the two servers to share a channel fail.  ctest never
 * passes it.
 *
 * The command line, the results, the servers and the browsers are
 * harness.mjs's, shared with the other browser tests.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  check, eq, finish, launchBrowser, log, parseArgs, results, setupFailed, sleep, step, stopStep, testServer,
} from './harness.mjs';

const argv = process.argv.slice(2);
const noBroker = argv.includes('--no-broker');
const opts = parseArgs(argv.filter((a) => a !== '--no-broker'), { script: 'redis_browser_test.mjs' });

/* ---- redis-server ---------------------------------------------------------- */

// A port of 127.0.0.1 that was free a moment ago.
function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// One inline command ("PING"); the first line of the answer, or null when
// there is no answer within ms.
function redisCommand(port, cmd, ms = 1000) {
  return new Promise((resolve) => {
    let buf = '';
    const c = net.connect({ host: '127.0.0.1', port });
    const done = (v) => {
      clearTimeout(timer);
      c.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), ms);
    c.on('connect', () => c.write(`${cmd}\r\n`));
    c.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\r\n');
      if (i >= 0) done(buf.slice(0, i));
    });
    c.on('error', () => done(null));
    c.on('close', () => done(buf || null));
  });
}

class Redis {
  constructor(dir) {
    this.dir = dir;
    this.exe = process.env.H3WT_REDIS_SERVER || '/usr/bin/redis-server';
    this.out = '';
    this.exit = null;
    this.proc = null;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  // Resolves once it answers PING with +PONG.
  async start(timeoutMs = 10000) {
    try {
      fs.accessSync(this.exe, fs.constants.X_OK);
    } catch (_) {
      throw new Error(`${this.exe} is not installed (scripts/bootstrap.sh installs redis-server)`);
    }
    this.port = await freeTcpPort();
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--daemonize', 'no'];
    log(`start ${this.exe} ${args.map((a) => a || "''").join(' ')}`);
    this.proc = spawn(this.exe, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    this.proc.stdout.on('data', (d) => { this.out += d; });
    this.proc.stderr.on('data', (d) => { this.out += d; });
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.exit) throw new Error(`redis-server exited ${JSON.stringify(this.exit)}:\n${this.out}`);
      if ((await redisCommand(this.port, 'PING')) === '+PONG') return this;
      if (Date.now() > end) throw new Error(`redis-server did not answer PING within ${timeoutMs} ms:\n${this.out}`);
      await sleep(50);
    }
  }

  async stop(timeoutMs = 5000) {
    if (!this.proc || this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }

  // At exit, whatever happened (synchronous).
  kill() {
    if (this.proc && !this.exit) this.proc.kill('SIGKILL');
  }
}

/* ---- in the page -------------------------------------------------------------
 * installHarness runs in each page (as in channels_browser_test.mjs): it
 * imports /channels.js and keeps window.T, where a client's events are
 * recorded as plain JSON (epochs as strings).  T.wait(cond, ms, what)
 * resolves with cond()'s first truthy value, tried again on every event;
 * a timeout rejects. */

async function installHarness(tag) {
  const mod = await import('/channels.js');
  const cfg = await (await fetch('/config.json', { cache: 'no-store' })).json();
  const hash = Uint8Array.from(cfg.cert_sha256.match(/../g), (h) => parseInt(h, 16));
  const dec = new TextDecoder();
  const T = {
    tag,
    url: `https://${location.hostname}:${cfg.h3_port}/wt/channels`,
    client: null,
    states: [],
    subs: {}, // channel -> subscription
    events: [], // {sub, ev, ...}
    waiters: new Set(),
    poke() {
      for (const w of T.waiters) w();
    },
    // No reconnection: a lost session must fail the test, not be mended.
    async connect() {
      T.client = new mod.ChannelsClient(T.url, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }],
        reconnect: false,
        onStateChange: (s) => { T.states.push(s); T.poke(); },
        onError: (e) => console.error(`${tag}: client error ${JSON.stringify(e)}`),
      });
      await T.client.connect();
      return T.states;
    },
    subscribe(channel, since) {
      const rec = (ev, extra) => {
        T.events.push({ sub: channel, ev, ...extra });
        T.poke();
      };
      T.subs[channel] = T.client.subscribe(channel, {
        onMessage: (data, m) => rec('message', { text: dec.decode(data), ...m }),
        onJoin: (member) => rec('join', { member }),
        onLeave: (member) => rec('leave', { member }),
        onSubscribed: (s) => rec('subscribed', { ...s, epoch: String(s.epoch) }),
        onUnsubscribed: (u) => rec('unsubscribed', u),
        onError: (e) => rec('error', e),
        ...(since ? { since } : {}),
      });
      return T.wait(() => T.of(channel, 'subscribed')[0] || T.of(channel, 'error')[0], 10000, 'subscribed');
    },
    of(channel, ev) {
      return T.events.filter((e) => e.sub === channel && (!ev || e.ev === ev));
    },
    reliable(channel) {
      return T.of(channel, 'message').filter((m) => !m.unreliable);
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
  return { port: cfg.h3_port, secure: window.isSecureContext, wt: typeof WebTransport };
}

// In a page: waits until the reliable message of offset `last` is in, then
// returns the reliable messages as [offset, text, recovered].
function reliableUpTo([ch, last, ms]) {
  const T = window.T;
  return T.wait(() => T.reliable(ch).some((m) => m.offset === last), ms, `the message of offset ${last}`)
    .then(() => T.reliable(ch).map((m) => [m.offset, m.text, m.recovered]));
}

/* ---- the test ------------------------------------------------------------------ */

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'h3wt-redis-'));
  const redis = new Redis(tmp);
  const servers = []; // A, B
  let browser = null;
  const killAll = () => {
    for (const s of servers) if (s.proc && !s.exit) s.proc.kill('SIGKILL');
    redis.kill();
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      log(`FAIL: ${sig}`);
      process.exit(1); // killAll runs on exit
    });
  }
  const watchdog = setTimeout(() => {
    log('FAIL: the whole test took over 170 s');
    process.exit(1);
  }, 170000);
  const channel = `redis.${opts.browser}.${Math.random().toString(36).slice(2, 8)}`;

  try {
    fs.accessSync(opts.server, fs.constants.X_OK); // else spawn fails outside any promise
    await redis.start();
    log(`redis-server ${redis.url} (pid ${redis.proc.pid})`);
    if (noBroker) log('--no-broker (development aid): the servers do not share channels; cross-server checks will fail');
    // A short drain: the servers are stopped with the demo page's sessions
    // maybe still open.
    const extra = ['--drain-timeout', '200', ...(noBroker ? [] : ['--broker', redis.url])];
    // One after the other: A makes the certificate in tmp/cert, B reuses it.
    for (const tag of ['A', 'B']) {
      const s = testServer(opts, tmp, extra);
      s.tag = tag;
      servers.push(s);
      await s.start();
      log(`server ${tag}: HTTP/3 port ${s.h3Port}, page ${s.pageUrl}`);
    }
    const [sa, sb] = servers;

    browser = await launchBrowser(opts.browser, { viewport: null });
    const a = await browser.newPage('A');
    const b = await browser.newPage('B');
    await a.goto(sa.pageUrl);
    await b.goto(sb.pageUrl);
    const ia = await a.eval(installHarness, 'A');
    const ib = await b.eval(installHarness, 'B');
    check(ia.secure && ib.secure && ia.wt === 'function', `secure context with WebTransport: ${JSON.stringify(ia)}`);
    eq([ia.port, ib.port], [sa.h3Port, sb.h3Port], 'each page uses its own server');

    await step('connect: A to server A, B to server B', async () => {
      eq(await a.eval(() => window.T.connect()), ['connecting', 'connected'], 'A states');
      eq(await b.eval(() => window.T.connect()), ['connecting', 'connected'], 'B states');
    });

    // Own member names.  A's: the first JOIN A hears (A is alone in the
    // channel then).  B's: the first JOIN B hears of a name other than A's
    // (A's own JOIN may reach server B through Redis after B subscribed).
    let epoch = null;
    let memberA = null;
    let memberB = null;
    const joinOtherThan = ([ch, name, ms]) => window.T.wait(
      () => window.T.of(ch, 'join').find((j) => j.member !== name), ms, `a join of another than ${name}`)
      .then((j) => j.member);
    const joinsOf = (ch) => window.T.of(ch, 'join').map((j) => j.member);
    await step('subscribe: A and B to one channel on two servers, one epoch', async () => {
      const subA = await a.eval((ch) => window.T.subscribe(ch), channel);
      eq([subA.ev, subA.recovered, subA.offset, subA.missed], ['subscribed', false, 0, 0], 'A subscribed');
      memberA = await a.eval(joinOtherThan, [channel, null, 5000]);
      const subB = await b.eval((ch) => window.T.subscribe(ch), channel);
      eq([subB.ev, subB.recovered, subB.offset, subB.missed], ['subscribed', false, 0, 0], 'B subscribed');
      log(`  A is ${memberA}; epochs: A ${subA.epoch}, B ${subB.epoch}`);
      epoch = subA.epoch;
      eq(subB.epoch, subA.epoch, 'the epoch B is told (server B) and the one A is told (server A)');
    });

    await step('presence: A sees B join under another name; members() lists both on A and B', async () => {
      check(memberA, "A's own member name (A heard no join)");
      try {
        memberB = await b.eval(joinOtherThan, [channel, memberA, 5000]);
      } catch (e) {
        check(false, `B heard no join of a name other than A's (${memberA}): B heard ${
          JSON.stringify(await b.eval(joinsOf, channel))} (one name on two servers?)`);
      }
      log(`  B is ${memberB}`);
      const join = await a.eval(([ch, me]) => window.T.wait(
        () => window.T.of(ch, 'join').find((j) => j.member !== me), 5000, 'another member joins'), [channel, memberA]);
      eq(join.member, memberB, 'the member A sees join');
      eq(await a.eval(joinsOf, channel), [memberA, memberB], 'the joins A heard');
      eq((await b.eval(joinsOf, channel)).filter((m) => m === memberB), [memberB], 'the joins of B that B heard');
      const ma = await a.eval((ch) => window.T.subs[ch].members(), channel);
      eq([...ma].sort(), [memberA, memberB].sort(), 'members() on A');
      const mb = await b.eval((ch) => window.T.subs[ch].members(), channel);
      eq([...mb].sort(), [memberA, memberB].sort(), 'members() on B');
    });

    // offset -> text, from the PUBLISHED acknowledgements.
    let expected = null;
    await step('reliable: A and B publish 10 each at once; both get all 20, offsets 1..20, once each, same order',
      async () => {
        const publish10 = (ch) => {
          const s = window.T.subs[ch];
          const ps = [];
          for (let i = 1; i <= 10; i++) ps.push(s.publish(`${window.T.tag}${i}`));
          return Promise.all(ps).then((r) => r.map((x) => ({ epoch: String(x.epoch), offset: x.offset })));
        };
        const [acksA, acksB] = await Promise.all([a.eval(publish10, channel), b.eval(publish10, channel)]);
        const all = [...acksA.map((x, i) => [x, `A${i + 1}`]), ...acksB.map((x, i) => [x, `B${i + 1}`])];
        all.sort((x, y) => x[0].offset - y[0].offset);
        log(`  order of publication: ${all.map(([x, t]) => `${x.offset}:${t}`).join(' ')}`);
        eq([...new Set(all.map(([x]) => x.epoch))], [epoch], 'epochs of the acknowledgements');
        eq(all.map(([x]) => x.offset), Array.from({ length: 20 }, (_, i) => i + 1),
          'offsets acknowledged to A and B together');
        const rising = (acks) => acks.every((x, i) => i === 0 || x.offset > acks[i - 1].offset);
        check(rising(acksA) && rising(acksB), `each page's publications in its order: A ${JSON.stringify(acksA)}, ` +
          `B ${JSON.stringify(acksB)}`);
        expected = all.map(([x, t]) => [x.offset, t]);
        const [gotA, gotB] = await Promise.all([a.eval(reliableUpTo, [channel, 20, 10000]),
          b.eval(reliableUpTo, [channel, 20, 10000])]);
        const want = expected.map(([o, t]) => [o, t, false]);
        eq(gotA, want, 'A received');
        eq(gotB, want, 'B received');
      });

    await step('unreliable: B publishes datagrams every 30 ms until A gets one', async () => {
      await b.eval((ch) => {
        const T = window.T;
        T.dgSent = 0;
        T.dgTimer = setInterval(() => {
          if (T.subs[ch].publish(`dg ${T.dgSent}`, { reliable: false })) T.dgSent++;
        }, 30);
      }, channel);
      let got;
      let sent;
      try {
        got = await a.eval((ch) => window.T.wait(
          () => window.T.of(ch, 'message').find((m) => m.unreliable), 10000, 'a datagram from B'), channel);
      } finally {
        sent = await b.eval(() => {
          clearInterval(window.T.dgTimer);
          return window.T.dgSent;
        });
      }
      log(`  A got "${got.text}" when B had sent ${sent}`);
      check(sent > 0, 'B could not publish a datagram');
      check(/^dg \d+$/.test(got.text), `datagram text ${JSON.stringify(got.text)}`);
      eq([got.unreliable, got.offset, got.recovered], [true, null, false], 'datagram meta');
    });

    await step('leave: B closes its client, A sees B leave and members() on A lists only A', async () => {
      eq(await b.eval(() => {
        window.T.client.close();
        return window.T.client.state;
      }), 'closed', 'B state after close()');
      const leave = await a.eval(([ch, me]) => window.T.wait(
        () => window.T.of(ch, 'leave').find((e) => e.member !== me), 5000, 'B leaves'), [channel, memberA]);
      eq(leave.member, memberB, 'the member A sees leave');
      eq(await a.eval((ch) => window.T.subs[ch].members(), channel), [memberA], 'members() on A after');
    });

    await step("recovery: page C on server B, since A's position at offset 10, gets exactly 11..20", async () => {
      const since = await a.eval(([ch, ep]) => {
        const m = window.T.reliable(ch)[9];
        return m && { epoch: ep, offset: m.offset };
      }, [channel, epoch]);
      eq(since, { epoch, offset: 10 }, "A's position at its tenth message");
      const c = await browser.newPage('C');
      await c.goto(sb.pageUrl);
      const ic = await c.eval(installHarness, 'C');
      eq(ic.port, sb.h3Port, "C's server");
      eq(await c.eval(() => window.T.connect()), ['connecting', 'connected'], 'C states');
      const sub = await c.eval(([ch, s]) => window.T.subscribe(ch, s), [channel, since]);
      eq([sub.ev, sub.recovered, sub.epoch, sub.offset, sub.missed], ['subscribed', true, epoch, 20, 10],
        'C subscribed (event, recovered, epoch, offset, missed)');
      const got = await c.eval(reliableUpTo, [channel, 20, 5000]);
      check(expected, 'nothing to compare with (the reliable step failed)');
      eq(got, expected.slice(10).map(([o, t]) => [o, t, true]), 'C received');
      await c.eval(() => window.T.client.close());
    });

    await a.eval(() => window.T.client.close());
  } catch (e) {
    setupFailed(e);
  } finally {
    if (browser) await browser.close().catch((e) => log(`browser close: ${e}`));
    for (const s of servers) {
      await stopStep(s, `server ${s.tag} stops cleanly on SIGTERM, no sanitizer report`);
    }
    const r = await redis.stop();
    if (r) log(`redis-server stopped ${JSON.stringify(r)}`);
    clearTimeout(watchdog);
    for (const s of servers) {
      fs.writeFileSync(path.join(tmp, `server-${s.tag}.log`), `${s.out}\n----- stderr -----\n${s.err}`);
      if (results.failed) {
        log(`server ${s.tag} log (last lines; whole log in ${tmp}/server-${s.tag}.log):\n` +
          `${s.err.split('\n').slice(-30).join('\n')}`);
      }
    }
    fs.writeFileSync(path.join(tmp, 'redis.log'), redis.out);
    if (!opts.keep && !results.failed) fs.rmSync(tmp, { recursive: true, force: true });
  }
  finish();
}

main();
