/**
 * Minecraft's LAN discovery across the group (format: ./minecraft.ts). On the member that runs
 * the game, a watcher hears the world's "Open to LAN" announcement for the exposed port and the
 * tunnel tells the group its MOTD; on the others, an announcer says the same MOTD every 1.5 s with
 * the tunnel's local port, so the multiplayer screen lists the world and joins through the tunnel.
 */
import type { Socket } from "node:dgram";
import {
  formatMinecraftAd,
  MINECRAFT_GROUP,
  MINECRAFT_INTERVAL_MS,
  MINECRAFT_PORT,
  parseMinecraftAd,
} from "./minecraft.ts";
import { LanSender, listenLan, type Scope } from "./lan_socket.ts";
import type { LoopGuard } from "./loop_guard.ts";

/** Calls `onMotd` with the MOTD of every announcement for `port` heard here (not our replays). */
export async function watchMinecraft(
  port: number,
  guard: LoopGuard,
  onMotd: (motd: string) => void,
): Promise<Disposable> {
  const socket: Socket = await listenLan(MINECRAFT_PORT, MINECRAFT_GROUP, (data, from) => {
    if (guard.isEcho(data, from)) return;
    const ad = parseMinecraftAd(data);
    if (ad && ad.port === port) onMotd(ad.motd);
  });
  return { [Symbol.dispose]: () => socket.close() };
}

export class MinecraftAnnouncer implements Disposable {
  #timer?: ReturnType<typeof setInterval>;
  #ad?: Uint8Array;

  get announcing(): boolean {
    return this.#ad !== undefined;
  }

  private constructor(readonly sender: LanSender, readonly guard: LoopGuard) {}

  static async open(scope: Scope, guard: LoopGuard): Promise<MinecraftAnnouncer> {
    const sender = await LanSender.open(scope, [MINECRAFT_GROUP]);
    guard.addSource("0.0.0.0", sender.port);
    return new MinecraftAnnouncer(sender, guard);
  }

  /** Announce `motd` at `port` from now on (undefined: stop). */
  set(ad: { motd: string; port: number } | undefined): void {
    const bytes = ad ? formatMinecraftAd(ad) : undefined;
    const changed = bytes?.join() !== this.#ad?.join();
    this.#ad = bytes;
    if (!ad) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    if (changed) this.#send();
    this.#timer ??= setInterval(() => this.#send(), MINECRAFT_INTERVAL_MS);
  }

  #send(): void {
    if (!this.#ad) return;
    this.guard.replayed(this.#ad);
    this.sender.send(this.#ad, MINECRAFT_PORT, MINECRAFT_GROUP);
  }

  [Symbol.dispose](): void {
    clearInterval(this.#timer);
    this.sender.close();
  }
}
