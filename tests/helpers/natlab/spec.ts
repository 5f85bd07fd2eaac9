/**
 * What a test asks the NAT lab for. Behaviour names follow RFC 4787 (NAT behavioural requirements
 * for UDP): "mapping" is how the router picks the public address:port for an inside socket,
 * "filtering" is which outside senders may then reach it.
 */
import { LabError } from "./errors.ts";

/**
 * - `none`: hosts sit directly on the internet switch with public addresses.
 * - `full-cone`: endpoint-independent mapping and filtering (RFC 4787 §4.1, §5): once a LAN socket
 *   sent anything, anyone may send to its public port.
 * - `restricted-cone`: endpoint-independent mapping, address-dependent filtering: only addresses the
 *   socket sent to may answer, from any port.
 * - `port-restricted`: endpoint-independent mapping, address-and-port-dependent filtering (Linux's
 *   plain masquerade, most home routers).
 * - `symmetric`: address-and-port-dependent mapping (a new random public port per destination).
 * - `forward`: port-restricted, plus the `forward` ports sent to host 0 (a manual port forward).
 * - `upnp`: port-restricted, plus miniupnpd on the LAN (UPnP-IGD, NAT-PMP, PCP; secure mode).
 * - `cgnat`: a port-restricted home router whose WAN is a private 192.0.2.0/24 network behind an
 *   ISP NAT (`isp`: endpoint-independent by default, or symmetric), two levels of NAT.
 */
export type NatKind =
  | "none"
  | "full-cone"
  | "restricted-cone"
  | "port-restricted"
  | "symmetric"
  | "forward"
  | "upnp"
  | "cgnat";

export const NAT_KINDS: readonly NatKind[] = [
  "none",
  "full-cone",
  "restricted-cone",
  "port-restricted",
  "symmetric",
  "forward",
  "upnp",
  "cgnat",
];

export interface SiteSpec {
  /** Lower-case letters, digits and dashes, at most 12 characters: it becomes part of namespace names. */
  name: string;
  nat: NatKind;
  /** Hosts on the LAN (default 1): 198.51.100.10, .11, … */
  hosts?: number;
  /** Ports the router forwards to host 0, same port inside and out (any kind with a router). */
  forward?: { tcp?: number[]; udp?: number[] };
  /** Hosts also get a global 2001:db8:… address behind a stateful firewall (not with `cgnat`). */
  ipv6?: boolean;
  /** The router drops all forwarded UDP (a network that blocks UDP). */
  blockUdp?: boolean;
  /** miniupnpd on this router (default: true for `upnp` and `cgnat`, false otherwise). */
  upnp?: boolean;
  /** `cgnat` only: the ISP NAT's mapping (default `port-restricted`, i.e. endpoint-independent). */
  isp?: "port-restricted" | "symmetric";
}

export interface LabSpec {
  sites: SiteSpec[];
  /** Extra hosts on the internet switch, no NAT: lab.publicHost(name). */
  publicHosts?: string[];
  /** coturn answering STUN on two addresses (default true; always on when a site runs miniupnpd). */
  stun?: boolean;
  /** The same coturn also relays (TURN) for one static user. */
  turn?: boolean;
}

const NAME = /^[a-z][a-z0-9-]{0,11}$/;
export const MAX_HOSTS = 40;
export const MAX_SITES = 50;
export const MAX_PUBLIC_HOSTS = 40;

/** The kinds that have a home router in front of the hosts. */
export const hasRouter = (kind: NatKind): boolean => kind !== "none";

/** Whether miniupnpd runs on a site's router. */
export const runsUpnp = (site: SiteSpec): boolean =>
  hasRouter(site.nat) && (site.upnp ?? (site.nat === "upnp" || site.nat === "cgnat"));

/** Throws a LabError("bad-spec") naming the first thing the lab cannot build. */
export function validateSpec(spec: LabSpec): void {
  const bad = (message: string): never => {
    throw new LabError(message, "bad-spec");
  };
  if (spec.sites.length > MAX_SITES) bad(`A lab holds at most ${MAX_SITES} sites, not ${spec.sites.length}.`);
  const names = new Set<string>();
  const claim = (name: string, what: string) => {
    if (!NAME.test(name)) {
      bad(
        `The ${what} name "${name}" must be 1 to 12 lower-case letters, digits or dashes, starting with a letter.`,
      );
    }
    if (names.has(name)) bad(`The name "${name}" is used twice in the lab spec.`);
    names.add(name);
  };
  for (const site of spec.sites) {
    claim(site.name, "site");
    if (!NAT_KINDS.includes(site.nat)) bad(`Site "${site.name}" has an unknown NAT kind "${site.nat}".`);
    const hosts = site.hosts ?? 1;
    if (!Number.isInteger(hosts) || hosts < 1 || hosts > MAX_HOSTS) {
      bad(`Site "${site.name}" asks for ${hosts} hosts; give 1 to ${MAX_HOSTS}.`);
    }
    const ports = [...(site.forward?.tcp ?? []), ...(site.forward?.udp ?? [])];
    if (ports.length && !hasRouter(site.nat)) bad(`Site "${site.name}" has no router to forward ports.`);
    for (const p of ports) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) {
        bad(`Site "${site.name}" forwards an invalid port ${p}.`);
      }
    }
    if (site.ipv6 && site.nat === "cgnat") {
      bad(`Site "${site.name}": IPv6 behind carrier-grade NAT is not built yet.`);
    }
    if (site.isp && site.nat !== "cgnat") bad(`Site "${site.name}" sets "isp" but is not a cgnat site.`);
    if (site.upnp && !hasRouter(site.nat)) bad(`Site "${site.name}" has no router to run miniupnpd on.`);
  }
  const publicHosts = spec.publicHosts ?? [];
  if (publicHosts.length > MAX_PUBLIC_HOSTS) bad(`A lab holds at most ${MAX_PUBLIC_HOSTS} public hosts.`);
  for (const name of publicHosts) claim(name, "public host");
  if (spec.stun === false && spec.turn) {
    bad("TURN runs on the STUN server: do not set stun: false with turn: true.");
  }
}
