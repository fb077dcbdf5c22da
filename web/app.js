/*
 * h3wt demo page: WebTransport to h3wt-server's /wt/echo, /wt/chat and
 * /wt/ticker routes.  No build step, no dependencies.
 *
 * The page comes from the server's HTTP/1.1 listener on localhost (a secure
 * context), reads /config.json (HTTP/3 port, certificate SHA-256) and opens
 * WebTransport sessions to https://<same host>:<h3_port>/wt/..., pinning the
 * self-signed development certificate with serverCertificateHashes.
 *
 * window.h3wtDemo exposes the same actions as async functions, so a browser
 * test can drive the page exactly as a person would.
 */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const enc = new TextEncoder();
  const dec = new TextDecoder();

  const CONNECT_TIMEOUT_MS = 10000;
  const MAX_ENVELOPE = 65536; // chat/ticker streams are small; cap what we read

  const state = {
    cfg: null,
    sessions: { echo: null, chat: null, ticker: null },
    connecting: false,
    lastError: null,
    handshakeRetries: 0,
    // datagram echo
    dgSeq: 0,
    dgPending: new Map(), // seq -> {t0, payload, resolve}
    dgSent: 0,
    dgRecv: 0,
    rtts: [], // last 120 {t, rtt}
    rttSum: 0,
    rttCount: 0,
    rttMin: Infinity,
    rttMax: 0,
    dgTimer: null,
    // unidirectional echo answers, in order
    uniWaiters: [],
    // ticker
    ticks: [],
    tickStream: 0,
    tickDgram: 0,
    tickWaiters: [],
    // chat
    chatId: null,
    chatMembers: [],
    chatEnvelopes: [],
    chatWaiters: [],
    lastTypingSent: 0,
    typingTimers: new Map(),
  };

  /* ---- small helpers ---------------------------------------------------- */

  function log(msg) {
    const el = $('log');
    const t = new Date().toISOString().slice(11, 23);
    el.textContent += `${t} ${msg}\n`;
    if (el.textContent.length > 20000) {
      el.textContent = el.textContent.slice(-15000);
    }
    el.scrollTop = el.scrollHeight;
  }

  function errText(e) {
    if (!e) return 'unknown error';
    let s = `${e.name || 'Error'}: ${e.message || e}`;
    if (e.source) s += ` (source: ${e.source})`;
    if (e.streamErrorCode !== undefined && e.streamErrorCode !== null) {
      s += ` (stream error code ${e.streamErrorCode})`;
    }
    return s;
  }

  function showError(e, hint) {
    const text = typeof e === 'string' ? e : errText(e);
    state.lastError = text;
    $('error-text').textContent = text;
    $('error-hint').textContent = hint || '';
    $('error').hidden = false;
    log(`error: ${text}`);
  }

  function clearError() {
    $('error').hidden = true;
  }

  function hexToBytes(hex) {
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
      throw new Error(`config.json: cert_sha256 is not 64 hex digits: ${hex}`);
    }
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function concat(chunks, total) {
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  // Reads a whole stream (up to limit bytes: more is an error).
  async function readAll(readable, limit) {
    const reader = readable.getReader();
    const chunks = [];
    let total = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        reader.cancel().catch(() => {});
        throw new Error(`stream longer than ${limit} bytes`);
      }
      chunks.push(value);
    }
    return concat(chunks, total);
  }

  function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  async function sha256hex(bytes) {
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function fmtMs(v) {
    return Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 1)} ms` : '-';
  }

  function fmtBytes(n) {
    if (n >= 1048576) return `${(n / 1048576).toFixed(n % 1048576 ? 2 : 0)} MB`;
    if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`;
    return `${n} B`;
  }

  /* ---- configuration and sessions --------------------------------------- */

  async function loadConfig() {
    let r;
    try {
      r = await fetch('/config.json', { cache: 'no-store' });
    } catch (e) {
      throw new Error(`cannot fetch /config.json: ${errText(e)}`);
    }
    if (!r.ok) {
      throw new Error(`GET /config.json answered ${r.status} ${r.statusText}: open the page ` +
        'at the address h3wt-server prints ("demo page http://localhost:PORT/")');
    }
    const cfg = await r.json();
    if (!Number.isInteger(cfg.h3_port) || cfg.h3_port <= 0 || !cfg.paths) {
      throw new Error(`config.json lacks h3_port or paths: ${JSON.stringify(cfg)}`);
    }
    cfg.hash = hexToBytes(cfg.cert_sha256);
    return cfg;
  }

  function sessionUrl(cfg, path) {
    let host = cfg.h3_host || location.hostname;
    if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
    return `https://${host}:${cfg.h3_port}${path}`;
  }

  // Opens one session, trying a second time when the handshake fails fast
  // (a server that is down fails twice; a rare failed resumed handshake
  // does not spoil the demo: the retry is logged and counted).
  async function openSession(name, handlers) {
    const t0 = performance.now();
    try {
      return await openSessionOnce(name, handlers);
    } catch (e) {
      if (performance.now() - t0 > 3000) throw e;
      state.handshakeRetries++;
      log(`${name}: handshake failed (${errText(e)}), retrying once`);
      return openSessionOnce(name, handlers);
    }
  }

  // Opens one session; handlers: onDatagram(bytes), onUniStream(readable),
  // onClosed(info | error).
  async function openSessionOnce(name, handlers) {
    const cfg = state.cfg;
    const url = sessionUrl(cfg, cfg.paths[name]);
    log(`${name}: opening ${url}`);
    const wt = new WebTransport(url, {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: cfg.hash }],
    });
    const s = { name, url, wt, closed: null, dgWriter: null, closing: false, ready: false };
    wt.closed.then(
      (info) => {
        s.closed = { code: info.closeCode, reason: info.reason };
        handlers.onClosed(s, s.closed, null);
      },
      (err) => {
        s.closed = { error: errText(err) };
        handlers.onClosed(s, null, err);
      },
    );
    try {
      await withTimeout(wt.ready, CONNECT_TIMEOUT_MS, `${name}: WebTransport handshake`);
    } catch (e) {
      try { wt.close(); } catch (_) { /* already failed */ }
      throw e;
    }
    s.ready = true;
    s.dgWriter = wt.datagrams.writable.getWriter();
    (async () => {
      const reader = wt.datagrams.readable.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          handlers.onDatagram(value);
        }
      } catch (_) { /* session ended */ }
    })();
    (async () => {
      const reader = wt.incomingUnidirectionalStreams.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          handlers.onUniStream(value);
        }
      } catch (_) { /* session ended */ }
    })();
    log(`${name}: ready`);
    return s;
  }

  function openSessions() {
    return Object.values(state.sessions).filter((s) => s && !s.closed);
  }

  function updateStatus() {
    const open = openSessions();
    const pill = $('status');
    if (state.connecting) {
      pill.textContent = 'connecting…';
      pill.className = 'pill busy';
    } else if (open.length) {
      pill.textContent = `connected · ${open.length} session${open.length > 1 ? 's' : ''}`;
      pill.className = 'pill on';
    } else {
      pill.textContent = state.lastError && !$('error').hidden ? 'failed' : 'disconnected';
      pill.className = state.lastError && !$('error').hidden ? 'pill fail' : 'pill off';
    }
    const echo = state.sessions.echo && !state.sessions.echo.closed;
    const chat = state.sessions.chat && !state.sessions.chat.closed;
    for (const id of ['dg-one', 'dg-run', 'st-bidi', 'st-uni', 'st-bulk']) $(id).disabled = !echo;
    $('chat-text').disabled = !chat;
    $('chat-send').disabled = !chat;
    $('cl-close').disabled = open.length === 0;
    $('connect').disabled = state.connecting || open.length === 3;
    $('disconnect').disabled = open.length === 0;
    const names = Object.entries(state.sessions)
      .map(([k, s]) => `${k}: ${!s ? '-' : s.closed ? describeClose(s.closed) : 'open'}`);
    const cl = $('cl-result');
    if (!cl.dataset.sticky) {
      cl.textContent = `Sessions — ${names.join(', ')}`;
      cl.className = 'result';
    }
    if (!echo && state.dgTimer) toggleDatagrams();
  }

  function describeClose(c) {
    if (c.error) return `failed (${c.error})`;
    return `closed (code ${c.code}, reason '${c.reason}')`;
  }

  function onSessionClosed(s, info, err) {
    if (!s.ready) return; // a failed handshake: connect() reports it
    if (err) {
      log(`${s.name}: session failed: ${errText(err)}`);
      if (!s.closing) {
        showError(err, `The ${s.name} session ended abnormally. Has h3wt-server stopped?`);
      }
    } else {
      log(`${s.name}: session closed: code ${info.code} reason '${info.reason}'`);
    }
    if (s.name === 'chat') {
      $('chat-members').textContent = 'not in the room';
      addChatNotice('you left the room');
    }
    updateStatus();
  }

  // override.h3Port (tests only): connect to another port than config.json's.
  async function connect(override = {}) {
    if (state.connecting) return state.cfg;
    clearError();
    if (!('WebTransport' in window)) {
      showError('This browser has no WebTransport.',
        'Use a recent Chromium, Chrome, Edge or Firefox, from http://localhost or http://127.0.0.1.');
      updateStatus();
      throw new Error('no WebTransport');
    }
    state.connecting = true;
    updateStatus();
    try {
      state.cfg = await loadConfig();
      if (override.h3Port) state.cfg.h3_port = override.h3Port;
      $('info-url').textContent = sessionUrl(state.cfg, '/wt/…');
      $('info-hash').textContent = `${state.cfg.cert_sha256.slice(0, 16)}…`;
      $('info-hash').title = state.cfg.cert_sha256;
      const handlers = {
        echo: { onDatagram: onEchoDatagram, onUniStream: onEchoUniStream, onClosed: onSessionClosed },
        chat: { onDatagram: onChatDatagram, onUniStream: onChatUniStream, onClosed: onSessionClosed },
        ticker: { onDatagram: onTickDatagram, onUniStream: onTickerUniStream, onClosed: onSessionClosed },
      };
      const names = ['echo', 'chat', 'ticker'].filter(
        (n) => !state.sessions[n] || state.sessions[n].closed);
      if (names.includes('chat')) {
        // A new room session: what the old one received no longer applies.
        state.chatEnvelopes = [];
        state.chatId = null;
      }
      const results = await Promise.allSettled(names.map((n) => openSession(n, handlers[n])));
      const failures = [];
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') {
          state.sessions[names[i]] = r.value;
        } else {
          failures.push(`${names[i]}: ${errText(r.reason)}`);
        }
      });
      if (failures.length) {
        const e = new Error(failures.join('\n'));
        e.name = 'WebTransport';
        throw e;
      }
      return state.cfg;
    } catch (e) {
      const port = state.cfg ? state.cfg.h3_port : '?';
      showError(e, 'Is h3wt-server still running? WebTransport needs its HTTP/3 port ' +
        `(UDP ${port}) and the certificate hash from /config.json: reload the page after ` +
        'restarting the server. "Opening handshake failed" with a running server usually ' +
        'means a missing WebTransport SETTING or a refused certificate (see the server log).');
      throw e;
    } finally {
      state.connecting = false;
      updateStatus();
    }
  }

  async function closeSession(which, code, reason) {
    const s = state.sessions[which];
    if (!s || s.closed) throw new Error(`no open ${which} session`);
    s.closing = true;
    log(`${which}: closing with code ${code} reason '${reason}'`);
    s.wt.close({ closeCode: code, reason });
    try {
      await withTimeout(s.wt.closed, 5000, `${which}: close`);
    } catch (_) { /* onClosed logs it */ }
    return s.closed;
  }

  async function disconnect() {
    const open = openSessions();
    await Promise.all(open.map((s) => closeSession(s.name, 0, 'disconnect')));
  }

  /* ---- datagram echo ----------------------------------------------------- */

  // Echo datagrams carry "dg:<seq>:<payload>"; the sequence number finds
  // the send time (round-trip time) and the waiter.
  function sendEchoDatagram(payloadText) {
    const s = state.sessions.echo;
    if (!s || s.closed) return Promise.reject(new Error('echo session not open'));
    const seq = ++state.dgSeq;
    const text = `dg:${seq}:${payloadText}`;
    const bytes = enc.encode(text);
    return new Promise((resolve) => {
      state.dgPending.set(seq, { t0: performance.now(), text, resolve });
      state.dgSent++;
      $('dg-sent').textContent = state.dgSent;
      s.dgWriter.write(bytes).catch((e) => log(`datagram not sent: ${errText(e)}`));
      // Forget it after 10 s: datagrams may be lost.
      setTimeout(() => {
        if (state.dgPending.delete(seq)) resolve(null);
      }, 10000);
    }).then((r) => (r ? { sent: text, ...r } : { sent: text, received: null, rtt: null }));
  }

  function onEchoDatagram(bytes) {
    const text = dec.decode(bytes);
    const m = /^dg:(\d+):/.exec(text);
    const p = m && state.dgPending.get(Number(m[1]));
    if (!p) {
      log(`echo: unexpected datagram (${bytes.length} bytes)`);
      return;
    }
    state.dgPending.delete(Number(m[1]));
    const rtt = performance.now() - p.t0;
    state.dgRecv++;
    state.rttSum += rtt;
    state.rttCount++;
    state.rttMin = Math.min(state.rttMin, rtt);
    state.rttMax = Math.max(state.rttMax, rtt);
    state.rtts.push({ t: performance.now(), rtt, ok: text === p.text });
    if (state.rtts.length > 120) state.rtts.shift();
    $('dg-recv').textContent = state.dgRecv;
    $('dg-last').textContent = fmtMs(rtt);
    $('dg-avg').textContent = fmtMs(state.rttSum / state.rttCount);
    $('dg-minmax').textContent = `${fmtMs(state.rttMin)} / ${fmtMs(state.rttMax)}`;
    if (text !== p.text) log(`echo: datagram ${m[1]} came back altered!`);
    drawChart();
    p.resolve({ received: text, rtt });
  }

  function randomText(n) {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';
    const r = crypto.getRandomValues(new Uint8Array(n));
    return Array.from(r, (b) => alphabet[b & 63]).join('');
  }

  function toggleDatagrams() {
    if (state.dgTimer) {
      clearInterval(state.dgTimer);
      state.dgTimer = null;
      $('dg-run').textContent = 'Start pinging';
      return;
    }
    const every = Number($('dg-interval').value);
    state.dgTimer = setInterval(() => {
      sendEchoDatagram(`ping ${new Date().toISOString()}`).catch(() => {});
    }, every);
    $('dg-run').textContent = 'Stop';
  }

  function drawChart() {
    const c = $('dg-chart');
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 520;
    const h = c.clientHeight || 150;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const pad = { l: 44, r: 8, t: 10, b: 18 };
    const pts = state.rtts;
    const max = Math.max(1, ...pts.map((p) => p.rtt)) * 1.15;
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#667085';
    g.strokeStyle = '#e4e8ef';
    g.lineWidth = 1;
    for (let i = 0; i <= 3; i++) {
      const y = pad.t + ((h - pad.t - pad.b) * i) / 3;
      g.beginPath();
      g.moveTo(pad.l, y);
      g.lineTo(w - pad.r, y);
      g.stroke();
      g.fillText(`${(max * (1 - i / 3)).toFixed(max < 10 ? 1 : 0)} ms`, 2, y + 4);
    }
    g.fillText(pts.length ? `last ${pts.length} round trips` : 'no datagrams yet', pad.l, h - 4);
    if (!pts.length) return;
    const x = (i) => pad.l + ((w - pad.l - pad.r) * i) / Math.max(1, 119);
    const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / max);
    g.strokeStyle = '#2f6fed';
    g.lineWidth = 1.5;
    g.beginPath();
    pts.forEach((p, i) => (i ? g.lineTo(x(i), y(p.rtt)) : g.moveTo(x(i), y(p.rtt))));
    g.stroke();
    pts.forEach((p, i) => {
      g.fillStyle = p.ok ? '#2f6fed' : '#c2410c';
      g.beginPath();
      g.arc(x(i), y(p.rtt), 2.2, 0, Math.PI * 2);
      g.fill();
    });
  }

  /* ---- stream echo ---------------------------------------------------------- */

  async function writeAll(writable, bytes, chunk = 65536) {
    const writer = writable.getWriter();
    for (let off = 0; off < bytes.length; off += chunk) {
      await writer.ready;
      await writer.write(bytes.subarray(off, Math.min(bytes.length, off + chunk)));
    }
    await writer.close();
  }

  async function bidiEchoBytes(bytes) {
    const s = state.sessions.echo;
    if (!s || s.closed) throw new Error('echo session not open');
    const t0 = performance.now();
    const st = await s.wt.createBidirectionalStream();
    const [, received] = await Promise.all([
      writeAll(st.writable, bytes),
      readAll(st.readable, bytes.length + 1),
    ]);
    return { received, ms: performance.now() - t0 };
  }

  function onEchoUniStream(readable) {
    const w = state.uniWaiters.shift();
    readAll(readable, 16 << 20).then(
      (bytes) => (w ? w.resolve(bytes) : log(`echo: unexpected server stream (${bytes.length} bytes)`)),
      (e) => (w ? w.reject(e) : log(`echo: server stream failed: ${errText(e)}`)),
    );
  }

  async function uniEchoBytes(bytes) {
    const s = state.sessions.echo;
    if (!s || s.closed) throw new Error('echo session not open');
    const t0 = performance.now();
    const answer = new Promise((resolve, reject) => state.uniWaiters.push({ resolve, reject }));
    const st = await s.wt.createUnidirectionalStream();
    await writeAll(st, bytes);
    const received = await withTimeout(answer, 10000, 'unidirectional echo');
    return { received, ms: performance.now() - t0 };
  }

  function showStreamResult(kind, sent, r, extra = '') {
    const same = sent.length === r.received.length && sent.every((b, i) => b === r.received[i]);
    const el = $('st-result');
    el.className = `result ${same ? 'ok' : 'bad'}`;
    const shown = r.received.length <= 300 ? `\n← ${dec.decode(r.received)}` : '';
    el.textContent = `${kind}: sent ${fmtBytes(sent.length)}, got back ${fmtBytes(r.received.length)} ` +
      `in ${fmtMs(r.ms)} — ${same ? 'identical ✓' : 'DIFFERENT ✗'}${extra}${shown}`;
    return same;
  }

  async function runStreamAction(kind) {
    try {
      if (kind === 'bulk') {
        const size = Number($('st-bulk-size').value);
        $('st-result').textContent = `bulk: echoing ${fmtBytes(size)}…`;
        $('st-result').className = 'result';
        const r = await bulkEcho(size);
        const el = $('st-result');
        el.className = `result ${r.same ? 'ok' : 'bad'}`;
        el.textContent = `bulk: ${fmtBytes(r.bytes)} echoed in ${fmtMs(r.ms)} ` +
          `(${((r.bytes * 8) / (r.ms * 1000)).toFixed(1)} Mbit/s each way) — ` +
          `${r.same ? 'identical ✓' : 'DIFFERENT ✗'}\nsha256 ${r.receivedSha256.slice(0, 32)}…`;
        return;
      }
      const bytes = enc.encode($('st-text').value);
      const r = kind === 'bidi' ? await bidiEchoBytes(bytes) : await uniEchoBytes(bytes);
      showStreamResult(kind === 'bidi' ? 'bidirectional' : 'unidirectional', bytes, r,
        kind === 'uni' ? ' (answer on a server-opened stream)' : '');
      log(`${kind} echo: ${bytes.length} bytes in ${fmtMs(r.ms)}`);
    } catch (e) {
      $('st-result').className = 'result bad';
      $('st-result').textContent = `${kind}: failed: ${errText(e)}`;
      log(`${kind} echo failed: ${errText(e)}`);
    }
  }

  async function bulkEcho(size) {
    const bytes = new Uint8Array(size);
    // Pseudo-random, so a shifted or repeated chunk would not compare equal.
    let x = 0x9e3779b9 ^ size;
    for (let i = 0; i < size; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      bytes[i] = x & 0xff;
    }
    const r = await bidiEchoBytes(bytes);
    const [sentSha256, receivedSha256] = await Promise.all([sha256hex(bytes), sha256hex(r.received)]);
    return {
      bytes: size, received: r.received.length, ms: r.ms,
      sentSha256, receivedSha256, same: sentSha256 === receivedSha256 && size === r.received.length,
    };
  }

  // Resets our sending side of a bidi echo stream with code; the server
  // mirrors it, so reading fails with the same code.
  async function resetEcho(code) {
    const s = state.sessions.echo;
    if (!s || s.closed) throw new Error('echo session not open');
    const st = await s.wt.createBidirectionalStream();
    const writer = st.writable.getWriter();
    await writer.write(enc.encode('about to be reset'));
    const reader = st.readable.getReader();
    const first = await withTimeout(reader.read(), 5000, 'reset echo: first bytes');
    await writer.abort(new WebTransportError({ message: 'test reset', streamErrorCode: code }));
    try {
      for (;;) {
        const { done } = await withTimeout(reader.read(), 5000, 'reset echo: reset');
        if (done) return { first: first.value ? dec.decode(first.value) : null, finished: true };
      }
    } catch (e) {
      return {
        first: first.value ? dec.decode(first.value) : null,
        errorName: e.name, message: e.message,
        streamErrorCode: e.streamErrorCode === undefined ? null : e.streamErrorCode,
      };
    }
  }

  /* ---- ticker ------------------------------------------------------------------- */

  function onTick(tick, via) {
    if (!tick || tick.type !== 'tick') return;
    if (via === 'stream') {
      state.tickStream++;
      state.ticks.push(tick);
      if (state.ticks.length > 200) state.ticks.shift();
      $('tk-stream').textContent = state.tickStream;
      $('tk-n').textContent = tick.n;
      $('tk-ts').textContent = new Date(tick.ts).toISOString().slice(11, 23);
      $('tk-skew').textContent = `${Date.now() - tick.ts} ms`;
      const lines = $('tk-lines');
      lines.textContent = (lines.textContent + JSON.stringify(tick) + '\n').split('\n').slice(-6).join('\n');
      checkTickWaiters();
    } else {
      state.tickDgram++;
      $('tk-dgram').textContent = state.tickDgram;
    }
  }

  function checkTickWaiters() {
    state.tickWaiters = state.tickWaiters.filter((w) => {
      if (state.tickStream >= w.until) {
        w.resolve();
        return false;
      }
      return true;
    });
  }

  function onTickDatagram(bytes) {
    try {
      onTick(JSON.parse(dec.decode(bytes)), 'datagram');
    } catch (e) {
      log(`ticker: bad datagram: ${errText(e)}`);
    }
  }

  async function onTickerUniStream(readable) {
    const reader = readable.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            onTick(JSON.parse(line), 'stream');
          } catch (e) {
            log(`ticker: bad line: ${line.slice(0, 80)}`);
          }
        }
        if (buf.length > MAX_ENVELOPE) throw new Error('ticker line too long');
      }
    } catch (e) {
      if (!state.sessions.ticker || !state.sessions.ticker.closed) {
        log(`ticker: stream ended: ${errText(e)}`);
      }
    }
  }

  function tickerWait(n, timeoutMs = 10000) {
    // n more ticks than have arrived so far, on the server's stream.
    const until = state.tickStream + n;
    return withTimeout(new Promise((resolve) => {
      state.tickWaiters.push({ until, resolve: () => resolve(state.ticks.slice(-n)) });
      checkTickWaiters();
    }), timeoutMs, `ticker: ${n} ticks`);
  }

  /* ---- chat ----------------------------------------------------------------------- */

  function chatName() {
    const el = $('chat-name');
    if (!el.value.trim()) el.value = `user-${Math.floor(100 + Math.random() * 900)}`;
    return el.value.trim().slice(0, 32);
  }

  function timeOf(ts) {
    return new Date(ts || Date.now()).toTimeString().slice(0, 8);
  }

  function addChatLine(env) {
    const li = document.createElement('li');
    if (env.id === state.chatId) li.className = 'me';
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = timeOf(env.ts);
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = `${env.from}: `;
    const text = document.createElement('span');
    text.textContent = env.text;
    li.append(time, from, text);
    appendChat(li);
  }

  function addChatNotice(text, ts) {
    const li = document.createElement('li');
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = timeOf(ts);
    const t = document.createElement('span');
    t.className = 'notice';
    t.textContent = text;
    li.append(time, t);
    appendChat(li);
  }

  function appendChat(li) {
    const ul = $('chat-log');
    ul.append(li);
    while (ul.children.length > 200) ul.firstChild.remove();
    ul.scrollTop = ul.scrollHeight;
  }

  function showMembers(count) {
    $('chat-members').textContent = `${count} in the room`;
  }

  function onChatEnvelope(env) {
    state.chatEnvelopes.push(env);
    if (state.chatEnvelopes.length > 200) state.chatEnvelopes.shift();
    switch (env.type) {
      case 'welcome':
        state.chatId = env.id;
        state.chatMembers = env.members || [];
        (env.history || []).forEach(addChatLine);
        addChatNotice(`you joined as ${env.name} (the server calls you that until you send a message)`, env.ts);
        showMembers(state.chatMembers.length);
        break;
      case 'join':
        addChatNotice(`${env.from} joined`, env.ts);
        showMembers(env.count);
        break;
      case 'leave':
        addChatNotice(`${env.from} left`, env.ts);
        showMembers(env.count);
        break;
      case 'chat':
        addChatLine(env);
        break;
      default:
        log(`chat: unknown envelope ${JSON.stringify(env).slice(0, 100)}`);
    }
    state.chatWaiters = state.chatWaiters.filter((w) => {
      if (w.match(env)) {
        w.resolve(env);
        return false;
      }
      return true;
    });
  }

  function onChatUniStream(readable) {
    readAll(readable, MAX_ENVELOPE).then(
      (bytes) => {
        try {
          onChatEnvelope(JSON.parse(dec.decode(bytes)));
        } catch (e) {
          log(`chat: bad envelope: ${errText(e)}`);
        }
      },
      (e) => log(`chat: stream failed: ${errText(e)}`),
    );
  }

  function onChatDatagram(bytes) {
    let msg;
    try {
      msg = JSON.parse(dec.decode(bytes));
    } catch (e) {
      return;
    }
    if (msg.type !== 'typing' || typeof msg.from !== 'string') return;
    const el = $('chat-typing');
    const old = state.typingTimers.get(msg.from);
    if (old) clearTimeout(old);
    state.typingTimers.set(msg.from, setTimeout(() => {
      state.typingTimers.delete(msg.from);
      renderTyping();
    }, 3000));
    renderTyping();
    state.chatEnvelopes.push(msg);
    function renderTyping() {
      const who = [...state.typingTimers.keys()];
      el.textContent = who.length ? `${who.join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…` : '\u00a0';
    }
    state.chatWaiters = state.chatWaiters.filter((w) => {
      if (w.match(msg)) {
        w.resolve(msg);
        return false;
      }
      return true;
    });
  }

  async function chatSend(text, name) {
    const s = state.sessions.chat;
    if (!s || s.closed) throw new Error('chat session not open');
    if (name) $('chat-name').value = name;
    const msg = JSON.stringify({ type: 'chat', name: chatName(), text });
    const st = await s.wt.createUnidirectionalStream();
    await writeAll(st, enc.encode(msg));
  }

  function sendTyping() {
    const s = state.sessions.chat;
    if (!s || s.closed || Date.now() - state.lastTypingSent < 1000) return;
    state.lastTypingSent = Date.now();
    s.dgWriter.write(enc.encode(JSON.stringify({ type: 'typing', name: chatName() })))
      .catch(() => {});
  }

  function chatWaitFor(match, timeoutMs = 10000) {
    const found = state.chatEnvelopes.find(match);
    if (found) return Promise.resolve(found);
    return withTimeout(new Promise((resolve) => state.chatWaiters.push({ match, resolve })),
      timeoutMs, 'chat: waiting for a message');
  }

  /* ---- wiring ---------------------------------------------------------------------- */

  function wire() {
    $('connect').addEventListener('click', () => connect().catch(() => {}));
    $('disconnect').addEventListener('click', () => disconnect().catch((e) => showError(e)));
    $('error-close').addEventListener('click', () => {
      clearError();
      updateStatus();
    });
    $('dg-one').addEventListener('click', () => {
      sendEchoDatagram(`hello ${randomText(8)}`).then((r) => {
        if (r.received) log(`datagram echoed in ${fmtMs(r.rtt)}`);
        else log('datagram lost (no echo within 10 s)');
      }).catch((e) => showError(e));
    });
    $('dg-run').addEventListener('click', toggleDatagrams);
    $('dg-interval').addEventListener('change', () => {
      if (state.dgTimer) {
        toggleDatagrams();
        toggleDatagrams();
      }
    });
    $('st-bidi').addEventListener('click', () => runStreamAction('bidi'));
    $('st-uni').addEventListener('click', () => runStreamAction('uni'));
    $('st-bulk').addEventListener('click', () => runStreamAction('bulk'));
    $('chat-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = $('chat-text');
      const text = input.value.trim();
      if (!text) return;
      chatSend(text).then(() => {
        input.value = '';
      }, (e) => showError(e));
    });
    $('chat-text').addEventListener('input', sendTyping);
    $('cl-close').addEventListener('click', async () => {
      const which = $('cl-which').value;
      const code = Number($('cl-code').value);
      const reason = $('cl-reason').value;
      const el = $('cl-result');
      if (!Number.isInteger(code) || code < 0 || code > 0xffffffff) {
        el.className = 'result bad';
        el.textContent = 'The code must be an integer from 0 to 4294967295.';
        return;
      }
      try {
        const info = await closeSession(which, code, reason);
        el.dataset.sticky = '1';
        el.className = 'result ok';
        el.textContent = `${which}: ${describeClose(info)} — the server logs "session closed: code ${code} reason '${reason}'"`;
        setTimeout(() => {
          delete el.dataset.sticky;
          updateStatus();
        }, 8000);
      } catch (e) {
        el.className = 'result bad';
        el.textContent = `${which}: ${errText(e)}`;
      }
    });
    window.addEventListener('resize', drawChart);
    drawChart();
    updateStatus();
    if (!('WebTransport' in window)) {
      showError('This browser has no WebTransport.',
        'Use a recent Chromium, Chrome, Edge or Firefox, from http://localhost or http://127.0.0.1.');
    }
  }

  /* ---- the test hook ------------------------------------------------------------------ */

  window.h3wtDemo = {
    connect: async (override) => {
      const cfg = await connect(override);
      return { h3_port: cfg.h3_port, cert_sha256: cfg.cert_sha256, url: sessionUrl(cfg, '/') };
    },
    disconnect,
    // Sends n datagrams of varied sizes and waits for their echoes.
    datagramEcho: async (n = 10) => {
      const sizes = [1, 10, 100, 500, 1000];
      const jobs = [];
      for (let i = 0; i < n; i++) {
        jobs.push(sendEchoDatagram(randomText(sizes[i % sizes.length])));
        await new Promise((r) => setTimeout(r, 10));
      }
      return Promise.all(jobs);
    },
    bidiEcho: async (text) => {
      const bytes = enc.encode(text);
      const r = await bidiEchoBytes(bytes);
      showStreamResult('bidirectional', bytes, r);
      return { received: dec.decode(r.received), bytes: r.received.length, ms: r.ms };
    },
    uniEcho: async (text) => {
      const bytes = enc.encode(text);
      const r = await uniEchoBytes(bytes);
      showStreamResult('unidirectional', bytes, r, ' (answer on a server-opened stream)');
      return { received: dec.decode(r.received), bytes: r.received.length, ms: r.ms };
    },
    bulkEcho,
    resetEcho,
    tickerWait,
    ticks: () => ({ stream: state.tickStream, datagram: state.tickDgram, last: state.ticks.slice(-5) }),
    chatSend,
    chatWaitForText: (text, timeoutMs) =>
      chatWaitFor((e) => e.type === 'chat' && e.text === text, timeoutMs),
    chatWaitForType: (type, timeoutMs) => chatWaitFor((e) => e.type === type, timeoutMs),
    chatWaitForTyping: (from, timeoutMs) =>
      chatWaitFor((e) => e.type === 'typing' && e.from === from, timeoutMs),
    chatTyping: (name) => {
      if (name) $('chat-name').value = name;
      state.lastTypingSent = 0;
      sendTyping();
    },
    // Sends a chat message on a bidirectional stream: the server answers
    // on it ({"type":"ack"} or {"type":"error",...}).
    chatSendBidi: async (text, name) => {
      const s = state.sessions.chat;
      if (!s || s.closed) throw new Error('chat session not open');
      const st = await s.wt.createBidirectionalStream();
      const msg = JSON.stringify({ type: 'chat', name: name || chatName(), text });
      const [, reply] = await Promise.all([writeAll(st.writable, enc.encode(msg)),
        readAll(st.readable, MAX_ENVELOPE)]);
      return JSON.parse(dec.decode(reply));
    },
    // Sends raw bytes on a new stream of the chat session (tests: garbage).
    rawChatStream: async (text) => {
      const s = state.sessions.chat;
      if (!s || s.closed) throw new Error('chat session not open');
      const st = await s.wt.createUnidirectionalStream();
      await writeAll(st, enc.encode(text));
      return { sent: text.length };
    },
    chatState: () => ({ id: state.chatId, envelopes: state.chatEnvelopes.slice(-20) }),
    closeSession,
    sessions: () => Object.fromEntries(Object.entries(state.sessions)
      .map(([k, s]) => [k, s ? (s.closed || 'open') : null])),
    lastError: () => state.lastError,
    handshakeRetries: () => state.handshakeRetries,
    errorShown: () => ($('error').hidden ? null : $('error-text').textContent),
  };

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', wire);
  } else {
    wire();
  }
})();
