/**
 * The frames of a local control connection (an app attached to its person's node): length-
 * prefixed, not encrypted — the connection never leaves the machine, and the socket is the
 * owner's alone (src/node/control.ts). The multiplexer of src/net/mux.ts runs over it as over a
 * link, so an attached app's streams are ordinary mux streams.
 */
import type { MuxTransport } from "../net/mux.ts";
import { type ByteStream, FrameReader, writeAll } from "../net/secure_channel.ts";

/** A mux batch is at most a little over 1 MiB (src/net/mux.ts). */
const MAX_CONTROL_FRAME = 2 * 1024 * 1024;
/** Parts up to this size are copied together into one write. */
const COALESCE = 16 * 1024;

export class ControlChannel implements MuxTransport {
  readonly #conn: ByteStream;
  readonly #reader: FrameReader;
  #closed = false;
  /** sendv() calls never overlap (the mux writes one frame at a time): one buffer serves them all. */
  readonly #scratch = new Uint8Array(2 * COALESCE);

  constructor(conn: ByteStream, readonly role: "dialer" | "listener") {
    this.#conn = conn;
    this.#reader = new FrameReader(conn);
  }

  /**
   * One write for the length and every part up to COALESCE bytes (copied into one reused
   * buffer), the larger parts written as they are: a frame is a mux header or two and a payload,
   * and a write each was most of the node's time in syscalls.
   */
  async sendv(parts: readonly Uint8Array[]): Promise<void> {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = this.#scratch;
    new DataView(out.buffer).setUint32(0, n);
    let used = 4;
    for (const p of parts) {
      if (p.length <= COALESCE && used + p.length <= out.length) {
        out.set(p, used);
        used += p.length;
        continue;
      }
      if (used > 0) await writeAll(this.#conn, out.subarray(0, used));
      used = 0;
      await writeAll(this.#conn, p);
    }
    if (used > 0) await writeAll(this.#conn, out.subarray(0, used));
  }

  receive(): Promise<Uint8Array | null> {
    return this.#reader.readFrame(MAX_CONTROL_FRAME);
  }

  /**
   * The mux hands back a large frame's buffer once every chunk of it was read past: the next one
   * is read into it. Without this, each bulk frame (up to 1 MiB) was a fresh ArrayBuffer, and at
   * 100 MiB/s the node spent its time in full GCs, 20–40 ms pauses that held game datagrams.
   */
  recycle(buffer: ArrayBuffer): void {
    this.#reader.recycle(buffer);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#conn.closeWrite?.().catch(() => {});
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}
