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

export class ControlChannel implements MuxTransport {
  readonly #conn: ByteStream;
  readonly #reader: FrameReader;
  #closed = false;

  constructor(conn: ByteStream, readonly role: "dialer" | "listener") {
    this.#conn = conn;
    this.#reader = new FrameReader(conn);
  }

  async sendv(parts: readonly Uint8Array[]): Promise<void> {
    let n = 0;
    for (const p of parts) n += p.length;
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, n);
    await writeAll(this.#conn, header);
    for (const p of parts) await writeAll(this.#conn, p);
  }

  receive(): Promise<Uint8Array | null> {
    return this.#reader.readFrame(MAX_CONTROL_FRAME);
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
