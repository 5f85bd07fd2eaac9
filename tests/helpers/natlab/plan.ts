/**
 * The lab's topology, planned from a LabSpec before anything is created: namespaces, links,
 * addresses, routes and rulesets. Pure, so the unit tests check the address plan without root.
 *
 *   public hosts, STUN ─┐
 *                       ├─ "internet": a bridge in its own namespace, 203.0.113.0/24
 *   site routers' WAN ──┘
 *   router LAN: a bridge in the router's namespace, 198.51.100.0/24 on EVERY site (as every home
 *   uses 192.168.1.0/24): a peer that dials another site's LAN address reaches nothing or itself.
 *   cgnat: home router WAN 192.0.2.2/24 ── ISP namespace (192.0.2.1 inside, 203.0.113.x outside).
 *
 * Addresses come only from the documentation ranges (RFC 5737, RFC 3849). Veth ends are created
 * directly inside their namespaces: nothing ever appears in the root namespace.
 */
import { ispRuleset, routerKind, routerRuleset } from "./nft.ts";
import { hasRouter, type LabSpec, runsUpnp, type SiteSpec, validateSpec } from "./spec.ts";

export const NS_PREFIX = "mmlab";
export const STUN_PORT = 3478;
export const INTERNET_PREFIX = 24;

/** Fixed addresses on the internet switch. */
export const INTERNET = {
  net: "203.0.113",
  stun: ["203.0.113.2", "203.0.113.3"],
  firstPublicHost: 20, // .20 … .59
  firstRouter: 100, // .100 + site index
  firstDirectHost: 200, // hosts of `none` sites: .200 …
  v6: "2001:db8:ffff",
} as const;
export const LAN = { net: "198.51.100", router: 1, firstHost: 10 } as const;
export const CGNAT = { net: "192.0.2", isp: "192.0.2.1", home: "192.0.2.2" } as const;

export type NsRole = "internet" | "stun" | "public" | "router" | "isp" | "host";

export interface NsPlan {
  name: string;
  role: NsRole;
  /** `sysctl -w` settings, applied before any link exists (so IPv6 stays off on new links). */
  sysctl: Record<string, string>;
  /** `ip -n NAME -batch -` lines, run once every link exists. */
  ip: string[];
  /** `nft -f -` input, if any. */
  nft?: string;
}

export interface HostPlan {
  ns: string;
  /** The host's own address: a LAN address behind a router, public for `none` sites. */
  ip: string;
  /** The next hop: the router's LAN address (undefined for `none` sites). */
  gateway?: string;
  ipv6?: string;
}

export interface RouterPlan {
  ns: string;
  /** The router's WAN address: public, except a cgnat home router's (192.0.2.2). */
  wanIp: string;
  lanIp: string;
  /** The address the internet sees for this site. */
  publicIp: string;
  wanIf: string;
  lanIf: string;
  ipv6?: { wan: string; lan: string; prefix: string };
}

export interface SitePlan {
  spec: SiteSpec;
  index: number;
  hosts: HostPlan[];
  router?: RouterPlan;
  /** cgnat only: the ISP's NAT. */
  isp?: RouterPlan;
  upnp: boolean;
}

export interface LabPlan {
  /** The namespace name prefix of this lab: `mmlab-<pid>-<n>`. */
  id: string;
  namespaces: NsPlan[];
  /** Root-namespace `ip -batch -` lines that create links, each directly inside its namespace. */
  links: string[];
  sites: Map<string, SitePlan>;
  publicHosts: Map<string, HostPlan>;
  stun?: { ns: string; ips: string[]; port: number };
  ipv6: boolean;
}

const WAN = "wan";
const LAN_BRIDGE = "lan0";
const HOST_IF = "eth0";
const INET_BRIDGE = "br0";

const sysctlBase = (ipv6: boolean): Record<string, string> => ({
  "net.ipv6.conf.all.disable_ipv6": ipv6 ? "0" : "1",
  "net.ipv6.conf.default.disable_ipv6": ipv6 ? "0" : "1",
  // Duplicate address detection holds a new link-local address back for a second or two, and
  // neighbour discovery with it: nothing in the lab can clash.
  ...(ipv6 ? { "net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0" } : {}),
});
const forwarding = (ipv6: boolean): Record<string, string> => ({
  ...sysctlBase(ipv6),
  "net.ipv4.ip_forward": "1",
  ...(ipv6 ? { "net.ipv6.conf.all.forwarding": "1" } : {}),
  // Strict reverse-path filtering would drop a cone router's hairpinned or asymmetric packets.
  "net.ipv4.conf.all.rp_filter": "0",
  "net.ipv4.conf.default.rp_filter": "0",
});

