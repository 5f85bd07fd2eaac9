/**
 * Config files for the lab's daemons, and how to tell they listen. Pure apart from reading /proc.
 *
 * Both daemons come unpacked from Debian packages by scripts/natlab/tools.sh and run only inside
 * lab namespaces, each with an explicit config naming lab addresses: their packaged defaults
 * (/etc/turnserver.conf, /etc/miniupnpd/…) are never read.
 */
import { TABLE, UPNP_CHAINS } from "./nft.ts";

export const TOOLS_DIR = Deno.env.get("MAILMEET_LAB_CACHE")
  ? `${Deno.env.get("MAILMEET_LAB_CACHE")}/bin`
  : "/var/cache/mailmeet-lab/bin";
export const TURNSERVER = `${TOOLS_DIR}/turnserver`;
export const MINIUPNPD = `${TOOLS_DIR}/miniupnpd`;
/** coturn's test client: allocates relays and sends through them (`-y`: client to client). */
export const TURN_CLIENT = `${TOOLS_DIR}/turnutils_uclient`;

export const TURN_USER = "mailmeet";
export const TURN_PASSWORD = "lab-relay";
export const TURN_REALM = "lab.test";
/** NAT-PMP and PCP (RFC 6886, RFC 6887). */
export const NATPMP_PORT = 5351;

export interface CoturnOptions {
  ips: string[];
  port: number;
  turn: boolean;
  dir: string;
}

/**
 * coturn on two addresses of one namespace. With two listening addresses it answers RFC 5780's
 * CHANGE-REQUEST and reports OTHER-ADDRESS (Debian's default config turns that off with
 * `no-rfc5780`; we don't), so a probe can test a NAT's filtering; and a client that asks both
 * addresses sees whether its mapping depends on the destination (RFC 5780 §4.3).
 */
export function coturnConfig(o: CoturnOptions): string {
  const lines = [
    ...o.ips.map((ip) => `listening-ip=${ip}`),
    `listening-port=${o.port}`,
    `relay-ip=${o.ips[0]}`,
    "no-tls",
    "no-dtls",
    "no-cli",
    "no-software-attribute",
    "no-multicast-peers",
    `log-file=stdout`,
    "simple-log",
    `pidfile=${o.dir}/turnserver.pid`,
    // coturn opens its SQLite user database even with static users: keep it in the lab folder.
    `userdb=${o.dir}/turndb`,
  ];
  if (o.turn) {
    lines.push(
      "lt-cred-mech",
      `realm=${TURN_REALM}`,
      `user=${TURN_USER}:${TURN_PASSWORD}`,
      // Relay only to lab internet addresses: nothing outside 203.0.113.0/24 is ever a peer.
      "denied-peer-ip=0.0.0.0-255.255.255.255",
      "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "allowed-peer-ip=203.0.113.0-203.0.113.255",
      "min-port=49152",
      "max-port=65535",
    );
  } else {
    lines.push("stun-only");
  }
  return lines.join("\n") + "\n";
}

export interface MiniupnpdOptions {
  wanIf: string;
  lanIf: string;
  lanNet: string;
  uuid: string;
  leaseFile: string;
  /** Ask this STUN server for the public address at start (needed: lab addresses count as reserved). */
  stun?: { host: string; port: number };
}

/**
 * miniupnpd with its nftables backend pointed at the router's own table. It refuses a WAN address
 * in a documentation range as "reserved" (and `ext_ip=` too), so a router with a public lab WAN
 * learns it by STUN from the lab's coturn (its start-up self-test opens ports in our forward chain,
 * which the input chain also jumps to). A cgnat home router gets no STUN server and stays without a
 * public address, as miniupnpd behind an ISP NAT does: it maps nothing.
 */
export function miniupnpdConfig(o: MiniupnpdOptions): string {
  const lines = [
    `ext_ifname=${o.wanIf}`,
    `listening_ip=${o.lanIf}`,
    "enable_upnp=yes",
    "enable_natpmp=yes",
    "secure_mode=yes",
    "system_uptime=yes",
    "ipv6_disable=yes",
    `uuid=${o.uuid}`,
    `lease_file=${o.leaseFile}`,
    `upnp_table_name=${TABLE}`,
    `upnp_nat_table_name=${TABLE}`,
    `upnp_forward_chain=${UPNP_CHAINS.forward}`,
    `upnp_nat_chain=${UPNP_CHAINS.prerouting}`,
    `upnp_nat_postrouting_chain=${UPNP_CHAINS.postrouting}`,
    // PCP lifetimes (RFC 6887 §15 suggests 120 s … 24 h).
    "min_lifetime=120",
    "max_lifetime=86400",
    `allow 1024-65535 ${o.lanNet} 1024-65535`,
    "deny 0-65535 0.0.0.0/0 0-65535",
  ];
  if (o.stun) {
    lines.push("ext_perform_stun=yes", `ext_stun_host=${o.stun.host}`, `ext_stun_port=${o.stun.port}`);
  }
  return lines.join("\n") + "\n";
}

/** `203.0.113.2:3478` as /proc/net/{udp,tcp} prints it (little-endian hex address, hex port). */
export function procSocketAddress(ip: string, port: number): string {
  const hex = ip.split(".").map((o) => Number(o).toString(16).padStart(2, "0").toUpperCase()).reverse().join(
    "",
  );
  return `${hex}:${port.toString(16).padStart(4, "0").toUpperCase()}`;
}

const TCP_LISTEN = "0A";

/**
 * Local addresses a process's network namespace has open, from /proc/<pid>/net/{udp,tcp}
 * (only listening TCP sockets). Reading /proc needs no process inside the namespace.
 */
export async function openSockets(pid: number, proto: "udp" | "tcp"): Promise<Set<string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(`/proc/${pid}/net/${proto}`);
  } catch {
    return new Set();
  }
  const out = new Set<string>();
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    if (proto === "tcp" && f[3] !== TCP_LISTEN) continue;
    out.add(f[1]);
  }
  return out;
}
