/**
 * Many independent streams, and datagrams, over one authenticated link (src/net/link.ts).
 *
 * Every sealed frame carries a batch of messages, each `type u8 | id u32 | length u32 | payload`:
 *
 * | type   | id      | payload                                        |
 * |--------|---------|------------------------------------------------|
 * | OPEN   | stream  | JSON `{"p": protocol, "m": meta}`              |
 * | DATA   | stream  | bytes, within the credit the receiver granted  |
 * | CREDIT | stream  | u32: this many more bytes may be sent          |
 * | FIN    | stream  | empty: the sender will send no more (half-close) |
 * | RESET  | stream  | reason (UTF-8): the stream is dead both ways   |
 * | DGRAM  | channel | one datagram (best effort, never flow-controlled) |
 * | PING   | 0       | empty: "still here", sent when we have been quiet for KEEPALIVE_MS |
 *
 * Flow control is per stream and by credit (as in HTTP/2 and yamux): each side may have at most
 * STREAM_WINDOW bytes of a stream unread at the other side, and the reader grants more as its
 * application consumes. A stalled reader therefore stops only its own stream; the writer of that
 * stream waits in write() (back-pressure reaches the socket it reads from), and every other stream
 * keeps moving. The writer loop batches pending messages round-robin, at most CHUNK bytes of one
 * stream per turn, into frames of up to MAX_FRAME_PLAINTEXT bytes: a bulk stream fills large frames
 * (few AEAD calls) while a small message on another stream waits for at most one frame.
 *
 * No copies: DATA payloads go out as views of the caller's buffers (sealed straight from them by
 * Link.sendv) and come in as views of the opened frame.
 *
 * Datagrams (the UDP tunnel) ride the same ordered link, but are dropped rather than queued once
 * DATAGRAM_QUEUE_BYTES wait to be sent: a game wants the next packet, not a late one. They go
 * before stream data in every frame, but on an ordered link a datagram still waits behind the
 * bulk bytes sealed or in flight before it. So while datagrams flow (one in the last GAME_MS,
 * either way), bulk streams take smaller turns (GAME_FRAME) and keep at most GAME_INFLIGHT bytes
 * each unconsumed at the other side (issue 16: game UDP stays fast while a file moves; measured
 * in scripts/bench/game_udp.ts). Where the link runs over QUIC, datagrams skip all that: they go
 * as QUIC datagrams (the transport's DatagramLane), a lane of their own beside the stream, each
 * with its channel (u32) in front.
 *
 * A peer that vanishes without closing (power cut, Wi-Fi gone) would otherwise go unnoticed until
 * TCP gives up, which takes many minutes: a link that has heard nothing for DEAD_AFTER_MS is cut.
 *
 * Stream ids: the dialer of the link opens odd ids, the listener even ones, so both may open at
 * once without a collision. Ids are never reused on one link.
 */
import { fromUtf8, utf8 } from "../protocol/bytes.ts";
import { LinkError } from "../protocol/noise.ts";
import { type DatagramLane, MAX_FRAME_PLAINTEXT } from "./secure_channel.ts";

/** Bytes of one stream that may be in flight or unread at the receiver. */
export const STREAM_WINDOW = 4 * 1024 * 1024;
/** The reader grants credit back once its application consumed this much. */
export const CREDIT_THRESHOLD = 256 * 1024;
/** At most this much of one stream goes into a frame before other streams get their turn. */
export const CHUNK = 256 * 1024;
/** Datagrams within this long (sent or received) make bulk streams yield to them. */
export const GAME_MS = 1_000;
/** Stream data per frame while datagrams flow. */
export const GAME_FRAME = 64 * 1024;
/**
 * Bytes of one stream sent but not yet consumed by the other side, while datagrams flow. Above
 * CREDIT_THRESHOLD, or the reader would never grant more: four steps keep the bulk moving.
 */
