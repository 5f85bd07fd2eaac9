/**
 * The machine's own addresses, as candidates see them: loopback and link-local addresses are never
 * offered (nobody else can use them); an IPv6 address is "global" unless it is unique-local
 * (fc00::/7, RFC 4193) — home routers hand out global ones, reachable from anywhere unless a
 * firewall says no.
 */

export interface InterfaceAddress {
  family: "IPv4" | "IPv6";
  address: string;
  name: string;
}

export function isLoopback(a: InterfaceAddress): boolean {
  return a.family === "IPv4" ? a.address.startsWith("127.") : a.address === "::1";
}

export function isLinkLocal(a: InterfaceAddress): boolean {
  return a.family === "IPv4" ? a.address.startsWith("169.254.") : /^fe[89ab]/i.test(a.address);
}

export function isGlobalIPv6(address: string): boolean {
  return address.includes(":") && !/^(fe[89ab]|f[cd]|::1$|::$|::ffff:)/i.test(address);
}

/**
 * IPv4 ranges no public NAT hands out as its outside address (RFC 1918 private, RFC 6598 shared
 * carrier-grade NAT space, link-local, loopback): a router reporting one of these as its external
 * address sits behind another NAT.
 */
export function isPrivateIPv4(address: string): boolean {
  const [a, b] = address.split(".").map(Number);
  return a === 10 || a === 127 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) ||
    (a === 169 && b === 254) || (a === 100 && b >= 64 && b <= 127) || a === 0;
}

/** Interface addresses others could use: no loopback, no link-local. */
export function usableAddresses(interfaces: readonly InterfaceAddress[]): InterfaceAddress[] {
  const seen = new Set<string>();
  return interfaces.filter((a) => {
    if (isLoopback(a) || isLinkLocal(a) || seen.has(a.address)) return false;
    seen.add(a.address);
    return true;
  });
}

export function systemInterfaces(): InterfaceAddress[] {
  try {
    return Deno.networkInterfaces() as InterfaceAddress[];
  } catch {
    return []; // no --allow-sys: the caller falls back to --advertise
  }
}
