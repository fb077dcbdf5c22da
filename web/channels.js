/*
 * h3wt channels: the browser side of docs/channels.md (publish/subscribe
 * over one WebTransport session).  An ES module, no build step, no
 * dependencies.
 *
 *   import { ChannelsClient } from '/channels.js';
 *   const client = new ChannelsClient('https://localhost:4433/wt/channels', {
 *     serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }],
 *     reconnect: { minDelayMs: 250, maxDelayMs: 5000 },
 *   });
 *   client.onStateChange = (state) => console.log(state);
 *   await client.connect();
 *   const chat = client.subscribe('chat', {
 *     onMessage: (data, { offset, unreliable, recovered, history }) => {},
 *     onJoin: (member) => {},
 *     onLeave: (member) => {},
 *     onSubscribed: ({ recovered, epoch, offset, missed, history }) => {},
 *     onUnsubscribed: ({ code, reason }) => {},
 *     onError: ({ code, name, text }) => {},
 *     since: { epoch, offset }, // optional: recover from there at once
 *     history: 20, // optional: the last 20 kept messages on joining
 *   });
 *   const { epoch, offset } = await chat.publish('hello');   // reliable
 *   chat.publish(new Uint8Array([1, 2]), { reliable: false }); // a datagram
 *   const members = await chat.members();
 *   await chat.unsubscribe();
 *   client.close();
 *
 * One client is one session and on it one bidirectional stream, the
 * channel stream: every command, reply, reliable message, join and leave
 * travels on it, in order.  Datagrams carry unreliable publications.
 *
 * When the session ends without close() the client reconnects by itself
 * (exponential backoff with jitter) and subscribes again to every channel
 * with recovery from the last (epoch, offset) it saw: the subscription
 * then gets exactly the messages it missed (onSubscribed with recovered
 * true, then onMessage with recovered true), or, when the server no longer
 * has them, onSubscribed with recovered false (reload your state).
 *
 * history: N asks the server for the channel's last N kept messages
 * (docs/channels.md, SUBSCRIBE bit 1; the server caps N at its history
 * size) when a subscription starts without a position: onSubscribed with
 * history = how many follow, then onMessage with history true for each,
 * oldest first.  A resubscription after a reconnect recovers by position
 * as above; only when that fails does the history come again (recovered
 * false, history > 0: replace what you show with it).
 *
 * Epochs are BigInts (they go up to 2^62); offsets, request and
 * subscription numbers are Numbers.  Strings (channel names, text data)
 * travel as UTF-8.
 */

const enc = new TextEncoder();
const dec = new TextDecoder();
const EMPTY = new Uint8Array(0);

/* ---- the wire format (docs/channels.md) -------------------------------- */

export const FRAME = Object.freeze({
  // client to server
  SUBSCRIBE: 0x01,
  UNSUBSCRIBE: 0x02,
  PUBLISH: 0x03,
  PRESENCE: 0x04,
  // server to client
  SUBSCRIBED: 0x41,
  PUBLISHED: 0x42,
  UNSUBSCRIBED: 0x43,
  MESSAGE: 0x44,
  JOIN: 0x45,
  LEAVE: 0x46,
  MEMBERS: 0x47,
  ERROR: 0x48,
});

const DGRAM_PUBLISH = 0x01; // client -> server: 0x01 sub data
const DGRAM_DELIVER = 0x02; // server -> client: 0x02 sub data

// Error codes (ERROR and UNSUBSCRIBED frames) by number.
export const ERROR_NAMES = Object.freeze({
  1: 'BAD_FRAME',
  2: 'UNKNOWN_COMMAND',
  3: 'FORBIDDEN',
  4: 'TOO_LARGE',
  5: 'RATE_LIMITED',
  6: 'TOO_MANY_CHANNELS',
  7: 'CHANNEL_FULL',
  8: 'NOT_SUBSCRIBED',
  9: 'SLOW_CONSUMER',
  10: 'BAD_CHANNEL',
  11: 'ALREADY_SUBSCRIBED',
  12: 'BROKER_UNAVAILABLE',
});
const BROKER_UNAVAILABLE = 12;

