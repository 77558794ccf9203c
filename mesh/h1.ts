// A lean HTTP/1.1 client for upstream exchanges: one keep-alive pool per endpoint, one request
// per connection at a time (no pipelining), request heads written as one latin1 string, and
// responses parsed here, strictly, straight from the socket's buffers. It replaces undici on the
// request path: the gateway needs a small part of what undici does (no redirects, no caching, no
// HTTP/2 upstreams, no pipelining), and that part costs a third of undici's time per request.
//
// What it guards against, since an upstream's bytes are not to be trusted either:
// - a response that is not HTTP/1.x, has an invalid header line or control characters, both
//   Transfer-Encoding and Content-Length, differing Content-Lengths or a bad chunk → an error,
//   and the connection is closed;
// - bytes after the end of a response, or bytes on an idle connection → the connection is never
//   reused (a response meant for nobody is never handed to the next request);
// - a request head with a control character (a CR/LF in a value set from a token claim, say) is
//   never written: the exchange fails before a byte leaves.
import type { IncomingHttpHeaders } from 'node:http';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { connectionTokens, isToken } from '../gateway/hop.ts';

export interface H1Request {
  method: string;
  /** Path and query, as sent on the request line. */
  path: string;
  headers: Record<string, string | string[]>;
  /** The request body, or null for none. Sent as is with a Content-Length header, else chunked. */
  body: Readable | null;
  /** Milliseconds to wait for the response head once the request is sent (0: no limit). */
  headersTimeout: number;
  /** Milliseconds of silence allowed inside the response body (0: no limit). */
  bodyTimeout: number;
}

/** Handed to every handler call: stops or throttles the exchange. */
export interface H1Controller {
  abort(reason: Error): void;
  pause(): void;
  resume(): void;
}

/** Exactly one of onResponseEnd / onResponseError is called, once, for every dispatched request. */
export interface H1Handler {
  /** Called from dispatch, before anything is sent (also when the request waits for a connection). */
  onRequestStart(c: H1Controller): void;
  onResponseStart(c: H1Controller, status: number, headers: IncomingHttpHeaders): void;
  /**
   * A piece of the response body. Unless the handler has `chunksHeld`, the chunk is its own to
   * keep. With `chunksHeld`, the chunk may be a view of the connection's read buffer, which the
   * next read from the upstream overwrites: see there.
   */
  onResponseData(c: H1Controller, chunk: Buffer): void;
  onResponseEnd(c: H1Controller): void;
  onResponseError(c: H1Controller, err: Error): void;
  /**
   * Called after the chunks of one read from the upstream have been handed to onResponseData
   * (and possibly onResponseEnd): true when anything may still read one of them later (a write
   * queued and not yet taken by the kernel). The connection then gives that read buffer away
   * and reads into a new one; false lets it read into the same buffer again, with no allocation.
   * A handler without this method gets chunks it may keep (each read gets a new buffer).
   */
  chunksHeld?(): boolean;
}

export interface H1TlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  rejectUnauthorized: boolean;
}

export interface H1PoolOptions {
  /** Most connections open at once; more requests wait in a queue. */
  connections: number;
  connectTimeoutMs: number;
  /** An idle connection is closed after this long (shortened by the upstream's Keep-Alive hint). */
  keepAliveMs?: number;
  tls?: H1TlsOptions | null;
}

/**
 * Bytes a plain-TCP connection reads at once, into one buffer per connection that is reused
 * from read to read while the handler does not hold its chunks (see H1Handler.chunksHeld).
 * Node would otherwise allocate a 64 KiB buffer for every read: garbage that, with large
 * bodies, grew the process by tens of MiB between collections.
 */
const READ_BUFFER_BYTES = 64 * 1024;

