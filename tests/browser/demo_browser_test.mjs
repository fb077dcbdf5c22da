#!/usr/bin/env node
/*
 * Browser test of the demo page's channels panels (web/app.js on
 * web/channels.js and the server's /wt/channels): a real browser (Debian's
 * Chromium through playwright-core, or Firefox ESR through puppeteer-core
 * over WebDriver BiDi) loads the page from h3wt-server's HTTP/1.1 listener
 * in pages A and B (and C for a while), and uses them as a person would:
 * typing into the chat, reading what the page shows.
 *
 *   node demo_browser_test.mjs --server build/apps/h3wt-server \
 *        [--browser chromium|firefox] [--web DIR] [--log-level info|debug]
 *        [--screenshots DIR] [--keep]
 *
 * Checks: a chat line typed in A appears in B, and B's arrival shows in A
 * (presence); a page that joins later shows the last messages of the
 * history, in order; the server cuts A's session (a malformed frame on its
 * channel stream: the hub closes the session with BAD_FRAME), B publishes
 * meanwhile, and A shows that it reconnected and recovered exactly those;
 * the dots: each page sees the other's dot move, a closed tab's dot goes,
 * the counters are shown and plausible; the server restarts (a new
 * epoch): recovery fails and the page shows the history reloaded.  One line per check; ends with "N
 * passed, M failed"; exit status 0 only when nothing failed.  Every wait is
 * bounded.  The command line, the results, the server and the browsers are
 * harness.mjs's, shared with the other browser tests.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CheckFailed, Server, check, deadline, eq, finish, launchBrowser, log, parseArgs,
  saveServerLog,
  setupFailed, sleep, step, stopStep, testServer,
} from './harness.mjs';

const opts = parseArgs(process.argv.slice(2), { script: 'demo_browser_test.mjs', screenshots: true });

// Polls fn(arg) in the page (from here, so a background tab's slow timers
// do not matter) until it returns something truthy; a timeout fails the
// check with the last value seen.
async function until(page, fn, arg, ms, what) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await page.eval(fn, arg);
    if (last && (!Array.isArray(last) || last.length)) return last;
    if (Date.now() > end) throw new CheckFailed(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)})`);
    await sleep(100);
  }
}

const chat = (p) => p.eval(() => window.h3wtDemo.chatState());
const dots = (p) => p.eval(() => window.h3wtDemo.dots());

/* ---- the test ------------------------------------------------------------------ */

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'h3wt-demo-'));
  // A short drain: the test stops servers with sessions open.
  let server = testServer(opts, tmp, ['--drain-timeout', '200']);
  let firstLog = '';
  let browser = null;
  const watchdog = deadline(() => server);
  const shot = async (page, name) => {
    if (opts.screenshots) {
      fs.mkdirSync(opts.screenshots, { recursive: true });
      await page.screenshot(path.join(opts.screenshots, `${opts.browser}-${name}.png`));
    }
  };

  try {
    await server.start();
    log(`server: HTTP/3 port ${server.h3Port}, page ${server.pageUrl}`);
    browser = await launchBrowser(opts.browser);
    const a = await browser.newPage('A');
    const b = await browser.newPage('B');
    // A comes back no sooner than 2 s after losing its session: time for B
    // to publish meanwhile.
    await a.goto(`${server.pageUrl}?reconnect=2000`);
    await b.goto(`http://127.0.0.1:${server.httpPort}/`); // the other loopback name

    let memberA = null;
    await step('connect: A and B open their sessions; A joins an empty chat, then sees B arrive', async () => {
      const ra = await a.eval(() => window.h3wtDemo.connect().then(() => window.h3wtDemo.sessions()));
      eq(ra, { echo: 'open', ticker: 'open', channels: 'open' }, 'A sessions');
      const ca = await until(a, () => {
        const s = window.h3wtDemo.chatState();
        return s.me && s;
      }, null, 5000, 'A knows its own member name');
      memberA = ca.me;
      check(ca.notices.some((n) => /you joined the room: no history yet/.test(n)), `A notices ${JSON.stringify(ca.notices)}`);
      await b.eval(() => window.h3wtDemo.connect());
      const cb = await until(b, () => {
        const s = window.h3wtDemo.chatState();
        return s.me && s;
      }, null, 5000, 'B knows its own member name');
      check(cb.me !== memberA, `A and B are different members (${memberA})`);
      await until(a, (m) => window.h3wtDemo.chatState().shown.find((t) => t.includes(`member ${m} joined`)),
        cb.me, 5000, 'A shows that B joined');
      await until(a, () => /^2 in the room$/.test(window.h3wtDemo.chatState().membersText), null, 5000,
        'A shows 2 in the room');
    });

    const typed = [];
    await step('chat: a line typed in A appears in B (and in A), in order with offsets', async () => {
      for (let i = 1; i <= 3; i++) {
        const text = `hello ${i} from alice ✓`;
        typed.push(text);
        await a.eval(() => { document.getElementById('chat-name').value = 'alice'; });
        await a.typeEnter('#chat-text', text);
        // The form clears the field once the server has taken it.
        await until(a, () => document.getElementById('chat-text').value === '', null, 5000, 'A\'s field cleared');
      }
      const lb = await until(b, (n) => {
        const l = window.h3wtDemo.chatState().lines;
        return l.length >= n && l;
      }, typed.length, 5000, 'B has the 3 lines');
      eq(lb.map((l) => [l.name, l.text, l.offset, l.history, l.recovered]),
        typed.map((t, i) => ['alice', t, i + 1, false, false]), 'B\'s lines');
      const shownB = (await chat(b)).shown;
      for (const t of typed) check(shownB.some((s) => s.includes(`alice: ${t}`)), `B shows "${t}"`);
      const la = await until(a, (n) => window.h3wtDemo.chatState().lines.length >= n, typed.length, 5000, 'A has its own lines');
      check(la, 'A shows its own lines');
      // A typing hint from B (a datagram on the chat channel) shows in A.
      await b.eval(() => window.h3wtDemo.chatTyping('bob'));
      await until(a, () => /bob is typing/.test(window.h3wtDemo.chatState().typing), null, 5000, 'A shows bob typing')
        .catch(async () => {
          // Datagrams may be lost: once more.
          await b.eval(() => window.h3wtDemo.chatTyping('bob'));
          await until(a, () => /bob is typing/.test(window.h3wtDemo.chatState().typing), null, 5000, 'A shows bob typing');
        });
    });

    let idC = null;
    await step('history: a page that joins later shows the last messages, in order', async () => {
      const c = await browser.newPage('C');
      await c.goto(server.pageUrl);
      await c.eval(() => window.h3wtDemo.connect());
      const cc = await until(c, (n) => {
        const s = window.h3wtDemo.chatState();
        return s.lines.length >= n && s;
      }, typed.length, 5000, 'C has the history');
      eq(cc.lines.map((l) => [l.text, l.offset, l.history]), typed.map((t, i) => [t, i + 1, true]), 'C\'s history lines');
      check(cc.notices.some((n) => /the last 3 messages of its history follow/.test(n)), `C notices ${JSON.stringify(cc.notices)}`);
      // What C shows: the notice, then the three lines in order.
      const shown = cc.shown.join('\n');
      let at = shown.indexOf('of its history follow');
      for (const t of typed) {
        const next = shown.indexOf(t, at);
        check(next > at, `C shows "${t}" after what precedes it:\n${shown}`);
        at = next;
      }
      // C's dot reaches A; then C leaves: A sees it go, and its dot goes.
      idC = (await dots(c)).id;
      await until(a, (id) => window.h3wtDemo.dots().others.some((d) => d.id === id), idC, 10000, 'A sees C\'s dot');
      await shot(c, 'page-c');
      await c.eval(() => window.h3wtDemo.disconnect());
      await c.close();
      await until(a, () => window.h3wtDemo.chatState().shown.filter((t) => / left$/.test(t)).length >= 1, null, 5000,
        'A shows that C left');
    });

    await step('reconnect: the server cuts A, B publishes 2, A shows it reconnected and recovered them', async () => {
      await a.eval(() => window.h3wtDemo.channelsBreak());
      check(await server.waitLog(/malformed SUBSCRIBE/, 5000), 'the server logged the malformed frame');
      await until(a, () => window.h3wtDemo.chatState().state !== 'connected', null, 5000, 'A lost its session');
      // B sees A leave before it publishes: A cannot have them live.
      await until(b, (m) => window.h3wtDemo.chatState().shown.find((t) => t.includes(`member ${m} left`)),
        memberA, 5000, 'B shows that A left');
      const pubs = [];
      for (const t of ['while you were away 1', 'while you were away 2']) {
        pubs.push(await b.eval((x) => window.h3wtDemo.chatSend(x, 'bob'), t));
      }
      eq(pubs.map((p) => p.offset), [4, 5], 'offsets of B\'s lines');
      const stA = await chat(a);
      check(stA.state !== 'connected', `A came back too soon (${stA.state}): the test proves nothing`);
      const ra = await until(a, () => {
        const s = window.h3wtDemo.chatState();
        return s.resubs.length && s.lines.length >= 5 && s;
      }, null, 15000, 'A resubscribed with the missed lines');
      eq(ra.resubs, [{ recovered: true, missed: 2, history: 0 }], 'A\'s resubscription');
      eq(ra.lines.map((l) => [l.text, l.offset, l.recovered]),
        [...typed.map((t, i) => [t, i + 1, false]), ['while you were away 1', 4, true], ['while you were away 2', 5, true]],
        'A\'s lines (each once)');
      check(ra.shown.some((t) => /reconnected: 2 missed messages recovered/.test(t)), `A shows the recovery: ${JSON.stringify(ra.shown.slice(-6))}`);
      check(ra.shown.some((t) => /connection lost: reconnecting/.test(t)), 'A showed the lost connection');
      check(ra.shown.filter((t) => /while you were away \d/.test(t) && /recovered$/.test(t)).length === 2,
        `A marks the recovered lines: ${JSON.stringify(ra.shown.slice(-4))}`);
      const sa = await until(a, () => {
        const s = window.h3wtDemo.chatState();
        return s.state === 'connected' && /reconnected 1×/.test(s.status) && s;
      }, null, 5000, 'A\'s status says reconnected');
      check(sa.reconnects === 1, `reconnects ${sa.reconnects}`);
      // Live again both ways.
      await a.typeEnter('#chat-text', 'back again');
      await until(b, () => window.h3wtDemo.chatState().lines.some((l) => l.text === 'back again' && l.offset === 6),
        null, 5000, 'B gets A\'s line after the reconnect');
      await shot(a, 'page-a');
    });

    await step('dots: each page sees the other\'s dot move; counters shown and plausible; C\'s dot is gone', async () => {
      const [ia, ib] = [(await dots(a)).id, (await dots(b)).id];
      const seen = async (p, other, what) => {
        const first = await until(p, (id) => window.h3wtDemo.dots().others.find((d) => d.id === id), other, 10000, `${what}: the other's dot`);
        const later = await until(p, ([id, n, x, y]) => {
          const d = window.h3wtDemo.dots().others.find((o) => o.id === id);
          return d && d.n >= n + 3 && (d.x !== x || d.y !== y) && d;
        }, [other, first.n, first.x, first.y], 15000, `${what}: the other's dot moves`);
        log(`  ${what}: the other's dot went from (${first.x}, ${first.y}) #${first.n} to (${later.x}, ${later.y}) #${later.n}`);
      };
      await seen(a, ib, 'A');
      await seen(b, ia, 'B');
      for (const [p, tag] of [[a, 'A'], [b, 'B']]) {
        const d = await dots(p);
        log(`  ${tag}: sent ${d.sent}, received ${d.received}, lost ${d.lost}, out of date ${d.outdated}, tabs ${d.others.length}`);
        check(d.sent > 0 && d.received > 0, `${tag} counters ${JSON.stringify(d)}`);
        check(d.lost >= 0 && d.outdated >= 0 && d.lost + d.outdated <= d.received + d.lost, `${tag} counters ${JSON.stringify(d)}`);
        // A loopback loses little: most of what was sent arrives.
        check(d.lost <= d.received, `${tag} lost ${d.lost} of ${d.received + d.lost}`);
        eq(d.others.map((o) => o.id).includes(idC), false, `${tag} still draws C's dot`);
        eq(d.others.length, 1, `${tag} draws one other dot`);
        eq([d.shown.received, d.shown.lost, d.shown.outdated].every((v) => /^\d+$/.test(v)), true, `${tag} shows counters`);
        check(Number(d.shown.received) > 0, `${tag} shows received ${d.shown.received}`);
      }
      await shot(b, 'page-b');
    });

    await step('server restart: a new epoch, so recovery fails and the pages reload the history', async () => {
      const before = (await chat(a)).resubs.length;
      const h3Port = server.h3Port;
      const r0 = await server.stop();
      eq(r0.code, 0, 'first server exit status');
      firstLog = `${server.out}\n----- stderr -----\n${server.err}\n===== second server =====\n`;
      // The same UDP port and certificate: the pages' URL and pinned hash
      // still hold; its hub starts empty, with a new epoch.
      server = new Server(path.resolve(opts.server), [
        '--port', String(h3Port), '--no-http', '--cert-dir', path.join(tmp, 'cert'),
        '--log-level', opts.logLevel, '--drain-timeout', '200',
      ]);
      await server.start();
      // Published in the new life before A is back (A waits 2 s at least).
      const client = path.join(path.dirname(path.resolve(opts.server)), 'h3wt-client');
      const line = JSON.stringify({ type: 'chat', name: 'carol', text: 'after the restart', id: 'shell', ts: Date.now() });
      const pub = spawn(client, ['-k', '--publish', 'chat', '-d', line, `https://127.0.0.1:${h3Port}/wt/channels`],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let pubOut = '';
      pub.stdout.on('data', (d) => { pubOut += d; });
      const code = await new Promise((res) => pub.on('exit', res));
      check(code === 0 && /"event":"published".*"offset":1\b/.test(pubOut), `h3wt-client --publish: exit ${code}, ${pubOut}`);
      const ra = await until(a, (n) => {
        const s = window.h3wtDemo.chatState();
        return s.resubs.length > n && s.state === 'connected' && s;
      }, before, 20000, 'A resubscribed to the new server');
      eq(ra.resubs[ra.resubs.length - 1], { recovered: false, missed: 1, history: 1 }, 'A\'s resubscription');
      eq(ra.lines.map((l) => [l.name, l.text, l.offset, l.history]), [['carol', 'after the restart', 1, true]],
        'A\'s lines: only the new history');
      check(ra.shown.some((t) => /reconnected: recovery failed, history reloaded \(1 message\)/.test(t)),
        `A shows the failed recovery: ${JSON.stringify(ra.shown)}`);
      check(!ra.shown.some((t) => /hello 1 from alice/.test(t)), 'A cleared the old lines');
      // B too (it may have come back before carol's line: 0 or 1 of history).
      const rb = await until(b, () => {
        const s = window.h3wtDemo.chatState();
        return s.resubs.length && s.state === 'connected' && s;
      }, null, 20000, 'B resubscribed to the new server');
      const last = rb.resubs[rb.resubs.length - 1];
      check(!last.recovered && last.history === rb.lines.filter((l) => l.history).length,
        `B: ${JSON.stringify(last)}, lines ${JSON.stringify(rb.lines)}`);
      await shot(a, 'page-a-restart');
    });
  } catch (e) {
    setupFailed(e);
  } finally {
    if (browser) await browser.close().catch((e) => log(`browser close: ${e}`));
    await stopStep(server, 'server stops cleanly on SIGTERM, no sanitizer report');
    clearTimeout(watchdog);
    saveServerLog(tmp, server, { before: firstLog, keep: opts.keep });
  }
  finish();
}

main();
