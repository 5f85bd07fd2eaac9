/**
 * Every address a node may be reached at, each with its kind (design: "Candidates"), built from
 * what the node found out: its interfaces, the TCP listener, the UDP hub's public address (STUN),
 * a router port mapping, and --advertise. The list is bounded (MAX_CANDIDATES) and ordered so the
 * most useful survive the cut; `primary` is the one address an older mailmeet would dial.
 */
import { type Candidate, isIPv4, MAX_CANDIDATES, pathRank } from "../protocol/candidate.ts";
import { type InterfaceAddress, isGlobalIPv6, usableAddresses } from "./interfaces.ts";
import type { HostPort } from "./stun.ts";

export interface GatherInput {
  /** The TCP listener's port, and the address it is bound to ("0.0.0.0" / "::" for all). */
  tcpPort: number;
  listenHost: string;
  interfaces: readonly InterfaceAddress[];
  /** --advertise: the user's word wins, listed first. */
  advertise?: HostPort;
  /** The UDP hub's candidates (its LAN and public addresses). */
  udp?: readonly Candidate[];
  /** What STUN saw (the public side of our NAT, or our own address when there is none). */
  publicHost?: string;
  /** Router port mappings. */
  mapped?: readonly Candidate[];
}

export interface Gathered {
  candidates: Candidate[];
  /** The TCP address for the message's legacy host/port fields. */
  primary: HostPort;
}

const WILDCARD = new Set(["0.0.0.0", "::"]);

export function gatherCandidates(g: GatherInput): Gathered | undefined {
  const tcp: Candidate[] = [];
  const ifaces = WILDCARD.has(g.listenHost)
    ? usableAddresses(g.interfaces).filter((a) => g.listenHost === "::" || a.family === "IPv4")
    : [
      {
        family: g.listenHost.includes(":") ? "IPv6" : "IPv4",
        address: g.listenHost,
        name: "",
      } as InterfaceAddress,
    ];
  for (const a of ifaces) {
    const kind = a.address === g.publicHost
      ? "public"
      : a.family === "IPv6" && isGlobalIPv6(a.address)
      ? "ipv6"
      : "lan";
    tcp.push({ kind, transport: "tcp", host: a.address, port: g.tcpPort });
  }
  // Behind a NAT, our TCP port at the public address works when it is forwarded (or the NAT is
  // full-cone): cheap to try, and it needs no option from the user.
  if (g.publicHost && isIPv4(g.publicHost) && !tcp.some((c) => c.host === g.publicHost)) {
    tcp.push({ kind: "public", transport: "tcp", host: g.publicHost, port: g.tcpPort });
  }
  const advertised: Candidate[] = g.advertise
    ? [{ kind: "advertised", transport: "tcp", host: g.advertise.host, port: g.advertise.port }]
    : [];
  const mapped = [...(g.mapped ?? [])];
  const udp = [...(g.udp ?? [])];
  // Which to keep when there are too many: what the user said, then what works from anywhere,
  // then LAN (useful only to those on the same network), IPv4 before IPv6.
  const keep = (c: Candidate) =>
    c.kind === "advertised"
      ? 0
      : c.kind === "mapped"
      ? 1
      : c.kind === "public"
      ? 2
      : c.kind === "ipv6"
      ? 4
      : isIPv4(c.host)
      ? 3
      : 5;
  const all = dedupe([...advertised, ...mapped, ...tcp, ...udp])
    .map((c, i) => ({ c, i }))
    .sort((a, b) => keep(a.c) - keep(b.c) || a.i - b.i)
    .slice(0, MAX_CANDIDATES)
    .map(({ c }) => c)
    .sort((a, b) =>
      pathRank(a.kind) - pathRank(b.kind) ||
      (a.transport === b.transport ? 0 : a.transport === "tcp" ? -1 : 1)
    );
  const primaryCandidate = advertised[0] ?? mapped.find((c) => c.transport === "tcp") ??
    tcp.find((c) => c.kind === "public" && g.interfaces.some((a) => a.address === c.host)) ??
    tcp.find((c) => c.kind === "lan" && isIPv4(c.host)) ?? tcp[0];
  if (!primaryCandidate) return undefined;
  return { candidates: all, primary: { host: primaryCandidate.host, port: primaryCandidate.port } };
}

function dedupe(list: Candidate[]): Candidate[] {
  const seen = new Set<string>();
  return list.filter((c) => {
    const k = `${c.transport} ${c.host} ${c.port}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
