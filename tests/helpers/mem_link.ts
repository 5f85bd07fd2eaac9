/** Two in-memory ends of a link for mux-level tests: frames as sent (sendv), a bounded queue, clean close or cut. */
import type { MuxTransport } from "../../src/net/mux.ts";

export class Pipe {
  frames: Uint8Array[] = [];
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
    return new Promise((r) => this.#wake.push(r));
  }
}

export class MemEnd implements MuxTransport {
  sent = 0;
  /** While set, sendv waits (a socket that takes nothing). */
  stalled: Promise<void> | null = null;
  /** Frame buffers the mux handed back (see MuxTransport.recycle). */
  recycled: ArrayBuffer[] = [];
  constructor(readonly role: "dialer" | "listener", readonly incoming: Pipe, readonly outgoing: Pipe) {}
  recycle(buffer: ArrayBuffer): void {
    this.recycled.push(buffer);
  }
  async sendv(parts: readonly Uint8Array[]): Promise<void> {
    await this.stalled;
    const out = this.outgoing;
    for (;;) {
      if (out.ended || out.broken) throw new Error("the link is closed");
      if (out.frames.length < out.capacity) break;
      await out.wait();
    }
    let n = 0;
    for (const p of parts) n += p.length;
    const frame = new Uint8Array(n);
    let at = 0;
    for (const p of parts) {
      frame.set(p, at);
      at += p.length;
    }
    this.sent++;
    out.frames.push(frame);
    out.notify();
  }
  async receive(): Promise<Uint8Array | null> {
    const inc = this.incoming;
    for (;;) {
      if (inc.frames.length > 0) {
        const f = inc.frames.shift()!;
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

export function ends(capacity = 4): [MemEnd, MemEnd] {
  const ab = new Pipe(capacity);
  const ba = new Pipe(capacity);
  return [new MemEnd("dialer", ba, ab), new MemEnd("listener", ab, ba)];
}
