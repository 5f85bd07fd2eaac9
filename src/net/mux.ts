/**
 * Many independent streams, and datagrams, over one authenticated link (src/net/link.ts).
 *
 * Every sealed frame carries a batch of messages, each `type u8 | id u32 | length u32 | payload`
 * (encoded and decoded in src/net/mux_frame.ts; a stream's own state is in src/net/mux_stream.ts):
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
 * While datagrams flow, bulk data is also paced to the delay it causes (src/net/bulk_pacer.ts):
 * a PING with a non-zero id rides along with bulk data every PROBE_EVERY_MS, and the other side
 * echoes it at once as a PING with the same id and the one-byte payload ECHO. Peers of earlier
 * versions ignore every PING, so they echo nothing: a writer that never hears an echo within
 * PROBE_GIVE_UP_MS stops probing that link, and its bulk data goes unpaced as before.
 *
 * A peer that vanishes without closing (power cut, Wi-Fi gone) would otherwise go unnoticed until
 * TCP gives up, which takes many minutes: a link that has heard nothing for DEAD_AFTER_MS is cut.
 *
 * Stream ids: the dialer of the link opens odd ids, the listener even ones, so both may open at
 * once without a collision. Ids are never reused on one link.
 */
import { type CancelTimer, type Clock, systemClock } from "./clock.ts";
import { LinkError } from "../protocol/noise.ts";
import { MuxError } from "./mux_error.ts";
import {
  decodeCredit,
  decodeOpen,
  decodeReset,
  encodeCredit,
  encodeHeader,
  encodeLaneDatagram,
  encodeOpen,
  encodeReset,
  HEADER_BYTES,
  LANE_HEADER_BYTES,
  laneChannel,
  MAX_CONTROL_PAYLOAD,
  MessageReader,
  MSG,
  MuxFrameError,
  writeHeader,
} from "./mux_frame.ts";
import {
  type FrameRef,
  GAME_MS,
  type MuxStream,
  Stream,
  STREAM_WINDOW,
  type StreamSink,
} from "./mux_stream.ts";
import { type DatagramLane, MAX_FRAME_PLAINTEXT } from "./secure_channel.ts";
import { BulkPacer, PROBE_EVERY_MS } from "./bulk_pacer.ts";
import { CpuPressure, type StallReader } from "./cpu_pressure.ts";

export { MuxError, type MuxErrorCode } from "./mux_error.ts";
export { MuxFrameError } from "./mux_frame.ts";
export {
  CREDIT_THRESHOLD,
  GAME_CREDIT,
  GAME_INFLIGHT,
  GAME_MS,
  type MuxStream,
  STREAM_WINDOW,
} from "./mux_stream.ts";
export type { Clock } from "./clock.ts";

/** At most this much of one stream goes into a frame before other streams waiting get their turn. */
export const CHUNK = 256 * 1024;
/** Stream data per frame while datagrams flow. */
export const GAME_FRAME = 64 * 1024;
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
/** A probe unanswered this long: the other side does not echo (an earlier version); stop probing. */
export const PROBE_GIVE_UP_MS = 2_000;
/** The CPU pressure is read at most this often (a figure over a shorter span is mostly noise). */
const PRESSURE_EVERY_MS = 50;
/** The payload of a PING that echoes a probe. */
const ECHO = Uint8Array.of(1);

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

export interface MuxOptions {
  /** A stream the other side opened; call stream.reset() to refuse it. None: every stream is refused. */
  onStream?: (stream: MuxStream) => void;
  /** A datagram the other side sent on `channel`. The bytes are a view: copy to keep them past the call. */
  onDatagram?: (channel: number, data: Uint8Array) => void;
  /** For messages: who is on the other side. */
  peer?: string;
  /** Tests shrink the window to exercise flow control. */
  window?: number;
  /** Time and timers (tests inject a manual clock); the system clock by default. */
  clock?: Clock;
  /** Tests shorten the keepalive (0 turns it off). */
  keepaliveMs?: number;
  deadAfterMs?: number;
  /** The machine's cumulative CPU stall time (µs), for the bulk pacer; Linux's PSI by default. */
  cpuStall?: StallReader;
}

