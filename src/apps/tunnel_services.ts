/**
 * What a member exposes, told over its links, so `tunnel --local PORT` finds the member that runs
 * the service (issue 10 item 8) and a game's LAN browser can list it on the other side.
 *
 * Every `tunnel --expose` opens one "services" stream to each member and writes one JSON line per
 * change: {t:"expose", list:[{p: port, u: 1 for UDP, g: game, m: LAN announcement text}]}. The
 * stream stays open while the tunnel runs; its end withdraws what it said (the node on the other
 * side keeps one list per stream: src/node/link_registry.ts).
 *
 * Several tunnels share a link, so their traffic is told apart:
 *  - a tunnel stream's metadata names the port it wants ({port});
 *  - a UDP datagram's channel (a u32) is port << 16 | direction << 15 | session, the direction bit
 *    set on datagrams going back to the side users connect to.
 */
export const SERVICES_PROTOCOL = "services";

export type TunnelProto = "tcp" | "udp";

export interface ExposedService {
  proto: TunnelProto;
  port: number;
  /** A game whose LAN discovery the other side replays (src/apps/lan/). */
  game?: string;
  /** What the game announces on its LAN (a Minecraft MOTD, an A2S_INFO answer in base64url). */
  announce?: string;
}

/** Services listed in one line at most; the rest are ignored (a member exposes a few ports). */
export const MAX_SERVICES = 32;
const MAX_ANNOUNCE = 2048;

export function encodeServices(list: readonly ExposedService[]): Record<string, unknown> {
  return {
    t: "expose",
    list: list.map((s) => ({
      p: s.port,
      ...(s.proto === "udp" ? { u: 1 } : {}),
      ...(s.game ? { g: s.game } : {}),
      ...(s.announce !== undefined ? { m: s.announce } : {}),
    })),
  };
}

/** The services of one "expose" line; undefined for anything else. Bad entries are skipped. */
export function decodeServices(line: Record<string, unknown>): ExposedService[] | undefined {
  if (line.t !== "expose" || !Array.isArray(line.list)) return undefined;
  const out: ExposedService[] = [];
  for (const raw of line.list.slice(0, MAX_SERVICES)) {
    if (typeof raw !== "object" || raw === null) continue;
    const o = raw as Record<string, unknown>;
    if (!isPort(o.p)) continue;
    out.push({
      proto: o.u === 1 ? "udp" : "tcp",
      port: o.p,
      ...(typeof o.g === "string" && /^[a-z0-9-]{1,32}$/.test(o.g) ? { game: o.g } : {}),
      ...(typeof o.m === "string" && o.m.length <= MAX_ANNOUNCE ? { announce: o.m } : {}),
    });
  }
  return out;
}

export function isPort(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;
}

/** Set on datagrams travelling back to the side users connect to. */
export const TO_LOCAL = 0x8000;
export const MAX_SESSION = 0x7fff;

export function datagramChannel(port: number, toLocal: boolean, session: number): number {
  return ((port << 16) | (toLocal ? TO_LOCAL : 0) | (session & MAX_SESSION)) >>> 0;
}

export function channelPort(channel: number): number {
  return channel >>> 16;
}

export function channelSession(channel: number): number {
  return channel & MAX_SESSION;
}

/** Which of the link's datagram channels an app takes: those with (channel & mask) === value. */
export interface ChannelRoute {
  mask: number;
  value: number;
}

export function takesChannel(routes: readonly ChannelRoute[], channel: number): boolean {
  return routes.some((r) => ((channel & r.mask) >>> 0) === r.value >>> 0);
}

/** The exposing side of `port` takes datagrams for it coming from users' side. */
export function exposeChannels(port: number): ChannelRoute {
  return { mask: 0xffff8000, value: datagramChannel(port, false, 0) };
}

/** The users' side takes datagrams coming back for `port` (any port when undefined). */
export function localChannels(port: number | undefined): ChannelRoute {
  return port === undefined
    ? { mask: TO_LOCAL, value: TO_LOCAL }
    : { mask: 0xffff8000, value: datagramChannel(port, true, 0) };
}

/** How a tunnel stream names its port. */
export function streamPort(meta: unknown): number | undefined {
  const p = (meta as { port?: unknown } | undefined)?.port;
  return isPort(p) ? p : undefined;
}