export const GAME_INFLIGHT = 4 * CREDIT_THRESHOLD;
/** Datagrams waiting to be sent beyond this are dropped. */
export const DATAGRAM_QUEUE_BYTES = 512 * 1024;
/** The largest datagram carried (a UDP payload is at most 65507 bytes on IPv4). */
export const MAX_DATAGRAM = 65535;
/** Streams the other side may have open towards us at once. */
export const MAX_INCOMING_STREAMS = 1024;
/** Send a PING after this long without sending anything. */
export const KEEPALIVE_MS = 10_000;
/** Cut a link that has not been heard from for this long (a few missed keepalives). */
export const DEAD_AFTER_MS = 35_000;
/** Reasons and OPEN metadata are small. */
const MAX_CONTROL_PAYLOAD = 16 * 1024;

const HEADER = 9;
const T_OPEN = 1;
const T_DATA = 2;
const T_CREDIT = 3;
const T_FIN = 4;
const T_RESET = 5;
const T_DGRAM = 6;
const T_PING = 7;

/** What the mux needs of a link; tests pass an in-memory pair. */
export interface MuxTransport {
  readonly role: "dialer" | "listener";
  sendv(parts: readonly Uint8Array[]): Promise<void>;
  receive(): Promise<Uint8Array | null>;
  close(): Promise<void>;
  abort(): void;
  /** Takes back the buffer of a received frame once no view of it is in use (optional). */
  recycle?(buffer: ArrayBuffer): void;
  /** The transport's own datagrams (QUIC): when there, datagrams go there, not in the frames. */
  readonly datagrams?: DatagramLane;
}

/** A received frame's buffer and how many holders (queued or last-read chunks) still refer to it. */
interface FrameRef {
  buffer: ArrayBuffer;
  holders: number;
}

export type MuxErrorCode = "reset" | "closed" | "protocol";

export class MuxError extends Error {
  constructor(message: string, readonly code: MuxErrorCode, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "MuxError";
  }
}

export interface MuxOptions {
  /** A stream the other side opened; call stream.reset() to refuse it. None: every stream is refused. */
  onStream?: (stream: MuxStream) => void;
  /** A datagram the other side sent on `channel`. The bytes are a view: copy to keep them past the call. */
  onDatagram?: (channel: number, data: Uint8Array) => void;
  /** For messages: who is on the other side. */
  peer?: string;
  /** Tests shrink the window to exercise flow control. */
  window?: number;
  /** Milliseconds, monotonic (tests inject a clock); performance.now by default. */
  now?: () => number;
  /** Tests shorten the keepalive (0 turns it off). */
  keepaliveMs?: number;
  deadAfterMs?: number;
}

type Waiter = { resolve: () => void; reject: (err: Error) => void };

/** One bidirectional byte stream. Reads and writes may each be awaited one at a time. */
export class MuxStream {
  /** Bytes the other side still lets us send. */
  #credit: number;
  readonly #sendWindow: number;
  /** Bytes we still let the other side send (it must never exceed this). */
  #window: number;
  #consumed = 0;
  /** Credit goes back in steps of this much, not per read: a ping-pong then costs one frame each way. */
  readonly #threshold: number;
  #in: Uint8Array[] = [];
  /** The frame under each chunk of #in, and under the chunk read() returned last. */
  #inFrames: (FrameRef | null)[] = [];
  #lastRead: FrameRef | null = null;
  #inFin = false;
  #readWaiter: Waiter | null = null;
  #creditWaiter: Waiter | null = null;
  /** Views of written buffers, not yet put into a frame. */
  out: Uint8Array[] = [];
  outBytes = 0;
  /** FIN requested; sent once `out` is empty. */
  finQueued = false;
  #finSent = false;
  #failure: MuxError | null = null;
  #done = Promise.withResolvers<void>();
  /** Bytes ever queued by write(), and how many of them the link has taken (sealed and written). */
  #queuedTotal = 0;
  #sentTotal = 0;
  #sentWaiters: { at: number; resolve: () => void }[] = [];

  constructor(
    readonly mux: Mux,
    readonly id: number,
    readonly protocol: string,
    readonly meta: unknown,
    window: number,
  ) {
    this.#credit = window;
    this.#sendWindow = window;
    this.#window = window;
    this.#threshold = Math.min(CREDIT_THRESHOLD, Math.max(1, Math.floor(window / 4)));
    this.#done.promise.catch(() => {});
  }

