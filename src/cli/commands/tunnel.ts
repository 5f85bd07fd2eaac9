import { TunnelExpose, TunnelLocal } from "../../apps/tunnel.ts";
import type { AppEvent } from "../../apps/links.ts";
import type { ExtraOption, Resolved } from "../options.ts";
import { UsageError } from "../errors.ts";
import type { AppStatus } from "../status.ts";
import { aborted, appOutput, portOption, runApp } from "./app_common.ts";

export const TUNNEL_HELP = `mailmeet tunnel — carry a TCP or UDP port to a peer (games, any service)

On the machine that runs the service:   mailmeet tunnel --expose PORT [--udp]
On the other machine:                   mailmeet tunnel --local PORT [--udp] [--to ID]

Both meet like \`mailmeet join\` (same options). Every TCP connection to 127.0.0.1:PORT on the
--local side is carried to 127.0.0.1:PORT on the --expose side, many at once; with --udp each
sending address is a session of its own (forgotten after 60 s of silence). The exposing side
reaches only its own exposed port, never an address the other side names. --to picks the peer
when several are linked (default: the first). Runs until interrupted.

Example:
  mailmeet tunnel --expose 25565 --address ann@isp-a.test --via lan-host@game.test --key-file group.key
  mailmeet tunnel --local 25565 --address bob@isp-b.test --via lan-host@game.test --key-file group.key`;

export const TUNNEL_EXTRAS: ExtraOption[] = [
  { name: "expose", kind: "string", arg: "PORT", help: "the service on this port here is what peers reach" },
  { name: "local", kind: "string", arg: "PORT", help: "programs here connect to 127.0.0.1:PORT" },
  { name: "udp", kind: "boolean", help: "carry UDP instead of TCP" },
  { name: "to", kind: "string", arg: "ID", help: "which linked peer (default: the first)" },
];

function describe(e: AppEvent): string | undefined {
  switch (e.event) {
    case "tunnel_listening":
      return `tunnel: connect to ${e.address} to reach ${e.peer ?? "the peer"}`;
    case "tunnel_exposed":
      return `tunnel: linked peers can reach ${e.proto} port ${e.port} here`;
    case "tunnel_open":
      return `tunnel: connection through ${e.peer} (${e.open} open)`;
    case "tunnel_closed":
      return e.reason ? `tunnel: a connection ended: ${e.reason}` : undefined;
    case "tunnel_refused":
      return `tunnel: refused a connection: ${e.reason}`;
    case "udp_session":
      return `tunnel: UDP session ${e.session} via ${e.peer}`;
    default:
      return undefined;
  }
}

export async function tunnelCommand(r: Resolved): Promise<number> {
  const expose = portOption(r.extra.expose, "expose");
  const local = r.extra.local === "0" ? 0 : portOption(r.extra.local, "local");
  if ((expose === undefined) === (local === undefined)) {
    throw new UsageError(
      "Say either --expose PORT (the service is here) or --local PORT (users connect here).",
    );
  }
  const udp = r.extra.udp === true;
  const to = typeof r.extra.to === "string" ? r.extra.to : undefined;
  const out = appOutput(r);
  const proto = udp ? "UDP" : "TCP";
  // `mailmeet status` shows the port and the connections open now.
  let shown: { setApp(a: AppStatus): void } | undefined;
  let state: AppStatus | undefined;
  const emit = (e: AppEvent) => {
    out.app(e, describe(e));
    if (state?.app === "tunnel" && typeof e.open === "number" && e.event !== "udp_session") {
      state = { ...state, open: e.open };
      shown?.setApp(state);
    }
  };
  const sentences = { interrupted: "Interrupted; the tunnel is closed." };
  if (expose !== undefined) {
    const app = new TunnelExpose({ port: expose, udp, emit });
    try {
      return await runApp(r, out.node, app, async (run) => {
        shown = run.status;
        state = { app: "tunnel", side: "expose", proto, port: expose, open: 0 };
        shown.setApp(state);
        emit({ event: "tunnel_exposed", proto, port: expose });
        await run.firstLink();
        await aborted(run.signal);
        return 0;
      }, sentences);
    } finally {
      await app.close();
    }
  }
  const app = new TunnelLocal({ port: local!, udp, emit, to });
  try {
    await app.start();
  } catch (err) {
    throw new UsageError(`Cannot listen on ${proto} 127.0.0.1:${local}: ${(err as Error).message}.`);
  }
  try {
    return await runApp(r, out.node, app, async (run) => {
      shown = run.status;
      state = { app: "tunnel", side: "local", proto, port: app.port, open: 0, ...(to ? { peer: to } : {}) };
      shown.setApp(state);
      emit({ event: "tunnel_listening", proto, address: `127.0.0.1:${app.port}`, port: app.port, peer: to });
      await run.firstLink();
      await aborted(run.signal);
      return 0;
    }, sentences);
  } finally {
    await app.close();
  }
}
