/**
 * One stream of the mux (src/net/mux.ts): its flow-control credit, what it received and not yet
 * read, what was written and not yet sealed. The stream talks to its mux through a StreamSink,
 * never the Mux itself, so what only streams need stays out of the Mux's API; and the
 * applications see a stream only as the MuxStream interface.
 */
import type { Clock } from "./clock.ts";
import { MuxError } from "./mux_error.ts";
import { PACE_FROM, PACE_SLICE } from "./bulk_pacer.ts";

/** Bytes of one stream that may be in flight or unread at the receiver. */
export const STREAM_WINDOW = 4 * 1024 * 1024;
/** The reader grants credit back once its application consumed this much. */
export const CREDIT_THRESHOLD = 256 * 1024;
/** Datagrams within this long (sent or received) make bulk streams yield to them. */
export const GAME_MS = 1_000;
/**
 * While datagrams flow, the reader grants credit in steps this small, so that the writer can keep
 * little in flight and a game's datagram waits behind little bulk data (issue 16).
 */
export const GAME_CREDIT = 32 * 1024;
/**
 * Bytes of one stream sent but not yet consumed by the other side, while datagrams flow: four of
 * the reader's grant steps keep the bulk moving. A reader of an earlier version grants only in
 * CREDIT_THRESHOLD steps: the writer keeps twice the last grant it got in flight, so such a
 * reader is never starved (it would otherwise wait for GAME_MS each time).
 */
export const GAME_INFLIGHT = 4 * GAME_CREDIT;

/** One bidirectional byte stream. Reads and writes may each be awaited one at a time. */
export interface MuxStream {
  readonly id: number;
  readonly protocol: string;
  readonly meta: unknown;
  /** Resolves when the stream is over both ways (FIN each way), rejects when it was reset or the link ended. */
  readonly done: Promise<void>;
  /** Set once the stream was reset or its link ended. */
  readonly failure: MuxError | null;
  /**
   * Queues `data` to be sent, waiting while the other side's window is full. The stream keeps a
   * view of `data` until it is sealed: do not reuse the buffer afterwards. Rejects with code
   * "busy" while another write() on this stream is still waiting (their bytes would interleave).
   */
  write(data: Uint8Array): Promise<void>;
  /** Bytes queued by write() so far: pass it to sent() to learn when the buffers written up to now are free again. */
  readonly written: number;
  /**
   * Resolves once the first `position` bytes written have been sealed into frames and taken by
   * the socket (or the stream failed): from then on their buffers may be reused.
   */
  sent(position: number): Promise<void>;
  /** How many of the bytes written have been sealed and taken by the socket (see sent()). */
  readonly sentBytes: number;
  /**
   * The next chunk the other side sent, or null after its FIN. Rejects once the stream was reset,
   * and with code "busy" while another read() on this stream is still waiting.
   * The chunk is a view of the received frame and stays valid only until the next read() on this
   * stream (its buffer then goes back to the link for a later frame): copy what must live longer.
   */
  read(): Promise<Uint8Array | null>;
  /** No more data from us; the other side reads null after what was already written. */
  closeWrite(): void;
  /** Kills the stream both ways; the other side's reads and writes fail with `reason`. */
  reset(reason?: string): void;
}

/** A received frame's buffer and how many holders (queued or last-read chunks) still refer to it. */
export interface FrameRef {
  buffer: ArrayBuffer;
  holders: number;
}

/** What a stream needs of its mux. */
export interface StreamSink {
  /** Datagrams flowed in the last GAME_MS: bulk streams yield to them. */
  gaming(): boolean;
  /** Bulk bytes about to be queued while a game plays: ms to wait first (src/net/bulk_pacer.ts). */
  pace(bytes: number): number;
  readonly clock: Clock;
  /** The stream has data or a FIN to send. */
  schedule(stream: Stream): void;
  /** Lets the other side send `n` more bytes of the stream. */
  sendCredit(stream: Stream, n: number): void;
  sendReset(stream: Stream, reason: string): void;
  /** One holder of a received frame is done with it; the last one hands the buffer back to the link. */
  release(frame: FrameRef | null): void;
  /** The stream is over: the mux drops it. */
  forget(stream: Stream): void;
}

type Waiter = { resolve: () => void; reject: (err: Error) => void };
type ReadWaiter = { resolve: (chunk: Uint8Array | null) => void; reject: (err: Error) => void };
const RESOLVED: Promise<void> = Promise.resolve();

