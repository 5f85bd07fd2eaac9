/**
 * The encrypted transport of a direct link, after the Noise handshake: length-prefixed AES-256-GCM
 * frames over any duplex byte stream.
 *
 * Wire format of every frame: a 4-byte big-endian length, then that many bytes of ciphertext||tag.
 * The plaintext is one type byte (DATA or CLOSE) followed by the body. Nonces are implicit: the
 * Noise AESGCM nonce (4 zero bytes + 64-bit big-endian counter), one counter per direction, so a
 * dropped, repeated or reordered frame fails authentication. Sealing and opening are the frame
 * cipher's (src/net/frame_cipher.ts), chosen once per channel; this module only frames.
 *
 * Noise caps a transport message at 65535 bytes (§3). We deliberately lift that to 1 MiB of
 * application data per frame: each AEAD call has a fixed cost (~10–50 µs in Deno), so 16× fewer,
 * larger frames move bulk data several times faster. The limit is enforced on the length prefix
 * before anything is allocated.
 *
 * I/O goes through `read(p)`/`write(p)` on a `Deno.Conn`-like object rather than its
 * ReadableStream/WritableStream: reading into our own buffer (and large frame bodies straight into
 * their final buffer) avoids a fresh chunk allocation and a copy per read, and `write` resolves
 * when the kernel took the bytes, which is the back-pressure `send` promises.
 */
import { abortable, deadline, DeadlineError } from "../util/deadline.ts";
import { LinkError, TAGLEN } from "../protocol/noise.ts";
import { createFrameCipher, type FrameCipher, type FrameCipherKind } from "./frame_cipher.ts";

/** The part of `Deno.Conn` the channel needs; tests pass in-memory pipes. */
export interface ByteStream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  /** Half-close (TCP FIN) so a close frame is followed by an orderly end of stream. */
  closeWrite?(): Promise<void>;
  /** Unreliable, unordered datagrams beside the byte stream, where the transport has them (QUIC). */
  readonly datagrams?: DatagramLane;
}

/**
 * A transport's own datagrams (QUIC, RFC 9221), protected by the transport, not by our frames: on
 * QUIC the connection's keys are its own, and the Noise handshake ran over a stream of that very
 * connection, so a datagram on it can only come from the peer that handshake authenticated.
 */
export interface DatagramLane {
  /** The largest datagram the path takes now (0: none; the peer does not take datagrams). */
  readonly maxSize: number;
  /** Best effort: dropped when too large or when the transport's queue is full. */
  send(data: Uint8Array): void;
  /** The next datagram, or null once the connection is gone. */
  receive(): Promise<Uint8Array | null>;
}

/** Application bytes per frame; larger sends are split. */
export const MAX_FRAME_PLAINTEXT = 1024 * 1024;
/** The largest length prefix accepted on a transport frame: type byte + body + tag. */
export const MAX_FRAME_LEN = 1 + MAX_FRAME_PLAINTEXT + TAGLEN;
/** How long close() waits to flush its close frame and to see the other side's. */
export const CLOSE_LINGER_MS = 1_000;
/** close() stops waiting early once nothing has arrived for this long: no unread bytes, no reset. */
export const CLOSE_QUIET_MS = 50;

const FRAME_DATA = 0;
const FRAME_CLOSE = 1;
const HEADER_LEN = 4;
const READ_BUFFER = 64 * 1024;
/** Received frames at least this large are read into MAX_FRAME_LEN buffers that recycle() can return. */
const RECYCLE_FROM = 64 * 1024;
const RECYCLE_KEEP = 4;
/** Frames up to this size (a 16 KiB body: type byte, body, tag) are read into recycled buffers of this size. */
const SMALL_FRAME_LEN = 1 + 16 * 1024 + TAGLEN;
const SMALL_KEEP = 8;
const EMPTY = new Uint8Array(0);
const TYPE_BYTE = [Uint8Array.of(FRAME_DATA), Uint8Array.of(FRAME_CLOSE)];

// ─── Framing ─────────────────────────────────────────────────────────────────────────────────

/** Prefixes `body` with its 4-byte big-endian length. */
export function encodeFrame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_LEN + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, HEADER_LEN);
  return out;
}