const CLOSE_PROTOCOL_ERROR = 0x4348; // "CH", as the server closes on BAD_FRAME
const MAX_FRAME = 16 * 1024 * 1024; // more from the server is a protocol error
const VARINT_MAX = (1n << 62n) - 1n;

// A malformed frame from the server: the session is closed.
class ProtocolError extends Error {}

// What a failed request rejects with: code and name as in ERROR_NAMES
// (code 0, name NOT_CONNECTED or CONNECTION_LOST when the session is gone).
export class ChannelsError extends Error {
  constructor({ code, name, text }) {
    super(`${name}: ${text}`);
    this.name = 'ChannelsError';
    this.code = code;
    this.codeName = name;
    this.text = text;
  }
}

// The QUIC variable-length integer (RFC 9000 16) of v, a Number or a
// BigInt in 0 .. 2^62-1, in its shortest form.
export function encodeVarint(v) {
  const n = BigInt(v);
  if (n < 0n || n > VARINT_MAX) throw new RangeError(`varint out of range: ${v}`);
  if (n < 0x40n) return Uint8Array.of(Number(n));
  if (n < 0x4000n) return Uint8Array.of(0x40 | Number(n >> 8n), Number(n & 0xffn));
  if (n < 0x40000000n) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, 0x80000000 + Number(n));
    return b;
  }
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n | (3n << 62n));
  return b;
}

// Decodes the varint at buf[pos]: {value, next}, or null when buf ends
// first.  value is a Number, or a BigInt when past 2^53 - 1.  Any length
// is accepted (the shortest form is not required).
export function decodeVarint(buf, pos = 0) {
  if (pos >= buf.length) return null;
  const len = 1 << (buf[pos] >> 6);
  if (pos + len > buf.length) return null;
  if (len < 8) {
    let v = buf[pos] & 0x3f;
    for (let i = 1; i < len; i++) v = v * 256 + buf[pos + i];
    return { value: v, next: pos + len };
  }
  let big = BigInt(buf[pos] & 0x3f);
  for (let i = 1; i < 8; i++) big = (big << 8n) | BigInt(buf[pos + i]);
  return { value: big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big, next: pos + 8 };
}

