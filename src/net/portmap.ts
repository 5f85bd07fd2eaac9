/**
 * Asking the home router to forward our ports: NAT-PMP (RFC 6886 — PCP's predecessor, which most
 * routers with PCP still answer; ours, src/net/natpmp.ts) and UPnP-IGD (through
 * @achingbrain/nat-port-mapper). A mapping is leased, renewed before it expires, and removed when
 * the node stops.
 *
 * A mapping helps only if the router's outside address is the one the internet sees: behind a
 * carrier-grade NAT the router reports a private or shared address (RFC 6598), or one that STUN
 * contradicts, and the mapping is given back unused.
 */
import type { upnpNat as UpnpNat } from "@achingbrain/nat-port-mapper";
import type { Candidate } from "../protocol/candidate.ts";
import { isPrivateIPv4 } from "./interfaces.ts";
import { NatPmpClient } from "./natpmp.ts";

export interface PortMapOptions {
  tcpPort: number;
  udpPort: number;
  /** Our LAN address the router should forward to. */
  localHost: string;
  /** The public address STUN saw, if any: the router's outside address must agree. */
  publicHost?: string;
  /** How long to look for a router and map (the request waits at most this long for it). */
  budgetMs: number;
  description?: string;
}

export interface PortMapping {
  method: "nat-pmp" | "upnp";
  external: string;
  tcp?: number;
  udp?: number;
}

/** Why no mapping is in use, for doctor and the log. */
export type PortMapOutcome =
  | { ok: true; mapping: PortMapping }
  | { ok: false; reason: string };

type Gateway = {
  map(
    port: number,
    host: string,
    o: Record<string, unknown>,
  ): Promise<{ externalHost: string; externalPort: number }>;
  externalIp(o?: Record<string, unknown>): Promise<string>;
  stop(o?: Record<string, unknown>): Promise<void>;
};

/** NAT-PMP leases: renewed at half their lifetime (RFC 6886 §3.3), removed at stop (§3.4). */
class PmpGateway implements Gateway {
  readonly #client: NatPmpClient;
  readonly #leases = new Map<
    string,
    { internal: number; external: number; timer: ReturnType<typeof setInterval> }
  >();

  constructor(gateway: string) {
    this.#client = new NatPmpClient(gateway);
  }

  externalIp(o?: { signal?: AbortSignal }): Promise<string> {
    return this.#client.externalAddress(o?.signal);
  }

  async map(
    port: number,
    _host: string,
    o: { protocol?: string; externalPort?: number; signal?: AbortSignal },
  ) {
    const protocol = o.protocol === "udp" ? "udp" : "tcp";
    const lifetime = Math.round(LEASE_MS / 1000);
    const external = await this.#client.map(protocol, port, o.externalPort ?? port, lifetime, o.signal);
    const renew = () =>
      void this.#client.map(protocol, port, external, lifetime).catch(() => {
        // the next renewal tries again; the lease lasts until then
      });
    const timer = setInterval(renew, (lifetime * 1000) / 2);
    Deno.unrefTimer(timer);
    this.#leases.set(`${protocol} ${port}`, { internal: port, external, timer });
    return { externalHost: "", externalPort: external };
  }

  async stop(o?: { signal?: AbortSignal }): Promise<void> {
    const leases = [...this.#leases.entries()];
    this.#leases.clear();
    await Promise.allSettled(leases.map(([id, l]) => {
      clearInterval(l.timer);
      return this.#client.map(id.startsWith("udp") ? "udp" : "tcp", l.internal, 0, 0, o?.signal);
    }));
    await this.#client.close();
  }
}

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

const LEASE_MS = 2 * 3600_000;

/**
 * The library is loaded when first needed, and kept out of the bundle (deno.json's bundle task
 * marks it external): its SSDP part reads its own package.json at load time, which a one-file
 * bundle cannot provide. Deno fetches it from npm on first use (deno install and compile cache it).
 */
const NAT_PORT_MAPPER = "npm:@achingbrain/nat-port-mapper@4.0.5";

async function library(): Promise<{ upnpNat: typeof UpnpNat }> {
  return await import(NAT_PORT_MAPPER);
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
    let lib;
    try {
      lib = await library();
    } catch (err) {
      return {
        ok: false,
        reason: `the port mapping library could not be loaded (${(err as Error).message})`,
      };
    }
    const { upnpNat } = lib;
    const gateways: Gateway[] = [];
    const tries: Promise<{ gw: Gateway; mapping: PortMapping }>[] = [];
    const gatewayIp = await defaultGateway();
    if (gatewayIp) {
      const gw = new PmpGateway(gatewayIp);
      gateways.push(gw);
      tries.push(this.#map(gw, "nat-pmp", o, signal));
    }
    tries.push((async () => {
      const client = upnpNat({ autoRefresh: true, ttl: LEASE_MS });
      for await (const found of client.findGateways({ signal })) {
        const gw = found as unknown as Gateway;
        gateways.push(gw);
        return await this.#map(gw, "upnp", o, signal);
      }
      throw new Error("no UPnP router answered");
    })());
    let winner: { gw: Gateway; mapping: PortMapping } | undefined;
    const reasons: string[] = [];
    try {
      winner = await Promise.any(tries.map((t) =>
        t.catch((err) => {
          reasons.push(err instanceof Error ? err.message : String(err));
          throw err;
        })
      ));
    } catch {
      // every way failed
    }
    await Promise.allSettled(gateways.filter((g) => g !== winner?.gw).map((g) => g.stop()));
    if (!winner) {
      return {
        ok: false,
        reason: reasons.find((r) => /NAT|behind|contradict/.test(r)) ?? "no router answered NAT-PMP or UPnP",
      };
    }
    this.#gateway = winner.gw;
    this.#mapping = winner.mapping;
    return { ok: true, mapping: winner.mapping };
  }

  async #map(gw: Gateway, method: PortMapping["method"], o: PortMapOptions, signal: AbortSignal) {
    const external = await gw.externalIp({ signal });
    if (isPrivateIPv4(external)) {
      await gw.stop().catch(() => {});
      throw new Error(
        `the router's outside address ${external} is private: it sits behind another NAT (carrier-grade NAT)`,
      );
    }
    if (o.publicHost && o.publicHost !== external) {
      await gw.stop().catch(() => {});
      throw new Error(
        `the router says its outside address is ${external} but STUN saw ${o.publicHost}: another NAT is in between`,
      );
    }
    const opts = { signal, description: o.description ?? "mailmeet", ttl: LEASE_MS };
    const tcp = await gw.map(o.tcpPort, o.localHost, { ...opts, protocol: "tcp", externalPort: o.tcpPort });
    const udp = await gw.map(o.udpPort, o.localHost, { ...opts, protocol: "udp", externalPort: o.udpPort });
    return { gw, mapping: { method, external, tcp: tcp.externalPort, udp: udp.externalPort } };
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
    if (gw) await gw.stop({ signal: AbortSignal.timeout(3000) }).catch(() => {});
  }
}