/** Error codes of this client (mesh/upstream.ts classifyUpstreamError maps them). */
export type H1ErrorCode =
  | 'CW_H1_CONNECT_TIMEOUT'
  | 'CW_H1_HEADERS_TIMEOUT'
  | 'CW_H1_BODY_TIMEOUT'
  | 'CW_H1_CLOSED'
  | 'CW_H1_BAD_RESPONSE'
  | 'CW_H1_BAD_REQUEST'
  /** The request body stream closed before its end (the client left, or the gateway cut it off). */
  | 'CW_H1_BODY_ABORTED';

export class H1Error extends Error {
  constructor(
    readonly code: H1ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Timeouts are checked on a coarse clock: a deadline fires up to one tick late. */
const TICK_MS = 100;
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 1024;
const MAX_TRAILER_BYTES = 16 * 1024;
/** Close an idle connection this long before the upstream's advertised Keep-Alive timeout. */
const KEEP_ALIVE_MARGIN_MS = 1000;

const enum Phase {
  /** Writing the request (head and body). */
  Sending,
  /** Request sent; reading the response head. */
  Head,
  /** Reading a body of known length. */
  Length,
  /** Reading a chunked body. */
  Chunked,
  /** Reading a body that ends when the connection closes. */
  UntilClose,
}

const enum Chunk {
  Size,
  Data,
  DataCr,
  DataLf,
  Trailer,
}

/**
 * Control characters other than TAB, CR and LF. CR and LF are checked by counting: a head has
 * exactly as many of each as it has CRLF line ends, or one of them stands alone somewhere.
 * (A plain character class: V8 scans it far faster than a pattern with lookarounds.)
 */
const CONTROL = /[\0-\x08\x0b\x0c\x0e-\x1f\x7f]/;
/** The same, and characters a latin1 byte cannot carry (request heads are written as latin1). */
const CONTROL_OR_WIDE = /[\0-\x08\x0b\x0c\x0e-\x1f\x7f\u0100-\uffff]/;
const CHUNK_SIZE = /^[0-9a-fA-F]{1,12}[ \t]*$/;
const DIGITS = /^[0-9]{1,15}$/;

function closedError(): H1Error {
  return new H1Error('CW_H1_CLOSED', 'the upstream closed the connection');
}

function bodyAborted(): H1Error {
  return new H1Error('CW_H1_BODY_ABORTED', 'the request body stopped before its end');
}

function bad(message: string): H1Error {
  return new H1Error('CW_H1_BAD_RESPONSE', `invalid response from the upstream: ${message}`);
}

/** One request through a pool: also the controller its handler gets. */
class Exchange implements H1Controller {
  conn: Conn | null = null;
  done = false;
  paused = false;
  /** Listeners on the request body while it is being sent (null without a body). */
  bodyListeners: { data: (c: Buffer) => void; end: () => void; error: (e: Error) => void; close: () => void } | null = null;

  constructor(
    readonly pool: H1Pool,
    readonly req: H1Request,
    readonly handler: H1Handler,
  ) {}

  abort(reason: Error): void {
    if (this.done) return;
    const conn = this.conn;
    if (conn !== null) conn.destroy();
    else this.pool.unqueue(this);
    this.fail(reason);
  }

  pause(): void {
    this.paused = true;
    this.conn?.socket.pause();
  }

  resume(): void {
    this.paused = false;
    this.conn?.socket.resume();
  }

  /** The exchange failed: detach and tell the handler (once). */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.detachBody();
    this.conn = null;
    this.handler.onResponseError(this, err);
  }

  detachBody(): void {
    const l = this.bodyListeners;
    if (l === null) return;
    this.bodyListeners = null;
    const body = this.req.body!;
    body.removeListener('data', l.data);
    body.removeListener('end', l.end);
    body.removeListener('error', l.error);
    body.removeListener('close', l.close);
  }
}

/** One connection to the upstream. */
class Conn {
  readonly socket: Socket;
  connected = false;
  ex: Exchange | null = null;
  phase = Phase.Sending;
  /** The clock tick of the last progress the current timeout counts from. */
  since: number;
  /** Keep after the current response. */
  reusable = true;
  /** The whole request has been written. */
  sent = false;
  /** Bytes of the response head so far, when it spans reads. */
  partial: Buffer | null = null;
  remaining = 0;
  chunk = Chunk.Size;
  chunkLine = '';
  trailerBytes = 0;
  /** Idle close after this many ticks without a request. */
  idleTicks: number;
  private error: Error | null = null;
  /** The buffer the next read goes into (plain TCP only; null: allocate one). */
  private rbuf: Buffer | null = null;
  /** The exchange given chunks from the current read buffer (plain TCP only). */
  private lentTo: Exchange | null = null;