/** Writes every byte; `Deno.Conn.write` may take fewer than offered. */
export async function writeAll(conn: Pick<ByteStream, "write">, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Reads length-prefixed frames through one reusable buffer. Not safe for overlapping calls. */
export class FrameReader {
  readonly #conn: Pick<ByteStream, "read">;
  #buf = new Uint8Array(READ_BUFFER);
  #start = 0;
  #end = 0;
  /** Frame buffers handed back by recycle(): large frames are read into these, not fresh ones. */
  #pool: ArrayBuffer[] = [];
  /** The same for small frames (#frameBuffer). */
  #small: ArrayBuffer[] = [];
  /** Whoever reads the frames hands their buffers back (recycle() was called). */
  #recycling = false;

  constructor(conn: Pick<ByteStream, "read">) {
    this.#conn = conn;
  }

  /**
   * The next frame's body; null if the stream ended cleanly between frames. Throws LinkError
   * "too_large" for a length prefix over `maxLen` (before allocating it) and "truncated" if the
   * stream ends inside a frame.
   */
  async readFrame(maxLen: number): Promise<Uint8Array | null> {
    while (this.#end - this.#start < HEADER_LEN) {
      // The read is here, not in a helper: one promise turn less per frame on a small message's path.
      this.#compact();
      const n = await this.#conn.read(this.#end === 0 ? this.#buf : this.#buf.subarray(this.#end));
      if (n === null) {
        if (this.#end === this.#start) return null;
        throw new LinkError("The stream ended inside a frame header.", "truncated");
      }
      this.#end += n;
    }
    const b = this.#buf;
    const at = this.#start;
    const len = ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
    if (len > maxLen) {
      throw new LinkError(`A frame announced ${len} bytes; the limit is ${maxLen}.`, "too_large");
    }
    this.#start += HEADER_LEN;
    const out = this.#frameBuffer(len);
    let filled = Math.min(len, this.#end - this.#start);
    out.set(this.#buf.subarray(this.#start, this.#start + filled));
    this.#start += filled;
    while (filled < len) {
      const missing = len - filled;
      if (missing >= READ_BUFFER / 2) {
        // Large bodies go straight into their own buffer: no copy.
        const n = await this.#conn.read(out.subarray(filled));
        if (n === null) throw new LinkError("The stream ended inside a frame.", "truncated");
        filled += n;
      } else {
        if (!(await this.#fill())) throw new LinkError("The stream ended inside a frame.", "truncated");
        const take = Math.min(missing, this.#end - this.#start);
        out.set(this.#buf.subarray(this.#start, this.#start + take), filled);
        this.#start += take;
        filled += take;
      }
    }
    return out;
  }

  /**
   * Where a frame of `len` bytes is read to. Once a reader hands buffers back (a mux does, frame
   * after frame), small frames go into recycled SMALL_FRAME_LEN buffers too: a fresh ArrayBuffer
   * costs about 1 µs, much of a small message's way through the link.
   */
  #frameBuffer(len: number): Uint8Array {
    if (len >= RECYCLE_FROM) {
      return new Uint8Array(this.#pool.pop() ?? new ArrayBuffer(MAX_FRAME_LEN), 0, len);
    }
    if (!this.#recycling || len > SMALL_FRAME_LEN) return new Uint8Array(len);
    return new Uint8Array(this.#small.pop() ?? new ArrayBuffer(SMALL_FRAME_LEN), 0, len);
  }

  /** Takes back the buffer of a frame nobody reads any more (see SecureChannel.recycle). */
  recycle(buffer: ArrayBuffer): void {
    this.#recycling = true;
    if (buffer.byteLength === MAX_FRAME_LEN) {
      if (this.#pool.length < RECYCLE_KEEP) this.#pool.push(buffer);
    } else if (buffer.byteLength === SMALL_FRAME_LEN && this.#small.length < SMALL_KEEP) {
      this.#small.push(buffer);
    }
  }

  /** Moves what is left unread to the front of the buffer. */
  #compact(): void {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    } else if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
  }

  async #fill(): Promise<boolean> {
    this.#compact();
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }
}

// ─── Timeouts ────────────────────────────────────────────────────────────────────────────────

/**
 * `promise`, or `onTimeout()` once `ms` passed (no limit when `ms` is undefined or infinite), or
 * the signal's reason once it aborts: util/deadline.ts with the link's own errors.
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number | undefined,
  onTimeout: () => Error,
  signal?: AbortSignal,
): Promise<T> {
  const limited = ms !== undefined && Number.isFinite(ms);
  if (!limited) return signal ? await abortable(promise, signal) : await promise;
  try {
    return await deadline(promise, Math.max(0, ms), { signal });
  } catch (err) {
    throw err instanceof DeadlineError ? onTimeout() : err;
  }
}

const noop = () => {};

// ─── The channel ─────────────────────────────────────────────────────────────────────────────

export interface SecureChannelOptions {
  /** The key of what we send (from HandshakeState.splitKeys()). */
  sendKey: Uint8Array;
  /** The key of what we receive. */
  receiveKey: Uint8Array;
  /** Which frame cipher seals this link (src/net/frame_cipher.ts); by default native where libcrypto loads (a link made before it loaded switches to it once it has). */
  cipher?: FrameCipherKind;
  /** The reader used during the handshake, so bytes it already buffered are not lost. */
  reader?: FrameReader;
  /** Who is on the other side, for error messages, e.g. "127.0.0.1:53412". */
  peer?: string;
}

export interface ReceiveOptions {
  /** Give up waiting after this long with LinkError "timeout"; the link stays usable. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

type Incoming = { kind: "data"; body: Uint8Array } | { kind: "close" } | { kind: "eof" };
const EOF: Incoming = { kind: "eof" };
const CLOSE: Incoming = { kind: "close" };

export class SecureChannel {
  readonly peer: string;
  readonly #conn: ByteStream;

  /** The transport's datagram lane, if it has one (src/net/quic.ts). */
  get datagrams(): DatagramLane | undefined {
    return this.#conn.datagrams;
  }
  readonly #reader: FrameReader;
  /** Chosen once, here: every frame of this link is sealed and opened by it. */
  readonly #cipher: FrameCipher;
  #writeChain: Promise<void> = Promise.resolve();
  /** Sends queued or being written: at 0, a frame sealed at once is written at once (#sendNow). */
  #busy = 0;
  /** The frame #sendNow is writing. */
  #nowFrame: Uint8Array[] | null = null;
  /** What the receive() waiting now waits for (#received compares it with #incoming). */
  #receivePending: Promise<Incoming> | null = null;
  #incoming: Promise<Incoming> | null = null;
  /** The next frame's ciphertext, read while the current one is being decrypted. */
  #prefetch: Promise<Uint8Array | null> | null = null;
  #receiving = false;
  /** Set once; every later receive() rethrows it. */
  #failure: LinkError | null = null;
  #peerClosed = false;
  #sendClosed = false;
  #socketClosed = false;
  #replied: Promise<void> | null = null;
  #closing: Promise<void> | null = null;

  constructor(conn: ByteStream, opts: SecureChannelOptions) {
    this.#conn = conn;
    this.#cipher = createFrameCipher({
      sendKey: opts.sendKey,
      receiveKey: opts.receiveKey,
      headroom: HEADER_LEN,
      maxPlaintext: 1 + MAX_FRAME_PLAINTEXT,
    }, opts.cipher);
    this.#reader = opts.reader ?? new FrameReader(conn);
    this.peer = opts.peer ?? "the other side";
  }

  /** Which frame cipher seals this link. */
  get cipher(): FrameCipherKind {
    return this.#cipher.kind;
  }

  /** True once close() began, the other side closed, or the link failed. */
  get closed(): boolean {
    return this.#sendClosed || this.#socketClosed || this.#failure !== null;
  }

  /**
   * Seals `data` into frames of at most MAX_FRAME_PLAINTEXT bytes and resolves when the socket
   * took the last byte. Concurrent calls are sent one after the other, never interleaved. While
   * one frame is written the next is already being sealed.
   */
  send(data: Uint8Array): Promise<void> {
    if (this.#sendClosed || this.#socketClosed) {
      return Promise.reject(
        new LinkError(
          this.#peerClosed
            ? `Cannot send to ${this.peer}: it closed the link.`
            : `Cannot send to ${this.peer}: the link is closed.`,
          "closed",
        ),
      );
    }
    return this.#locked(async () => {
      let off = 0;
      let next: Promise<Uint8Array[]> | null = this.#seal(FRAME_DATA, [
        data.subarray(0, MAX_FRAME_PLAINTEXT),
      ]);
      try {
        while (next !== null) {
          const frame: Uint8Array[] = await next;
          off += MAX_FRAME_PLAINTEXT;
          next = off < data.length
            ? this.#seal(FRAME_DATA, [data.subarray(off, off + MAX_FRAME_PLAINTEXT)])
            : null;
          await this.#write(frame);
          this.#release(frame);
        }
      } catch (err) {
        next?.catch(noop);
        throw err;
      }
    });
  }

  /**
   * Seals the concatenation of `parts` (at most MAX_FRAME_PLAINTEXT bytes in all) as one frame,
   * the other side receives it as one chunk. The native cipher encrypts the parts straight into
   * the frame buffer, never joined first: a multiplexer batches its messages this way.
   */
  sendv(parts: readonly Uint8Array[]): Promise<void> {
    let total = 0;
    for (const p of parts) total += p.length;
    if (total > MAX_FRAME_PLAINTEXT) {
      return Promise.reject(
        new RangeError(`sendv() takes at most ${MAX_FRAME_PLAINTEXT} bytes per frame, not ${total}.`),
      );
    }
    if (this.#sendClosed || this.#socketClosed) return this.send(EMPTY); // the same refusal
    let sealing: Promise<Uint8Array[]> | undefined;
    if (this.#busy === 0) {
      // Nothing queued: seal now and, when that was synchronous (native), write now, without the
      // queue's promise turns. A small message's path through the link is mostly such turns
      // (bench link's 64-byte round trip).
      let sealed: Uint8Array[] | Promise<Uint8Array[]>;
      try {
        sealed = this.#cipher.seal([TYPE_BYTE[FRAME_DATA], ...parts]);
      } catch (err) {
        return Promise.reject(err);
      }
      if (!(sealed instanceof Promise)) return this.#sendNow(sealed);
      sealing = sealed;
    }
    return this.#locked(async () => {
      const frame = await (sealing ?? this.#seal(FRAME_DATA, parts));
      await this.#write(frame);
      this.#release(frame);
    });
  }

  /**
   * Writes a frame sealed while nothing was queued; later sends queue behind it (#locked). Only
   * one at a time (it starts at #busy 0), so its frame waits in a field for handlers bound once.
   */
  #sendNow(frame: Uint8Array[]): Promise<void> {
    this.#busy++;
    this.#nowFrame = frame;
    const writing = frame.length === 1 ? this.#put(this.#framed(frame)[0]) : this.#write(frame);
    const run = writing.then(this.#sentNow, this.#sendNowFailed);
    this.#writeChain = run;
    return run;
  }

  readonly #sentNow = (): void => {
    this.#busy--;
    const frame = this.#nowFrame!;
    this.#nowFrame = null;
    this.#release(frame);
  };

  readonly #sendNowFailed = (err: unknown): never => {
    this.#busy--;
    this.#nowFrame = null;
    throw err instanceof LinkError ? err : this.#writeFailed(err);
  };

  /** One piece to the socket: the smallest async step there is (a frame's usual way out). */
  async #put(piece: Uint8Array): Promise<void> {
    const n = await this.#conn.write(piece);
    if (n < piece.length) await writeAll(this.#conn, piece.subarray(n));
  }

  /**
   * The next chunk the other side sent (one frame, at most MAX_FRAME_PLAINTEXT bytes), or null
   * once it closed the link with an authenticated close frame, or after our own close(). A stream
   * that simply ends, or a frame that fails authentication, throws LinkError ("truncated",
   * "tampered", …) and closes the socket; so does every later call.
   */
  receive(opts?: ReceiveOptions): Promise<Uint8Array | null> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#peerClosed || this.#closing) return Promise.resolve(null);
    if (this.#receiving) {
      return Promise.reject(new Error("receive() is already waiting on this link; call it one at a time."));
    }
    this.#receiving = true;
    const pending = this.#next();
    this.#receivePending = pending;
    // A mux's read loop sets no limit: one promise step per frame, not an async call and a timer.
    const limited = opts?.timeoutMs === undefined && opts?.signal === undefined ? pending : withTimeout(
      pending,
      opts.timeoutMs,
      () => new LinkError(`${this.peer} sent nothing for ${opts.timeoutMs} ms.`, "timeout"),
      opts.signal,
    );
    return limited.then(this.#received, this.#receiveFailed);
  }

  readonly #received = (frame: Incoming): Uint8Array | null => {
    this.#receiving = false;
    if (this.#incoming === this.#receivePending) this.#incoming = null;
    this.#receivePending = null;
    if (this.#closing) return null;
    return frame.kind === "data" ? frame.body : null;
  };

  readonly #receiveFailed = (err: unknown): never => {
    this.#receiving = false;
    this.#receivePending = null;
    throw err;
  };

  /**
   * Sends the authenticated close frame (after any send in progress), half-closes the socket,
   * then reads and discards until the other side's close frame, until nothing arrived for
   * CLOSE_QUIET_MS, or for at most CLOSE_LINGER_MS, and closes the socket. The draining matters
   * when the other side is still sending: closing a TCP socket with unread bytes sends a reset,
   * which can destroy our close frame still in flight and make a clean close look like a cut.
   * Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        if (!this.#socketClosed && this.#failure === null) {
          await withTimeout(this.#sendClose(), CLOSE_LINGER_MS, () => new Error("close frame not flushed"))
            .catch(noop);
          if (!this.#peerClosed) {
            await withTimeout(this.#drain(), CLOSE_LINGER_MS, () => new Error("no close frame in time"))
              .catch(noop);
          }
        }
      } finally {
        this.#closeSocket();
      }
    })();
    return this.#closing;
  }

  /** Drops the connection at once, without a close frame (the other side will see a cut). */
  abort(): void {
    this.#sendClosed = true;
    this.#closeSocket();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Hands back the buffer under a chunk receive() returned, once nothing refers to any byte of
   * it: the next large frame is read into it instead of a fresh one. Only for callers that know;
   * a buffer recycled while still in use would be overwritten.
   */
  recycle(buffer: ArrayBuffer): void {
    this.#reader.recycle(buffer);
  }

  // ── internals ──

  #locked(fn: () => Promise<void>): Promise<void> {
    this.#busy++;
    // After the send before it, whether that one succeeded or not.
    const run = this.#writeChain.then(fn, fn).finally(() => this.#busy--);
    this.#writeChain = run;
    return run;
  }

  /**
   * The frame's bytes as pieces to write: room for the header, then the type byte and body sealed
   * (#write fills the header in). A failure to seal rejects, so a frame sealed before it still goes out.
   */
  #seal(type: number, parts: readonly Uint8Array[]): Promise<Uint8Array[]> {
    try {
      const sealed = this.#cipher.seal([TYPE_BYTE[type], ...parts]);
      return sealed instanceof Promise ? sealed : Promise.resolve(sealed);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Back to the cipher once the socket took it, to seal later frames into. */
  #release(frame: Uint8Array[]): void {
    this.#cipher.release(frame);
  }

  /** Fills in a sealed frame's 4-byte big-endian length, in the room #seal left for it. */
  #framed(frame: Uint8Array[]): Uint8Array[] {
    let len = -HEADER_LEN;
    for (let i = 0; i < frame.length; i++) len += frame[i].length;
    const header = frame[0];
    header[0] = len >>> 24;
    header[1] = (len >>> 16) & 0xff;
    header[2] = (len >>> 8) & 0xff;
    header[3] = len & 0xff;
    return frame;
  }

  /** Writes a sealed frame (#framed). */
  async #write(frame: Uint8Array[]): Promise<void> {
    this.#framed(frame);
    try {
      for (const piece of frame) await this.#put(piece);
    } catch (err) {
      throw this.#writeFailed(err);
    }
  }

  /** What a failed socket write means for the link: it is closed for sending. */
  #writeFailed(err: unknown): LinkError {
    this.#sendClosed = true;
    const cause = err instanceof Error ? err.message : String(err);
    return this.#socketClosed
      ? new LinkError(`Cannot send to ${this.peer}: the link is closed.`, "closed", { cause: err })
      : new LinkError(`Cannot send to ${this.peer}: the connection broke (${cause}).`, "closed", {
        cause: err,
      });
  }

  /** Queues our close frame once, after every send already queued, then half-closes. */
  #sendClose(): Promise<void> {
    this.#sendClosed = true;
    this.#replied ??= this.#locked(async () => {
      if (this.#socketClosed) return;
      await this.#write(await this.#seal(FRAME_CLOSE, []));
      await this.#conn.closeWrite?.().catch(noop);
    });
    return this.#replied;
  }

  async #drain(): Promise<void> {
    for (;;) {
      const pending = this.#next();
      const frame = await withTimeout(pending, CLOSE_QUIET_MS, () => new Error("quiet"));
      if (this.#incoming === pending) this.#incoming = null;
      if (frame.kind !== "data") return;
    }
  }

  /** The frame being read now, or a new read. Shared, so a timed-out receive loses nothing. */
  #next(): Promise<Incoming> {
    if (this.#incoming === null) {
      this.#incoming = this.#readOne();
      this.#incoming.catch(noop); // observed by whoever awaits it; never an unhandled rejection
    }
    return this.#incoming;
  }

  /**
   * The next frame, opened. Promise steps rather than an async function: on a small message's
   * path every async call and await counts (bench link's round trip).
   */
  #readOne(): Promise<Incoming> {
    if (this.#failure) return Promise.reject(this.#failure);
    const reading = this.#prefetch ?? this.#reader.readFrame(MAX_FRAME_LEN);
    this.#prefetch = null;
    return reading.then((frame) => this.#opened(frame), (err) => this.#failed(this.#readError(err)));
  }

  #opened(frame: Uint8Array | null): Incoming | Promise<Incoming> {
    try {
      if (frame === null) {
        if (this.#closing) return EOF;
        throw new LinkError(
          `The link to ${this.peer} was cut: the connection ended without a close message.`,
          "truncated",
        );
      }
      let opened: Uint8Array | Promise<Uint8Array>;
      try {
        // The native cipher opens synchronously: no microtask turn per frame.
        opened = this.#cipher.open(frame);
      } catch (err) {
        throw this.#openError(err);
      }
      if (opened instanceof Promise) {
        // Read ahead while WebCrypto decrypts on another thread; at most one frame is held. A
        // synchronous open reads the next frame when asked: the socket read is then set up after
        // what this frame caused (a tunnel's write to its socket), not on that write's way.
        this.#prefetch = this.#reader.readFrame(MAX_FRAME_LEN);
        this.#prefetch.catch(noop);
        return opened.then((plaintext) => {
          try {
            return this.#classify(plaintext);
          } catch (err) {
            return this.#failed(err);
          }
        }, (err) => this.#failed(this.#openError(err)));
      }
      return this.#classify(opened);
    } catch (err) {
      return this.#failed(err);
    }
  }

  /** What an opened frame is: data, or the other side's close. */
  #classify(plaintext: Uint8Array): Incoming {
    if (plaintext.length >= 1 && plaintext[0] === FRAME_DATA) {
      return { kind: "data", body: plaintext.subarray(1) };
    }
    if (plaintext.length === 1 && plaintext[0] === FRAME_CLOSE) {
      this.#peerClosed = true;
      // Answer in kind, so the other side's close() need not wait out its linger.
      if (!this.#closing) this.#sendClose().catch(noop);
      return CLOSE;
    }
    throw new LinkError(`${this.peer} sent a frame this version does not understand.`, "protocol");
  }

  #readError(err: unknown): LinkError {
    if (err instanceof LinkError) return err;
    if (this.#socketClosed) {
      return new LinkError(`The link to ${this.peer} is closed.`, "closed", { cause: err });
    }
    const cause = err instanceof Error ? err.message : String(err);
    return new LinkError(`The link to ${this.peer} was cut (${cause}).`, "truncated", { cause: err });
  }

  #openError(err: unknown): LinkError {
    if (err instanceof LinkError && err.code === "exhausted") return err;
    return new LinkError(
      `Dropped the link to ${this.peer}: a frame failed authentication (corrupted or tampered with).`,
      "tampered",
      { cause: err },
    );
  }

  /** A read that failed: the end we were waiting for while closing, else the link's failure for good. */
  #failed(err: unknown): Incoming {
    const failure = err instanceof LinkError
      ? err
      : new LinkError(`The link to ${this.peer} failed: ${String(err)}`, "closed", { cause: err });
    if (this.#closing && failure.code !== "tampered") return EOF;
    this.#failure ??= failure;
    this.#sendClosed = true;
    this.#closeSocket();
    throw this.#failure;
  }

  #closeSocket(): void {
    if (this.#socketClosed) return;
    this.#socketClosed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by the other path
    }
  }
}
