/**
 * Asking the home router to forward our ports: NAT-PMP (RFC 6886 — PCP's predecessor, which most
 * routers with PCP still answer; src/net/natpmp.ts) and UPnP-IGD (src/net/upnp.ts), both tried at
 * once. A mapping is leased, renewed before it expires, and removed when the node stops.
 *
 * A mapping helps only if the router's outside address is the one the internet sees: behind a
 * carrier-grade NAT the router reports a private or shared address (RFC 6598), or one that STUN
 * contradicts, and the mapping is given back unused.
 */
import type { Candidate } from "../protocol/candidate.ts";
import { isPrivateIPv4 } from "./interfaces.ts";
import { NatPmpClient } from "./natpmp.ts";
import { UpnpGateway } from "./upnp.ts";

export interface PortMapOptions {
  tcpPort: number;
  udpPort: number;
  /** Our LAN address the router should forward to. */
  localHost: string;
  /** The public address STUN saw, if any: the router's outside address must agree. */
  publicHost?: string;
  /** How long to look for a router and map. */
  budgetMs: number;
  /** Which ways to try (tests pick one; default both). */
  methods?: readonly PortMapping["method"][];
}

export interface PortMapping {
  method: "nat-pmp" | "upnp";
  external: string;
  tcp?: number;
  udp?: number;
}

/**
 * Why no mapping is in use, for doctor and the log; `code` "double_nat" when the router itself sits
 * behind another NAT (a carrier-grade NAT, RFC 6598), where no mapping of ours can help.
 */
export type PortMapOutcome =
  | { ok: true; mapping: PortMapping }
  | { ok: false; reason: string; code?: PortMapErrorCode };

export type PortMapErrorCode = "double_nat";

/** A router that answered but whose mapping would not help. */
export class PortMapError extends Error {
  constructor(message: string, readonly code: PortMapErrorCode) {
    super(message);
    this.name = "PortMapError";
  }
}

/** What both ways to map share: the outside address, one mapping per protocol, giving all back. */
interface Gateway {
  externalIp(signal?: AbortSignal): Promise<string>;
  map(protocol: "tcp" | "udp", port: number, internalHost: string, signal?: AbortSignal): Promise<number>;
  stop(signal?: AbortSignal): Promise<void>;
}

/** NAT-PMP leases: renewed at half their lifetime (RFC 6886 §3.3), removed at stop (§3.4). */
class PmpGateway implements Gateway {
  readonly #client: NatPmpClient;
  readonly #leases = new Map<string, { port: number; timer: ReturnType<typeof setInterval> }>();

  constructor(gateway: string) {
    this.#client = new NatPmpClient(gateway);
  }

  externalIp(signal?: AbortSignal): Promise<string> {
    return this.#client.externalAddress(signal);
  }

  async map(protocol: "tcp" | "udp", port: number, _host: string, signal?: AbortSignal): Promise<number> {
    const lifetime = LEASE_S;
    const external = await this.#client.map(protocol, port, port, lifetime, signal);
    const timer = setInterval(
      () => void this.#client.map(protocol, port, external, lifetime).catch(() => {}),
      (lifetime * 1000) / 2,
    );
    Deno.unrefTimer(timer);
    this.#leases.set(protocol, { port, timer });
    return external;
  }

  async stop(signal?: AbortSignal): Promise<void> {
    const leases = [...this.#leases.entries()];
    this.#leases.clear();
    for (const [protocol, l] of leases) {
      clearInterval(l.timer);
      await this.#client.map(protocol as "tcp" | "udp", l.port, 0, 0, signal).catch(() => {});
    }
    await this.#client.close();
  }
}

const LEASE_S = 7200;

/** The default IPv4 gateway from /proc/net/route (Linux); undefined elsewhere or without one. */
export async function defaultGateway(): Promise<string | undefined> {
  try {
    const text = await Deno.readTextFile("/proc/net/route");
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1] === "00000000" && f[2] && f[2] !== "00000000") {
        const n = parseInt(f[2], 16);
        return [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255].join(".");
      }
    }
  } catch {
    // not Linux, or no permission
  }
  return undefined;
}