  constructor(readonly pool: H1Pool) {
    const o = pool.target;
    this.since = pool.ticks;
    this.idleTicks = pool.idleTicks;
    if (o.tls !== null) {
      this.socket = tlsConnect({
        host: o.host,
        port: o.port,
        ...(o.tls.ca ? { ca: o.tls.ca } : {}),
        ...(o.tls.cert ? { cert: o.tls.cert } : {}),
        ...(o.tls.key ? { key: o.tls.key } : {}),
        ...(o.servername !== undefined ? { servername: o.servername } : {}),
        rejectUnauthorized: o.tls.rejectUnauthorized,
        ALPNProtocols: ['http/1.1'],
        ...(pool.session !== null ? { session: pool.session } : {}),
      });
      this.socket.once('secureConnect', this.onConnect);
      this.socket.on('session', (s: Buffer) => (pool.session = s));
    } else {
      // Reads go into a buffer of the connection's own (onread): no allocation per read.
      this.socket = netConnect({ host: o.host, port: o.port, onread: { buffer: this.readBuffer, callback: this.onRead } });
      this.socket.once('connect', this.onConnect);
    }
    this.socket.setNoDelay(true);
    if (o.tls !== null) this.socket.on('data', this.onData);
    this.socket.on('drain', this.onDrain);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onClose);
  }

  private readonly onConnect = () => {
    this.connected = true;
    // The response timeout counts from here, not from the write buffered before the connect.
    this.since = this.pool.ticks;
  };

  private readonly onError = (err: Error) => {
    this.error ??= err;
  };

  private readonly onDrain = () => {
    const ex = this.ex;
    if (ex !== null && ex.bodyListeners !== null) ex.req.body!.resume();
  };

  private readonly onClose = () => {
    this.pool.connClosed(this);
    const ex = this.ex;
    this.ex = null;
    if (ex === null || ex.done) return;
    if (this.phase === Phase.UntilClose && this.error === null) {
      try {
        this.finish(ex);
      } catch (err) {
        // No socket event to fail instead: a handler bug, reported without taking the process down.
        process.emitWarning(err instanceof Error ? err : new Error(String(err)), { code: 'CW_H1_HANDLER_ERROR' });
      }
      return;
    }
    ex.fail(this.error ?? closedError());
  };

  destroy(): void {
    this.reusable = false;
    this.pool.dropIdle(this);
    this.socket.destroy();
  }

