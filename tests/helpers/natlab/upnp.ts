/** Reading the mappings miniupnpd keeps, from its nftables chain (the router's ground truth). */

export interface PortMapping {
  protocol: "tcp" | "udp";
  externalPort: number;
  internalIp: string;
  internalPort: number;
  /** Set when the mapping only admits one remote host. */
  remoteHost?: string;
}

/** Reads miniupnpd's DNAT rules (`nft -j list chain`) into mappings. */
export function parseUpnpChain(json: string): PortMapping[] {
  type Expr = Record<string, unknown>;
  const doc = JSON.parse(json) as { nftables: Record<string, { expr?: Expr[] }>[] };
  const out: PortMapping[] = [];
  for (const item of doc.nftables) {
    const rule = item.rule;
    if (!rule?.expr) continue;
    let protocol: PortMapping["protocol"] | undefined;
    let externalPort: number | undefined;
    let remoteHost: string | undefined;
    let dnat: { addr?: string; port?: number } | undefined;
    for (const e of rule.expr) {
      if (e.dnat) dnat = e.dnat as typeof dnat;
      const m = e.match as { left?: Record<string, Record<string, unknown>>; right?: unknown } | undefined;
      const payload = m?.left?.payload;
      if (!payload) continue;
      if (payload.base === "nh" && payload.offset === 72 && payload.len === 8) {
        protocol = m!.right === 6 ? "tcp" : m!.right === 17 ? "udp" : undefined; // IPv4 protocol byte
      } else if (payload.base === "nh" && payload.offset === 96 && payload.len === 32) {
        const n = Number(m!.right);
        remoteHost = [24, 16, 8, 0].map((s) => (n >>> s) & 255).join("."); // IPv4 source address
      } else if (payload.field === "dport") {
        externalPort = Number(m!.right);
        if (payload.protocol === "tcp" || payload.protocol === "udp") protocol ??= payload.protocol;
      }
    }
    if (!protocol || externalPort === undefined || !dnat?.addr) continue;
    out.push({
      protocol,
      externalPort,
      internalIp: dnat.addr,
      internalPort: dnat.port ?? externalPort,
      ...(remoteHost ? { remoteHost } : {}),
    });
  }
  return out;
}

/** A mapping as miniupnpd's lease file records it: with its end and the client's description. */
export interface PortLease {
  protocol: "tcp" | "udp";
  externalPort: number;
  internalIp: string;
  internalPort: number;
  /** When miniupnpd drops the mapping (ms since the epoch); undefined for a permanent one. */
  expiresAt?: number;
  description: string;
}

/** Parses miniupnpd's lease file: `PROTO:EXTPORT:INTIP:INTPORT:EXPIRY:DESCRIPTION` per line. */
export function parseLeaseFile(text: string): PortLease[] {
  const out: PortLease[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 6) continue;
    const protocol = f[0].toLowerCase();
    if (protocol !== "tcp" && protocol !== "udp") continue;
    const expiry = Number(f[4]);
    out.push({
      protocol,
      externalPort: Number(f[1]),
      internalIp: f[2],
      internalPort: Number(f[3]),
      ...(expiry > 0 ? { expiresAt: expiry * 1000 } : {}),
      description: f.slice(5).join(":"),
    });
  }
  return out;
}