  /** Resolves when the stream is over both ways (FIN each way), rejects when it was reset or the link ended. */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /** Set once the stream was reset or its link ended. */
  get failure(): MuxError | null {
    return this.#failure;
  }

  /**
   * Queues `data` to be sent, waiting while the other side's window is full. The stream keeps a
   * view of `data` until it is sealed: do not reuse the buffer afterwards.
   */
  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      if (this.#failure) throw this.#failure;
      if (this.finQueued) throw new MuxError("Cannot write to a stream after closeWrite().", "closed");
      // While a game's datagrams flow, keep less of this stream in flight (see GAME_INFLIGHT).
      const inflight = this.#sendWindow - this.#credit;
      const room = this.mux.gaming
        ? Math.min(this.#credit, Math.max(0, GAME_INFLIGHT - inflight))
        : this.#credit;
      if (room === 0) {
        const credit = new Promise<void>((resolve, reject) => this.#creditWaiter = { resolve, reject });
        if (this.#credit === 0) {
          await credit;
          continue;
        }
        // Held back for a game only: once datagrams stop, the window is ours again, credit or not.
        let timer: ReturnType<typeof setTimeout> | undefined;
        try {
          await Promise.race([credit, new Promise((r) => timer = setTimeout(r, GAME_MS))]);
        } finally {
          clearTimeout(timer);
        }
        continue;
      }
      const n = Math.min(room, data.length - off);
      this.#credit -= n;
      this.out.push(off === 0 && n === data.length ? data : data.subarray(off, off + n));
      this.outBytes += n;
      this.#queuedTotal += n;
      off += n;
      this.mux.schedule(this);
    }
    if (this.#failure) throw this.#failure;
  }

  /** Bytes queued by write() so far: pass it to sent() to learn when the buffers written up to now are free again. */
  get written(): number {
    return this.#queuedTotal;
  }

  /**
   * Resolves once the first `position` bytes written have been sealed into frames and taken by
   * the socket (or the stream failed): from then on their buffers may be reused.
   */
  sent(position: number): Promise<void> {
    if (this.#sentTotal >= position || this.#failure) return Promise.resolve();
    return new Promise((resolve) => this.#sentWaiters.push({ at: position, resolve }));
  }

  /** Called by the Mux after a frame holding `n` bytes of this stream was written. */
  markSent(n: number): void {
    this.#sentTotal += n;
    if (this.#sentWaiters.length === 0) return;
    const ready = this.#sentWaiters.filter((w) => w.at <= this.#sentTotal);
    this.#sentWaiters = this.#sentWaiters.filter((w) => w.at > this.#sentTotal);
    for (const w of ready) w.resolve();
  }

  /**
   * The next chunk the other side sent, or null after its FIN. Rejects once the stream was reset.
   * The chunk is a view of the received frame and stays valid only until the next read() on this
   * stream (its buffer then goes back to the link for a later frame): copy what must live longer.
   */
  async read(): Promise<Uint8Array | null> {
    this.#releaseLast();
    for (;;) {
      if (this.#in.length > 0) {
        const chunk = this.#in.shift()!;
        this.#lastRead = this.#inFrames.shift() ?? null;
        this.#consumed += chunk.length;
        if (this.#consumed >= this.#threshold) this.#grant();
        return chunk;
      }
      if (this.#failure) throw this.#failure;
      if (this.#inFin) return null;
      await new Promise<void>((resolve, reject) => this.#readWaiter = { resolve, reject });
    }
  }

  /** No more data from us; the other side reads null after what was already written. */
  closeWrite(): void {
    if (this.finQueued || this.#failure) return;
    this.finQueued = true;
    this.mux.schedule(this);
  }

  /** Kills the stream both ways; the other side's reads and writes fail with `reason`. */
  reset(reason = "reset"): void {
    if (this.#failure) return;
    this.mux.sendReset(this, reason);
    this.fail(new MuxError(`The stream was reset: ${reason}`, "reset"));
  }

  // ── called by the Mux ──

  /** Grants back what the application consumed, so the other side may send that much more. */
  #grant(): void {
    const n = this.#consumed;
    this.#consumed = 0;
    if (this.#failure || this.#inFin) return;
    this.#window += n;
    this.mux.sendCredit(this, n);
  }

  deliver(data: Uint8Array, frame: FrameRef | null): boolean {
    if (this.#inFin || this.#failure) return true; // late data after our reset: dropped
    this.#window -= data.length;
    if (this.#window < 0) return false;
    if (data.length === 0) return true;
    this.#in.push(data);
    if (frame) frame.holders++;
    this.#inFrames.push(frame);
    this.#wakeReader();
    return true;
  }

  addCredit(n: number): void {
    this.#credit += n;
    const w = this.#creditWaiter;
    this.#creditWaiter = null;
    w?.resolve();
  }

  receivedFin(): void {
    this.#inFin = true;
    this.#wakeReader();
    this.#settle();
  }

  sentFin(): void {
    this.#finSent = true;
    this.#settle();
  }

  fail(err: MuxError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.out = [];
    this.outBytes = 0;
    this.#in = [];
    for (const f of this.#inFrames) this.mux.release(f);
    this.#inFrames = [];
    this.#releaseLast();
    const r = this.#readWaiter;
    const c = this.#creditWaiter;
    this.#readWaiter = this.#creditWaiter = null;
    r?.reject(err);
    c?.reject(err);
    for (const w of this.#sentWaiters) w.resolve(); // nothing holds the buffers any more
    this.#sentWaiters = [];
    this.#done.reject(err);
    this.mux.forget(this);
  }

  #releaseLast(): void {
    const f = this.#lastRead;
    this.#lastRead = null;
    this.mux.release(f);
  }

  #wakeReader(): void {
    const w = this.#readWaiter;
    this.#readWaiter = null;
    w?.resolve();
  }

  #settle(): void {
    if (this.#inFin && this.#finSent && !this.#failure) {
      this.#done.resolve();
      this.mux.forget(this);
    }
  }
}

/** The streams and datagrams of one link. Owns the link's receive side from construction on. */
export class Mux {
  readonly peer: string;
  readonly #link: MuxTransport;
  readonly #opts: MuxOptions;
  readonly #window: number;
  #streams = new Map<number, MuxStream>();
  #nextId: number;
  #incoming = 0;
  #control: Uint8Array[] = [];
  #ready: MuxStream[] = [];
  #scheduled = new Set<MuxStream>();
  #datagrams: Uint8Array[] = [];
  #datagramBytes = 0;
  #pumping = false;
  #idle: (() => void)[] = [];
  #ended: MuxError | null = null;
  #closing: Promise<void> | null = null;
  #closed = Promise.withResolvers<string | undefined>();
  /** Datagrams dropped because the link was busy (reported by the UDP tunnel). */
  droppedDatagrams = 0;
  /** Datagrams sent on the transport's own lane (QUIC) instead of in frames. */
  laneDatagrams = 0;
  #lastSent = Date.now();
  #lastHeard = Date.now();
  #keepalive?: ReturnType<typeof setInterval>;

  constructor(link: MuxTransport, opts: MuxOptions = {}) {
    this.#link = link;
    this.#opts = opts;
    this.peer = opts.peer ?? "the peer";
    this.#window = opts.window ?? STREAM_WINDOW;
    this.#nextId = link.role === "dialer" ? 1 : 2;
    void this.#readLoop();
    const lane = link.datagrams;
    if (lane) void this.#laneLoop(lane);
    const every = opts.keepaliveMs ?? KEEPALIVE_MS;
    if (every > 0) {
      const deadAfter = opts.deadAfterMs ?? DEAD_AFTER_MS;
      this.#keepalive = setInterval(
        () => this.#checkAlive(every, deadAfter),
        Math.max(1, Math.floor(every / 2)),
      );
      // The keepalive alone must not keep a process running.
      Deno.unrefTimer(this.#keepalive as unknown as number);
    }
  }

  #checkAlive(every: number, deadAfter: number): void {
    const now = Date.now();
    if (now - this.#lastHeard > deadAfter) {
      this.abort(
        `${this.peer} has not been heard from for ${Math.round(deadAfter / 1000)} s; the link is gone.`,
      );
      return;
    }
    if (now - this.#lastSent >= every && !this.#hasWork()) this.#queueControl(T_PING, 0, new Uint8Array(0));
  }

  /** Resolves when the link is over: undefined after a clean close, else the reason. */
  get closed(): Promise<string | undefined> {
    return this.#closed.promise;
  }

  get isClosed(): boolean {
    return this.#ended !== null;
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Opens a stream; the other side's onStream sees `protocol` and `meta`. Data may be written at once. */
  open(protocol: string, meta?: unknown): MuxStream {
    if (this.#ended) throw this.#ended;
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new MuxStream(this, id, protocol, meta, this.#window);
    this.#streams.set(id, stream);
    const body = utf8(JSON.stringify({ p: protocol, m: meta }));
    if (body.length > MAX_CONTROL_PAYLOAD) throw new RangeError("The stream metadata is too large.");
    this.#queueControl(T_OPEN, id, body);
    return stream;
  }

  /**
   * Sends one datagram on `channel` (any u32 the application chooses). Returns false when it was
   * dropped: too large, the link is gone, or too much is already waiting.
   */
  sendDatagram(channel: number, data: Uint8Array): boolean {
    if (this.#ended || data.length > MAX_DATAGRAM) return false;
    this.#lastDatagram = this.#now();
    const lane = this.#link.datagrams;
    if (lane && data.length + 4 <= lane.maxSize) {
      const d = new Uint8Array(4 + data.length);
      new DataView(d.buffer).setUint32(0, channel);
      d.set(data, 4);
      lane.send(d);
      this.laneDatagrams++;
      return true;
    }
    if (this.#datagramBytes + data.length > DATAGRAM_QUEUE_BYTES) {
      this.droppedDatagrams++;
      return false;
    }
    this.#datagrams.push(header(T_DGRAM, channel, data.length), data);
    this.#datagramBytes += data.length;
    this.#pump();
    return true;
  }

  #lastDatagram = -Infinity;

  /** Datagrams flowed in the last GAME_MS: bulk streams yield to them. */
  get gaming(): boolean {
    return this.#now() - this.#lastDatagram < GAME_MS;
  }

  #now(): number {
    return this.#opts.now?.() ?? performance.now();
  }

  /** Sends what is queued, then closes the link (authenticated close). Open streams end with "closed". */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#flushed();
      await this.#link.close().catch(() => {});
      this.#end(undefined);
    })();
    return this.#closing;
  }

  /** Cuts the link at once. */
  abort(reason = "aborted"): void {
    this.#link.abort();
    this.#end(reason);
  }

  // ── for MuxStream ──

  schedule(stream: MuxStream): void {
    if (!this.#scheduled.has(stream)) {
      this.#scheduled.add(stream);
      this.#ready.push(stream);
    }
    this.#pump();
  }

  sendCredit(stream: MuxStream, n: number): void {
    const h = header(T_CREDIT, stream.id, 4);
    const body = new Uint8Array(4);
    new DataView(body.buffer).setUint32(0, n);
    this.#control.push(h, body);
    this.#pump();
  }

  sendReset(stream: MuxStream, reason: string): void {
    if (this.#ended) return;
    this.#queueControl(T_RESET, stream.id, utf8(reason.slice(0, 1000)));
  }

  /** One holder of a received frame is done with it; the last one hands the buffer back to the link. */
  release(frame: FrameRef | null): void {
    if (frame && --frame.holders === 0) this.#link.recycle?.(frame.buffer);
  }

  forget(stream: MuxStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    if (isIncoming(stream.id, this.#link.role)) this.#incoming--;
  }

  // ── sending ──

  #queueControl(type: number, id: number, body: Uint8Array): void {
    this.#control.push(header(type, id, body.length), body);
    this.#pump();
  }

  #hasWork(): boolean {
    return this.#control.length > 0 || this.#datagrams.length > 0 || this.#ready.length > 0;
  }

  #flushed(): Promise<void> {
    if (!this.#pumping && !this.#hasWork()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    if (this.#pumping || this.#ended) return;
    this.#pumping = true;
    // A microtask later, so what the caller queues in the same turn (an echo and its credit) shares a frame.
    queueMicrotask(() => void this.#writeLoop());
  }

  async #writeLoop(): Promise<void> {
    try {
      while (this.#hasWork() && !this.#ended) {
        const sent: [MuxStream, number][] = [];
        const parts = this.#batch(sent);
        if (parts.length > 0) {
          await this.#link.sendv(parts);
          this.#lastSent = Date.now();
        }
        for (const [s, n] of sent) s.markSent(n);
      }
    } catch (err) {
      this.#end(err instanceof Error ? err.message : String(err));
    } finally {
      this.#pumping = false;
      const idle = this.#idle;
      this.#idle = [];
      for (const f of idle) f();
    }
  }

  /** Control first, then datagrams, then stream data round-robin, up to one frame. */
  #batch(sent: [MuxStream, number][]): Uint8Array[] {
    const parts: Uint8Array[] = [];
    let size = 0;
    const limit = this.gaming ? GAME_FRAME : MAX_FRAME_PLAINTEXT;
    while (
      this.#control.length > 0 &&
      size + this.#control[0].length + this.#control[1].length <= MAX_FRAME_PLAINTEXT
    ) {
      const h = this.#control.shift()!;
      const body = this.#control.shift()!;
      parts.push(h, body);
      size += h.length + body.length;
    }
    while (this.#datagrams.length > 0 && size + HEADER + this.#datagrams[1].length <= MAX_FRAME_PLAINTEXT) {
      const h = this.#datagrams.shift()!;
      const body = this.#datagrams.shift()!;
      this.#datagramBytes -= body.length;
      parts.push(h, body);
      size += HEADER + body.length;
    }
    while (this.#ready.length > 0 && size + HEADER < limit) {
      const s = this.#ready.shift()!;
      if (s.failure) {
        this.#scheduled.delete(s);
        continue;
      }
      if (s.outBytes > 0) {
        let room = Math.min(CHUNK, limit - size - HEADER);
        const h = new Uint8Array(HEADER);
        parts.push(h);
        let len = 0;
        while (room > 0 && s.out.length > 0) {
          const head = s.out[0];
          if (head.length <= room) {
            parts.push(head);
            s.out.shift();
            len += head.length;
            room -= head.length;
          } else {
            parts.push(head.subarray(0, room));
            s.out[0] = head.subarray(room);
            len += room;
            room = 0;
          }
        }
        s.outBytes -= len;
        sent.push([s, len]);
        writeHeader(h, T_DATA, s.id, len);
        size += HEADER + len;
      }
      if (s.outBytes > 0) {
        this.#ready.push(s);
        continue;
      }
      this.#scheduled.delete(s);
      if (s.finQueued) {
        if (size + HEADER > MAX_FRAME_PLAINTEXT) {
          this.#scheduled.add(s);
          this.#ready.push(s);
          break;
        }
        parts.push(header(T_FIN, s.id, 0));
        size += HEADER;
        s.sentFin();
      }
    }
    return parts;
  }

  // ── receiving ──

  /** Datagrams from the transport's own lane: [channel u32][payload]. */
  async #laneLoop(lane: DatagramLane): Promise<void> {
    for (let d = await lane.receive(); d !== null && !this.#ended; d = await lane.receive()) {
      if (d.length < 4) continue;
      this.#lastDatagram = this.#now();
      try {
        this.#opts.onDatagram?.(new DataView(d.buffer, d.byteOffset).getUint32(0), d.subarray(4));
      } catch {
        // an application's failure with one datagram must not take the link down
      }
    }
  }

  async #readLoop(): Promise<void> {
    let reason: string | undefined;
    try {
      for (;;) {
        const frame = await this.#link.receive();
        if (frame === null) break;
        this.#lastHeard = Date.now();
        this.#dispatch(frame);
        if (this.#ended) return;
      }
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
      if (err instanceof MuxError) this.#link.abort();
    }
    this.#end(reason);
  }

  #dispatch(frame: Uint8Array): void {
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    // Dispatch itself holds the frame until every message in it was handed on.
    const ref: FrameRef | null = this.#link.recycle
      ? { buffer: frame.buffer as ArrayBuffer, holders: 1 }
      : null;
    try {
      this.#dispatchIn(frame, view, ref);
    } finally {
      this.release(ref);
    }
  }

  #dispatchIn(frame: Uint8Array, view: DataView, ref: FrameRef | null): void {
    let off = 0;
    while (off < frame.length) {
      if (frame.length - off < HEADER) throw this.#violation("a message header was cut short");
      const type = view.getUint8(off);
      const id = view.getUint32(off + 1);
      const len = view.getUint32(off + 5);
      off += HEADER;
      if (len > frame.length - off) throw this.#violation("a message ran past its frame");
      const body = frame.subarray(off, off + len);
      off += len;
      this.#handle(type, id, body, ref);
    }
  }

  #handle(type: number, id: number, body: Uint8Array, ref: FrameRef | null): void {
    if (type === T_PING) return;
    if (type === T_DGRAM) {
      this.#lastDatagram = this.#now();
      try {
        this.#opts.onDatagram?.(id, body);
      } catch {
        // an application's failure with one datagram must not take the link down
      }
      return;
    }
    const stream = this.#streams.get(id);
    switch (type) {
      case T_OPEN:
        this.#opened(id, body);
        return;
      case T_DATA:
        // Data for a stream we already reset or forgot is a race, not an attack: drop it.
        if (stream && !stream.deliver(body, ref)) {
          throw this.#violation(`stream ${id} sent more than its window`);
        }
        return;
      case T_CREDIT:
        if (body.length !== 4) throw this.#violation("a credit message is not 4 bytes");
        stream?.addCredit(new DataView(body.buffer, body.byteOffset, 4).getUint32(0));
        return;
      case T_FIN:
        stream?.receivedFin();
        return;
      case T_RESET:
        stream?.fail(new MuxError(`${this.peer} reset the stream: ${fromUtf8(body)}`, "reset"));
        return;
      default:
        throw this.#violation(`unknown message type ${type}`);
    }
  }

  #opened(id: number, body: Uint8Array): void {
    if (!isIncoming(id, this.#link.role) || this.#streams.has(id) || body.length > MAX_CONTROL_PAYLOAD) {
      throw this.#violation(`stream ${id} was opened twice or by the wrong side`);
    }
    let p: unknown;
    let m: unknown;
    try {
      ({ p, m } = JSON.parse(fromUtf8(body)));
    } catch {
      throw this.#violation("a stream opened with metadata that is not JSON");
    }
    const stream = new MuxStream(this, id, typeof p === "string" ? p : "", m, this.#window);
    this.#streams.set(id, stream);
    this.#incoming++;
    if (this.#incoming > MAX_INCOMING_STREAMS) {
      stream.reset(`too many streams open (at most ${MAX_INCOMING_STREAMS})`);
      return;
    }
    if (!this.#opts.onStream) {
      stream.reset(`nothing here takes "${stream.protocol}" streams`);
      return;
    }
    try {
      this.#opts.onStream(stream);
    } catch (err) {
      stream.reset(err instanceof Error ? err.message : String(err));
    }
  }

  #violation(what: string): MuxError {
    return new MuxError(`Dropped the link to ${this.peer}: ${what}.`, "protocol");
  }

  #end(reason: string | undefined): void {
    if (this.#ended) return;
    clearInterval(this.#keepalive);
    this.#ended = new MuxError(
      reason === undefined ? `The link to ${this.peer} closed.` : reason,
      "closed",
    );
    for (const s of [...this.#streams.values()]) s.fail(this.#ended);
    this.#control = [];
    this.#datagrams = [];
    this.#ready = [];
    this.#scheduled.clear();
    const idle = this.#idle;
    this.#idle = [];
    for (const f of idle) f();
    this.#closed.resolve(reason);
  }
}

function isIncoming(id: number, role: "dialer" | "listener"): boolean {
  // The dialer opens odd ids, so it receives even ones, and the other way round.
  return (id % 2 === 0) === (role === "dialer");
}

function writeHeader(h: Uint8Array, type: number, id: number, len: number): void {
  const v = new DataView(h.buffer, h.byteOffset, HEADER);
  v.setUint8(0, type);
  v.setUint32(1, id);
  v.setUint32(5, len);
}

function header(type: number, id: number, len: number): Uint8Array {
  const h = new Uint8Array(HEADER);
  writeHeader(h, type, id, len);
  return h;
}

export { LinkError };
