/**
 * A UDP socket for STUN, hole punching and signalling: node:dgram underneath (stable in Deno, no
 * --unstable-net needed), one message handler, sends that never throw (an unreachable candidate is
 * an expected outcome while punching, not an error), and a close that resolves once the port is
 * free again — a punched socket's port is handed over to a QUIC endpoint right after.
 */
import dgram from "node:dgram";

export interface Datagram {
  data: Uint8Array;
  host: string;
  port: number;
}

export type DatagramHandler = (d: Datagram, socket: UdpSocket) => void;

export class UdpSocket {
  readonly #sock: dgram.Socket;
  #closed = false;
  #handler: DatagramHandler = () => {};
  /** Datagrams handed to the kernel; for tests and the bench. */
  sent = 0;

  private constructor(
    sock: dgram.Socket,
    readonly family: 4 | 6,
    readonly host: string,
    readonly port: number,
  ) {
    this.#sock = sock;
    sock.on("message", (msg, rinfo) => {
      if (this.#closed) return;
      const data = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      // A dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d; we speak of them as a.b.c.d.
      const host = rinfo.address.startsWith("::ffff:") ? rinfo.address.slice(7) : rinfo.address;
      try {
        this.#handler({ data, host, port: rinfo.port }, this);
      } catch {
        // A handler's bug must not close the socket for everyone else.
      }
    });
    sock.on("error", () => {}); // ICMP errors on send surface here; they mean "not that way".
  }

  /** Binds to `host:port` (port 0: any free one). Rejects with the OS's reason (e.g. in use). */
  static bind(opts: { host?: string; port?: number; family?: 4 | 6 } = {}): Promise<UdpSocket> {
    const family = opts.family ?? 4;
    const host = opts.host ?? (family === 4 ? "0.0.0.0" : "::");
    const sock = dgram.createSocket({ type: family === 4 ? "udp4" : "udp6" });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        try {
          sock.close();
        } catch {
          // never bound
        }
        reject(err);
      };
      sock.once("error", onError);
      sock.bind(opts.port ?? 0, host, () => {
        sock.off("error", onError);
        resolve(new UdpSocket(sock, family, host, sock.address().port));
      });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  onMessage(handler: DatagramHandler): void {
    this.#handler = handler;
  }

  send(data: Uint8Array, host: string, port: number): void {
    if (this.#closed) return;
    if (this.family === 4 && host.includes(":")) return; // an IPv6 target needs an IPv6 socket
    this.sent++;
    try {
      this.#sock.send(data, port, host, () => {});
    } catch {
      // EINVAL for an address this socket cannot reach: the same as a lost datagram.
    }
  }

  /** Resolves once the port is released. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => {
      try {
        this.#sock.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