/** The streams and datagrams of one link. Owns the link's receive side from construction on. */
export class Mux {
  readonly peer: string;
  readonly #link: MuxTransport;
  readonly #opts: MuxOptions;
  readonly #clock: Clock;
  readonly #window: number;
  readonly #sink: StreamSink;
  readonly #reader = new MessageReader();
  #streams = new Map<number, Stream>();
  #nextId: number;
  #incoming = 0;
  #control: Uint8Array[] = [];
  #ready: Stream[] = [];
  #scheduled = new Set<Stream>();
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
  /** Probes the other side echoed (src/net/bulk_pacer.ts). */
  probeEchoes = 0;
  /**
   * When the keepalive last saw a frame go out and one come in. Frames only bump the counters
   * below; the keepalive's tick turns a change into a time. A clock read per frame was 5% of a
   * small message's path (bench link's round trip), and a tick (every KEEPALIVE_MS / 2) is
   * precision enough for a limit of DEAD_AFTER_MS.
   */
  #lastSent: number;
  #lastHeard: number;
  #framesSent = 0;
  #framesHeard = 0;
  #sentAtTick = 0;
  #heardAtTick = 0;
  #lastDatagram = -Infinity;
  #stopKeepalive: CancelTimer | undefined;
  /** Paces bulk data while datagrams flow; fed by the probes' round trips. */
  readonly pacer = new BulkPacer();
  readonly #pressure: CpuPressure;
  #pressureAt = -Infinity;
  #lastPaced = -Infinity;
  /** The probe on its way (0: none), when it went, the last id used; false once the peer proved it does not echo. */
  #probe = 0;
  #probeSentAt = 0;
  #probeSeq = 0;
  #probing = true;
  /** The streams whose bytes went into the frame being written, and how many: reused, frame after frame. */
  #sentStreams: Stream[] = [];
  #sentBytes: number[] = [];

