/**
 * Our own address for others to dial (【0025】): --advertise wins; otherwise a listener bound to a
 * specific IP advertises that IP; otherwise the first non-loopback interface address, IPv4 before
 * IPv6 (port mapping and STUN would come here later).
 */

export interface InterfaceAddress {
  family: "IPv4" | "IPv6";
  address: string;
  name: string;
}

const WILDCARD = new Set(["0.0.0.0", "::", "[::]"]);

function isLoopback(a: InterfaceAddress): boolean {
  return a.family === "IPv4" ? a.address.startsWith("127.") : a.address === "::1";
}

function isLinkLocal(a: InterfaceAddress): boolean {
  return a.family === "IPv4" ? a.address.startsWith("169.254.") : /^fe[89ab]/i.test(a.address);
}

export function pickAdvertiseHost(
  listenHost: string,
  interfaces: readonly InterfaceAddress[],
): string | undefined {
  if (!WILDCARD.has(listenHost)) return listenHost;
  const usable = interfaces.filter((a) => !isLoopback(a) && !isLinkLocal(a));
  return (usable.find((a) => a.family === "IPv4") ?? usable.find((a) => a.family === "IPv6"))?.address;
}

export function detectAdvertiseHost(listenHost: string): string | undefined {
  let interfaces: InterfaceAddress[] = [];
  try {
    interfaces = Deno.networkInterfaces() as InterfaceAddress[];
  } catch {
    // no permission or no interfaces: the caller asks for --advertise
  }
  return pickAdvertiseHost(listenHost, interfaces);
}