/** Plans a lab; `id` is the namespace prefix, e.g. `mmlab-1234-0`. */
export function planLab(spec: LabSpec, id: string): LabPlan {
  validateSpec(spec);
  const ipv6 = spec.sites.some((s) => s.ipv6);
  const namespaces: NsPlan[] = [];
  const links: string[] = [];
  const sites = new Map<string, SitePlan>();
  const publicHosts = new Map<string, HostPlan>();
  const inet: NsPlan = { name: `${id}-inet`, role: "internet", sysctl: sysctlBase(false), ip: [] };
  namespaces.push(inet);
  links.push(`link add ${INET_BRIDGE} netns ${inet.name} type bridge`);
  inet.ip.push("link set lo up", `link set ${INET_BRIDGE} up`);
  let port = 0;
  /** A veth from `ns`'s `dev` to a new port of the internet bridge. */
  const toInternet = (ns: string, dev: string) => {
    const p = `p${port++}`;
    links.push(`link add ${dev} netns ${ns} type veth peer name ${p} netns ${inet.name}`);
    inet.ip.push(`link set ${p} master ${INET_BRIDGE}`, `link set ${p} up`);
  };
  /** IPv6 routes to every IPv6 site, for namespaces on the internet switch. */
  const v6Routes: string[][] = [];
  const inetV6 = (n: number) => `${INTERNET.v6}::${n}`;

  const wantsUpnp = spec.sites.some(runsUpnp);
  const stunOn = spec.stun !== false || wantsUpnp;
  let stun: LabPlan["stun"];
  if (stunOn) {
    const ns: NsPlan = {
      name: `${id}-stun`,
      role: "stun",
      sysctl: sysctlBase(false),
      ip: ["link set lo up"],
    };
    namespaces.push(ns);
    toInternet(ns.name, HOST_IF);
    for (const ip of INTERNET.stun) ns.ip.push(`addr add ${ip}/${INTERNET_PREFIX} dev ${HOST_IF}`);
    ns.ip.push(`link set ${HOST_IF} up`);
    stun = { ns: ns.name, ips: [...INTERNET.stun], port: STUN_PORT };
  }

  (spec.publicHosts ?? []).forEach((name, j) => {
    const ns: NsPlan = {
      name: `${id}-p-${name}`,
      role: "public",
      sysctl: sysctlBase(ipv6),
      ip: ["link set lo up"],
    };
    namespaces.push(ns);
    toInternet(ns.name, HOST_IF);
    const ip = `${INTERNET.net}.${INTERNET.firstPublicHost + j}`;
    ns.ip.push(`addr add ${ip}/${INTERNET_PREFIX} dev ${HOST_IF}`);
    const host: HostPlan = { ns: ns.name, ip };
    if (ipv6) {
      host.ipv6 = inetV6(INTERNET.firstPublicHost + j);
      ns.ip.push(`addr add ${host.ipv6}/64 dev ${HOST_IF} nodad`);
      v6Routes.push(ns.ip);
    }
    ns.ip.push(`link set ${HOST_IF} up`);
    publicHosts.set(name, host);
  });

  let direct = 0;
  spec.sites.forEach((site, i) => {
    const plan: SitePlan = { spec: site, index: i, hosts: [], upnp: runsUpnp(site) };
    sites.set(site.name, plan);
    const hostCount = site.hosts ?? 1;
    const siteV6 = !!site.ipv6;

    if (!hasRouter(site.nat)) {
      for (let k = 0; k < hostCount; k++) {
        const ns: NsPlan = {
          name: `${id}-h-${site.name}-${k}`,
          role: "host",
          sysctl: sysctlBase(siteV6),
          ip: ["link set lo up"],
        };
        namespaces.push(ns);
        toInternet(ns.name, HOST_IF);
        const n = INTERNET.firstDirectHost + direct++;
        const ip = `${INTERNET.net}.${n}`;
        ns.ip.push(`addr add ${ip}/${INTERNET_PREFIX} dev ${HOST_IF}`);
        const host: HostPlan = { ns: ns.name, ip };
        if (siteV6) {
          host.ipv6 = inetV6(n);
          ns.ip.push(`addr add ${host.ipv6}/64 dev ${HOST_IF} nodad`);
          v6Routes.push(ns.ip);
        }
        ns.ip.push(`link set ${HOST_IF} up`);
        plan.hosts.push(host);
      }
      return;
    }

    const publicIp = `${INTERNET.net}.${INTERNET.firstRouter + i}`;
    const lanIp = `${LAN.net}.${LAN.router}`;
    const routerNs: NsPlan = {
      name: `${id}-r-${site.name}`,
      role: "router",
      sysctl: forwarding(siteV6),
      ip: ["link set lo up"],
    };
    namespaces.push(routerNs);
    const v6prefix = `2001:db8:${i + 1}::`;
    const router: RouterPlan = {
      ns: routerNs.name,
      wanIp: publicIp,
      lanIp,
      publicIp,
      wanIf: WAN,
      lanIf: LAN_BRIDGE,
    };

    if (site.nat === "cgnat") {
      const ispNs: NsPlan = {
        name: `${id}-isp-${site.name}`,
        role: "isp",
        sysctl: forwarding(false),
        ip: ["link set lo up"],
      };
      namespaces.push(ispNs);
      toInternet(ispNs.name, WAN);
      links.push(`link add ${WAN} netns ${routerNs.name} type veth peer name cpe netns ${ispNs.name}`);
      ispNs.ip.push(
        `addr add ${publicIp}/${INTERNET_PREFIX} dev ${WAN}`,
        `link set ${WAN} up`,
        `addr add ${CGNAT.isp}/24 dev cpe`,
        `link set cpe up`,
      );
      ispNs.nft = ispRuleset({ wan: WAN, lan: "cpe", symmetric: site.isp === "symmetric" });
      plan.isp = { ns: ispNs.name, wanIp: publicIp, lanIp: CGNAT.isp, publicIp, wanIf: WAN, lanIf: "cpe" };
      router.wanIp = CGNAT.home;
      routerNs.ip.push(
        `addr add ${CGNAT.home}/24 dev ${WAN}`,
        `link set ${WAN} up`,
        `route add default via ${CGNAT.isp}`,
      );
    } else {
      toInternet(routerNs.name, WAN);
      routerNs.ip.push(`addr add ${publicIp}/${INTERNET_PREFIX} dev ${WAN}`, `link set ${WAN} up`);
      if (siteV6) {
        router.ipv6 = {
          wan: inetV6(INTERNET.firstRouter + i),
          lan: `${v6prefix}1`,
          prefix: `${v6prefix}/64`,
        };
        routerNs.ip.push(`addr add ${router.ipv6.wan}/64 dev ${WAN} nodad`);
        v6Routes.push(routerNs.ip);
      }
    }

    links.push(`link add ${LAN_BRIDGE} netns ${routerNs.name} type bridge`);
    routerNs.ip.push(`addr add ${lanIp}/24 dev ${LAN_BRIDGE}`);
    if (router.ipv6) routerNs.ip.push(`addr add ${router.ipv6.lan}/64 dev ${LAN_BRIDGE} nodad`);
    routerNs.ip.push(`link set ${LAN_BRIDGE} up`);
    for (let k = 0; k < hostCount; k++) {
      const ns: NsPlan = {
        name: `${id}-h-${site.name}-${k}`,
        role: "host",
        sysctl: sysctlBase(siteV6),
        ip: ["link set lo up"],
      };
      namespaces.push(ns);
      links.push(`link add ${HOST_IF} netns ${ns.name} type veth peer name h${k} netns ${routerNs.name}`);
      routerNs.ip.push(`link set h${k} master ${LAN_BRIDGE}`, `link set h${k} up`);
      const ip = `${LAN.net}.${LAN.firstHost + k}`;
      ns.ip.push(
        `addr add ${ip}/24 dev ${HOST_IF}`,
        `link set ${HOST_IF} up`,
        `route add default via ${lanIp}`,
      );
      const host: HostPlan = { ns: ns.name, ip, gateway: lanIp };
      if (router.ipv6) {
        host.ipv6 = `${v6prefix}${LAN.firstHost + k}`;
        ns.ip.push(
          `addr add ${host.ipv6}/64 dev ${HOST_IF} nodad`,
          `route add default via ${router.ipv6.lan}`,
        );
      }
      plan.hosts.push(host);
    }
    routerNs.nft = routerRuleset({
      kind: routerKind(site.nat),
      wan: WAN,
      lan: LAN_BRIDGE,
      host0: plan.hosts[0].ip,
      forward: site.forward,
      blockUdp: site.blockUdp,
      upnp: plan.upnp,
    });
    plan.router = router;
  });

  // Static IPv6 routes on the internet switch: every site's /64 via its router.
  for (const site of sites.values()) {
    const v6 = site.router?.ipv6;
    if (!v6) continue;
    for (const lines of v6Routes) {
      if (lines === namespaces.find((n) => n.name === site.router?.ns)?.ip) continue;
      lines.push(`route add ${v6.prefix} via ${v6.wan}`);
    }
  }

  return { id, namespaces, links, sites, publicHosts, stun, ipv6 };
}

/** Every address a plan assigns, for the check that the lab stays inside documentation ranges. */
export function plannedAddresses(plan: LabPlan): string[] {
  const out: string[] = [];
  for (const ns of plan.namespaces) {
    for (const line of ns.ip) {
      const m = /^(?:addr add|route add \S+ via) (\S+?)(?:\/\d+)?(?: |$)/.exec(line);
      if (m) out.push(m[1]);
      const r = /^route add default via (\S+)/.exec(line);
      if (r) out.push(r[1]);
    }
  }
  return out;
}