  constructor(link: MuxTransport, opts: MuxOptions = {}) {
    this.#link = link;
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.peer = opts.peer ?? "the peer";
    this.#window = opts.window ?? STREAM_WINDOW;
    this.#pressure = new CpuPressure(opts.cpuStall);
    this.#nextId = link.role === "dialer" ? 1 : 2;
    this.#lastSent = this.#lastHeard = this.#clock.now();
    this.#sink = this.#makeSink();
    void this.#readLoop();
    const lane = link.datagrams;
    if (lane) void this.#laneLoop(lane);
    const every = opts.keepaliveMs ?? KEEPALIVE_MS;
    if (every > 0) {
      const deadAfter = opts.deadAfterMs ?? DEAD_AFTER_MS;
      this.#stopKeepalive = this.#clock.every(
        Math.max(1, Math.floor(every / 2)),
        () => this.#checkAlive(every, deadAfter),
      );
    }
  }

  /** The streams' narrow view of this mux (see StreamSink). */
  #makeSink(): StreamSink {
    return {
      gaming: () => this.gaming,
      pace: (bytes) => this.#pace(bytes),
      clock: this.#clock,
      schedule: (stream) => this.#schedule(stream),
      sendCredit: (stream, n) => this.#sendCredit(stream, n),
      sendReset: (stream, reason) => this.#sendReset(stream, reason),
      release: (frame) => this.#release(frame),
      forget: (stream) => this.#forget(stream),
    };
  }

  #checkAlive(every: number, deadAfter: number): void {
    const now = this.#clock.now();
    if (this.#framesHeard !== this.#heardAtTick) {
      this.#heardAtTick = this.#framesHeard;
      this.#lastHeard = now;
    }
    if (this.#framesSent !== this.#sentAtTick) {
      this.#sentAtTick = this.#framesSent;
      this.#lastSent = now;
    }
    if (now - this.#lastHeard > deadAfter) {
      this.abort(
        `${this.peer} has not been heard from for ${Math.round(deadAfter / 1000)} s; the link is gone.`,
      );
      return;
    }
    if (now - this.#lastSent >= every && !this.#hasWork()) this.#queueControl(MSG.PING, 0, new Uint8Array(0));
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

  /**
   * Opens a stream; the other side's onStream sees `protocol` and `meta`. Data may be written at once.
   * Throws RangeError when the metadata is too large, MuxError when the link is over: either way no
   * stream was opened.
   */
  open(protocol: string, meta?: unknown): MuxStream {
    if (this.#ended) throw this.#ended;
    const body = encodeOpen(protocol, meta);
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new Stream(this.#sink, id, protocol, meta, this.#window);
    this.#streams.set(id, stream);
    this.#queueControl(MSG.OPEN, id, body);
    return stream;
  }

  /**
   * Sends one datagram on `channel` (any u32 the application chooses). Returns false when it was
   * dropped: too large, the link is gone, or too much is already waiting.
   */
  sendDatagram(channel: number, data: Uint8Array): boolean {
    if (this.#ended || data.length > MAX_DATAGRAM) return false;
    this.#lastDatagram = this.#clock.now();
    const lane = this.#link.datagrams;
    if (lane && data.length + LANE_HEADER_BYTES <= lane.maxSize) {
      lane.send(encodeLaneDatagram(channel, data));
      this.laneDatagrams++;
      return true;
    }
    if (this.#datagramBytes + data.length > DATAGRAM_QUEUE_BYTES) {
      this.droppedDatagrams++;
      return false;
    }
    this.#datagrams.push(encodeHeader(MSG.DGRAM, channel, data.length), data);
    this.#datagramBytes += data.length;
    this.#pump();
    return true;
  }

  /** False once the other side showed it does not echo probes (an earlier version). */
  get probing(): boolean {
    return this.#probing;
  }

  /** Datagrams flowed in the last GAME_MS: bulk streams yield to them. */
  get gaming(): boolean {
    // No datagram ever (most links): no clock read on every message's path.
    return this.#lastDatagram !== -Infinity && this.#clock.now() - this.#lastDatagram < GAME_MS;
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

  // ── for the streams, through #sink ──

  /** Bulk bytes about to be queued while a game plays: how long their writer waits first (ms). */
  #pace(bytes: number): number {
    const now = this.#clock.now();
    // A game that starts again after a pause starts unpaced: what held then may not hold now.
    if (now - this.#lastPaced > GAME_MS) this.pacer.reset();
    this.#lastPaced = now;
    return this.pacer.charge(bytes, now);
  }

  #schedule(stream: Stream): void {
    if (!this.#scheduled.has(stream)) {
      this.#scheduled.add(stream);
      this.#ready.push(stream);
    }
    this.#pump();
  }

  #sendCredit(stream: Stream, n: number): void {
    this.#control.push(encodeHeader(MSG.CREDIT, stream.id, 4), encodeCredit(n));
    this.#pump();
  }

  #sendReset(stream: Stream, reason: string): void {
    if (this.#ended) return;
    this.#queueControl(MSG.RESET, stream.id, encodeReset(reason));
  }

  #release(frame: FrameRef | null): void {
    if (frame && --frame.holders === 0) this.#link.recycle?.(frame.buffer);
  }

  #forget(stream: Stream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    if (isIncoming(stream.id, this.#link.role)) this.#incoming--;
  }

  // ── sending ──

  #queueControl(type: number, id: number, body: Uint8Array): void {
    this.#control.push(encodeHeader(type, id, body.length), body);
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
    queueMicrotask(this.#writeStep);
  }

  /**
   * The write loop, one frame at a time: the next when the link took this one, until nothing is
   * queued. Callbacks bound once rather than an async function: a small message's frame then
   * costs no async call of its own (bench link's round trip).
   */
  readonly #writeStep = (): void => {
    for (;;) {
      if (!this.#hasWork() || this.#ended) return this.#writeIdle();
      const parts = this.#batch();
      if (parts.length === 0) {
        this.#markBatchSent();
        continue;
      }
      let sending: Promise<void>;
      try {
        sending = this.#link.sendv(parts);
      } catch (err) {
        return this.#writeFailed(err);
      }
      sending.then(this.#frameSent, this.#writeFailed);
      return;
    }
  };

  readonly #frameSent = (): void => {
    this.#framesSent++;
    this.#markBatchSent();
    this.#writeStep();
  };

  readonly #writeFailed = (err: unknown): void => {
    this.#sentStreams.length = this.#sentBytes.length = 0;
    this.#end(err instanceof Error ? err.message : String(err));
    this.#writeIdle();
  };

  /** Tells the streams whose bytes went into the frame just written. */
  #markBatchSent(): void {
    const streams = this.#sentStreams;
    const bytes = this.#sentBytes;
    for (let i = 0; i < streams.length; i++) streams[i].markSent(bytes[i]);
    streams.length = bytes.length = 0;
  }

  #writeIdle(): void {
    this.#pumping = false;
    const idle = this.#idle;
    this.#idle = [];
    for (const f of idle) f();
  }

  /**
   * Control first, then datagrams, then stream data round-robin, up to one frame. Notes in
   * #sentStreams/#sentBytes how much of each stream went in.
   */
  #batch(): Uint8Array[] {
    const parts: Uint8Array[] = [];
    let size = 0;
    const gaming = this.gaming;
    const limit = gaming ? GAME_FRAME : MAX_FRAME_PLAINTEXT;
    while (
      this.#control.length > 0 &&
      size + this.#control[0].length + this.#control[1].length <= MAX_FRAME_PLAINTEXT
    ) {
      const h = this.#control.shift()!;
      const body = this.#control.shift()!;
      parts.push(h, body);
      size += h.length + body.length;
    }
    while (
      this.#datagrams.length > 0 && size + HEADER_BYTES + this.#datagrams[1].length <= MAX_FRAME_PLAINTEXT
    ) {
      const h = this.#datagrams.shift()!;
      const body = this.#datagrams.shift()!;
      this.#datagramBytes -= body.length;
      parts.push(h, body);
      size += HEADER_BYTES + body.length;
    }
    if (gaming && this.#ready.length > 0 && this.#probing) size += this.#maybeProbe(parts);
    while (this.#ready.length > 0 && size + HEADER_BYTES < limit) {
      const s = this.#ready.shift()!;
      if (s.failure) {
        this.#scheduled.delete(s);
        continue;
      }
      if (s.outBytes > 0) {
        // A stream alone takes what the frame holds as one message: its reader then gets one chunk
        // (one socket write at a tunnel's far end) per frame instead of one per CHUNK.
        let room = Math.min(this.#ready.length === 0 ? Infinity : CHUNK, limit - size - HEADER_BYTES);
        const h = new Uint8Array(HEADER_BYTES);
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
        this.#sentStreams.push(s);
        this.#sentBytes.push(len);
        writeHeader(h, MSG.DATA, s.id, len);
        size += HEADER_BYTES + len;
      }
      if (s.outBytes > 0) {
        this.#ready.push(s);
        continue;
      }
      this.#scheduled.delete(s);
      if (s.finQueued) {
        if (size + HEADER_BYTES > MAX_FRAME_PLAINTEXT) {
          this.#scheduled.add(s);
          this.#ready.push(s);
          break;
        }
        parts.push(encodeHeader(MSG.FIN, s.id, 0));
        size += HEADER_BYTES;
        s.sentFin();
      }
    }
    return parts;
  }

  /** Puts a probe (a PING with an id) in front of this frame's bulk data, when one is due; its size. */
  #maybeProbe(parts: Uint8Array[]): number {
    const now = this.#clock.now();
    if (this.#probe !== 0) {
      if (now - this.#probeSentAt >= PROBE_GIVE_UP_MS) this.#probing = false;
      return 0;
    }
    if (now - this.#probeSentAt < PROBE_EVERY_MS) return 0;
    this.#probeSeq = this.#probeSeq === 0xffffffff ? 1 : this.#probeSeq + 1;
    this.#probe = this.#probeSeq;
    this.#probeSentAt = now;
    parts.push(encodeHeader(MSG.PING, this.#probe, 0));
    return HEADER_BYTES;
  }

  /** A PING: a keepalive (id 0), a probe to echo (an id, empty), or the echo of ours (an id, ECHO). */
  #ping(id: number, body: Uint8Array): void {
    if (id === 0) return;
    if (body.length === 0) {
      this.#queueControl(MSG.PING, id, ECHO);
      return;
    }
    if (body.length === 1 && body[0] === ECHO[0] && id === this.#probe) {
      const now = this.#clock.now();
      this.#probe = 0;
      this.probeEchoes++;
      // An echo later than PROBE_GIVE_UP_MS (a queue that long) shows the peer echoes after all.
      this.#probing = true;
      let pressure: number | null = null;
      if (now - this.#pressureAt >= PRESSURE_EVERY_MS) {
        pressure = this.#pressure.sample(now);
        this.#pressureAt = now;
      }
      this.pacer.sample(now - this.#probeSentAt, now, pressure);
    }
  }

  // ── receiving ──

  /** Datagrams from the transport's own lane: [channel u32][payload]. */
  async #laneLoop(lane: DatagramLane): Promise<void> {
    for (let d = await lane.receive(); d !== null && !this.#ended; d = await lane.receive()) {
      const channel = laneChannel(d);
      if (channel < 0) continue;
      this.#lastDatagram = this.#clock.now();
      try {
        this.#opts.onDatagram?.(channel, d.subarray(LANE_HEADER_BYTES));
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
        this.#framesHeard++;
        this.#dispatch(frame);
        if (this.#ended) return;
        // One microtask turn before the next read is set up: the readers this frame woke act on
        // it first (a tunnel writes it to its socket), so setting up the read is not on their way.
        await undefined;
      }
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
      if (err instanceof MuxError) this.#link.abort();
    }
    this.#end(reason);
  }

  #dispatch(frame: Uint8Array): void {
    // Dispatch itself holds the frame until every message in it was handed on.
    const ref: FrameRef | null = this.#link.recycle
      ? { buffer: frame.buffer as ArrayBuffer, holders: 1 }
      : null;
    const reader = this.#reader;
    try {
      reader.start(frame);
      while (reader.next()) this.#handle(reader.type, reader.id, reader.body, ref);
    } catch (err) {
      throw err instanceof MuxFrameError ? this.#violation(err.detail) : err;
    } finally {
      this.#release(ref);
    }
  }

  #handle(type: number, id: number, body: Uint8Array, ref: FrameRef | null): void {
    if (type === MSG.PING) return this.#ping(id, body);
    if (type === MSG.DGRAM) {
      this.#lastDatagram = this.#clock.now();
      try {
        this.#opts.onDatagram?.(id, body);
      } catch {
        // an application's failure with one datagram must not take the link down
      }
      return;
    }
    const stream = this.#streams.get(id);
    switch (type) {
      case MSG.OPEN:
        this.#opened(id, body);
        return;
      case MSG.DATA:
        // Data for a stream we already reset or forgot is a race, not an attack: drop it.
        if (stream && !stream.deliver(body, ref)) {
          throw this.#violation(`stream ${id} sent more than its window`);
        }
        return;
      case MSG.CREDIT:
        stream?.addCredit(decodeCredit(body));
        return;
      case MSG.FIN:
        stream?.receivedFin();
        return;
      case MSG.RESET:
        stream?.fail(new MuxError(`${this.peer} reset the stream: ${decodeReset(body)}`, "reset"));
        return;
    }
  }

  #opened(id: number, body: Uint8Array): void {
    if (!isIncoming(id, this.#link.role) || this.#streams.has(id) || body.length > MAX_CONTROL_PAYLOAD) {
      throw this.#violation(`stream ${id} was opened twice or by the wrong side`);
    }
    const { protocol, meta } = decodeOpen(body);
    const stream = new Stream(this.#sink, id, protocol, meta, this.#window);
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
    this.#stopKeepalive?.();
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

export { LinkError };
