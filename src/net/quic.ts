/**
 * QUIC on a punched UDP port (Deno.QuicEndpoint, --unstable-net): after hole punching found a path,
 * the raw socket is closed and a QUIC endpoint is bound to the very same port, so the NAT mappings
 * the punch opened now carry QUIC (its keep-alives hold them open). One bidirectional stream is the
 * byte stream the Noise handshake and the sealed frames of src/net/link.ts run over, exactly as on
 * TCP; QUIC's own TLS only admits members (src/net/quic_identity.ts).
 */
import { LinkError } from "../protocol/noise.ts";
import { QUIC_ALPN, QUIC_SERVER_NAME, type QuicIdentity } from "./quic_identity.ts";
import type { ByteStream, DatagramLane } from "./secure_channel.ts";
import { formatHp } from "./punch.ts";
import type { HostPort } from "./stun.ts";

/** QUIC keep-alive: well inside the ~30 s a home router keeps an idle UDP mapping (RFC 4787 REQ-5). */
export const QUIC_KEEPALIVE_MS = 10_000;
/** A QUIC link that hears nothing for this long is gone (keep-alives make silence mean death). */
export const QUIC_IDLE_TIMEOUT_MS = 35_000;

/** Whether this Deno can do QUIC (it needs --unstable-net, or "unstable": ["net"] in deno.json). */
export function quicAvailable(): boolean {
  return typeof (Deno as { QuicEndpoint?: unknown }).QuicEndpoint === "function";
}

const transport = {
  keepAliveInterval: QUIC_KEEPALIVE_MS,
  maxIdleTimeout: QUIC_IDLE_TIMEOUT_MS,
  congestionControl: "throughput" as const,
};

/** The Deno.Conn-like view of one QUIC bidirectional stream that SecureChannel reads and writes. */
export class QuicByteStream implements ByteStream {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #rest: Uint8Array | null = null;
  #closed = false;

  /** QUIC's own datagrams (RFC 9221): game packets that never wait behind the link's stream. */
  readonly datagrams: DatagramLane;

  constructor(
    readonly conn: Deno.QuicConn,
    stream: Deno.QuicBidirectionalStream,
    readonly endpoint: Deno.QuicEndpoint,
  ) {
    this.#reader = stream.readable.getReader();
    this.#writer = stream.writable.getWriter();
    this.datagrams = {
      get maxSize() {
        return conn.maxDatagramSize ?? 0;
      },
      send: (data) => void conn.sendDatagram(data).catch(() => {}),
      receive: async () => {
        try {
          return await conn.readDatagram();
        } catch {
          return null; // the connection is gone
        }
      },
    };
  }

  async read(p: Uint8Array): Promise<number | null> {
    let chunk = this.#rest;
    this.#rest = null;
    if (!chunk) {
      try {
        const r = await this.#reader.read();
        if (r.done) return null;
        chunk = r.value;
      } catch {
        return null; // reset or connection lost: the channel reads it as an unclean end
      }
    }
    const n = Math.min(p.length, chunk.length);
    p.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#rest = chunk.subarray(n);
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    // The stream keeps what it is given until sent; SecureChannel reuses its buffers after a write.
    await this.#writer.write(p.slice());
    return p.length;
  }

  async closeWrite(): Promise<void> {
    try {
      await this.#writer.close();
    } catch {
      // already closed or reset
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close({ closeCode: 0, reason: "" });
    } catch {
      // already closed
    }
    try {
      this.endpoint.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Binds a QUIC endpoint to `port` and accepts one connection, from `expect` only (the address the
 * punch proved); others are refused. Resolves with its first bidirectional stream.
 */
export async function acceptQuic(
  port: number,
  identity: QuicIdentity,
  expect: HostPort,
  timeoutMs: number,
  onListening?: () => void,
): Promise<QuicByteStream> {
  const endpoint = new Deno.QuicEndpoint({ hostname: "0.0.0.0", port });
  const listener = endpoint.listen({
    ...transport,
    cert: identity.cert,
    key: identity.key,
    alpnProtocols: [QUIC_ALPN],
  });
  onListening?.();
  const timer = setTimeout(() => endpoint.close(), timeoutMs);
  try {
    for (;;) {
      let conn: Deno.QuicConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        throw new LinkError(
          `No QUIC connection from ${formatHp(expect)} within ${timeoutMs / 1000} s.`,
          "timeout",
          { cause: err },
        );
      }
      // Checked after accepting: in Deno 2.9 reading QuicIncoming.remoteAddr invalidates the
      // incoming connection, so it cannot be refused before the handshake.
      const from = conn.remoteAddr;
      if (from.hostname.replace(/^::ffff:/, "") !== expect.host || from.port !== expect.port) {
        conn.close({ closeCode: 1, reason: "not expected" });
        continue;
      }
      const reader = conn.incomingBidirectionalStreams.getReader();
      const first = await reader.read();
      reader.releaseLock();
      if (first.done) throw new LinkError(`${formatHp(expect)} opened no stream.`, "handshake");
      clearTimeout(timer);
      listener.stop();
      return new QuicByteStream(conn, first.value, endpoint);
    }
  } catch (err) {
    clearTimeout(timer);
    try {
      endpoint.close();
    } catch {
      // closed by the timer
    }
    if (err instanceof LinkError) throw err;
    throw new LinkError(
      `The QUIC connection from ${formatHp(expect)} failed: ${(err as Error).message}`,
      "connect",
      {
        cause: err,
      },
    );
  }
}

/** Binds a QUIC endpoint to our punched `port` and connects to `remote`; resolves with a stream. */
export async function connectQuic(
  port: number,
  identity: QuicIdentity,
  remote: HostPort,
  timeoutMs: number,
): Promise<QuicByteStream> {
  const endpoint = new Deno.QuicEndpoint({ hostname: "0.0.0.0", port });
  const timer = setTimeout(() => endpoint.close(), timeoutMs);
  try {
    const conn = await Deno.connectQuic({
      ...transport,
      endpoint,
      hostname: remote.host,
      port: remote.port,
      serverName: QUIC_SERVER_NAME,
      caCerts: [identity.cert],
      alpnProtocols: [QUIC_ALPN],
    });
    const stream = await conn.createBidirectionalStream();
    clearTimeout(timer);
    return new QuicByteStream(conn, stream, endpoint);
  } catch (err) {
    clearTimeout(timer);
    try {
      endpoint.close();
    } catch {
      // closed by the timer
    }
    throw new LinkError(`Cannot open QUIC to ${formatHp(remote)}: ${(err as Error).message}`, "connect", {
      cause: err,
    });
  }
}
