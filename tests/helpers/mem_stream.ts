/** An in-memory duplex byte stream (Deno.Conn-like) with a bounded buffer, so writes can block, and a tamper hook. */
import type { ByteStream } from "../../src/net/secure_channel.ts";

class Direction {
  chunks: Uint8Array[] = [];
  queued = 0;
  ended = false;
  broken = false;
  #wake: (() => void)[] = [];
  constructor(readonly capacity: number) {}
  notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }
  wait(): Promise<void> {
    return new Promise((resolve) => this.#wake.push(resolve));
  }
}

export class MemoryEnd implements ByteStream {
  closed = false;
  /** Rewrites each written chunk in transit (tests flip, drop or repeat bytes). */
  tamper: ((chunk: Uint8Array) => Uint8Array[]) | null = null;
  constructor(readonly incoming: Direction, readonly outgoing: Direction) {}

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.closed) throw new Deno.errors.BadResource("closed");
      const d = this.incoming;
      if (d.chunks.length > 0) {
        const head = d.chunks[0];
        const n = Math.min(p.length, head.length);
        p.set(head.subarray(0, n));
        if (n === head.length) d.chunks.shift();
        else d.chunks[0] = head.subarray(n);
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
      d.chunks.push(c);
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

export function memoryPipe(capacity = 256 * 1024): [MemoryEnd, MemoryEnd] {
  const ab = new Direction(capacity);
  const ba = new Direction(capacity);
  return [new MemoryEnd(ba, ab), new MemoryEnd(ab, ba)];
}
