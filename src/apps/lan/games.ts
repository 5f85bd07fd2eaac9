/**
 * Game LAN discovery on both ends of a tunnel (issue 16): which games are known, and wiring their
 * watchers and announcers to the tunnel apps. Each game's format is a module of its own
 * (minecraft.ts, a2s.ts).
 */
import { b64u, fromB64u } from "../../protocol/bytes.ts";
import type { AppSink } from "../app_host.ts";
import type { TunnelExpose, TunnelLocal, TunnelTarget } from "../tunnel.ts";
import { MinecraftAnnouncer, watchMinecraft } from "./minecraft_lan.ts";
import { answerInfoQuery, probeSource } from "./source_lan.ts";
import { parseInfo } from "./a2s.ts";
import type { Scope } from "./lan_socket.ts";
import type { LoopGuard } from "./loop_guard.ts";

export const GAMES = ["minecraft", "source"] as const;
export type Game = typeof GAMES[number];

export function isGame(v: string): v is Game {
  return (GAMES as readonly string[]).includes(v);
}

/** What the game's protocol is: Minecraft Java runs on TCP, Source games on UDP. */
export function gameProto(g: Game): "tcp" | "udp" {
  return g === "minecraft" ? "tcp" : "udp";
}

/**
 * The exposing side: a TCP port is watched for Minecraft's "Open to LAN" announcement (always: the
 * port of an opened world is random, and the announcement names it), a UDP port named a Source
 * game is asked for A2S_INFO; what is found goes to the group with the tunnel's services.
 */
export async function exposeGames(
  app: TunnelExpose,
  guard: LoopGuard,
  emit: AppSink,
): Promise<Disposable> {
  const port = app.opts.port;
  if (app.service.proto === "tcp") {
    let last: string | undefined;
    try {
      return await watchMinecraft(port, guard, (motd) => {
        if (motd !== last) emit({ event: "lan_heard", game: "minecraft", port, motd });
        last = motd;
        app.setGame("minecraft", motd);
      });
    } catch (err) {
      emit({ event: "info", message: `cannot hear Minecraft LAN announcements: ${(err as Error).message}` });
      return { [Symbol.dispose]: () => {} };
    }
  }
  if (app.service.game === "source") {
    let last: string | undefined;
    return probeSource(port, (answer) => {
      const info = parseInfo(answer);
      if (info && info.name !== last) emit({ event: "lan_heard", game: "source", port, motd: info.name });
      last = info?.name;
      app.setGame("source", b64u(answer));
    });
  }
  return { [Symbol.dispose]: () => {} };
}

/** A MOTD for a member's Minecraft server that announced none (a dedicated server). */
export function defaultMotd(user: string): string {
  return `${user}'s server (mailmeet)`;
}

/**
 * The local side: while the tunnel's member runs a Minecraft world, announce it here with the
 * tunnel's local port; while it runs a Source server, answer A2S_INFO queries with its answer.
 */
export function localGames(
  app: TunnelLocal,
  guard: LoopGuard,
  scope: Scope,
  emit: AppSink,
): Disposable {
  let announcer: MinecraftAnnouncer | undefined;
  let said: string | undefined;
  let disposed = false;
  const follow = async (t: TunnelTarget | undefined) => {
    const s = t?.service;
    if (disposed) return;
    if (s?.game !== "minecraft") {
      announcer?.set(undefined);
      said = undefined;
      return;
    }
    if (!announcer) {
      const opened = await MinecraftAnnouncer.open(scope, guard);
      if (disposed) return opened[Symbol.dispose]();
      announcer ??= opened;
    }
    const motd = s.announce || defaultMotd(t!.user);
    announcer.set({ motd, port: app.port });
    const now = `${t!.user} ${motd} ${app.port}`;
    if (now !== said) {
      said = now;
      emit({ event: "lan_announced", game: "minecraft", peer: t!.user, motd, port: app.port, scope });
    }
  };
  let chain = Promise.resolve();
  app.onTarget = (t) =>
    void (chain = chain.then(() => follow(t)).catch((err) =>
      emit({ event: "info", message: `cannot announce the game here: ${(err as Error).message}` })
    ));
  app.onTarget(app.target());
  return {
    [Symbol.dispose]: () => {
      disposed = true;
      app.onTarget = undefined;
      announcer?.[Symbol.dispose]();
    },
  };
}

/** For TunnelLocal's `answer` option: A2S_INFO queries answered from the member's last answer. */
export function sourceAnswer(
  datagram: Uint8Array,
  t: TunnelTarget,
  localPort: number,
): Uint8Array | undefined {
  if (t.service?.game !== "source" || !t.service.announce) return undefined;
  return answerInfoQuery(datagram, fromB64u(t.service.announce), localPort);
}
