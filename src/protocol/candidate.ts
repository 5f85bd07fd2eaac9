/**
 * Address candidates: every address a node may be reached at, each with its kind, as they travel
 * sealed in requests, replies, syncs and introductions (design: "Reaching peers behind routers").
 *
 * On the wire a candidate is a small array `[kind, transport, host, port]`; a list is bounded and
 * every field is checked on the way in, like the rest of src/protocol/.
 */
import { ProtocolError } from "./errors.ts";

/**
 * - `lan`: an interface address (private IPv4, or an IPv6 address that is not global);
 * - `ipv6`: a global IPv6 interface address (reachable unless a firewall says no);
 * - `mapped`: a port mapping the home router made for us (NAT-PMP / PCP / UPnP-IGD);
 * - `public`: the public address:port a STUN server saw (UDP), or that address with our TCP port
 *   (reachable when the port is forwarded or there is no NAT);
 * - `advertised`: what the user gave with --advertise (or what an older mailmeet sent).
 */
export type CandidateKind = "lan" | "ipv6" | "mapped" | "public" | "advertised";
export type Transport = "tcp" | "udp";

export interface Candidate {
  kind: CandidateKind;
  transport: Transport;
  host: string;
  port: number;
}

/**
 * How the node's NAT maps its UDP socket (RFC 4787 §4.1): `eim` (endpoint-independent: the same
 * public port towards every destination, "cone"), `symmetric` (a new port per destination: the
 * other side must guess it), `unknown` (no STUN answer, or fewer than two).
 */
export type MappingBehaviour = "eim" | "symmetric" | "unknown";

/** A reply lists up to 64 peers; 12 candidates each keeps a reply well under the armor limit. */
export const MAX_CANDIDATES = 12;

const KINDS: readonly CandidateKind[] = ["lan", "ipv6", "mapped", "public", "advertised"];
const MAPPINGS: readonly MappingBehaviour[] = ["eim", "symmetric", "unknown"];

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function isIPv4(h: string): boolean {
  return IPV4.test(h);
}

export function isIPv6(h: string): boolean {
  if (!h.includes(":") || h.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(h)) return false;
  try {
    return new URL(`http://[${h}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

/** An IPv4 or IPv6 literal, or a DNS name (for --advertise with a dynamic-DNS name). */
export function isValidHost(h: unknown): h is string {
  return typeof h === "string" && (IPV4.test(h) || HOSTNAME.test(h) || isIPv6(h));
}

/** "host:port", with brackets for IPv6. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export function describeCandidate(c: Candidate): string {
  return `${c.kind} ${c.transport} ${formatHostPort(c.host, c.port)}`;
}

export function encodeCandidates(list: readonly Candidate[]): unknown[] {
  return list.slice(0, MAX_CANDIDATES).map((c) => [c.kind, c.transport, c.host, c.port]);
}

export function decodeCandidates(v: unknown): Candidate[] {
  if (!Array.isArray(v) || v.length > MAX_CANDIDATES) {
    throw new ProtocolError(`A peer must list at most ${MAX_CANDIDATES} address candidates.`, "invalid");
  }
  return v.map((raw): Candidate => {
    if (!Array.isArray(raw) || raw.length !== 4) {
      throw new ProtocolError("An address candidate is not [kind, transport, host, port].", "invalid");
    }
    const [kind, transport, host, port] = raw;
    if (!KINDS.includes(kind)) {
      throw new ProtocolError("An address candidate has an unknown kind.", "invalid");
    }
    if (transport !== "tcp" && transport !== "udp") {
      throw new ProtocolError("An address candidate's transport is neither tcp nor udp.", "invalid");
    }
    // Only a user's own --advertise may name a host; everything gathered is an IP literal.
    const literal = typeof host === "string" && (isIPv4(host) || isIPv6(host));
    if (!(literal || (kind === "advertised" && isValidHost(host)))) {
      throw new ProtocolError("An address candidate's host is not an IP address.", "invalid");
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ProtocolError("An address candidate's port is out of range.", "invalid");
    }
    return { kind, transport, host, port };
  });
}

export function decodeMapping(v: unknown): MappingBehaviour {
  if (v === undefined) return "unknown";
  if (!MAPPINGS.includes(v as MappingBehaviour)) {
    throw new ProtocolError("A peer's NAT mapping behaviour is not one this mailmeet knows.", "invalid");
  }
  return v as MappingBehaviour;
}

/**
 * Path preference (lower is better): LAN, then IPv6, then a mapped or forwarded port, then a
 * punched path, then a relay (design: "Preference: LAN, IPv6, mapped/forwarded, punched, relayed").
 */
export type PathKind = "lan" | "ipv6" | "mapped" | "public" | "advertised" | "punched" | "relayed";

const PATH_RANK: Record<PathKind, number> = {
  lan: 0,
  ipv6: 1,
  mapped: 2,
  public: 2,
  advertised: 2,
  punched: 3,
  relayed: 4,
};

export function pathRank(kind: PathKind): number {
  return PATH_RANK[kind];
}

export function isPathKind(v: unknown): v is PathKind {
  return typeof v === "string" && v in PATH_RANK;
}
