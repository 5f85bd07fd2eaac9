/**
 * NAT-PMP (RFC 6886): ask the default gateway for our outside address and to forward a port, over
 * UDP to port 5351. Ours rather than @achingbrain/nat-port-mapper's: that one keys its renewals by
 * port alone (TCP and UDP on one port overwrite each other) and never removes a mapping at stop,
 * and a mapping left behind on a friend's router is exactly what we promise not to do.
 *
 *   external address: request [0, 0] → response [0, 128, result(2), epoch(4), address(4)]
 *   map: request [0, op, 0, 0, internal(2), suggested external(2), lifetime(4)]
 *        → response [0, 128+op, result(2), epoch(4), internal(2), external(2), lifetime(4)]
 *   op 1 = UDP, 2 = TCP; lifetime 0 removes the mapping (§3.4).
 */
import { UdpSocket } from "./udp.ts";

export const NATPMP_PORT = 5351;
/** §3.1: first retry after 250 ms, doubling; we stop well before the RFC's 64 s. */
const RETRIES_MS = [0, 250, 750, 1750];

const RESULTS: Record<number, string> = {
  1: "the router does not support this NAT-PMP version",
  2: "the router refused (NAT-PMP is switched off)",
  3: "the router has no outside connection yet",
  4: "the router has no ports left",
  5: "the router does not know this request",
};

export class NatPmpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NatPmpError";
  }
}

export class NatPmpClient {
  #socket?: UdpSocket;
  #pending?: { op: number; resolve: (d: Uint8Array) => void };
  /** One request at a time: an answer names only its opcode, not which request it answers. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(readonly gateway: string) {}

  #ask(request: Uint8Array, op: number, signal?: AbortSignal): Promise<Uint8Array> {
    const next = this.#queue.then(() => this.#askNow(request, op, signal));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #askNow(request: Uint8Array, op: number, signal?: AbortSignal): Promise<Uint8Array> {
    this.#socket ??= await UdpSocket.bind();
    const socket = this.#socket;
    socket.onMessage((d) => {
      if (d.host !== this.gateway || d.port !== NATPMP_PORT || d.data.length < 8) return;
      if (!this.#pending || d.data[0] !== 0 || d.data[1] !== 128 + this.#pending.op) return;
      this.#pending?.resolve(d.data.slice());
    });
    const answer = Promise.withResolvers<Uint8Array>();
    this.#pending = { op, resolve: answer.resolve };
    const timers = RETRIES_MS.map((t) =>
      setTimeout(() => socket.send(request, this.gateway, NATPMP_PORT), t)
    );
    const giveUp = setTimeout(
      () => answer.reject(new NatPmpError("the router did not answer NAT-PMP")),
      RETRIES_MS.at(-1)! + 1000,
    );
    const onAbort = () => answer.reject(new NatPmpError("the router did not answer NAT-PMP in time"));
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const data = await answer.promise;
      const result = new DataView(data.buffer).getUint16(2);
      if (result !== 0) {
        throw new NatPmpError(RESULTS[result] ?? `the router answered NAT-PMP with error ${result}`);
      }
      return data;
    } finally {
      for (const t of timers) clearTimeout(t);
      clearTimeout(giveUp);
      signal?.removeEventListener("abort", onAbort);
      this.#pending = undefined;
    }
  }

  async externalAddress(signal?: AbortSignal): Promise<string> {
    const d = await this.#ask(Uint8Array.of(0, 0), 0, signal);
    if (d.length < 12) throw new NatPmpError("the router's NAT-PMP answer is too short");
    return [...d.subarray(8, 12)].join(".");
  }

  /** Maps `internal` (TCP or UDP) for `lifetimeS` seconds; the external port the router chose. */
  async map(
    protocol: "tcp" | "udp",
    internal: number,
    external: number,
    lifetimeS: number,
    signal?: AbortSignal,
  ): Promise<number> {
    const op = protocol === "udp" ? 1 : 2;
    const req = new Uint8Array(12);
    const v = new DataView(req.buffer);
    req[1] = op;
    v.setUint16(4, internal);
    v.setUint16(6, external);
    v.setUint32(8, lifetimeS);
    const d = await this.#ask(req, op, signal);
    if (d.length < 16) throw new NatPmpError("the router's NAT-PMP answer is too short");
    return new DataView(d.buffer).getUint16(10);
  }

  async close(): Promise<void> {
    await this.#queue;
    await this.#socket?.close();
    this.#socket = undefined;
  }
}
