#!/usr/bin/env node
/*
 * Opens many WebTransport sessions from headless Chromium to h3wt-server's
 * /wt/echo, one new QUIC connection each, and counts failed handshakes.
 * A diagnostic, not a ctest: it showed that resumed handshakes (Chromium
 * holds a session ticket from an earlier connection to the same host) fail
 * now and then while fresh ones do not.
 *
 *   node handshake_repeat.mjs --server build/apps/h3wt-server \
 *        [--count 90] [--fresh] [--host 127.0.0.1|localhost] [--log-level debug]
 *
 * --fresh opens each connection from a new browser context (no tickets).
 * H3WT_CHROMIUM_EXTRA_ARGS adds Chromium flags (space-separated), e.g.
 * --disable-features=PermuteTLSExtensions or --log-net-log=FILE.
 * Prints "handshakes: N ok, M failed" and the server's lines about them;
 * exit status 1 when any failed.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const o = { server: null, count: 90, fresh: false, logLevel: 'debug', host: '127.0.0.1' };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--server') o.server = process.argv[++i];
  else if (a === '--count') o.count = Number(process.argv[++i]);
  else if (a === '--fresh') o.fresh = true;
  else if (a === '--log-level') o.logLevel = process.argv[++i];
  else if (a === '--host') o.host = process.argv[++i];
  else throw new Error(`unknown argument ${a}`);
}
if (!o.server) throw new Error('--server PATH is required');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'h3wt-hs-'));
const srv = spawn(o.server, ['--port', '0', '--http-port', '0', '--cert-dir', path.join(tmp, 'cert'),
  '--web', path.resolve(here, '../../web'), '--log-level', o.logLevel], { stdio: ['ignore', 'pipe', 'pipe'] });
let out = '';
let err = '';
srv.stdout.on('data', (d) => { out += d; });
srv.stderr.on('data', (d) => { err += d; });
for (let i = 0; !/demo page (\S+)/.test(out); i++) {
  if (i > 500) throw new Error(`server did not start:\n${out}\n${err}`);
  await new Promise((r) => setTimeout(r, 20));
}
const url = /demo page (\S+)/.exec(out)[1].replace('localhost', o.host);

const browser = await chromium.launch({
  executablePath: process.env.H3WT_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run',
    ...(process.env.H3WT_CHROMIUM_EXTRA_ARGS || '').split(' ').filter(Boolean)],
});

// Opens one session from page p; returns null or the error text.
const openOne = (p) => p.evaluate(async () => {
  const cfg = await (await fetch('/config.json')).json();
  const hash = new Uint8Array(cfg.cert_sha256.match(/../g).map((h) => parseInt(h, 16)));
  const wt = new WebTransport(`https://${location.hostname}:${cfg.h3_port}/wt/echo`,
    { serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }] });
  try {
    await wt.ready;
    wt.close();
    return null;
  } catch (e) {
    return `${e.name}: ${e.message}`;
  }
});

let ok = 0;
let failed = 0;
let page = null;
let ctx = null;
for (let i = 0; i < o.count; i++) {
  if (o.fresh || !page) {
    if (ctx) await ctx.close();
    ctx = await browser.newContext();
    page = await ctx.newPage();
    await page.goto(url);
  }
  const e = await openOne(page);
  if (e) {
    failed++;
    console.log(`connection ${i + 1}: ${e}`);
  } else {
    ok++;
  }
}
await browser.close();
srv.kill('SIGTERM');
await new Promise((r) => srv.on('exit', r));
for (const l of err.split('\n').filter((x) => /TLS alert|read: /.test(x))) console.log(`server: ${l}`);
console.log(`handshakes (${o.fresh ? 'fresh contexts' : 'one context'}): ${ok} ok, ${failed} failed`);
fs.writeFileSync(path.join(tmp, 'server.log'), err);
console.log(`server log: ${path.join(tmp, 'server.log')}`);
process.exit(failed ? 1 : 0);
