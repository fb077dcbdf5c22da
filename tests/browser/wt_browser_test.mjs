#!/usr/bin/env node
/*
 * Browser test of the h3wt demo: a real browser (Debian's Chromium through
 * playwright-core, or Firefox ESR through puppeteer-core over WebDriver
 * BiDi) loads the demo page from h3wt-server's HTTP/1.1 listener and, from
 * a script in the page (window.h3wtDemo), uses WebTransport against the
 * server's /wt/echo and /wt/ticker routes, and the page's chat on
 * /wt/channels (demo_browser_test.mjs tests the chat's history and
 * recovery, and the dots).
 *
 *   node wt_browser_test.mjs --server build/apps/h3wt-server \
 *        [--browser chromium|firefox] [--web DIR] [--screenshots DIR]
 *        [--log-level info|debug] [--keep]
 *
 * H3WT_BROWSER_SCREENSHOTS=DIR and H3WT_BROWSER_LOG_LEVEL=debug set the
 * last two from the environment (for ctest runs).
 * Every check compares what came back with what was sent (or with what the
 * server logged), so a misbehaving server fails the test, not only a dead
 * one.  The server must also stop cleanly on SIGTERM (exit 0, "stopped").
 * Ends with "N passed, M failed"; exit status 0 only when nothing failed.
 * The command line, the results, the server and the browsers are
 * harness.mjs's, shared with the other browser tests.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CheckFailed, Server, check, deadline, eqStrict as eq, finish, launchBrowser, log, parseArgs,
  saveServerLog, setupFailed, step, stopStep, testServer,
} from './harness.mjs';

const opts = parseArgs(process.argv.slice(2), {
  script: 'wt_browser_test.mjs', screenshots: true, screenshotsFromEnv: true, positional: true,
});

/* ---- the test ----------------------------------------------------------------- */

