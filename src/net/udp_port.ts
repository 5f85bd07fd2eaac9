/**
 * A UDP socket for a game's datagrams (the UDP tunnel, src/apps/tunnel.ts), received without an
 * allocation per datagram.
 *
 * Deno's node:dgram allocates a fresh 64 KiB buffer for every datagram it receives (its
 * udp_wrap reads each into `new Uint8Array(recvBufferSize)`). At a game's rate, or the bench's
 * 1,500 round trips a second, that is tens of MB/s of short-lived buffers, and the collections
 * they cause were most of a tunnel's idle p99 (issue 16; `deno task bench game`: 4 ms → 2 ms).
 * Deno's own UDP API reads into a buffer we give it, the same one each time; it still needs
 * --unstable-net, which the installed command has (for QUIC). Without the flag this falls back
 * to node:dgram, which works the same, allocations and all.
 *
 * The bytes handed to `onMessage` are a view of that one buffer: valid during the call only.
 * `send` keeps a view of `data` until the datagram is out: pass bytes nobody changes afterwards.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Buffer } from "node:buffer";

/** The largest UDP payload over IPv4. */
const MAX_UDP_PAYLOAD = 65_507;

export interface UdpAddress {
  address: string;
  port: number;
}

export interface UdpPortOptions {
  /** Where to bind (an IPv4 address; 0.0.0.0 for every interface). */
  hostname: string;
  /** 0: any free port. */
  port: number;
  /** A datagram arrived. `data` is valid during the call only: copy what must live longer. */
  onMessage: (data: Uint8Array, from: UdpAddress) => void;
  /** Tests pick the backend; by default Deno's own where there, else node:dgram. */
  backend?: "deno" | "node";
}

export interface UdpPort {
  readonly port: number;
  /** Sends one datagram; never throws (a lost datagram is what UDP does). */
  send(data: Uint8Array, to: UdpAddress): void;
  close(): Promise<void>;
}

type DatagramApi = {
  listenDatagram?: (o: { transport: "udp"; hostname: string; port: number }) => Deno.DatagramConn;
};

/** Binds a UDP port; rejects with the OS's reason (e.g. the port is in use). */
export async function openUdpPort(opts: UdpPortOptions): Promise<UdpPort> {
  const listen = (Deno as unknown as DatagramApi).listenDatagram;
  if (!listen || opts.backend === "node") return await NodeUdpPort.open(opts);
  const conn = listen({ transport: "udp", hostname: opts.hostname, port: opts.port });
  return new NativeUdpPort(conn, opts.onMessage);
}

/** Deno.listenDatagram: one receive buffer for the socket's life. */
class NativeUdpPort implements UdpPort {
  readonly #conn: Deno.DatagramConn;
  readonly #buf = new Uint8Array(MAX_UDP_PAYLOAD);
  readonly #receiving: Promise<void>;
  #closed = false;

  constructor(conn: Deno.DatagramConn, onMessage: UdpPortOptions["onMessage"]) {
    this.#conn = conn;
    this.#receiving = this.#receive(onMessage);
  }

  get port(): number {
    return (this.#conn.addr as Deno.NetAddr).port;
  }

  async #receive(onMessage: UdpPortOptions["onMessage"]): Promise<void> {
    while (!this.#closed) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await this.#conn.receive(this.#buf);
      } catch {
        // Closed, or an ICMP error from an earlier send reported here (Linux does): not the end.
        if (this.#closed) return;
        continue;
      }
      const from = got[1] as Deno.NetAddr;
      try {
        onMessage(got[0], { address: from.hostname, port: from.port });
      } catch {
        // a handler's bug must not stop the socket
      }
    }
  }

  send(data: Uint8Array, to: UdpAddress): void {
    if (this.#closed) return;
    this.#conn.send(data, { transport: "udp", hostname: to.address, port: to.port }).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    await this.#receiving;
  }
}

/** node:dgram, where Deno's own UDP API is not there (no --unstable-net). */
class NodeUdpPort implements UdpPort {
  #closed = false;

  private constructor(readonly socket: Socket) {}

  static open(opts: UdpPortOptions): Promise<UdpPort> {
    const socket = createSocket("udp4");
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(opts.port, opts.hostname, () => {
        socket.off("error", reject);
        socket.on("error", () => {}); // ICMP port unreachable and the like: UDP has no errors to report back
        socket.on("message", (msg: Buffer, from: RemoteInfo) => {
          try {
            opts.onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), from);
          } catch {
            // a handler's bug must not stop the socket
          }
        });
        resolve(new NodeUdpPort(socket));
      });
    });
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(data: Uint8Array, to: UdpAddress): void {
    if (this.#closed) return;
    this.socket.send(data, to.port, to.address);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