  /** Send `ex` on this connection. */
  start(ex: Exchange): void {
    this.ex = ex;
    ex.conn = this;
    this.phase = Phase.Sending;
    this.sent = false;
    this.partial = null;
    this.since = this.pool.ticks;
    const req = ex.req;
    const body = req.body;
    // It closed while the request waited for a connection.
    if (body !== null && (body.destroyed || body.readableEnded)) return this.refuse(ex, bodyAborted());
    // Sent explicitly, as undici did: some HTTP/1.0-minded upstreams close without it.
    let head = `${req.method} ${req.path} HTTP/1.1\r\nconnection: keep-alive\r\n`;
    let lines = 2;
    const headers = req.headers;
    let length = false;
    for (const name in headers) {
      const v = headers[name]!;
      if (typeof v === 'string') {
        head += `${name}: ${v}\r\n`;
        lines++;
      } else {
        for (let i = 0; i < v.length; i++) head += `${name}: ${v[i]}\r\n`;
        lines += v.length;
      }
      if (name === 'content-length') length = true;
    }
    if (body !== null && !length) {
      head += 'transfer-encoding: chunked\r\n';
      lines++;
    }
    head += '\r\n';
    // Every CRLF is one we wrote: a CR or LF inside a name or value would add a line.
    if (CONTROL_OR_WIDE.test(head) || count(head, '\n') !== lines + 1 || count(head, '\r') !== lines + 1 || req.path.indexOf(' ') !== -1) {
      return this.refuse(ex, new H1Error('CW_H1_BAD_REQUEST', 'the request line or a request header has a character HTTP/1.1 does not allow'));
    }
    this.socket.write(head, 'latin1');
    if (body === null) {
      this.requestSent();
      return;
    }
    const chunked = !length;
    const socket = this.socket;
    const listeners = {
      data: (c: Buffer) => {
        if (c.length === 0) return;
        let ok: boolean;
        if (chunked) {
          socket.write(`${c.length.toString(16)}\r\n`, 'latin1');
          socket.write(c);
          ok = socket.write('\r\n', 'latin1');
        } else ok = socket.write(c);
        if (!ok) body.pause();
      },
      end: () => {
        ex.detachBody();
        if (chunked) socket.write('0\r\n\r\n', 'latin1');
        if (this.ex === ex) this.requestSent();
      },
      error: (e: Error) => ex.abort(e),
      // Destroyed without an error before its end: a half-sent request must not stay open.
      close: () => ex.abort(bodyAborted()),
    };
    ex.bodyListeners = listeners;
    // The body's errors after this exchange is over (a client that leaves mid-upload) are nobody's
    // to handle, and an 'error' without a listener would take the process down.
    if (!body.listeners('error').includes(ignore)) body.on('error', ignore);
    body.on('data', listeners.data);
    body.once('end', listeners.end);
    body.once('error', listeners.error);
    body.once('close', listeners.close);
    if (body.isPaused()) body.resume();
  }

  /** Fail `ex` before anything was written: the connection stays usable for the next request. */
  private refuse(ex: Exchange, err: H1Error): void {
    this.ex = null;
    ex.conn = null;
    this.pool.release(this);
    ex.fail(err);
  }

  private requestSent(): void {
    this.sent = true;
    if (this.phase === Phase.Sending) {
      this.phase = Phase.Head;
      this.since = this.pool.ticks;
    }
  }

  /** Called by the pool's clock: fail an exchange (or close an idle connection) past its deadline. */
  tick(now: number): void {
    const ex = this.ex;
    const elapsed = (now - this.since) * TICK_MS;
    if (ex === null) {
      if (now - this.since >= this.idleTicks) this.destroy();
      return;
    }
    if (!this.connected) {
      if (elapsed >= this.pool.connectTimeoutMs) this.timeout(ex, 'CW_H1_CONNECT_TIMEOUT', `connecting to the upstream took longer than ${this.pool.connectTimeoutMs} ms`);
      return;
    }
    const req = ex.req;
    if (this.phase === Phase.Head) {
      if (req.headersTimeout > 0 && elapsed >= req.headersTimeout) this.timeout(ex, 'CW_H1_HEADERS_TIMEOUT', `no response head within ${req.headersTimeout} ms`);
    } else if (this.phase !== Phase.Sending) {
      if (req.bodyTimeout > 0 && elapsed >= req.bodyTimeout && !ex.paused) this.timeout(ex, 'CW_H1_BODY_TIMEOUT', `the response body was silent for ${req.bodyTimeout} ms`);
    }
  }

  private timeout(ex: Exchange, code: H1ErrorCode, message: string): void {
    this.ex = null;
    this.destroy();
    ex.fail(new H1Error(code, message));
  }

