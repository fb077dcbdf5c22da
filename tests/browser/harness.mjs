/*
 * What the browser tests (wt_browser_test.mjs, channels_browser_test.mjs,
 * demo_browser_test.mjs) share: their command line, the results (check, eq,
 * step, the "N passed, M failed" line and the exit status), h3wt-server as a
 * child process, and the two browsers behind one small interface (Debian's
 * Chromium through playwright-core, Firefox ESR through puppeteer-core over
 * WebDriver BiDi).  Each test keeps its own checks.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/* ---- options ------------------------------------------------------------ */

// --server PATH, --browser chromium|firefox, --web DIR, --log-level LEVEL
// (default $H3WT_BROWSER_LOG_LEVEL or info) and --keep (keep the temporary
// folder); with screenshots, also --screenshots DIR (default
// $H3WT_BROWSER_SCREENSHOTS when screenshotsFromEnv); with positional, the
// server may be given as a bare PATH.  script names the test in the usage
// message.
export function parseArgs(argv, { script, screenshots = false, screenshotsFromEnv = false, positional = false }) {
  const o = {
    server: null,
    browser: 'chromium',
    web: path.resolve(here, '../../web'),
    logLevel: process.env.H3WT_BROWSER_LOG_LEVEL || 'info',
    keep: false,
  };
  if (screenshots) o.screenshots = (screenshotsFromEnv && process.env.H3WT_BROWSER_SCREENSHOTS) || null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--server') o.server = next();
    else if (a === '--browser') o.browser = next();
    else if (a === '--web') o.web = next();
    else if (a === '--log-level') o.logLevel = next();
    else if (a === '--keep') o.keep = true;
    else if (screenshots && a === '--screenshots') o.screenshots = next();
    else if (positional && !o.server && !a.startsWith('-')) o.server = a;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.server) throw new Error(`usage: ${script} --server PATH [--browser chromium|firefox]`);
  if (!['chromium', 'firefox'].includes(o.browser)) throw new Error(`unknown browser ${o.browser}`);
  return o;
}