function concat(parts, total) {
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function toBytes(data) {
  if (typeof data === 'string') return enc.encode(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('data must be a string, a Uint8Array or an ArrayBuffer');
}

// Builds a frame's payload: varints and `bytes` (length then bytes).
export class PayloadWriter {
  constructor() {
    this.parts = [];
    this.size = 0;
  }

  raw(b) {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  varint(v) {
    return this.raw(encodeVarint(v));
  }

  bytes(b) {
    return this.varint(b.length).raw(b);
  }

  // The whole frame: type, length, payload.
  frame(type) {
    const head = [encodeVarint(type), encodeVarint(this.size)];
    return concat([...head, ...this.parts], head[0].length + head[1].length + this.size);
  }
}

// Reads a frame's payload exactly: too short or bytes left over is a
// ProtocolError.
class PayloadReader {
  constructor(buf) {
    this.buf = buf;
    this.pos = 0;
  }

  varint() {
    const r = decodeVarint(this.buf, this.pos);
    if (!r) throw new ProtocolError('payload too short');
    this.pos = r.next;
    return r.value;
  }

  // A count, offset or number: must fit a Number.
  num() {
    const v = this.varint();
    if (typeof v !== 'number') throw new ProtocolError(`number too large: ${v}`);
    return v;
  }

  // An epoch: always a BigInt.
  big() {
    return BigInt(this.varint());
  }

  bytes() {
    const n = this.num();
    if (this.pos + n > this.buf.length) throw new ProtocolError('payload too short');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  text() {
    return dec.decode(this.bytes());
  }

  end() {
    if (this.pos !== this.buf.length) throw new ProtocolError('bytes left over in a frame');
  }
}

// Splits the channel stream into frames, however the bytes arrive: a
// frame split across reads waits for its end, several in one read all
// come out.  push(chunk) returns the frames now complete, [{type, payload}].
export class FrameParser {
  constructor(maxFrame = MAX_FRAME) {
    this.maxFrame = maxFrame;
    this.chunks = []; // bytes not yet parsed
    this.len = 0;
    this.need = 1; // bytes needed before parsing again
  }

  push(chunk) {
    if (!chunk.length) return [];
    this.chunks.push(chunk);
    this.len += chunk.length;
    if (this.len < this.need) return []; // a long frame still arriving
    const buf = this.chunks.length === 1 ? this.chunks[0] : concat(this.chunks, this.len);
    const frames = [];
    let pos = 0;
    for (;;) {
      const t = decodeVarint(buf, pos);
      const l = t && decodeVarint(buf, t.next);
      if (!l) {
        this.need = buf.length - pos + 1; // a head cut short: wait for more
        break;
      }
      if (typeof l.value !== 'number' || l.value > this.maxFrame) {
        throw new ProtocolError(`frame of ${l.value} bytes is over the limit`);
      }
      const end = l.next + l.value;
      if (end > buf.length) {
        this.need = end - pos;
        break;
      }
      frames.push({ type: t.value, payload: buf.subarray(l.next, end) });
      pos = end;
    }
    const rest = pos < buf.length ? buf.subarray(pos) : EMPTY;
    this.chunks = rest.length ? [rest] : [];
    this.len = rest.length;
    return frames;
  }

  // True between frames (nothing half-read).
  get idle() {
    return this.len === 0;
  }
}

// Channel names: 1..255 octets of UTF-8, no control characters.
function channelBytes(channel) {
  if (typeof channel !== 'string') throw new TypeError('channel must be a string');
  const b = enc.encode(channel);
  if (b.length < 1 || b.length > 255 || b.some((c) => c < 0x20 || c === 0x7f)) {
    throw new TypeError(`bad channel name ${JSON.stringify(channel)}: 1..255 bytes, no control characters`);
  }
  return b;
}

function errText(e) {
  if (!e) return 'unknown error';
  return `${e.name || 'Error'}: ${e.message || e}`;
}

// Calls an application callback; what it throws is logged, not ours.
function call(fn, ...args) {
  if (typeof fn !== 'function') return;
  try {
    fn(...args);
  } catch (e) {
    console.error('channels: a callback threw', e);
  }
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

/* ---- a subscription ---------------------------------------------------- */

class Subscription {
  constructor(client, channel, handlers) {
    this.client = client;
    this.channel = channel;
    this.name = channelBytes(channel);
    this.handlers = handlers;
    // The last (epoch, offset) seen: where a recovery starts from.
    const since = handlers.since;
    this.epoch = since ? BigInt(since.epoch) : null;
    this.offset = since ? Number(since.offset) : 0;
    this.active = true; // false once unsubscribed, refused or cut
    this.conn = null; // the connection its SUBSCRIBE went on
    this.id = null; // the server's number for it (MESSAGE, datagrams)
    this.recovering = 0; // recovered MESSAGE frames still to come
    this.historyLeft = 0; // history MESSAGE frames still to come
    // history: N, the most messages to ask for when not recovering.
    const h = handlers.history;
    this.historyLimit = Number.isInteger(h) && h > 0 ? h : 0;
  }

  // True while the server has it (SUBSCRIBED came on this session).
  get subscribed() {
    return this.active && this.id !== null;
  }

  // {epoch, offset}: the last position seen (epoch null before any).
  get position() {
    return { epoch: this.epoch, offset: this.offset };
  }

  // Reliable (default): a Promise of {epoch, offset}.  Unreliable: one
  // datagram, at once; returns false when it could not go (not
  // subscribed on a live session), true when handed to the browser.
  publish(data, { reliable = true } = {}) {
    return this.client._publish(this, toBytes(data), reliable);
  }

  // A Promise of the channel's members (names as strings).
  members() {
    return this.client._request(this, FRAME.PRESENCE, (w) => w.bytes(this.name));
  }

  // A Promise of {code, reason}; no more events for this subscription.
  unsubscribe() {
    return this.client._unsubscribe(this);
  }
}

/* ---- the client ---------------------------------------------------------- */

export class ChannelsClient {
  // options: serverCertificateHashes, protocols (WebTransport options),
  // reconnect: {minDelayMs, maxDelayMs} or false, connectTimeoutMs,
  // onStateChange(state), onError({code, name, text}) (errors that belong
  // to no request).
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    this.reconnect = options.reconnect === false ? null
      : { minDelayMs: 250, maxDelayMs: 5000, ...(options.reconnect || {}) };
    this.connectTimeoutMs = options.connectTimeoutMs || 10000;
    this.onStateChange = options.onStateChange || null;
    this.onError = options.onError || null;
    this.state = 'disconnected'; // connecting | connected | disconnected | closed
    this.transport = null; // the WebTransport session in use
    this.subscriptions = new Set(); // active ones, in subscription order
    this.reconnects = 0; // sessions opened by the client itself
    this._conn = null;
    this._opening = null;
    this._timer = null;
    this._attempt = 0;
    this._nextReq = 1;
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    call(this.onStateChange, state);
  }

  // Opens the session and the channel stream: one attempt, a Promise that
  // rejects when it fails (the client reconnects by itself only after a
  // session that was open ends).  Subscriptions made before are sent once
  // it is open.
  connect() {
    if (this.state === 'closed') return Promise.reject(new Error('channels: client closed'));
    if (this._conn) return Promise.resolve();
    if (!this._opening) {
      this._opening = this._open().finally(() => { this._opening = null; });
    }
    return this._opening;
  }

  // Ends the session for good (no reconnection).
  close(code = 0, reason = '') {
    if (this.state === 'closed') return;
    clearTimeout(this._timer);
    this._timer = null;
    this._setState('closed');
    const conn = this._conn;
    if (conn) {
      try { conn.wt.close({ closeCode: code, reason }); } catch (_) { /* already closed */ }
      this._lost(conn, 'closed by the application');
    }
  }

  subscribe(channel, handlers = {}) {
    if (this.state === 'closed') throw new Error('channels: client closed');
    const sub = new Subscription(this, channel, handlers);
    this.subscriptions.add(sub);
    this._sendSubscribe(sub);
    return sub;
  }

  async _open() {
    clearTimeout(this._timer);
    this._timer = null;
    this._setState('connecting');
    const opts = {};
    if (this.options.serverCertificateHashes) {
      opts.serverCertificateHashes = this.options.serverCertificateHashes;
    }
    if (this.options.protocols) opts.protocols = this.options.protocols;
    let wt = null;
    try {
      wt = new WebTransport(this.url, opts);
      wt.closed.catch(() => {}); // seen through _lost once open
      const stream = await withTimeout(wt.ready.then(() => wt.createBidirectionalStream()),
        this.connectTimeoutMs, 'channels: WebTransport handshake');
      if (this.state === 'closed') throw new Error('channels: client closed');
      const conn = {
        wt,
        writer: stream.writable.getWriter(),
        dgWriter: wt.datagrams.writable.getWriter(),
        parser: new FrameParser(),
        pending: new Map(), // req -> {kind, sub, resolve, reject}
        subs: new Map(), // the server's subscription number -> Subscription
        lost: false,
      };
      this._conn = conn;
      this.transport = wt;
      this._attempt = 0;
      wt.closed.then(
        (info) => this._lost(conn, `session closed: code ${info.closeCode} ${info.reason || ''}`),
        (err) => this._lost(conn, `session failed: ${errText(err)}`),
      );
      this._readStream(conn, stream.readable);
      this._readDatagrams(conn);
      // Subscribe again (with recovery) before anyone hears "connected".
      for (const sub of this.subscriptions) this._sendSubscribe(sub);
      this._setState('connected');
    } catch (e) {
      if (wt) {
        try { wt.close(); } catch (_) { /* never opened */ }
      }
      if (this.state !== 'closed') this._setState('disconnected');
      throw e;
    }
  }

  // The session is gone (closed, failed, or its channel stream ended):
  // fail what waits for an answer, then reconnect unless close() did it.
  _lost(conn, why) {
    if (conn.lost) return;
    conn.lost = true;
    if (this._conn === conn) {
      this._conn = null;
      this.transport = null;
    }
    try { conn.wt.close(); } catch (_) { /* already closed */ }
    for (const p of conn.pending.values()) {
      if (p.kind === 'unsubscribe') p.resolve({ code: 0, reason: 'connection lost' });
      else if (p.reject) p.reject(new ChannelsError({ code: 0, name: 'CONNECTION_LOST', text: why }));
    }
    conn.pending.clear();
    for (const sub of this.subscriptions) {
      if (sub.conn === conn) {
        sub.conn = null;
        sub.id = null;
        sub.recovering = 0;
        sub.historyLeft = 0;
      }
    }
    if (this.state === 'closed') return;
    this._setState('disconnected');
    if (this.reconnect && this.state === 'disconnected') this._scheduleReconnect();
  }

  // Waits about min * 2^attempt (between half that and all of it, never
  // below min nor above max), then tries again.
  _scheduleReconnect() {
    const { minDelayMs, maxDelayMs } = this.reconnect;
    const base = Math.min(maxDelayMs, minDelayMs * 2 ** (this._attempt + 1));
    const delay = Math.max(minDelayMs, base / 2 + (Math.random() * base) / 2);
    this._attempt++;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this.state === 'closed' || this._conn) return;
      this.reconnects++;
      this.connect().catch(() => {
        if (this.state !== 'closed' && !this._conn && !this._timer) this._scheduleReconnect();
      });
    }, delay);
  }

  async _readStream(conn, readable) {
    const reader = readable.getReader();
    let why = 'the server ended the channel stream';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || conn.lost) break;
        for (const f of conn.parser.push(value)) {
          this._onFrame(conn, f.type, f.payload);
          if (conn.lost) break;
        }
      }
    } catch (e) {
      why = e instanceof ProtocolError ? e.message : `channel stream: ${errText(e)}`;
      if (e instanceof ProtocolError && !conn.lost) {
        try { conn.wt.close({ closeCode: CLOSE_PROTOCOL_ERROR, reason: why }); } catch (_) { /* gone */ }
      }
    }
    this._lost(conn, why);
  }

  async _readDatagrams(conn) {
    const reader = conn.wt.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || conn.lost) break;
        // 0x02 sub data; anything else is dropped.
        const t = decodeVarint(value, 0);
        const s = t && t.value === DGRAM_DELIVER ? decodeVarint(value, t.next) : null;
        const sub = s && conn.subs.get(s.value);
        if (sub && sub.active) {
          call(sub.handlers.onMessage, value.slice(s.next),
            { offset: null, unreliable: true, recovered: false, history: false });
        }
      }
    } catch (_) { /* the session ended */ }
  }

  _send(conn, type, w) {
    conn.writer.write(w.frame(type)).catch((e) => this._lost(conn, `channel stream: ${errText(e)}`));
  }

  _sendSubscribe(sub) {
    const conn = this._conn;
    if (!conn || sub.conn === conn) return; // sent when connected / sent already
    sub.conn = conn;
    sub.id = null;
    const req = this._newReq();
    conn.pending.set(req, { kind: 'subscribe', sub });
    const w = new PayloadWriter().varint(req).bytes(sub.name);
    // flags: bit 0 recover (from the last position), bit 1 history (what
    // to send when there is no position or it cannot be recovered).
    const recover = sub.epoch !== null;
    w.varint((recover ? 1 : 0) | (sub.historyLimit ? 2 : 0));
    if (recover) w.varint(sub.epoch).varint(sub.offset);
    if (sub.historyLimit) w.varint(sub.historyLimit);
    this._send(conn, FRAME.SUBSCRIBE, w);
  }

  _newReq() {
    const req = this._nextReq;
    this._nextReq = req >= 0x3fffffff ? 1 : req + 1; // never 0: "no reply"
    return req;
  }

  // Sends a command that has an answer; a Promise of it.  build adds the
  // payload after req.
  _request(sub, type, build) {
    const conn = this._conn;
    if (!conn) {
      return Promise.reject(new ChannelsError({ code: 0, name: 'NOT_CONNECTED', text: 'not connected' }));
    }
    if (!sub.active) {
      return Promise.reject(new ChannelsError({ code: 8, name: 'NOT_SUBSCRIBED', text: 'unsubscribed' }));
    }
    const kind = type === FRAME.PUBLISH ? 'publish' : type === FRAME.PRESENCE ? 'members' : 'unsubscribe';
    const req = this._newReq();
    return new Promise((resolve, reject) => {
      conn.pending.set(req, { kind, sub, resolve, reject });
      this._send(conn, type, build(new PayloadWriter().varint(req)));
    });
  }

  _publish(sub, data, reliable) {
    if (reliable) return this._request(sub, FRAME.PUBLISH, (w) => w.bytes(sub.name).bytes(data));
    const conn = this._conn;
    if (!conn || !sub.active || sub.conn !== conn || sub.id === null) return false;
    const head = [encodeVarint(DGRAM_PUBLISH), encodeVarint(sub.id)];
    const d = concat([...head, data], head[0].length + head[1].length + data.length);
    const max = conn.wt.datagrams.maxDatagramSize;
    if (max && d.length > max) throw new RangeError(`datagram of ${d.length} bytes over ${max}`);
    conn.dgWriter.write(d).catch(() => { /* lost with the session */ });
    return true;
  }

  _unsubscribe(sub) {
    if (!sub.active) return Promise.resolve({ code: 0, reason: '' });
    const conn = this._conn;
    if (!conn || sub.conn !== conn) {
      sub.active = false;
      this.subscriptions.delete(sub);
      sub.conn = null;
      sub.id = null;
      call(sub.handlers.onUnsubscribed, { code: 0, reason: '' });
      return Promise.resolve({ code: 0, reason: '' });
    }
    const p = this._request(sub, FRAME.UNSUBSCRIBE, (w) => w.bytes(sub.name));
    sub.active = false; // no more events, and no resubscription
    this.subscriptions.delete(sub);
    return p;
  }

  // Ends a subscription (refused, cut by the server, or unsubscribed).
  _end(sub) {
    sub.active = false;
    this.subscriptions.delete(sub);
    sub.conn = null;
    sub.id = null;
  }

  _take(conn, req, kind) {
    const p = conn.pending.get(req);
    if (!p || (kind && p.kind !== kind)) return null;
    conn.pending.delete(req);
    return p;
  }

  _onFrame(conn, type, payload) {
    const r = new PayloadReader(payload);
    switch (type) {
      case FRAME.SUBSCRIBED: {
        const req = r.num();
        const channel = r.text();
        const id = r.num();
        const recovered = r.num() === 1;
        const epoch = r.big();
        const offset = r.num();
        const missed = r.num();
        r.end();
        const p = this._take(conn, req, 'subscribe');
        if (!p) return;
        const sub = p.sub;
        sub.id = id;
        conn.subs.set(id, sub);
        if (!sub.active) return; // unsubscribed meanwhile: UNSUBSCRIBED follows
        // Recovered: the missed messages follow and move offset on;
        // otherwise start from the channel's present, less the history
        // that follows (the last `missed` offsets up to it).
        const history = recovered ? 0 : Math.min(missed, offset);
        if (!recovered || sub.epoch !== epoch) sub.offset = offset - history;
        sub.epoch = epoch;
        sub.recovering = recovered ? missed : 0;
        sub.historyLeft = history;
        call(sub.handlers.onSubscribed, { channel, recovered, epoch, offset, missed, history });
        return;
      }
      case FRAME.MESSAGE: {
        const id = r.num();
        const offset = r.num();
        const data = r.bytes().slice(); // the application's own copy
        r.end();
        const sub = conn.subs.get(id);
        if (!sub || !sub.active) return;
        if (offset <= sub.offset) return; // had it already: never twice
        sub.offset = offset;
        const recovered = sub.recovering > 0;
        if (recovered) sub.recovering--;
        const history = !recovered && sub.historyLeft > 0;
        if (history) sub.historyLeft--;
        call(sub.handlers.onMessage, data, { offset, unreliable: false, recovered, history });
        return;
      }
      case FRAME.PUBLISHED: {
        const req = r.num();
        const epoch = r.big();
        const offset = r.num();
        r.end();
        const p = this._take(conn, req, 'publish');
        if (p) p.resolve({ epoch, offset });
        return;
      }
      case FRAME.UNSUBSCRIBED: {
        const req = r.num();
        const id = r.num();
        const code = r.num();
        const reason = r.text();
        r.end();
        const p = req ? this._take(conn, req, 'unsubscribe') : null;
        if (p) p.resolve({ code, reason });
        const sub = conn.subs.get(id);
        conn.subs.delete(id);
        if (!req && code === BROKER_UNAVAILABLE && sub && sub.active && sub.conn === conn) {
          // The server's broker lost the history this subscription
          // followed: subscribe again from the last position, to be told
          // recovered false (and get the history asked for).
          sub.conn = null;
          this._sendSubscribe(sub);
          return;
        }
        if (sub && sub.conn === conn) {
          this._end(sub);
          call(sub.handlers.onUnsubscribed, { code, reason, name: ERROR_NAMES[code] });
        }
        return;
      }
      case FRAME.JOIN:
      case FRAME.LEAVE: {
        const id = r.num();
        const member = r.text();
        r.end();
        const sub = conn.subs.get(id);
        if (sub && sub.active) {
          call(type === FRAME.JOIN ? sub.handlers.onJoin : sub.handlers.onLeave, member);
        }
        return;
      }
      case FRAME.MEMBERS: {
        const req = r.num();
        r.num(); // sub
        const count = r.num();
        const members = [];
        for (let i = 0; i < count; i++) members.push(r.text());
        r.end();
        const p = this._take(conn, req, 'members');
        if (p) p.resolve(members);
        return;
      }
      case FRAME.ERROR: {
        const req = r.num();
        const code = r.num();
        const text = r.text();
        r.end();
        const err = { code, name: ERROR_NAMES[code] || `ERROR_${code}`, text };
        const p = req ? this._take(conn, req) : null;
        if (!p) {
          call(this.onError, err);
        } else if (p.kind === 'subscribe') {
          // Refused: not subscribed, and not tried again on reconnect.
          if (p.sub.active && p.sub.conn === conn) this._end(p.sub);
          call(p.sub.handlers.onError, err);
        } else if (p.kind === 'unsubscribe') {
          p.resolve({ code, reason: text }); // not subscribed: done all the same
        } else {
          p.reject(new ChannelsError(err));
        }
        return;
      }
      default:
        return; // a frame type this module does not know: skipped
    }
  }
}