async function httpGet(url) {
  const r = await fetch(url);
  return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'h3wt-browser-'));
  const server = testServer(opts, tmp);
  let browser = null;
  let pageA = null;
  const watchdog = deadline(() => server);

  try {
    await server.start();
    log(`server: HTTP/3 port ${server.h3Port}, page ${server.pageUrl}`);
    const base = `http://127.0.0.1:${server.httpPort}`;

    await step('HTTP/1.1 listener serves the page, its files and config.json', async () => {
      const index = await httpGet(`${base}/`);
      eq(index.status, 200, 'GET / status');
      check(/text\/html/.test(index.type), `GET / content-type ${index.type}`);
      check(index.body.includes('app.js'), 'index.html names app.js');
      const js = await httpGet(`${base}/app.js`);
      eq(js.status, 200, 'GET /app.js status');
      check(/javascript/.test(js.type), `app.js content-type ${js.type}`);
      eq(js.body, fs.readFileSync(path.join(opts.web, 'app.js'), 'utf8'), 'app.js body');
      eq((await httpGet(`${base}/style.css`)).status, 200, 'GET /style.css status');
      eq((await httpGet(`${base}/no-such-file`)).status, 404, 'missing file status');
      eq((await httpGet(`${base}/%2e%2e/%2e%2e/etc/passwd`)).status, 404, 'path traversal status');
      const cfg = await httpGet(`${base}/config.json`);
      eq(cfg.status, 200, 'GET /config.json status');
      const c = JSON.parse(cfg.body);
      eq(c.h3_port, server.h3Port, 'config.json h3_port');
      eq(c.cert_sha256, server.sha256, 'config.json cert_sha256');
      eq(Buffer.from(c.cert_sha256_b64, 'base64').toString('hex'), server.sha256, 'config.json cert_sha256_b64');
      eq(c.paths.echo, '/wt/echo', 'paths.echo');
      eq(c.paths.channels, '/wt/channels', 'paths.channels');
      eq(c.paths.chat, undefined, 'no paths.chat (the chat is on channels)');
      eq(c.paths.ticker, '/wt/ticker', 'paths.ticker');
    });

    browser = await launchBrowser(opts.browser);
    const a = await browser.newPage('A');
    pageA = a;
    // localhost, as the server prints it (a secure context).
    await a.goto(server.pageUrl);
    if (opts.screenshots) {
      fs.mkdirSync(opts.screenshots, { recursive: true });
      await a.screenshot(path.join(opts.screenshots, `${opts.browser}-initial.png`));
    }

    await step('page loads with its test hook', async () => {
      const t = await a.eval(() => ({
        title: document.title,
        hook: typeof window.h3wtDemo,
        wt: typeof WebTransport,
        secure: window.isSecureContext,
      }));
      check(t.title.includes('h3wt'), `title ${t.title}`);
      eq(t.hook, 'object', 'window.h3wtDemo');
      eq(t.wt, 'function', 'WebTransport in the browser');
      eq(t.secure, true, 'secure context');
    });

    await step('connect: three WebTransport sessions open (echo, ticker, channels)', async () => {
      const r = await a.eval(async () => {
        try {
          return { ok: await window.h3wtDemo.connect(), sessions: window.h3wtDemo.sessions() };
        } catch (e) {
          return { error: `${e.name}: ${e.message}`, shown: window.h3wtDemo.errorShown() };
        }
      });
      check(!r.error, `connect failed: ${r.error} (page shows: ${r.shown})`);
      eq(r.ok.h3_port, server.h3Port, 'port the page used');
      eq(r.sessions.echo, 'open', 'echo session');
      eq(r.sessions.channels, 'open', 'channels session');
      eq(r.sessions.ticker, 'open', 'ticker session');
      check(await server.waitLog(/\[\/wt\/echo s\d+\] session ready/), 'server logged the echo session');
    });

    await step('datagram echo: payloads come back byte for byte', async () => {
      const results = await a.eval((n) => window.h3wtDemo.datagramEcho(n), 12);
      eq(results.length, 12, 'datagrams sent');
      const back = results.filter((r) => r.received !== null);
      // Datagrams are unreliable, but loopback loses none in practice.
      check(back.length >= 10, `only ${back.length} of 12 datagrams came back`);
      for (const r of back) eq(r.received, r.sent, 'echoed datagram');
      log(`  ${back.length}/12 echoed, RTT ${Math.min(...back.map((r) => r.rtt)).toFixed(2)}..${Math.max(...back.map((r) => r.rtt)).toFixed(2)} ms`);
    });

    await step('bidirectional stream echo', async () => {
      const text = `bidi ✓ ${'0123456789'.repeat(300)} ünïcødé ${Date.now()}`;
      const r = await a.eval((t) => window.h3wtDemo.bidiEcho(t), text);
      eq(r.received, text, 'echoed bidi stream');
    });

    await step('unidirectional stream answered on a server-opened stream', async () => {
      const text = `uni ${Math.random()} ${'xyz'.repeat(1000)}`;
      const r = await a.eval((t) => window.h3wtDemo.uniEcho(t), text);
      eq(r.received, text, 'echoed uni stream');
      const text2 = `second uni ${Math.random()}`;
      const r2 = await a.eval((t) => window.h3wtDemo.uniEcho(t), text2);
      eq(r2.received, text2, 'second echoed uni stream');
    });

    await step('10 MB bidirectional echo is byte-exact (backpressure)', async () => {
      const r = await a.eval((n) => window.h3wtDemo.bulkEcho(n), 10 * 1024 * 1024);
      eq(r.received, 10 * 1024 * 1024, 'bytes echoed');
      eq(r.receivedSha256, r.sentSha256, 'sha256 of the echo');
      log(`  10 MB echoed in ${r.ms.toFixed(0)} ms`);
    });

    await step('stream reset code round-trips (peer resets with N, server mirrors N)', async () => {
      // Chromium caps the codes a page may use at 255 (it sent 255 for 4711).
      for (const code of [42, 255]) {
        const r = await a.eval((c) => window.h3wtDemo.resetEcho(c), code);
        eq(r.first, 'about to be reset', 'bytes before the reset');
        check(!r.finished, 'the echo stream ended normally instead of being reset');
        check(await server.waitLog(new RegExp(`stream \\d+ reset by the peer with code ${code}:`)),
          `server log of the reset with code ${code}`);
        if (opts.browser === 'firefox' && r.streamErrorCode === null) {
          // Firefox ESR errors the readable with a bare TypeError ("Error in
          // input stream") and no streamErrorCode: the code is checked on
          // the server side above, and by Chromium.
          log(`  firefox: the reset reached the page as ${r.errorName}: ${r.message}`);
        } else {
          eq(r.streamErrorCode, code, `stream error code seen by the browser (${r.errorName}: ${r.message})`);
        }
      }
    });

    await step('ticker: a server-opened stream delivers ticks', async () => {
      const ticks = await a.eval(() => window.h3wtDemo.tickerWait(3, 8000));
      eq(ticks.length, 3, 'ticks received');
      for (const t of ticks) {
        eq(t.type, 'tick', 'tick type');
        check(Number.isInteger(t.n) && t.n > 0, `tick n ${t.n}`);
        check(Math.abs(Date.now() - t.ts) < 60000, `tick ts ${t.ts}`);
      }
      eq(ticks[1].n, ticks[0].n + 1, 'consecutive tick numbers');
      eq(ticks[2].n, ticks[1].n + 1, 'consecutive tick numbers');
      const c = await a.eval(() => window.h3wtDemo.ticks());
      check(c.datagram >= 1, `datagram ticks: ${c.datagram}`);
    });

    await step('chat between two pages (channels), typing hints (datagrams)', async () => {
      const b = await browser.newPage('B');
      await b.goto(`http://127.0.0.1:${server.httpPort}/`); // the other loopback name
      const rb = await b.eval(async () => {
        try {
          await window.h3wtDemo.connect();
          return window.h3wtDemo.sessions();
        } catch (e) {
          return { error: `${e.name}: ${e.message}` };
        }
      });
      check(!rb.error, `page B: ${rb.error}`);
      eq(rb.channels, 'open', 'B\'s channels session');
      const waitFor = async (page, fn, arg, what) => {
        for (let end = Date.now() + 5000; ;) {
          const v = await page.eval(fn, arg);
          if (v) return v;
          if (Date.now() > end) throw new CheckFailed(`${what}: not within 5000 ms`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const meB = await waitFor(b, () => window.h3wtDemo.chatState().me, null, 'B knows its member name');
      await waitFor(a, (m) => window.h3wtDemo.chatState().shown.some((t) => t.includes(`member ${m} joined`)),
        meB, 'A saw B join');
      const text = `hello from alice ${Math.random()} — ✓`;
      const pub = await a.eval(([t]) => window.h3wtDemo.chatSend(t, 'alice'), [text]);
      check(pub.offset >= 1, `PUBLISHED offset ${pub.offset}`);
      const got = await waitFor(b, (t) => window.h3wtDemo.chatState().lines.find((l) => l.text === t), text, 'B got it');
      eq(JSON.stringify([got.name, got.text, got.offset, got.history]),
        JSON.stringify(['alice', text, pub.offset, false]), 'line at B');
      check(Number.isInteger(got.ts), 'ts at B');
      const own = await waitFor(a, (t) => window.h3wtDemo.chatState().lines.find((l) => l.text === t), text, 'A got its own');
      eq(own.name, 'alice', 'A gets its own message too');
      const reply = `bob answers ${Math.random()}`;
      await b.eval(([t]) => window.h3wtDemo.chatSend(t, 'bob'), [reply]);
      const got2 = await waitFor(a, (t) => window.h3wtDemo.chatState().lines.find((l) => l.text === t), reply, 'A got the reply');
      eq(`${got2.name} ${got2.offset}`, `bob ${pub.offset + 1}`, 'reply at A');
      // Typing hints are datagrams: send a few until one shows.
      let typing = null;
      for (let i = 0; i < 5 && !typing; i++) {
        await b.eval(() => window.h3wtDemo.chatTyping('bob'));
        typing = await waitFor(a, () => /bob is typing/.test(window.h3wtDemo.chatState().typing), null, 'typing')
          .catch(() => null);
      }
      check(typing, 'typing hint relayed');
      // B leaves: A hears about it, and the server logged the close.
      const info = await b.eval(() => window.h3wtDemo.closeSession('channels', 0, 'bob leaves'));
      eq(info.code, 0, 'close code B saw');
      await waitFor(a, (m) => window.h3wtDemo.chatState().shown.some((t) => t.includes(`member ${m} left`)),
        meB, 'A saw B leave');
      check(await server.waitLog(/peer closed the session: code 0 reason 'bob leaves'/),
        'server logged the channels close');
      if (opts.screenshots) await b.screenshot(path.join(opts.screenshots, `${opts.browser}-page-b.png`));
      const retriesB = await b.eval(() => window.h3wtDemo.handshakeRetries());
      if (retriesB) log(`WARN: page B retried ${retriesB} failed WebTransport handshake(s)`);
      await b.eval(() => window.h3wtDemo.disconnect());
      await b.close();
    });

    // The page retries a handshake that failed fast once (see app.js);
    // say so, since every retry is a server-side handshake failure.
    const retries = await a.eval(() => window.h3wtDemo.handshakeRetries());
    if (retries) {
      log(`WARN: page A retried ${retries} failed WebTransport handshake(s); server log:`);
      for (const l of server.err.split('\n').filter((x) => /TLS alert|handshake/.test(x))) log(`  ${l}`);
    }
    if (opts.screenshots) {
      await a.eval(() => new Promise((r) => setTimeout(r, 600)));
      await a.screenshot(path.join(opts.screenshots, `${opts.browser}-page-a.png`));
    }

    await step('close with code and reason: the server observes both', async () => {
      const reason = `bye from the ${opts.browser} test`;
      const info = await a.eval(([c, r]) => window.h3wtDemo.closeSession('ticker', c, r), [4242, reason]);
      eq(info.code, 4242, 'close code the page saw');
      const m = await server.waitLog(
        new RegExp(`\\[/wt/ticker s\\d+\\] session closed: code 4242 reason '${reason}'`), 5000);
      check(m, `server log has no "session closed: code 4242 reason '${reason}'"`);
    });

    await step('a failed connection shows the error text on the page', async () => {
      await a.eval(() => window.h3wtDemo.disconnect());
      // Nothing listens on UDP at the HTTP/1.1 listener's port number.
      const r = await a.eval(async (port) => {
        try {
          await window.h3wtDemo.connect({ h3Port: port });
          return { connected: true };
        } catch (e) {
          return { error: `${e.name}: ${e.message}`, shown: window.h3wtDemo.errorShown() };
        }
      }, server.httpPort);
      check(!r.connected, 'connected to a port where no server listens');
      check(r.shown && r.shown.length > 10, `no error text on the page (${r.shown})`);
      log(`  the page says: ${r.shown.replace(/\n/g, ' | ')}`);
      if (opts.screenshots) await a.screenshot(path.join(opts.screenshots, `${opts.browser}-error.png`));
    });

    await step('reconnect after a failure', async () => {
      const r = await a.eval(async () => {
        try {
          await window.h3wtDemo.connect();
          return window.h3wtDemo.sessions();
        } catch (e) {
          return { error: `${e.name}: ${e.message}` };
        }
      });
      check(!r.error, `reconnect: ${r.error}`);
      eq(r.ticker, 'open', 'ticker session after reconnecting');
      await a.eval(() => window.h3wtDemo.tickerWait(1, 5000));
    });

    await step('--wt-origin: sessions from another origin get 403', async () => {
      const strict = new Server(path.resolve(opts.server), [
        '--port', '0', '--http-port', '0', '--cert-dir', path.join(tmp, 'cert'),
        '--web', opts.web, '--wt-origin', 'https://example.invalid']);
      await strict.start();
      try {
        const c = await browser.newPage('C');
        await c.goto(strict.pageUrl);
        const r = await c.eval(async () => {
          try {
            await window.h3wtDemo.connect();
            return { connected: true };
          } catch (e) {
            return { error: `${e.name}: ${e.message}`, shown: window.h3wtDemo.errorShown() };
          }
        });
        check(!r.connected, 'a session from another origin was accepted');
        check(r.shown, 'no error on the page');
        check(await strict.waitLog(/\[\/wt\/echo s\d+\] origin 'http:\/\/localhost:\d+' refused: 403/),
          'server log of the refused origin');
        await c.close();
      } finally {
        const x = await strict.stop();
        eq(x.code, 0, 'second server exit status');
      }
    });
  } catch (e) {
    setupFailed(e);
  } finally {
    // Sessions are still open here (the reconnect step): their ends, and
    // the ticker's timer, must not keep the server from stopping.
    await stopStep(server, 'server stops cleanly on SIGTERM, with sessions open', async () => {
      check(server.err.includes('h3wt-server: stopped'), 'no "h3wt-server: stopped" on stderr');
      if (pageA) {
        const sessions = await pageA.eval(() => new Promise((resolve) => {
          const t0 = Date.now();
          const poll = () => {
            const st = window.h3wtDemo.sessions();
            if (Object.values(st).every((v) => v !== 'open') || Date.now() - t0 > 5000) resolve(st);
            else setTimeout(poll, 50);
          };
          poll();
        }));
        for (const [k, v] of Object.entries(sessions)) {
          check(v !== 'open', `the page still thinks the ${k} session is open after the server stopped`);
        }
      }
    });
    if (browser) {
      await browser.close().catch((e) => log(`browser close: ${e}`));
    }
    clearTimeout(watchdog);
    saveServerLog(tmp, server, { tailLines: 60, keep: opts.keep });
  }
  finish();
}

main();
