/**
 * nftables rulesets for the lab's routers, as text for `nft -f` inside the router's namespace.
 * Pure: the unit tests read them without root.
 *
 * Every router is a stateful firewall first: forwarded traffic from the LAN goes out, answers
 * (conntrack "established,related") come back, anything else that arrives on the WAN is dropped
 * without an answer unless a DNAT rule (port forward, cone mapping, miniupnpd) chose it.
 */
import type { NatKind } from "./spec.ts";

/** The table every lab router keeps its rules in (miniupnpd is pointed at it too). */
export const TABLE = "natlab";
/** miniupnpd's chains inside TABLE, named in its config (its nft backend's defaults). */
export const UPNP_CHAINS = {
  forward: "miniupnpd",
  prerouting: "prerouting_miniupnpd",
  postrouting: "postrouting_miniupnpd",
} as const;

/**
 * How long an endpoint-independent filter remembers a mapping with no traffic. Linux keeps a UDP
 * conntrack entry 30 s (120 s once answered); cone routers keep their mapping at least as long.
 */
export const CONE_TIMEOUT = "2m";

export interface RouterRules {
  /** How the router maps and filters; `cgnat`'s home router is `port-restricted`. */
  kind: Exclude<NatKind, "none" | "cgnat" | "forward" | "upnp"> | "port-restricted";
  wan: string;
  lan: string;
  /** Host 0's LAN address: the target of port forwards. */
  host0: string;
  forward?: { tcp?: number[]; udp?: number[] };
  blockUdp?: boolean;
  /** Chains and jumps for miniupnpd. */
  upnp?: boolean;
}

/** The NAT behaviour a site's router gets for a site's NAT kind. */
export function routerKind(kind: NatKind): RouterRules["kind"] {
  switch (kind) {
    case "full-cone":
    case "restricted-cone":
    case "symmetric":
      return kind;
    default:
      return "port-restricted";
  }
}

const set = (items: number[]) => `{ ${items.join(", ")} }`;

export function routerRuleset(r: RouterRules): string {
  const cone = r.kind === "full-cone" || r.kind === "restricted-cone";
  const wan = JSON.stringify(r.wan);
  const lan = JSON.stringify(r.lan);
  const out: string[] = [];
  const line = (s: string) => out.push(s);

  line(`table inet ${TABLE} {`);
  if (cone) {
    // The cone map: public port → the LAN socket that last used it. Linux masquerade keeps the
    // source port when it is free, so a socket keeps one public port for every destination
    // (endpoint-independent mapping, RFC 4787 §4.1); the map lets a new inbound flow find it.
    line(`  map cone {`);
    line(`    type inet_proto . inet_service : ipv4_addr . inet_service`);
    line(`    flags dynamic,timeout; timeout ${CONE_TIMEOUT};`);
    line(`  }`);
  }
  if (r.kind === "restricted-cone") {
    // Who each public port has sent to: address-dependent filtering (RFC 4787 §5) lets in any
    // port of an address the socket contacted.
    line(`  set contacted {`);
    line(`    type inet_proto . ipv4_addr . inet_service`);
    line(`    flags dynamic,timeout; timeout ${CONE_TIMEOUT};`);
    line(`  }`);
  }
  if (r.upnp) {
    for (const chain of Object.values(UPNP_CHAINS)) line(`  chain ${chain} {\n  }`);
  }

  line(`  chain prerouting {`);
  line(`    type nat hook prerouting priority dstnat; policy accept;`);
  if (r.upnp) line(`    jump ${UPNP_CHAINS.prerouting}`);
  if (r.forward?.tcp?.length) {
    line(`    iifname ${wan} tcp dport ${set(r.forward.tcp)} dnat ip to ${r.host0}`);
  }
  if (r.forward?.udp?.length) {
    line(`    iifname ${wan} udp dport ${set(r.forward.udp)} dnat ip to ${r.host0}`);
  }
  if (r.kind === "full-cone") {
    line(`    iifname ${wan} meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @cone`);
  } else if (r.kind === "restricted-cone") {
    line(
      `    iifname ${wan} meta l4proto { tcp, udp } meta l4proto . ip saddr . th dport @contacted ` +
        `dnat ip to meta l4proto . th dport map @cone`,
    );
  }
  line(`  }`);

  line(`  chain postrouting {`);
  line(`    type nat hook postrouting priority srcnat; policy accept;`);
  if (r.upnp) line(`    jump ${UPNP_CHAINS.postrouting}`);
  // Symmetric: a fresh random public port for every new conntrack entry, i.e. per destination
  // address and port (address-and-port-dependent mapping, RFC 4787 §4.1). Everything else keeps
  // the source port when it can ("port preservation", RFC 4787 §4.2.1). IPv4 only: IPv6 is routed.
  const random = r.kind === "symmetric" ? " fully-random" : "";
  line(`    meta nfproto ipv4 oifname ${wan} masquerade${random}`);
  line(`  }`);

  if (cone) {
    // After SNAT (priority srcnat + 10) the packet carries its public port: remember it.
    line(`  chain cone_track {`);
    line(`    type filter hook postrouting priority srcnat + 10; policy accept;`);
    line(
      `    meta nfproto ipv4 iifname ${lan} oifname ${wan} meta l4proto { tcp, udp } ` +
        `update @cone { meta l4proto . th sport : ct original ip saddr . ct original proto-src }`,
    );
    if (r.kind === "restricted-cone") {
      line(
        `    meta nfproto ipv4 iifname ${lan} oifname ${wan} meta l4proto { tcp, udp } ` +
          `update @contacted { meta l4proto . ip daddr . th sport }`,
      );
    }
    line(`  }`);
  }

  line(`  chain forward {`);
  line(`    type filter hook forward priority filter; policy drop;`);
  if (r.blockUdp) line(`    meta l4proto udp drop`);
  line(`    ct state established,related accept`);
  line(`    iifname ${lan} oifname ${wan} accept`);
  // Port forwards, cone mappings and miniupnpd's redirects all arrive DNATed.
  line(`    ct status dnat accept`);
  if (r.upnp) line(`    jump ${UPNP_CHAINS.forward}`);
  line(`  }`);

  line(`  chain input {`);
  line(`    type filter hook input priority filter; policy accept;`);
  line(`    iifname ${wan} ct state established,related accept`);
  // Neighbour discovery must reach the router for IPv6 to work at all.
  line(`    iifname ${wan} meta l4proto ipv6-icmp accept`);
  // miniupnpd opens its STUN self-test ports in its forward chain; let them reach it.
  if (r.upnp) line(`    iifname ${wan} jump ${UPNP_CHAINS.forward}`);
  // Dropped, not refused: a packet the router answered (ICMP port unreachable) would leave a
  // confirmed conntrack entry that steals the port from the LAN socket's later outbound mapping,
  // and that breaks hole punching in a way real routers do not.
  line(`    iifname ${wan} drop`);
  line(`  }`);
  line(`}`);
  return out.join("\n") + "\n";
}

/** The ISP's carrier-grade NAT in front of a cgnat site's home router (RFC 6888 asks for EIM). */
export function ispRuleset(opts: { wan: string; lan: string; symmetric: boolean }): string {
  const wan = JSON.stringify(opts.wan);
  const lan = JSON.stringify(opts.lan);
  return `table inet ${TABLE} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    meta nfproto ipv4 oifname ${wan} masquerade${opts.symmetric ? " fully-random" : ""}
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname ${lan} oifname ${wan} accept
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname ${wan} ct state established,related accept
    iifname ${wan} drop
  }
}
`;
}