/** A MuxStream and what its mux does with it (the members below `write`… are for the mux alone). */
export class Stream implements MuxStream {
  /** Bytes the other side still lets us send. */
  #credit: number;
  /** The other side's last grant: how far it lets us run ahead while a game plays. */
  #lastGrant = 0;
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
  #readWaiter: ReadWaiter | null = null;
  /** A read() is waiting (from before its waiter is set until it resumed after the wake). */
  #reading = false;
  #creditWaiter: Waiter | null = null;
  /** A write() is waiting for credit: a second one would take its waiter and interleave its bytes. */
  #writing = false;
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
  readonly #sink: StreamSink;

  constructor(
    sink: StreamSink,
    readonly id: number,
    readonly protocol: string,
    readonly meta: unknown,
    window: number,
  ) {
    this.#sink = sink;
    this.#credit = window;
    this.#sendWindow = window;
    this.#window = window;
    this.#threshold = Math.min(CREDIT_THRESHOLD, Math.max(1, Math.floor(window / 4)));
    this.#done.promise.catch(() => {});
  }

  get done(): Promise<void> {
    return this.#done.promise;
  }

  get failure(): MuxError | null {
    return this.#failure;
  }

  /**
   * Queues all of `data` at once and returns true when the window has room for it and nothing
   * holds writes back (a write waiting for credit, a game's pacing, an end); else queues nothing
   * and returns false (write() then waits its turn). A small message's way to the link without
   * an async call: its frames cost most of a tunnel's round trip (bench link).
   */
  #tryWrite(data: Uint8Array): boolean {
    if (
      this.#writing || this.#failure !== null || this.finQueued || data.length === 0 ||
      data.length > this.#credit || this.#sink.gaming()
    ) return false;
    this.#credit -= data.length;
    this.out.push(data);
    this.outBytes += data.length;
    this.#queuedTotal += data.length;
    this.#sink.schedule(this);
    return true;
  }

  write(data: Uint8Array): Promise<void> {
    return this.#tryWrite(data) ? RESOLVED : this.#write(data);
  }

  async #write(data: Uint8Array): Promise<void> {
    if (this.#writing) {
      throw new MuxError("write() is already waiting on this stream; call it one at a time.", "busy");
    }
    // Set and cleared in the same turn when no credit is awaited: back-to-back writes stay fine.
    this.#writing = true;
    try {
      let off = 0;
      while (off < data.length) {
        if (this.#failure) throw this.#failure;
        if (this.finQueued) throw new MuxError("Cannot write to a stream after closeWrite().", "closed");
        // While a game's datagrams flow, keep less of this stream in flight (see GAME_INFLIGHT).
        const inflight = this.#sendWindow - this.#credit;
        const gaming = this.#sink.gaming();
        const room = gaming
          ? Math.min(this.#credit, Math.max(0, Math.max(GAME_INFLIGHT, 2 * this.#lastGrant) - inflight))
          : this.#credit;
        if (room === 0) {
          const credit = new Promise<void>((resolve, reject) => this.#creditWaiter = { resolve, reject });
          if (this.#credit === 0) {
            await credit;
            continue;
          }
          // Held back for a game only: once datagrams stop, the window is ours again, credit or not.
          let cancel: (() => void) | undefined;
          try {
            const granted = await Promise.race([
              credit.then(() => true),
              new Promise<false>((r) => cancel = this.#sink.clock.after(GAME_MS, () => r(false))),
            ]);
            // Nothing granted for GAME_MS with bytes in flight: a reader of an earlier version, which
            // grants only in CREDIT_THRESHOLD steps. Run far enough ahead that it does.
            if (!granted) this.#lastGrant = Math.max(this.#lastGrant, CREDIT_THRESHOLD);
          } finally {
            cancel?.();
          }
          continue;
        }
        // While a game plays, bulk data goes in slices, each when the pacer lets it.
        const paced = gaming && data.length >= PACE_FROM;
        const n = Math.min(room, data.length - off, paced ? PACE_SLICE : Infinity);
        this.#credit -= n;
        const wait = paced ? this.#sink.pace(n) : 0;
        if (wait > 0) {
          await new Promise<void>((resolve) => this.#sink.clock.after(wait, resolve));
          if (this.#failure) throw this.#failure;
          if (this.finQueued) throw new MuxError("Cannot write to a stream after closeWrite().", "closed");
        }
        this.out.push(off === 0 && n === data.length ? data : data.subarray(off, off + n));
        this.outBytes += n;
        this.#queuedTotal += n;
        off += n;
        this.#sink.schedule(this);
      }
      if (this.#failure) throw this.#failure;
    } finally {
      this.#writing = false;
    }
  }

  get written(): number {
    return this.#queuedTotal;
  }

  /** How many of the bytes written went out in frames (sent(position) waits for a position). */
  get sentBytes(): number {
    return this.#sentTotal;
  }

  sent(position: number): Promise<void> {
    if (this.#sentTotal >= position || this.#failure) return Promise.resolve();
    return new Promise((resolve) => this.#sentWaiters.push({ at: position, resolve }));
  }

  /**
   * The next chunk, or null at the other side's end. A reader that has to wait gets its chunk
   * handed over when it arrives (#wakeReader), not by a second pass once it resumes.
   */
  read(): Promise<Uint8Array | null> {
    if (this.#reading) {
      return Promise.reject(
        new MuxError("read() is already waiting on this stream; call it one at a time.", "busy"),
      );
    }
    this.#releaseLast();
    if (this.#in.length > 0) return Promise.resolve(this.#take());
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#inFin) return Promise.resolve(null);
    this.#reading = true;
    return new Promise((resolve, reject) => this.#readWaiter = { resolve, reject });
  }

  /** The first queued chunk, counted as consumed (credit goes back once enough was). */
  #take(): Uint8Array {
    const chunk = this.#in.shift()!;
    this.#lastRead = this.#inFrames.shift() ?? null;
    this.#consumed += chunk.length;
    if (this.#consumed >= this.#threshold || (this.#consumed >= GAME_CREDIT && this.#sink.gaming())) {
      this.#grant();
    }
    return chunk;
  }

  closeWrite(): void {
    if (this.finQueued || this.#failure) return;
    this.finQueued = true;
    this.#sink.schedule(this);
  }

  reset(reason = "reset"): void {
    if (this.#failure) return;
    this.#sink.sendReset(this, reason);
    this.fail(new MuxError(`The stream was reset: ${reason}`, "reset"));
  }

  // ── for the Mux ──

  /** The mux wrote a frame holding `n` bytes of this stream. */
  markSent(n: number): void {
    this.#sentTotal += n;
    if (this.#sentWaiters.length === 0) return;
    const ready = this.#sentWaiters.filter((w) => w.at <= this.#sentTotal);
    this.#sentWaiters = this.#sentWaiters.filter((w) => w.at > this.#sentTotal);
    for (const w of ready) w.resolve();
  }

  /** Data from the other side; false when it overran the window we granted. */
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
    this.#lastGrant = n;
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
    for (const f of this.#inFrames) this.#sink.release(f);
    this.#inFrames = [];
    // Not the frame under the chunk read last: the application may still be using it (a failure
    // can come between two of its microtask turns), and a recycled buffer is read into again.
    // It goes back at the next read(), as always, or to the garbage collector.
    const r = this.#readWaiter;
    const c = this.#creditWaiter;
    this.#readWaiter = this.#creditWaiter = null;
    this.#reading = false;
    r?.reject(err);
    c?.reject(err);
    for (const w of this.#sentWaiters) w.resolve(); // nothing holds the buffers any more
    this.#sentWaiters = [];
    this.#done.reject(err);
    this.#sink.forget(this);
  }

  /** Grants back what the application consumed, so the other side may send that much more. */
  #grant(): void {
    const n = this.#consumed;
    this.#consumed = 0;
    if (this.#failure || this.#inFin) return;
    this.#window += n;
    this.#sink.sendCredit(this, n);
  }

  #releaseLast(): void {
    const f = this.#lastRead;
    this.#lastRead = null;
    this.#sink.release(f);
  }

  /** Hands a waiting reader the next chunk, or null at the end (called on data and on FIN). */
  #wakeReader(): void {
    const w = this.#readWaiter;
    if (w === null) return;
    this.#readWaiter = null;
    this.#reading = false;
    w.resolve(this.#in.length > 0 ? this.#take() : null);
  }

  #settle(): void {
    if (this.#inFin && this.#finSent && !this.#failure) {
      this.#done.resolve();
      this.#sink.forget(this);
    }
  }
}