export class PortMapper {
  #gateway?: Gateway;
  #mapping?: PortMapping;

  get mapping(): PortMapping | undefined {
    return this.#mapping;
  }

  /** Tries NAT-PMP and UPnP at once; the first router that maps both ports is kept. */
  async open(o: PortMapOptions): Promise<PortMapOutcome> {
    const signal = AbortSignal.timeout(o.budgetMs);
    const methods = o.methods ?? ["nat-pmp", "upnp"];
    const gateways: Gateway[] = [];
    const tries: Promise<{ gw: Gateway; mapping: PortMapping }>[] = [];
    const gatewayIp = methods.includes("nat-pmp") ? await defaultGateway() : undefined;
    if (gatewayIp) {
      const gw = new PmpGateway(gatewayIp);
      gateways.push(gw);
      tries.push(this.#map(gw, "nat-pmp", o, signal));
    }
    if (methods.includes("upnp")) {
      tries.push((async () => {
        const gw = await UpnpGateway.find(signal);
        gateways.push(gw);
        return await this.#map(gw, "upnp", o, signal);
      })());
    }
    const reasons: { message: string; code?: PortMapErrorCode }[] = [];
    let winner: { gw: Gateway; mapping: PortMapping } | undefined;
    try {
      winner = await Promise.any(tries.map((t) =>
        t.catch((err) => {
          reasons.push({
            message: err instanceof Error ? err.message : String(err),
            code: err instanceof PortMapError ? err.code : undefined,
          });
          throw err;
        })
      ));
    } catch {
      // every way failed
    }
    await Promise.allSettled(gateways.filter((g) => g !== winner?.gw).map((g) => g.stop()));
    if (!winner) {
      // The reason most worth showing: one that names the NAT (the router's own words) over a timeout.
      const shown = reasons.find((r) => /NAT|behind|contradict/.test(r.message)) ?? reasons[0];
      return shown
        ? { ok: false, reason: shown.message, code: shown.code }
        : { ok: false, reason: "no router answered NAT-PMP or UPnP" };
    }
    this.#gateway = winner.gw;
    this.#mapping = winner.mapping;
    return { ok: true, mapping: winner.mapping };
  }

  async #map(gw: Gateway, method: PortMapping["method"], o: PortMapOptions, signal: AbortSignal) {
    const external = await gw.externalIp(signal);
    if (isPrivateIPv4(external)) {
      throw new PortMapError(
        `the router's outside address ${external} is private: it sits behind another NAT (carrier-grade NAT)`,
        "double_nat",
      );
    }
    if (o.publicHost && o.publicHost !== external) {
      throw new PortMapError(
        `the router says its outside address is ${external} but STUN saw ${o.publicHost}: another NAT is in between`,
        "double_nat",
      );
    }
    const tcp = await gw.map("tcp", o.tcpPort, o.localHost, signal);
    const udp = await gw.map("udp", o.udpPort, o.localHost, signal);
    return { gw, mapping: { method, external, tcp, udp } };
  }

  candidates(): Candidate[] {
    const m = this.#mapping;
    if (!m) return [];
    const out: Candidate[] = [];
    if (m.tcp) out.push({ kind: "mapped", transport: "tcp", host: m.external, port: m.tcp });
    if (m.udp) out.push({ kind: "mapped", transport: "udp", host: m.external, port: m.udp });
    return out;
  }

  /** Removes the mappings (the lease would end them anyway). */
  async close(): Promise<void> {
    const gw = this.#gateway;
    this.#gateway = undefined;
    this.#mapping = undefined;
    if (gw) await gw.stop(AbortSignal.timeout(3000)).catch(() => {});
  }
}