const t0 = Date.now();
export const log = (m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(2)}s] ${m}`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* ---- results ------------------------------------------------------------ */

export const results = { passed: 0, failed: 0, failures: [] };

export class CheckFailed extends Error {}

export function check(cond, what) {
  if (!cond) throw new CheckFailed(what);
}

// Equal as JSON (arrays and objects compare by content).
export function eq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new CheckFailed(`${what}: expected ${e}, got ${a}`);
}

// Strictly equal (===); long values are cut to 200 characters in the message.
export function eqStrict(actual, expected, what) {
  if (actual !== expected) {
    const show = (v) => {
      const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
      return s.length > 200 ? `${s.slice(0, 200)}… (${s.length} chars)` : s;
    };
    throw new CheckFailed(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

// Runs one check: one PASS or FAIL line, counted.
export async function step(name, fn) {
  const s = Date.now();
  try {
    await fn();
    results.passed++;
    log(`PASS ${name} (${Date.now() - s} ms)`);
  } catch (e) {
    results.failed++;
    const msg = e instanceof CheckFailed ? e.message : String((e && e.message) || e).split('\n    at ')[0];
    results.failures.push(`${name}: ${msg}`);
    log(`FAIL ${name}: ${msg}`);
  }
}

// An exception outside any step (starting the server or a browser, ...).
export function setupFailed(e) {
  results.failed++;
  results.failures.push(`setup: ${(e && e.stack) || e}`);
  log(`FAIL setup: ${(e && e.stack) || e}`);
}

// Kills the server (serverOf() is the one running now) and exits 1 when the
// whole test takes over ms; clear it with clearTimeout.
export function deadline(serverOf, ms = 170000) {
  return setTimeout(() => {
    log(`FAIL: the whole test took over ${ms / 1000} s`);
    const server = serverOf();
    if (server.proc) server.proc.kill('SIGKILL');
    process.exit(1);
  }, ms);
}

// Writes before + the server's stdout and stderr to tmp/server.log; after a
// failure, shows the last tailLines of stderr; removes tmp when nothing
// failed, unless keep.
export function saveServerLog(tmp, server, { before = '', tailLines = 40, keep = false } = {}) {
  const logFile = path.join(tmp, 'server.log');
  fs.writeFileSync(logFile, `${before}${server.out}\n----- stderr -----\n${server.err}`);
  if (results.failed) {
    log(`server log (last lines; whole log in ${logFile}):\n${server.err.split('\n').slice(-tailLines).join('\n')}`);
  }
  if (!keep && !results.failed) fs.rmSync(tmp, { recursive: true, force: true });
}

// The failures again, "N passed, M failed", and exit status 0 only when
// nothing failed.
export function finish() {
  for (const f of results.failures) log(`failed: ${f}`);
  console.log(`${results.passed} passed, ${results.failed} failed`);
  process.exit(results.failed ? 1 : 0);
}

/* ---- the server ----------------------------------------------------------- */

export class Server {
  constructor(bin, args) {
    this.bin = bin;
    this.args = args;
    this.out = '';
    this.err = '';
    this.exit = null;
  }

  // Resolves once the server has printed its HTTP/3 port, its certificate's
  // sha256 and (unless --no-http) the demo page's URL.
  start(timeoutMs = 15000) {
    log(`start ${this.bin} ${this.args.join(' ')}`);
    this.proc = spawn(this.bin, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    this.proc.stdout.on('data', (d) => { this.out += d; });
    this.proc.stderr.on('data', (d) => { this.err += d; });
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const timer = setInterval(() => {
        const m1 = /listening on (\S+) port (\d+)/.exec(this.out);
        const m2 = /demo page (http:\/\/\S+?:(\d+)\/)/.exec(this.out);
        const m3 = /certificate sha256 ([0-9a-f]{64})/.exec(this.out);
        if (m1 && m3 && (m2 || this.args.includes('--no-http'))) {
          clearInterval(timer);
          this.h3Port = Number(m1[2]);
          this.sha256 = m3[1];
          if (m2) {
            this.pageUrl = m2[1];
            this.httpPort = Number(m2[2]);
          }
          resolve(this);
        } else if (this.exit) {
          clearInterval(timer);
          reject(new Error(`server exited ${JSON.stringify(this.exit)} before listening:\n${this.out}\n${this.err}`));
        } else if (Date.now() - started > timeoutMs) {
          clearInterval(timer);
          reject(new Error(`server did not print its ports within ${timeoutMs} ms:\n${this.out}\n${this.err}`));
        }
      }, 20);
    });
  }

  // Waits until stderr (the log) matches re; returns the match.
  async waitLog(re, timeoutMs = 5000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.err);
      if (m) return m;
      if (Date.now() > end || this.exit) return null;
      await sleep(25);
    }
  }

  async stop(timeoutMs = 10000) {
    if (this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }

}

// The server every test starts first: both ports chosen by the system, its
// certificate in tmp/cert, the page from opts.web, opts.logLevel; then extra.
export function testServer(opts, tmp, extra = []) {
  return new Server(path.resolve(opts.server), [
    '--port', '0', '--http-port', '0', '--cert-dir', path.join(tmp, 'cert'),
    '--web', opts.web, '--log-level', opts.logLevel,
    ...extra,
  ]);
}

// The last step, when the server was started: it stops on SIGTERM with exit
// status 0 and no sanitizer report in its log; then more(), the test's own
// checks of the stop.
export async function stopStep(server, name, more = async () => {}) {
  if (!server.proc) return;
  await step(name, async () => {
    const r = await server.stop();
    for (const marker of ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer']) {
      check(!server.err.includes(marker), `sanitizer report in the server log (${marker})`);
    }
    eq(r.code, 0, `server exit status (signal ${r.signal})`);
    await more();
  });
}

/* ---- browsers ----------------------------------------------------------------
 * One small interface over both drivers: launchBrowser(name) gives name,
 * newPage(tag) and close(); a page has goto(url), eval(fn, arg) (fn runs in
 * the page with one argument), typeEnter(selector, text) (real key presses
 * into a field, then Enter), screenshot(file) and close().  The pages' console
 * lines and errors are logged with their tag.  viewport: the window size
 * (null: the driver's default). */

const VIEWPORT = { width: 1280, height: 1000 };

const CHROMIUM_ARGS = [
  '--no-sandbox', // root in a container: the setuid sandbox cannot start
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
];

// page is a playwright-core or a puppeteer-core page: the same calls here,
// except how typeEnter clears the field and presses Enter.
function wrapPage(page, tag, { clear, enter }) {
  page.on('console', (m) => log(`  [${tag} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log(`  [${tag} pageerror] ${e.message}`));
  return {
    goto: (url) => page.goto(url, { waitUntil: 'load' }),
    eval: (fn, arg) => page.evaluate(fn, arg),
    async typeEnter(sel, text) {
      await page.bringToFront();
      await clear(sel);
      await page.type(sel, text);
      await enter(sel);
    },
    screenshot: (file) => page.screenshot({ path: file, fullPage: true }),
    close: () => page.close(),
  };
}

async function launchChromium(viewport) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: process.env.H3WT_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  log(`chromium ${browser.version()}`);
  const context = await browser.newContext(viewport ? { viewport } : undefined);
  return {
    name: `chromium ${browser.version()}`,
    async newPage(tag) {
      const page = await context.newPage();
      return wrapPage(page, tag, {
        clear: (sel) => page.fill(sel, ''),
        enter: (sel) => page.press(sel, 'Enter'),
      });
    },
    close: () => browser.close(),
  };
}

async function launchFirefox(viewport) {
  const puppeteer = (await import('puppeteer-core')).default;
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.H3WT_FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
    protocol: 'webDriverBiDi',
    args: ['--no-remote'],
    ...(viewport ? { defaultViewport: viewport } : {}),
  });
  const version = await browser.version();
  log(`firefox ${version}`);
  return {
    name: version,
    async newPage(tag) {
      const page = await browser.newPage();
      return wrapPage(page, tag, {
        clear: (sel) => page.$eval(sel, (el) => { el.value = ''; }),
        enter: () => page.keyboard.press('Enter'),
      });
    },
    close: () => browser.close(),
  };
}

export function launchBrowser(name, { viewport = VIEWPORT } = {}) {
  return name === 'chromium' ? launchChromium(viewport) : launchFirefox(viewport);
}