  /** The buffer for the next read: the same one again unless a handler still holds its chunks. */
  private readonly readBuffer = (): Buffer => {
    const lent = this.lentTo;
    if (lent !== null) {
      this.lentTo = null;
      if (lent.handler.chunksHeld?.() !== false) this.rbuf = null;
    }
    return (this.rbuf ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));
  };

  private readonly onRead = (n: number, buf: Uint8Array): boolean => {
    this.onData((buf as Buffer).subarray(0, n));
    // Pausing is the exchange's socket.pause(), not this return value.
    return true;
  };

  private readonly onData = (buf: Buffer) => {
    const ex = this.ex;
    if (ex === null) {
      // Bytes nobody asked for: never hand them to the next request.
      this.destroy();
      return;
    }
    // Whatever this read hands over may be a view of the reused read buffer (plain TCP).
    if (this.rbuf !== null) this.lentTo = ex;
    try {
      this.read(ex, buf);
    } catch (err) {
      // A handler that throws must not take the process down: the exchange fails instead.
      if (this.ex === ex) this.ex = null;
      this.destroy();
      ex.fail(err instanceof Error ? err : new Error(String(err)));
    }
  };

  private read(ex: Exchange, buf: Buffer): void {
    if (this.phase === Phase.Sending || this.phase === Phase.Head) {
      // An upstream may answer before the request body is all sent.
      let data = buf;
      if (this.partial !== null) {
        data = Buffer.concat([this.partial, buf]);
        this.partial = null;
      }
      for (;;) {
        const end = data.indexOf('\r\n\r\n', 0, 'latin1');
        if (end === -1) {
          if (data.length > MAX_HEAD_BYTES) return this.broken0(ex, bad('the response head is too large'));
          // A copy: `data` may be a view of the read buffer, which the next read overwrites.
          this.partial = this.rbuf !== null && data.buffer === this.rbuf.buffer ? Buffer.from(data) : data;
          return;
        }
        if (end > MAX_HEAD_BYTES) return this.broken0(ex, bad('the response head is too large'));
        const status = this.head(ex, data.toString('latin1', 0, end));
        if (status === -1 || ex.done) return;
        data = data.subarray(end + 4);
        if (status >= 200) break;
        // 1xx informational: another head follows.
        if (data.length === 0) return;
      }
      buf = data;
      if (this.phase === Phase.Head || this.phase === Phase.Sending) return this.complete(ex, buf.length);
    }
    this.since = this.pool.ticks;
    switch (this.phase) {
      case Phase.Length: {
        const n = buf.length;
        if (n === 0) return;
        if (n < this.remaining) {
          this.remaining -= n;
          ex.handler.onResponseData(ex, buf);
          return;
        }
        const take = this.remaining;
        this.remaining = 0;
        ex.handler.onResponseData(ex, buf.subarray(0, take));
        if (ex.done) return;
        return this.complete(ex, n - take);
      }
      case Phase.UntilClose:
        if (buf.length > 0) ex.handler.onResponseData(ex, buf);
        return;
      case Phase.Chunked:
        return this.chunked(ex, buf);
    }
  }

  /**
   * Parse one response head (without its final CRLFCRLF). Returns the status, or -1 after
   * failing the exchange. For a final status, sets the body phase and calls onResponseStart.
   */
  private head(ex: Exchange, text: string): number {
    if (CONTROL.test(text)) return this.broken(ex, bad('a control character in the response head'));
    // HTTP/1.x NNN[ reason]
    if (
      text.length < 12 ||
      !text.startsWith('HTTP/1.') ||
      (text.charCodeAt(7) !== 49 && text.charCodeAt(7) !== 48) ||
      text.charCodeAt(8) !== 32 ||
      (text.length > 12 && text.charCodeAt(12) !== 32 && text.charCodeAt(12) !== 13)
    ) {
      return this.broken(ex, bad('not an HTTP/1.x status line'));
    }
    const status = digit(text, 9) * 100 + digit(text, 10) * 10 + digit(text, 11);
    if (!(status >= 100 && status <= 999)) return this.broken(ex, bad('not an HTTP/1.x status line'));
    const http10 = text.charCodeAt(7) === 48;
    const headers: IncomingHttpHeaders = {};
    let crlf = 0;
    let line = text.indexOf('\r\n');
    while (line !== -1) {
      crlf++;
      const start = line + 2;
      const next = text.indexOf('\r\n', start);
      const end = next === -1 ? text.length : next;
      const colon = text.indexOf(':', start);
      if (colon === -1 || colon >= end || colon === start) return this.broken(ex, bad('a header line without a name'));
      const name = text.slice(start, colon);
      if (!isToken(name)) return this.broken(ex, bad(`an invalid header name ${JSON.stringify(name)}`));
      let vs = colon + 1;
      let ve = end;
      while (vs < ve && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
      while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
      const value = text.slice(vs, ve);
      const key = name.toLowerCase();
      const prev = headers[key];
      if (prev === undefined) headers[key] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else (headers as Record<string, string | string[]>)[key] = [prev, value];
      line = next;
    }
    if (count(text, '\r') !== crlf || count(text, '\n') !== crlf) return this.broken(ex, bad('a CR or LF outside a CRLF line end'));
    if (status < 200) {
      if (status === 101) return this.broken(ex, bad('101 Switching Protocols to a request that asked for no upgrade'));
      return status;
    }
    // Body framing (RFC 9112 §6.3).
    const h = headers as Record<string, string | string[] | undefined>;
    const te = h['transfer-encoding'];
    const cl = h['content-length'];
    const conn = h.connection;
    const tokens = connectionTokens(conn);
    if (tokens.includes('close') || (http10 && !tokens.includes('keep-alive'))) this.reusable = false;
    const ka = headers['keep-alive'];
    if (typeof ka === 'string') this.keepAliveHint(ka);
    if (ex.req.method === 'HEAD' || status === 204 || status === 304) {
      this.phase = Phase.Head; // no body: complete() follows
    } else if (te !== undefined) {
      if (cl !== undefined) return this.broken(ex, bad('both Transfer-Encoding and Content-Length'));
      const codings = (typeof te === 'string' ? te : te.join(',')).toLowerCase();
      const last = codings.slice(codings.lastIndexOf(',') + 1).trim();
      if (last === 'chunked') {
        this.phase = Phase.Chunked;
        this.chunk = Chunk.Size;
        this.chunkLine = '';
        this.trailerBytes = 0;
      } else {
        this.phase = Phase.UntilClose;
        this.reusable = false;
      }
    } else if (cl !== undefined) {
      let v: string;
      if (typeof cl === 'string') v = cl;
      else {
        // Repeated Content-Length lines must agree (RFC 9112 §6.3 item 5).
        v = cl[0]!;
        for (const other of cl) if (other !== v) return this.broken(ex, bad('differing Content-Length values'));
      }
      if (!DIGITS.test(v)) return this.broken(ex, bad('an invalid Content-Length'));
      this.remaining = Number(v);
      this.phase = this.remaining === 0 ? Phase.Head : Phase.Length;
    } else {
      this.phase = Phase.UntilClose;
      this.reusable = false;
    }
    ex.handler.onResponseStart(ex, status, headers);
    return status;
  }

  private keepAliveHint(ka: string): void {
    const i = ka.indexOf('timeout=');
    if (i === -1) return;
    const seconds = Number.parseInt(ka.slice(i + 8), 10);
    if (!(seconds > 0)) return;
    const ticks = Math.floor((seconds * 1000 - KEEP_ALIVE_MARGIN_MS) / TICK_MS);
    if (ticks <= 0) this.reusable = false;
    else if (ticks < this.idleTicks) this.idleTicks = ticks;
  }

  private chunked(ex: Exchange, buf: Buffer): void {
    const len = buf.length;
    let i = 0;
    while (i < len) {
      switch (this.chunk) {
        case Chunk.Size: {
          const nl = buf.indexOf(10, i);
          if (nl === -1) {
            this.chunkLine += buf.toString('latin1', i, len);
            if (this.chunkLine.length > MAX_CHUNK_LINE) return this.broken0(ex, bad('a chunk size line is too long'));
            return;
          }
          const line = this.chunkLine + buf.toString('latin1', i, nl);
          this.chunkLine = '';
          i = nl + 1;
          if (line.charCodeAt(line.length - 1) !== 13) return this.broken0(ex, bad('a chunk size line without CRLF'));
          const semi = line.indexOf(';');
          const hex = semi === -1 ? line.slice(0, -1) : line.slice(0, semi);
          if (!CHUNK_SIZE.test(hex)) return this.broken0(ex, bad('an invalid chunk size'));
          const size = Number.parseInt(hex, 16);
          if (size === 0) this.chunk = Chunk.Trailer;
          else {
            this.remaining = size;
            this.chunk = Chunk.Data;
          }
          break;
        }
        case Chunk.Data: {
          const take = Math.min(this.remaining, len - i);
          this.remaining -= take;
          ex.handler.onResponseData(ex, buf.subarray(i, i + take));
          if (ex.done) return;
          i += take;
          if (this.remaining === 0) this.chunk = Chunk.DataCr;
          break;
        }
        case Chunk.DataCr:
          if (buf[i] !== 13) return this.broken0(ex, bad('a chunk not followed by CRLF'));
          i++;
          this.chunk = Chunk.DataLf;
          break;
        case Chunk.DataLf:
          if (buf[i] !== 10) return this.broken0(ex, bad('a chunk not followed by CRLF'));
          i++;
          this.chunk = Chunk.Size;
          break;
        case Chunk.Trailer: {
          // Trailer fields are read and dropped; an empty line ends the message.
          const nl = buf.indexOf(10, i);
          if (nl === -1) {
            this.chunkLine += buf.toString('latin1', i, len);
            this.trailerBytes += len - i;
            if (this.trailerBytes > MAX_TRAILER_BYTES) return this.broken0(ex, bad('the trailer section is too large'));
            return;
          }
          const line = this.chunkLine + buf.toString('latin1', i, nl);
          this.chunkLine = '';
          this.trailerBytes += nl + 1 - i;
          i = nl + 1;
          if (line === '\r') return this.complete(ex, len - i);
          if (line.charCodeAt(line.length - 1) !== 13 || this.trailerBytes > MAX_TRAILER_BYTES) return this.broken0(ex, bad('an invalid trailer section'));
          break;
        }
      }
    }
  }

  /** The response is complete; `extra` bytes followed it in the same read. */
  private complete(ex: Exchange, extra: number): void {
    if (extra > 0) this.reusable = false;
    this.finish(ex);
  }

  private finish(ex: Exchange): void {
    this.ex = null;
    ex.conn = null;
    ex.done = true;
    // A request body still being sent when the answer came: the connection is mid-message.
    if (!this.sent) {
      ex.detachBody();
      this.reusable = false;
    }
    if (ex.paused) this.socket.resume();
    // The handler first: if it throws, the connection has not been handed to another request yet.
    ex.handler.onResponseEnd(ex);
    this.pool.release(this);
  }

  private broken(ex: Exchange, err: H1Error): -1 {
    this.ex = null;
    this.destroy();
    ex.fail(err);
    return -1;
  }

  private broken0(ex: Exchange, err: H1Error): void {
    this.broken(ex, err);
  }
}

