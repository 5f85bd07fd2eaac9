import { formatHostPort } from "../../protocol/candidate.ts";
import { TunnelExpose, TunnelLocal } from "../../apps/tunnel.ts";
import { exposeGames, gameProto, GAMES, isGame, localGames, sourceAnswer } from "../../apps/lan/games.ts";
import { LanForwarder } from "../../apps/lan/forwarder.ts";
import { scopeOf } from "../../apps/lan/lan_socket.ts";
import { LoopGuard } from "../../apps/lan/loop_guard.ts";
import type { AppEvent, LinkApp } from "../../apps/app_host.ts";
import type { ExtraNames, ExtraOption, Resolved } from "../options.ts";
import { UsageError } from "../errors.ts";
import type { AppStatus } from "../status.ts";
import { parseBind, parseExpose, parseLanChannels, parseLocal } from "../tunnel_spec.ts";
import { aborted, appOutput, runApp } from "./app_common.ts";

export const TUNNEL_HELP = `mailmeet tunnel — carry TCP or UDP ports to the group (games, any service)

On the machine that runs the service:   mailmeet tunnel --expose PORT[/udp]
On the other machines:                  mailmeet tunnel --local PORT[/udp]
                                        mailmeet tunnel --local LOCAL:REMOTE [--bind ADDR] [--to ID]

Both meet like \`mailmeet join\` (same options), or attach to the node that runs already. The
exposing side tells every member what it exposes, so --local PORT finds the member that runs
PORT by itself (--to picks one when several do); LOCAL:REMOTE listens on LOCAL for the member's
REMOTE port, and --local 0 takes a free port for whatever one member exposes. Every TCP
connection to the local port is carried to 127.0.0.1:PORT on the exposing side, many at once;
with --udp (or /udp after a port) each sending address is a session of its own (forgotten after
60 s of silence). The exposing side reaches only its own exposed ports, never an address the
other side names. The local port listens on 127.0.0.1; --bind 0.0.0.0 offers it to your LAN.
Repeat --expose or --local (or separate ports with commas) for several tunnels at once.
Runs until interrupted.

Game LAN lists: a Minecraft world opened to LAN on an exposed port is announced on the other
members' machines with their local port, so it shows in the multiplayer screen (--game minecraft
announces a dedicated server too). --game source on a UDP port answers the Source LAN browser's
A2S_INFO queries with the server's own answer. --broadcast PORT and --multicast GROUP:PORT
(on every member) carry any other game's discovery datagrams both ways and replay them locally.
Announcements stay on this machine unless --bind offers the ports to your LAN.

Example:
  mailmeet tunnel --expose 25565 --address ann@isp-a.test --via lan-host@game.test --key-file group.key
  mailmeet tunnel --local 25565 --address bob@isp-b.test --via lan-host@game.test --key-file group.key
  mailmeet tunnel --local 25566:25565,27015/udp --bind 0.0.0.0`;

export const TUNNEL_EXTRAS = [
  { name: "expose", kind: "list", arg: "PORT", help: "the service on this port here is what peers reach" },
  {
    name: "local",
    kind: "list",
    arg: "PORT",
    help: "programs here connect to PORT (LOCAL:REMOTE remaps; /udp for UDP)",
  },
  { name: "udp", kind: "boolean", help: "carry UDP instead of TCP (for every port without /tcp)" },
  { name: "to", kind: "string", arg: "ID", help: "which member (default: the one that exposes the port)" },
  { name: "bind", kind: "string", arg: "ADDR", help: "where --local ports listen (default 127.0.0.1)" },
  {
    name: "game",
    kind: "string",
    arg: "NAME",
    help: `the exposed port runs this game (${GAMES.join(", ")})`,
  },
  { name: "broadcast", kind: "list", arg: "PORT", help: "carry this port's LAN broadcasts both ways" },
  { name: "multicast", kind: "list", arg: "GROUP:PORT", help: "carry this multicast group's datagrams" },
] as const satisfies readonly ExtraOption[];

function describe(e: AppEvent): string | undefined {
  switch (e.event) {
    case "tunnel_listening":
      return `tunnel: connect to ${e.address} to reach ${
        e.remote ? `port ${e.remote} of ${e.peer ?? "the member that exposes it"}` : e.peer ?? "the peer"
      }`;
    case "tunnel_exposed":
      return `tunnel: linked peers can reach ${e.proto} port ${e.port} here`;
    case "tunnel_target":
      return `tunnel: ${e.peer} exposes ${e.proto} port ${e.port}${
        e.game ? ` (${e.game})` : ""
      }; traffic goes there`;
    case "tunnel_open":
      return `tunnel: connection through ${e.peer} (${e.open} open)`;
    case "tunnel_closed":
      return e.reason ? `tunnel: a connection ended: ${e.reason}` : undefined;
    case "tunnel_refused":
      return `tunnel: refused a connection: ${e.reason}`;
    case "lan_heard":
      return `tunnel: heard ${e.game} announce "${e.motd}" on port ${e.port}; the group sees it`;
    case "lan_announced":
      return `tunnel: ${e.peer}'s ${e.game} game "${e.motd}" is announced here at port ${e.port}${
        e.scope === "lan" ? " (and on your LAN)" : ""
      }`;
    case "lan_forwarding":
      return `tunnel: carrying LAN discovery (${e.channel}) between members`;
    case "udp_session":
      return `tunnel: UDP session ${e.session} via ${e.peer}`;
    default:
      return undefined;
  }
}

