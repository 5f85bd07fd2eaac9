/**
 * In-memory links for tests, two ends each, with bounded queues so writers can block:
 *  - `ends()`: a frame transport (MuxTransport) for mux-level tests: frames as sent (sendv),
 *    clean close or cut (abort);
 *  - `memoryPipe()`: a duplex byte stream (ByteStream, Deno.Conn-like) for handshake and channel
 *    tests, with a tamper hook.
 * Both ride the same one-way lane.
 */
import type { MuxTransport } from "../../src/net/mux.ts";
import { concat } from "../../src/protocol/bytes.ts";
import type { ByteStream } from "../../src/net/secure_channel.ts";

/** One direction: queued items, how much they hold, whether it ended or broke, and who waits. */
class Lane<T> {
  items: T[] = [];
  queued = 0;
  ended = false;
  broken = false;
  #wake: (() => void)[] = [];
  constructor(readonly capacity: number) {}
  notify(): void {
    for (const f of this.#wake.splice(0)) f();
  }
  wait(): Promise<void> {
    return new Promise((resolve) => this.#wake.push(resolve));
  }
}

// ─── Frames ──────────────────────────────────────────────────────────────────────────────────

export class MemEnd implements MuxTransport {
  sent = 0;
  /** While set, sendv waits (a socket that takes nothing). */
  stalled: Promise<void> | null = null;
  /** Frame buffers the mux handed back (see MuxTransport.recycle). */
  recycled: ArrayBuffer[] = [];
  constructor(
    readonly role: "dialer" | "listener",
    readonly incoming: Lane<Uint8Array>,
    readonly outgoing: Lane<Uint8Array>,
  ) {}
  recycle(buffer: ArrayBuffer): void {
    this.recycled.push(buffer);
  }
  async sendv(parts: readonly Uint8Array[]): Promise<void> {
    await this.stalled;
    const out = this.outgoing;
    for (;;) {
      if (out.ended || out.broken) throw new Error("the link is closed");
      if (out.items.length < out.capacity) break;
      await out.wait();
    }
    const frame = concat(...parts);
    this.sent++;
    out.items.push(frame);
    out.notify();
  }
  async receive(): Promise<Uint8Array | null> {
    const inc = this.incoming;
    for (;;) {
      if (inc.items.length > 0) {
        const f = inc.items.shift()!;
        inc.notify();
        return f;
      }
      if (inc.broken) throw new Error("The link was cut.");
      if (inc.ended) return null;
      await inc.wait();
    }
  }
  close(): Promise<void> {
    this.outgoing.ended = true;
    this.incoming.ended = true;
    this.outgoing.notify();
    this.incoming.notify();
    return Promise.resolve();
  }
  abort(): void {
    this.outgoing.broken = true;
    this.incoming.broken = true;
    this.outgoing.notify();
    this.incoming.notify();
  }
}

/** Two frame ends; each direction holds at most `capacity` frames. */
export function ends(capacity = 4): [MemEnd, MemEnd] {
  const ab = new Lane<Uint8Array>(capacity);
  const ba = new Lane<Uint8Array>(capacity);
  return [new MemEnd("dialer", ba, ab), new MemEnd("listener", ab, ba)];
}

// ─── Bytes ───────────────────────────────────────────────────────────────────────────────────

export class MemoryEnd implements ByteStream {
  closed = false;
  /** Rewrites each written chunk in transit (tests flip, drop or repeat bytes). */
  tamper: ((chunk: Uint8Array) => Uint8Array[]) | null = null;
  constructor(readonly incoming: Lane<Uint8Array>, readonly outgoing: Lane<Uint8Array>) {}

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.closed) throw new Deno.errors.BadResource("closed");
      const d = this.incoming;
      if (d.items.length > 0) {
        const head = d.items[0];
        const n = Math.min(p.length, head.length);
        p.set(head.subarray(0, n));
        if (n === head.length) d.items.shift();
        else d.items[0] = head.subarray(n);
        d.queued -= n;
        d.notify();
        return n;
      }
      if (d.broken) throw new Deno.errors.ConnectionReset("connection reset");
      if (d.ended) return null;
      await d.wait();
    }
  }

  async write(p: Uint8Array): Promise<number> {
    const d = this.outgoing;
    for (;;) {
      if (this.closed) throw new Deno.errors.BadResource("closed");
      if (d.ended || d.broken) throw new Deno.errors.BrokenPipe("broken pipe");
      if (d.queued < d.capacity) break;
      await d.wait();
    }
    const n = Math.min(p.length, Math.max(1, d.capacity - d.queued));
    const chunk = p.slice(0, n);
    for (const c of this.tamper ? this.tamper(chunk) : [chunk]) {
      d.items.push(c);
      d.queued += c.length;
    }
    d.notify();
    return n;
  }

  closeWrite(): Promise<void> {
    this.outgoing.ended = true;
    this.outgoing.notify();
    return Promise.resolve();
  }

  close(): void {
    if (this.closed) throw new Deno.errors.BadResource("closed twice");
    this.closed = true;
    this.outgoing.ended = true;
    this.incoming.broken = true; // the other side's writes now fail, as after a TCP reset
    this.outgoing.notify();
    this.incoming.notify();
  }
}

/** Two byte-stream ends; each direction holds at most `capacity` bytes. */
export function memoryPipe(capacity = 256 * 1024): [MemoryEnd, MemoryEnd] {
  const ab = new Lane<Uint8Array>(capacity);
  const ba = new Lane<Uint8Array>(capacity);
  return [new MemoryEnd(ba, ab), new MemoryEnd(ab, ba)];
}
