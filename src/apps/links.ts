/**
 * What every app does with a link the node adopted: put a multiplexer on it and tell the node when
 * it ends. Plus the small pieces the apps share: piping a TCP connection to a stream, and the
 * events they report.
 */
import { Mux, type MuxOptions, type MuxStream } from "../net/mux.ts";
import type { NetPeerLink } from "../net/peer_link.ts";

/** What an app reports; the CLI prints it (or, with --json, one object per line). */
export interface AppEvent {
  event: string;
  [field: string]: unknown;
}

export type AppSink = (e: AppEvent) => void;

/** The multiplexer of an adopted link; the node hears when the link ends. */
export function attachMux(link: NetPeerLink, opts: MuxOptions = {}): Mux {
  const mux = new Mux(link.link, { peer: link.user, ...opts });
  void mux.closed.then((reason) => link.ended(reason));
  return mux;
}

/** TCP reads go into these buffers in turn; one is reused only once the link took what it held. */
const READ_BUFFER = 256 * 1024;
const READ_BUFFERS = 4;

/**
 * Copies `conn` to `stream` (then FIN) and `stream` to `conn` (then half-close), until both
 * directions end. A reset or a broken socket ends both; the promise resolves either way, with
 * the reason when it was not clean. Back-pressure both ways: a full stream window stops reading
 * the socket, a slow socket stops reading the stream (and so its credit).
 */
export async function pipeConn(conn: Deno.TcpConn, stream: MuxStream): Promise<string | undefined> {
  let failed: string | undefined;
  const fail = (err: unknown) => {
    failed ??= err instanceof Error ? err.message : String(err);
    stream.reset(failed);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const up = (async () => {
    const slots: { buf: Uint8Array; free: Promise<void> }[] = [];
    for (let k = 0;; k++) {
      if (slots.length < READ_BUFFERS && k === slots.length) {
        slots.push({ buf: new Uint8Array(READ_BUFFER), free: Promise.resolve() });
      }
      const slot = slots[k % slots.length];
      await slot.free; // the stream keeps a view until it is sealed
      const n = await conn.read(slot.buf);
      if (n === null) break;
      await stream.write(slot.buf.subarray(0, n));
      slot.free = stream.sent(stream.written);
    }
    stream.closeWrite();
  })().catch(fail);
  const down = (async () => {
    for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
      let off = 0;
      while (off < chunk.length) off += await conn.write(chunk.subarray(off));
    }
    await conn.closeWrite();
  })().catch(fail);
  await Promise.all([up, down]);
  if (failed === undefined) {
    try {
      conn.close();
    } catch {
      // closed by a failure path
    }
  }
  return failed;
}
