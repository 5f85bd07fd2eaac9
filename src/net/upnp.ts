/**
 * UPnP Internet Gateway Device port mapping (UPnP-IGD, WANIPConnection / WANPPPConnection): find
 * the router by SSDP, read its device description, and ask it over SOAP for our outside address
 * and for TCP and UDP mappings — which are renewed while we run and deleted when we stop.
 *
 * Ours rather than @achingbrain/nat-port-mapper's: its UPnP unmap sends an empty protocol, which
 * routers read as TCP, so UDP mappings stay behind while it reports success; and leaving mappings
 * on a friend's router is exactly what we promise not to do. The protocol is small: SSDP (UDP
 * multicast, HTTP-like lines), one XML document, three SOAP calls.
 */
import { UdpSocket } from "./udp.ts";

const SSDP_ADDRESS = "239.255.255.250";
const SSDP_PORT = 1900;
const SEARCH_TARGETS = [
  "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
  "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
];
const SERVICES = [
  "urn:schemas-upnp-org:service:WANIPConnection:2",
  "urn:schemas-upnp-org:service:WANIPConnection:1",
  "urn:schemas-upnp-org:service:WANPPPConnection:1",
];
/** Leases are asked for an hour and renewed every half hour; some routers take only permanent ones. */
const LEASE_S = 3600;

export class UpnpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpnpError";
  }
}

/** Where the router's port mapping service answers. */
export interface UpnpService {
  controlUrl: string;
  serviceType: string;
}

/** Asks for gateways by SSDP (M-SEARCH) and returns the first description URL that answers. */
export async function discoverGateway(signal: AbortSignal): Promise<string> {
  const socket = await UdpSocket.bind();
  const found = Promise.withResolvers<string>();
  socket.onMessage((d) => {
    const text = new TextDecoder().decode(d.data);
    const location = /^location:\s*(\S+)/im.exec(text)?.[1];
    if (location && /^http:\/\//i.test(location)) found.resolve(location);
  });
  const search = () => {
    for (const st of SEARCH_TARGETS) {
      const msg =
        `M-SEARCH * HTTP/1.1\r\nHOST: ${SSDP_ADDRESS}:${SSDP_PORT}\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: ${st}\r\n\r\n`;
      socket.send(new TextEncoder().encode(msg), SSDP_ADDRESS, SSDP_PORT);
    }
  };
  search();
  const again = setInterval(search, 500);
  const onAbort = () => found.reject(new UpnpError("no UPnP router answered"));
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await found.promise;
  } finally {
    clearInterval(again);
    signal.removeEventListener("abort", onAbort);
    await socket.close();
  }
}

/** The first port-mapping service in a device description (any nesting depth). */
export function findService(xml: string, location: string): UpnpService | undefined {
  const base = /<URLBase>\s*([^<\s]+)\s*<\/URLBase>/i.exec(xml)?.[1] ?? location;
  for (const block of xml.match(/<service>[\s\S]*?<\/service>/gi) ?? []) {
    const type = /<serviceType>\s*([^<\s]+)\s*<\/serviceType>/i.exec(block)?.[1];
    const control = /<controlURL>\s*([^<\s]+)\s*<\/controlURL>/i.exec(block)?.[1];
    if (type && control && SERVICES.includes(type)) {
      return { serviceType: type, controlUrl: new URL(control, base).href };
    }
  }
  return undefined;
}

function escapeXml(v: string): string {
  return v.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export class UpnpGateway {
  readonly #renewals = new Map<string, ReturnType<typeof setInterval>>();

  constructor(readonly service: UpnpService) {}

  static async find(signal: AbortSignal): Promise<UpnpGateway> {
    const location = await discoverGateway(signal);
    const res = await fetch(location, { signal });
    if (!res.ok) throw new UpnpError(`the router's description at ${location} answered ${res.status}`);
    const service = findService(await res.text(), location);
    if (!service) throw new UpnpError("the router offers no port mapping service (WANIPConnection)");
    return new UpnpGateway(service);
  }

  async #call(action: string, args: Record<string, string | number>, signal?: AbortSignal): Promise<string> {
    const body = `<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ` +
      `s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:${action} xmlns:u="${this.service.serviceType}">` +
      Object.entries(args).map(([k, v]) => `<${k}>${escapeXml(String(v))}</${k}>`).join("") +
      `</u:${action}></s:Body></s:Envelope>`;
    const res = await fetch(this.service.controlUrl, {
      method: "POST",
      headers: {
        "Content-Type": 'text/xml; charset="utf-8"',
        SOAPAction: `"${this.service.serviceType}#${action}"`,
      },
      body,
      signal: signal ?? AbortSignal.timeout(5000),
    });
    const text = await res.text();
    if (!res.ok) {
      const code = /<errorCode>\s*(\d+)\s*<\/errorCode>/i.exec(text)?.[1];
      const desc = /<errorDescription>\s*([^<]*)<\/errorDescription>/i.exec(text)?.[1];
      throw new UpnpError(`the router refused ${action}${code ? ` (${code}${desc ? ` ${desc}` : ""})` : ""}`);
    }
    return text;
  }

  async externalIp(signal?: AbortSignal): Promise<string> {
    const text = await this.#call("GetExternalIPAddress", {}, signal);
    const ip = /<NewExternalIPAddress>\s*([^<\s]*)\s*<\/NewExternalIPAddress>/i.exec(text)?.[1];
    if (!ip) throw new UpnpError("the router knows no outside address");
    return ip;
  }

  /** Maps `port` (same number outside) to `internalHost`; renewed while we run. */
  async map(
    protocol: "tcp" | "udp",
    port: number,
    internalHost: string,
    signal?: AbortSignal,
  ): Promise<number> {
    const add = (lease: number) =>
      this.#call("AddPortMapping", {
        NewRemoteHost: "",
        NewExternalPort: port,
        NewProtocol: protocol.toUpperCase(),
        NewInternalPort: port,
        NewInternalClient: internalHost,
        NewEnabled: 1,
        NewPortMappingDescription: "mailmeet",
        NewLeaseDuration: lease,
      }, signal);
    let lease = LEASE_S;
    try {
      await add(lease);
    } catch (err) {
      // 725 OnlyPermanentLeasesSupported (UPnP-IGD WANIPConnection:1): ask for a permanent one.
      if (!(err instanceof UpnpError) || !/\(725/.test(err.message)) throw err;
      lease = 0;
      await add(0);
    }
    if (lease > 0) {
      const renew = setInterval(() => void add(lease).catch(() => {}), (lease * 1000) / 2);
      Deno.unrefTimer(renew);
      this.#renewals.set(`${protocol} ${port}`, renew);
    } else {
      this.#renewals.set(`${protocol} ${port}`, 0 as unknown as ReturnType<typeof setInterval>);
    }
    return port;
  }

  /** Deletes every mapping made here (TCP and UDP alike). */
  async stop(signal?: AbortSignal): Promise<void> {
    const all = [...this.#renewals.entries()];
    this.#renewals.clear();
    await Promise.allSettled(all.map(([id, timer]) => {
      clearInterval(timer);
      const [protocol, port] = id.split(" ");
      return this.#call("DeletePortMapping", {
        NewRemoteHost: "",
        NewExternalPort: Number(port),
        NewProtocol: protocol.toUpperCase(),
      }, signal);
    }));
  }
}