export async function tunnelCommand(r: Resolved<ExtraNames<typeof TUNNEL_EXTRAS>>): Promise<number> {
  const out = appOutput(r);
  // `mailmeet status` shows the first tunnel's port and the connections open now.
  let shown: { setApp(a: AppStatus): void } | undefined;
  let state: AppStatus | undefined;
  const emitFor = (first: boolean) => (e: AppEvent) => {
    out.app(e, describe(e));
    if (first && state?.app === "tunnel" && typeof e.open === "number" && e.event !== "udp_session") {
      state = { ...state, open: e.open };
      shown?.setApp(state);
    }
  };
  const udp = r.extra.udp === true;
  const game = typeof r.extra.game === "string" ? r.extra.game.toLowerCase() : undefined;
  if (game !== undefined && !isGame(game)) {
    throw new UsageError(`--game ${game} is not a game mailmeet knows (${GAMES.join(", ")}).`);
  }
  const exposes = parseExpose(
    strings(r.extra.expose),
    udp || (game !== undefined && gameProto(game) === "udp"),
  );
  const locals = parseLocal(strings(r.extra.local), udp);
  const lan = parseLanChannels(strings(r.extra.broadcast), strings(r.extra.multicast));
  if (exposes.length > 0 && locals.length > 0) {
    throw new UsageError(
      "Say either --expose PORT (the service is here) or --local PORT (users connect here), not both.",
    );
  }
  if (exposes.length === 0 && locals.length === 0 && lan.length === 0) {
    throw new UsageError(
      "Say either --expose PORT (the service is here) or --local PORT (users connect here).",
    );
  }
  if (game !== undefined && exposes.length === 0) throw new UsageError("--game goes with --expose.");
  const bind = parseBind(r.extra.bind);
  if (bind !== undefined && locals.length === 0 && lan.length === 0) {
    throw new UsageError("--bind goes with --local.");
  }
  const scope = scopeOf(bind);
  const guard = new LoopGuard();
  const games: Disposable[] = [];
  const forwarder = lan.length > 0
    ? new LanForwarder({ channels: lan, scope, emit: emitFor(false) })
    : undefined;
  const to = typeof r.extra.to === "string" ? r.extra.to : undefined;
  const sentences = { interrupted: "Interrupted; the tunnel is closed." };
  const dup = exposes.find((x, i) => exposes.findIndex((y) => y.port === x.port && y.udp === x.udp) !== i);
  if (dup) throw new UsageError(`--expose ${dup.port} is named twice.`);
  const exposed = exposes.map((x, i) =>
    new TunnelExpose({
      port: x.port,
      udp: x.udp,
      emit: emitFor(i === 0),
      ...(game && gameProto(game) === (x.udp ? "udp" : "tcp") ? { game } : {}),
    })
  );
  const locally = locals.map((l, i) =>
    new TunnelLocal({
      port: l.local,
      remote: l.remote,
      udp: l.udp,
      emit: emitFor(i === 0),
      to,
      bind,
      ...(l.udp ? { answer: sourceAnswer } : {}),
    })
  );
  const apps: LinkApp[] = [...exposed, ...locally, ...(forwarder ? [forwarder] : [])];
  try {
    for (const [i, app] of locally.entries()) {
      try {
        await app.start();
      } catch (err) {
        const l = locals[i];
        throw new UsageError(
          `Cannot listen on ${l.udp ? "UDP" : "TCP"} ${app.bind}:${l.local}: ${(err as Error).message}.`,
        );
      }
    }
    try {
      await forwarder?.start();
    } catch (err) {
      throw new UsageError(`Cannot listen for LAN discovery datagrams: ${(err as Error).message}.`);
    }
    for (const app of exposed) games.push(await exposeGames(app, guard, emitFor(false)));
    for (const app of locally) games.push(localGames(app, guard, scope, emitFor(false)));
    return await runApp(r, out.node, apps, async (run) => {
      shown = run.status;
      if (exposes.length > 0) {
        const first = exposes[0];
        state = {
          app: "tunnel",
          side: "expose",
          proto: first.udp ? "UDP" : "TCP",
          port: first.port,
          open: 0,
        };
        shown.setApp(state);
      } else if (locals.length > 0) {
        state = {
          app: "tunnel",
          side: "local",
          proto: locals[0].udp ? "UDP" : "TCP",
          port: locally[0].port,
          open: 0,
          ...(to ? { peer: to } : {}),
        };
        shown.setApp(state);
      }
      for (const x of exposes) {
        emitFor(false)({ event: "tunnel_exposed", proto: x.udp ? "UDP" : "TCP", port: x.port });
      }
      for (const [i, app] of locally.entries()) {
        const l = locals[i];
        emitFor(false)({
          event: "tunnel_listening",
          proto: l.udp ? "UDP" : "TCP",
          address: formatHostPort(app.bind, app.port),
          port: app.port,
          ...(l.remote !== undefined ? { remote: l.remote } : {}),
          peer: to,
        });
      }
      for (const c of lan) {
        emitFor(false)({
          event: "lan_forwarding",
          channel: c.group ? `${c.group}:${c.port}` : `broadcast ${c.port}`,
          scope,
        });
      }
      await run.firstLink();
      await aborted(run.signal);
      return 0;
    }, sentences);
  } finally {
    for (const g of games) g[Symbol.dispose]();
    forwarder?.close();
    await Promise.all([...exposed, ...locally].map((a) => a.close()));
  }
}

/** A repeatable option's values (one string when given once through a config file). */
function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : typeof v === "string" ? [v] : [];
}
