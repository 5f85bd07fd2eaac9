/**
 * Minecraft Java Edition's LAN announcement ("Open to LAN"): a world opened to LAN sends
 * `[MOTD]message of the day[/MOTD][AD]port[/AD]` (UTF-8) to multicast 224.0.2.60:4445 every 1.5 s;
 * the multiplayer screen lists the sender's IP address with the port from [AD]. Source: wiki.vg,
 * "Server List Ping", section "Ping via LAN (Open to LAN in Singleplayer)"; the client's parser
 * (LanServerPinger.parseMotd / parseAddress) takes the text between the tags, "missing no" when
 * there is no [MOTD], and drops a packet without [AD].
 */
export const MINECRAFT_GROUP = "224.0.2.60";
export const MINECRAFT_PORT = 4445;
export const MINECRAFT_INTERVAL_MS = 1_500;
/** Minecraft's own default server port (a dedicated server announces nothing: we announce for it). */
export const MINECRAFT_SERVER_PORT = 25565;

export interface MinecraftAd {
  motd: string;
  port: number;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The MOTD tags hold text the client shows: keep them from closing early. */
function clean(motd: string): string {
  return motd.replaceAll("[/MOTD]", "").replaceAll("[AD]", "").slice(0, 256);
}

export function formatMinecraftAd(ad: MinecraftAd): Uint8Array {
  return encoder.encode(`[MOTD]${clean(ad.motd)}[/MOTD][AD]${ad.port}[/AD]`);
}

/** The announcement in a datagram, or undefined when it is none (or names no usable port). */
export function parseMinecraftAd(bytes: Uint8Array): MinecraftAd | undefined {
  if (bytes.length > 1024) return undefined;
  const text = decoder.decode(bytes);
  const motd = /\[MOTD\]([\s\S]*?)\[\/MOTD\]/.exec(text)?.[1] ?? "missing no";
  const ad = /\[AD\]([\s\S]*?)\[\/AD\]/.exec(text)?.[1];
  if (ad === undefined || !/^\d{1,5}$/.test(ad.trim())) return undefined;
  const port = Number(ad.trim());
  if (port < 1 || port > 65535) return undefined;
  return { motd, port };
}
