/*
 * h3wt demo page: WebTransport to h3wt-server's /wt/echo and /wt/ticker
 * routes, and channels (web/channels.js) on /wt/channels: the chat (history
 * on join, presence, recovery after a reconnect) and the dots (30 Hz
 * unreliable publishing).  No build step, no dependencies.
 *
 * Query parameters: ?token=T for a server started with --channels-token T,
 * ?reconnect=MS the channels client's first reconnection delay (default
 * 500; the browser tests make it longer, to publish while a tab is away).
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
    sessions: { echo: null, ticker: null }, // the channels client is ch.client
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
  };

  // Channels: one client (one session) for the chat and the dots.
  const params = new URLSearchParams(location.search);
  const CHAT_HISTORY = 20; // messages of history shown on joining
  const DOTS_HZ = 30;
  const DOT_SILENT_MS = 2000; // a dot not heard from this long is removed
  const ch = {
    mod: null,
    client: null,
    chat: null, // subscriptions
    dots: null,
    id: Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, '0')).join(''),
    everConnected: false, // the client has had a session: later ones are reconnections
    joined: false, // the chat subscription had its first SUBSCRIBED
    ownJoinNext: false, // the next JOIN is ours (it follows our SUBSCRIBED)
    me: null, // our member name in "chat"
    members: new Set(),
    lines: [], // chat lines: {name, text, id, ts, offset, history, recovered}
    notices: [],
    reconnects: 0,
    resubs: [], // each resubscription: {recovered, missed, history}
    typing: new Map(),
    lastTypingSent: 0,
    // dots
    dotTimer: null,
    dotSeq: 0,
    dotSent: 0,
    dotRecv: 0,
    dotLost: 0,
    dotOld: 0,
    others: new Map(), // sender id -> {id, name, n, x, y, hue, seen, moves}
    mine: null, // {x, y}
    pointer: null,
    pointerAt: 0,
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

  // The echo and ticker sessions open, and the channels client's (while
  // it has one, or is getting one back by itself).
  function openSessions() {
    const open = Object.values(state.sessions).filter((s) => s && !s.closed);
    if (ch.client && ch.client.state !== 'closed') open.push({ name: 'channels' });
    return open;
  }

  function channelsOpen() {
    return !!(ch.client && ch.client.state === 'connected');
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
    const chat = channelsOpen();
    for (const id of ['dg-one', 'dg-run', 'st-bidi', 'st-uni', 'st-bulk']) $(id).disabled = !echo;
    $('chat-text').disabled = !chat;
    $('chat-send').disabled = !chat;
    $('cl-close').disabled = open.length === 0;
    $('connect').disabled = state.connecting || open.length === 3; // echo, ticker, channels
    $('disconnect').disabled = open.length === 0;
    const names = Object.entries(state.sessions)
      .map(([k, s]) => `${k}: ${!s ? '-' : s.closed ? describeClose(s.closed) : 'open'}`);
    names.push(`channels: ${ch.client ? ch.client.state : '-'}`);
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
        ticker: { onDatagram: onTickDatagram, onUniStream: onTickerUniStream, onClosed: onSessionClosed },
      };
      const names = ['echo', 'ticker'].filter(
        (n) => !state.sessions[n] || state.sessions[n].closed);
      const jobs = names.map((n) => openSession(n, handlers[n]));
      if (!ch.client || ch.client.state === 'closed') jobs.push(openChannels());
      const results = await Promise.allSettled(jobs);
      const failures = [];
      results.forEach((r, i) => {
        const name = i < names.length ? names[i] : 'channels';
        if (r.status === 'fulfilled') {
          if (i < names.length) state.sessions[name] = r.value;
        } else {
          failures.push(`${name}: ${errText(r.reason)}`);
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
    if (which === 'channels') return closeChannels(code, reason);
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

  // Ends the channels client for good (it reconnects only after Connect).
  async function closeChannels(code, reason) {
    const c = ch.client;
    if (!c || c.state === 'closed') throw new Error('no open channels session');
    log(`channels: closing with code ${code} reason '${reason}'`);
    const wt = c.transport;
    c.close(code, reason);
    let info = { code, reason };
    if (wt) {
      try {
        const r = await withTimeout(wt.closed, 5000, 'channels: close');
        info = { code: r.closeCode, reason: r.reason };
      } catch (_) { /* closed before it opened, or failed */ }
    }
    updateStatus();
    return info;
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

  /* A canvas sized to its box in device pixels, cleared, and its context
     scaled so that drawing is in CSS pixels. */
  function canvas2d(id, defaultHeight) {
    const c = $(id);
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 520;
    const h = c.clientHeight || defaultHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    return { g, w, h };
  }

  function drawChart() {
    const { g, w, h } = canvas2d('dg-chart', 150);
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

  /* ---- channels: one client for the chat and the dots ----------------------------- */

  // Opens the channels client (one session to /wt/channels) with its two
  // subscriptions; once it has been open it reconnects by itself and
  // resubscribes with recovery (web/channels.js).  One attempt, retried
  // once when it fails fast, like openSession.
  async function openChannels() {
    if (!ch.mod) ch.mod = await import('./channels.js');
    const cfg = state.cfg;
    let url = sessionUrl(cfg, (cfg.paths && cfg.paths.channels) || '/wt/channels');
    const token = params.get('token');
    if (token) url += `?token=${encodeURIComponent(token)}`;
    const minDelayMs = Math.max(100, Number(params.get('reconnect')) || 500);
    const client = new ch.mod.ChannelsClient(url, {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: cfg.hash }],
      reconnect: { minDelayMs, maxDelayMs: Math.max(5000, minDelayMs * 4) },
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      onStateChange: (st) => onChannelsState(client, st),
      onError: (e) => log(`channels: ${e.name}: ${e.text}`),
    });
    ch.client = client;
    ch.everConnected = false;
    ch.joined = false;
    ch.me = null;
    ch.members.clear();
    ch.chat = client.subscribe('chat', {
      history: CHAT_HISTORY,
      onSubscribed: onChatSubscribed,
      onMessage: onChatMessage,
      onJoin: onChatJoin,
      onLeave: onChatLeave,
      onError: (e) => addChatNotice(`the chat refused us: ${e.name} ${e.text}`, 'warn'),
      onUnsubscribed: (u) => addChatNotice(`out of the chat: ${u.name || u.code} ${u.reason}`, 'warn'),
    });
    ch.dots = client.subscribe('dots', {
      onMessage: onDotMessage,
      onError: (e) => log(`dots: refused: ${e.name} ${e.text}`),
    });
    log(`channels: opening ${url}`);
    const t0 = performance.now();
    try {
      try {
        await client.connect();
      } catch (e) {
        if (performance.now() - t0 > 3000) throw e;
        state.handshakeRetries++;
        log(`channels: handshake failed (${errText(e)}), retrying once`);
        await client.connect();
      }
    } catch (e) {
      client.close(); // no reconnection for a client that never opened
      throw e;
    }
    if (!ch.dotTimer) ch.dotTimer = setInterval(dotsTick, 1000 / DOTS_HZ);
    return client;
  }

  function onChannelsState(client, st) {
    if (client !== ch.client) return; // an older client's last words
    const el = $('chat-status');
    log(`channels: ${st}`);
    if (st === 'connected') {
      if (ch.everConnected) ch.reconnects++;
      ch.everConnected = true;
      el.textContent = ch.reconnects ? `connected (reconnected ${ch.reconnects}×)` : 'connected';
      el.className = 'chat-status on';
    } else if (st === 'connecting') {
      el.textContent = ch.everConnected ? 'connection lost: reconnecting…' : 'connecting…';
      el.className = 'chat-status busy';
    } else if (st === 'disconnected') {
      if (ch.everConnected) {
        addChatNotice('connection lost: reconnecting…', 'warn');
        el.textContent = 'connection lost: reconnecting…';
        el.className = 'chat-status busy';
      }
      ch.members.clear();
      showMembers();
    } else if (st === 'closed') {
      if (ch.everConnected) addChatNotice('you left the room');
      el.textContent = 'not connected';
      el.className = 'chat-status';
      ch.members.clear();
      $('chat-members').textContent = 'not in the room';
      clearInterval(ch.dotTimer);
      ch.dotTimer = null;
    }
    updateStatus();
  }

  /* ---- chat --------------------------------------------------------------------------- */

  function chatName() {
    const el = $('chat-name');
    if (!el.value.trim()) el.value = `user-${Math.floor(100 + Math.random() * 900)}`;
    return el.value.trim().slice(0, 32);
  }

  function timeOf(ts) {
    return new Date(ts || Date.now()).toTimeString().slice(0, 8);
  }

  function addChatLine(line) {
    const li = document.createElement('li');
    li.className = [line.id === ch.id ? 'me' : '', line.history ? 'history' : ''].join(' ').trim();
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = timeOf(line.ts);
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = `${line.name}: `;
    const text = document.createElement('span');
    text.textContent = line.text;
    li.append(time, from, text);
    if (line.recovered) {
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = 'recovered';
      li.append(tag);
    }
    li.dataset.offset = line.offset;
    appendChat(li);
  }

  function addChatNotice(text, kind = '') {
    ch.notices.push(text);
    if (ch.notices.length > 200) ch.notices.shift();
    const li = document.createElement('li');
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = timeOf();
    const t = document.createElement('span');
    t.className = `notice ${kind}`.trim();
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

  function showMembers() {
    const n = ch.members.size;
    $('chat-members').textContent = channelsOpen() || n ? `${n} in the room` : 'not in the room';
  }

  function onChatSubscribed(info) {
    ch.ownJoinNext = true;
    ch.me = null;
    ch.members.clear();
    if (!ch.joined) {
      ch.joined = true;
      addChatNotice(info.history
        ? `you joined the room: the last ${info.history} message${info.history > 1 ? 's' : ''} of its history follow`
        : 'you joined the room: no history yet');
    } else {
      ch.resubs.push({ recovered: info.recovered, missed: info.missed, history: info.history });
      if (info.recovered) {
        addChatNotice(`reconnected: ${info.missed} missed message${info.missed === 1 ? '' : 's'} recovered`, 'ok');
      } else {
        // The server no longer has our position: start again from history.
        ch.lines = [];
        $('chat-log').textContent = '';
        addChatNotice(`reconnected: recovery failed, history reloaded (${info.history} message${info.history === 1 ? '' : 's'})`, 'warn');
      }
    }
    ch.chat.members().then((list) => {
      // MEMBERS comes after our JOIN, if the server sent one (it sends
      // none in a channel over its presence_events_max).
      ch.ownJoinNext = false;
      for (const m of list) ch.members.add(m);
      showMembers();
    }, () => {});
  }

  function onChatMessage(data, meta) {
    let msg;
    try {
      msg = JSON.parse(dec.decode(data));
    } catch (e) {
      log(`chat: a message that is not JSON (${data.length} bytes)`);
      return;
    }
    if (!msg || typeof msg.text !== 'string' && msg.type !== 'typing') return;
    if (meta.unreliable) {
      if (msg.type === 'typing' && typeof msg.name === 'string' && msg.id !== ch.id) showTyping(msg.name);
      return;
    }
    if (!meta.history && !meta.recovered) ch.ownJoinNext = false; // live: our JOIN is behind us
    const line = {
      name: String(msg.name || '?').slice(0, 32),
      text: msg.text,
      id: msg.id,
      ts: Number(msg.ts) || null,
      offset: meta.offset,
      history: !!meta.history,
      recovered: !!meta.recovered,
    };
    ch.lines.push(line);
    if (ch.lines.length > 200) ch.lines.shift();
    addChatLine(line);
  }

  function onChatJoin(member) {
    ch.members.add(member);
    if (ch.ownJoinNext) {
      // The server sends our own JOIN right after our SUBSCRIBED (and its
      // history or recovered messages): the first one is us.
      ch.ownJoinNext = false;
      ch.me = member;
    } else {
      addChatNotice(`member ${member} joined`);
    }
    showMembers();
  }

  function onChatLeave(member) {
    ch.ownJoinNext = false;
    ch.members.delete(member);
    addChatNotice(`member ${member} left`);
    showMembers();
  }

  function showTyping(name) {
    const old = ch.typing.get(name);
    if (old) clearTimeout(old);
    ch.typing.set(name, setTimeout(() => {
      ch.typing.delete(name);
      renderTyping();
    }, 3000));
    renderTyping();
  }

  function renderTyping() {
    const who = [...ch.typing.keys()];
    $('chat-typing').textContent = who.length ? `${who.join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…` : '\u00a0';
  }

  // Publishes a chat line (reliable: kept in history); resolves with its
  // {epoch, offset}.  It shows when the server delivers it back.
  async function chatSend(text, name) {
    if (!channelsOpen() || !ch.chat) throw new Error('chat not connected');
    if (name) $('chat-name').value = name;
    return ch.chat.publish(JSON.stringify({ type: 'chat', name: chatName(), text, id: ch.id, ts: Date.now() }));
  }

  function sendTyping() {
    if (!channelsOpen() || Date.now() - ch.lastTypingSent < 1000) return;
    ch.lastTypingSent = Date.now();
    ch.chat.publish(JSON.stringify({ type: 'typing', name: chatName(), id: ch.id }), { reliable: false });
  }

  /* ---- dots: 30 Hz unreliable publishing ----------------------------------------------- */

  function hueOf(id) {
    let h = 0;
    for (const c of String(id)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return h % 360;
  }

  // Where our dot is: under the pointer while it moves over the field,
  // else on a slow figure of eight of its own.
  function dotPosition(now) {
    if (ch.pointer && now - ch.pointerAt < 2000) return ch.pointer;
    const ph = (hueOf(ch.id) / 360) * Math.PI * 2;
    const t = now / 1000;
    return { x: 0.5 + 0.4 * Math.sin(t * 0.8 + ph), y: 0.5 + 0.38 * Math.sin(t * 1.6 + ph) };
  }

  function dotsTick() {
    const now = performance.now();
    ch.mine = dotPosition(now);
    if (ch.dots && ch.dots.subscribed) {
      const msg = {
        id: ch.id,
        n: ++ch.dotSeq,
        x: Math.round(ch.mine.x * 1000) / 1000,
        y: Math.round(ch.mine.y * 1000) / 1000,
        name: chatName(),
      };
      try {
        if (ch.dots.publish(JSON.stringify(msg), { reliable: false })) ch.dotSent++;
      } catch (e) {
        log(`dots: not sent: ${errText(e)}`);
      }
    }
    for (const [id, d] of ch.others) {
      if (now - d.seen > DOT_SILENT_MS) ch.others.delete(id); // left, or silent
    }
    showDotCounters();
  }

  function onDotMessage(data, meta) {
    if (!meta.unreliable) return;
    let m;
    try {
      m = JSON.parse(dec.decode(data));
    } catch (_) {
      return;
    }
    if (!m || typeof m.id !== 'string' || !Number.isInteger(m.n) || m.id === ch.id) return;
    const now = performance.now();
    ch.dotRecv++;
    const d = ch.others.get(m.id);
    if (!d) {
      ch.others.set(m.id, {
        id: m.id, name: String(m.name || '').slice(0, 32), n: m.n, x: +m.x, y: +m.y,
        hue: hueOf(m.id), seen: now, moves: 0, missing: new Set(),
      });
    } else if (m.n <= d.n) {
      ch.dotOld++; // older than one already seen: out of date, not drawn
      if (d.missing.delete(m.n)) ch.dotLost--; // late, not lost after all
    } else {
      if (m.n > d.n + 1) {
        // A gap: lost, unless they turn up late.  The most recent 256 gaps
        // are remembered so that a late one can be taken off "lost".
        ch.dotLost += m.n - d.n - 1;
        for (let k = Math.max(d.n + 1, m.n - 256); k < m.n; k++) d.missing.add(k);
        for (const k of d.missing) {
          if (d.missing.size <= 256) break;
          d.missing.delete(k);
        }
      }
      if (+m.x !== d.x || +m.y !== d.y) d.moves++;
      Object.assign(d, { n: m.n, x: +m.x, y: +m.y, seen: now, name: String(m.name || '').slice(0, 32) });
    }
  }

  function showDotCounters() {
    $('dots-others').textContent = ch.others.size;
    $('dots-sent').textContent = ch.dotSent;
    $('dots-recv').textContent = ch.dotRecv;
    $('dots-lost').textContent = ch.dotLost;
    $('dots-old').textContent = ch.dotOld;
  }

  function drawDots() {
    const { g, w, h } = canvas2d('dots-field', 220);
    g.font = '11px system-ui, sans-serif';
    const now = performance.now();
    const dot = (x, y, hue, label, mine, alpha) => {
      g.globalAlpha = alpha;
      g.fillStyle = `hsl(${hue} 70% 50%)`;
      g.beginPath();
      g.arc(x * w, y * h, mine ? 9 : 7, 0, Math.PI * 2);
      g.fill();
      if (mine) {
        g.strokeStyle = '#17203a';
        g.lineWidth = 2;
        g.stroke();
      }
      g.fillStyle = '#475467';
      g.fillText(label, x * w + 11, y * h + 4);
      g.globalAlpha = 1;
    };
    for (const d of ch.others.values()) {
      // Fades while silent, before it is removed.
      dot(d.x, d.y, d.hue, d.name || d.id, false, Math.max(0.25, 1 - (now - d.seen) / DOT_SILENT_MS));
    }
    if (ch.mine && ch.client && ch.client.state === 'connected') dot(ch.mine.x, ch.mine.y, hueOf(ch.id), 'you', true, 1);
    if (!ch.client || ch.client.state !== 'connected') {
      g.fillStyle = '#667085';
      g.fillText('connect to see the dots of every open tab', 10, h - 10);
    }
  }

  function animateDots() {
    drawDots();
    requestAnimationFrame(animateDots);
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
    const field = $('dots-field');
    field.addEventListener('pointermove', (ev) => {
      const r = field.getBoundingClientRect();
      ch.pointer = {
        x: Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)),
        y: Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height)),
      };
      ch.pointerAt = performance.now();
    });
    window.addEventListener('resize', drawChart);
    drawChart();
    requestAnimationFrame(animateDots);
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
    // The chat on channels.  chatSend resolves with {epoch, offset}.
    chatSend: async (text, name) => {
      const r = await chatSend(text, name);
      return { epoch: String(r.epoch), offset: r.offset };
    },
    chatTyping: (name) => {
      if (name) $('chat-name').value = name;
      ch.lastTypingSent = 0;
      sendTyping();
    },
    chatState: () => ({
      state: ch.client ? ch.client.state : null,
      me: ch.me,
      members: [...ch.members],
      membersText: $('chat-members').textContent,
      status: $('chat-status').textContent,
      lines: ch.lines.map((l) => ({ ...l })),
      notices: ch.notices.slice(-30),
      reconnects: ch.reconnects,
      resubs: ch.resubs.slice(),
      typing: $('chat-typing').textContent,
      // What the page shows: the lines of the log as text.
      shown: Array.from($('chat-log').children, (li) => li.textContent),
    }),
    // The dots: counters and the others' last positions.
    dots: () => ({
      id: ch.id,
      sent: ch.dotSent,
      received: ch.dotRecv,
      lost: ch.dotLost,
      outdated: ch.dotOld,
      others: [...ch.others.values()].map((d) => ({ id: d.id, name: d.name, n: d.n, x: d.x, y: d.y, moves: d.moves })),
      shown: {
        others: $('dots-others').textContent,
        sent: $('dots-sent').textContent,
        received: $('dots-recv').textContent,
        lost: $('dots-lost').textContent,
        outdated: $('dots-old').textContent,
      },
    }),
    // Tests: writes a SUBSCRIBE cut short on the channel stream; the server
    // answers a malformed frame by closing the session (BAD_FRAME, code
    // 0x4348), and the client reconnects by itself.
    channelsBreak: () => {
      const conn = ch.client && ch.client._conn;
      if (!conn) throw new Error('channels not connected');
      conn.writer.write(Uint8Array.of(0x01, 0x01, 0x00)).catch(() => {});
      return true;
    },
    closeSession,
    sessions: () => ({
      ...Object.fromEntries(Object.entries(state.sessions)
        .map(([k, s]) => [k, s ? (s.closed || 'open') : null])),
      channels: !ch.client ? null : ch.client.state === 'connected' ? 'open' : ch.client.state,
    }),
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
