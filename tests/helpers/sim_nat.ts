/**
 * An in-memory internet of NATs for unit tests of hole punching: sockets behind NATs that map and
 * filter as RFC 4787 describes, datagrams delivered synchronously. No sockets, no timers, so a
 * test decides every step (the NAT lab in tests/lab/ proves the same with real routers).
 */
import type { HostPort } from "../../src/net/stun.ts";

export type SimNatKind = "none" | "full-cone" | "port-restricted" | "symmetric";

export interface SimSocket {
  readonly port: number;
  readonly nat: SimNat;
  send(data: Uint8Array, host: string, port: number): void;
  onMessage(handler: (data: Uint8Array, from: HostPort) => void): void;
}

export class SimInternet {
  readonly nats = new Map<string, SimNat>();
  delivered = 0;
  dropped = 0;

  nat(publicIp: string, kind: SimNatKind, seed = 1): SimNat {
    const n = new SimNat(this, publicIp, kind, seed);
    this.nats.set(publicIp, n);
    return n;
  }

  route(data: Uint8Array, from: HostPort, to: HostPort): void {
    const nat = this.nats.get(to.host);
    if (!nat) {
      this.dropped++;
      return;
    }
    if (nat.inbound(data, from, to.port)) this.delivered++;
    else this.dropped++;
  }
}

interface Mapping {
  local: number;
  publicPort: number;
  /** Where this mapping has sent to: "host:port" (filtering) */
  sentTo: Set<string>;
}

export class SimNat {
  readonly #sockets = new Map<number, (data: Uint8Array, from: HostPort) => void>();
  /** key: `${local}` (endpoint-independent) or `${local}>${dest}` (symmetric) */
  readonly #out = new Map<string, Mapping>();
  readonly #byPublic = new Map<number, Mapping>();
  #nextLocal = 40000;
  #rand: number;

  constructor(readonly net: SimInternet, readonly publicIp: string, readonly kind: SimNatKind, seed: number) {
    this.#rand = seed;
  }

  socket(): SimSocket {
    const port = this.#nextLocal++;
    return {
      port,
      nat: this,
      send: (data, host, p) => this.#send(port, data, { host, port: p }),
      onMessage: (h) => void this.#sockets.set(port, h),
    };
  }

  /** The public address a STUN server at `server` would report for `socket`. */
  stun(socket: SimSocket, server: HostPort): HostPort {
    return { host: this.publicIp, port: this.#map(socket.port, server).publicPort };
  }

  #random(): number {
    // xorshift: deterministic per seed
    let x = this.#rand;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rand = x >>> 0;
    return this.#rand;
  }

  #map(local: number, dest: HostPort): Mapping {
    const key = this.kind === "symmetric" ? `${local}>${dest.host}:${dest.port}` : `${local}`;
    let m = this.#out.get(key);
    if (!m) {
      let publicPort = local;
      if (this.kind === "symmetric" || this.#byPublic.has(publicPort)) {
        do publicPort = 1024 + (this.#random() % (65536 - 1024)); while (this.#byPublic.has(publicPort));
      }
      m = { local, publicPort, sentTo: new Set() };
      this.#out.set(key, m);
      this.#byPublic.set(publicPort, m);
    }
    return m;
  }

  #send(local: number, data: Uint8Array, to: HostPort): void {
    const m = this.#map(local, to);
    m.sentTo.add(`${to.host}:${to.port}`);
    this.net.route(data, { host: this.publicIp, port: m.publicPort }, to);
  }

  inbound(data: Uint8Array, from: HostPort, port: number): boolean {
    if (this.kind === "none") {
      const h = this.#sockets.get(port);
      h?.(data, from);
      return h !== undefined;
    }
    const m = this.#byPublic.get(port);
    if (!m) return false;
    // RFC 4787 §5: full cone lets anyone in once a mapping exists; the others only whom we sent to.
    if (this.kind !== "full-cone" && !m.sentTo.has(`${from.host}:${from.port}`)) return false;
    const h = this.#sockets.get(m.local);
    h?.(data, from);
    return h !== undefined;
  }
}