function ignore(): void {}

function digit(s: string, i: number): number {
  const c = s.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : NaN;
}

function count(s: string, ch: string): number {
  let n = 0;
  let i = s.indexOf(ch);
  while (i !== -1) {
    n++;
    i = s.indexOf(ch, i + 1);
  }
  return n;
}

interface Target {
  host: string;
  port: number;
  tls: H1TlsOptions | null;
  servername: string | undefined;
}

/**
 * Keep-alive connections to one origin (`http://host:port` or `https://host:port`): at most
 * `connections` open, requests beyond that wait in order.
 */
export class H1Pool {
  readonly target: Target;
  readonly connectTimeoutMs: number;
  readonly idleTicks: number;
  /** The clock, in ticks of TICK_MS, while the pool has connections. */
  ticks = 0;
  /** The last TLS session, offered to the next connection (fewer full handshakes). */
  session: Buffer | null = null;
  private readonly max: number;
  private readonly all = new Set<Conn>();
  /** Idle connections, most recently used last. */
  private readonly idle: Conn[] = [];
  private readonly queue: Exchange[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closing = false;
  private onEmpty: (() => void) | null = null;

  constructor(origin: string, opts: H1PoolOptions) {
    const u = new URL(origin);
    const https = u.protocol === 'https:';
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const tls = https ? (opts.tls ?? { rejectUnauthorized: true }) : null;
    this.target = {
      host,
      port: u.port === '' ? (https ? 443 : 80) : Number(u.port),
      tls,
      servername: tls === null ? undefined : (tls.servername ?? (isIP(host) === 0 ? host : undefined)),
    };
    this.max = Math.max(1, opts.connections);
    this.connectTimeoutMs = opts.connectTimeoutMs;
    this.idleTicks = Math.max(1, Math.floor((opts.keepAliveMs ?? 30_000) / TICK_MS));
  }

  /** The pool was closed (a reload dropped it): it still finishes what was sent on it. */
  get closed(): boolean {
    return this.closing;
  }

  /** Connections open (or opening) and requests waiting: for tests and the admin API. */
  get counts(): { open: number; idle: number; queued: number } {
    return { open: this.all.size, idle: this.idle.length, queued: this.queue.length };
  }

  dispatch(req: H1Request, handler: H1Handler): void {
    const ex = new Exchange(this, req, handler);
    handler.onRequestStart(ex);
    if (ex.done) return;
    const idle = this.idle.pop();
    if (idle !== undefined) return idle.start(ex);
    if (this.all.size < this.max) return this.open().start(ex);
    this.queue.push(ex);
  }

  private open(): Conn {
    const c = new Conn(this);
    this.all.add(c);
    if (this.timer === null) {
      this.timer = setInterval(this.tick, TICK_MS);
      this.timer.unref();
    }
    return c;
  }

  private readonly tick = () => {
    const now = ++this.ticks;
    for (const c of this.all) c.tick(now);
  };

  /** A connection finished its exchange: the next queued request, the idle list, or closed. */
  release(c: Conn): void {
    if (!c.reusable || c.socket.destroyed) {
      c.destroy();
      return;
    }
    const next = this.queue.shift();
    if (next !== undefined) return c.start(next);
    if (this.closing) return c.destroy();
    c.since = this.ticks;
    this.idle.push(c);
  }

  /** Take a connection that is closing off the idle list. */
  dropIdle(c: Conn): void {
    const i = this.idle.indexOf(c);
    if (i !== -1) this.idle.splice(i, 1);
  }

  /** A connection's socket closed. */
  connClosed(c: Conn): void {
    if (!this.all.delete(c)) return;
    this.dropIdle(c);
    // A waiting request gets a new connection in place of the closed one.
    if (this.queue.length > 0) this.open().start(this.queue.shift()!);
    if (this.all.size === 0) {
      if (this.timer !== null) clearInterval(this.timer);
      this.timer = null;
      this.onEmpty?.();
    }
  }

  unqueue(ex: Exchange): void {
    const i = this.queue.indexOf(ex);
    if (i !== -1) this.queue.splice(i, 1);
  }

  /** Stop keeping connections: idle ones close now, busy ones after their exchange. */
  close(): Promise<void> {
    this.closing = true;
    for (const c of this.idle.splice(0)) c.destroy();
    // Queued requests are still sent, on the connections that are busy now.
    if (this.all.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onEmpty = resolve;
    });
  }

  /** Close every connection now; exchanges in flight fail. */
  destroy(): void {
    this.closing = true;
    for (const ex of this.queue.splice(0)) ex.fail(closedError());
    for (const c of this.all) c.destroy();
  }
}
