/**
 * `mailmeet peers`: who the running node is linked to right now, and how — asked over its control
 * socket (src/node/control.ts), so it is exact, not a file some seconds old.
 */
import { UsageError } from "../errors.ts";
import { flag } from "../context.ts";
import type { Resolved } from "../options.ts";
import { findNode, nodeIdentity } from "../node.ts";

export const PEERS_HELP = `mailmeet peers — the members your running node is linked to, and how

Asks the node of this config (a \`mailmeet join\`, or an app that started one) for its links: each
member's user id, whether the link is direct or relayed, TCP or QUIC, which address worked and
the round-trip time the link measured, and the ports its tunnels expose (with the game, when
one announces itself). Exits 1 when no node runs.

Examples:
  mailmeet peers
  mailmeet peers --json`;

export async function peersCommand(r: Resolved): Promise<number> {
  const client = await findNode(r);
  if (!client) {
    const id = await nodeIdentity(r);
    throw new UsageError(
      `No mailmeet node runs for ${id.address} (user ${id.user}) on this machine; start one with \`mailmeet join\`.`,
    );
  }
  await using attached = client.attach({});
  await attached.ready;
  const members = attached.members();
  if (flag(r, "json")) {
    for (const m of members) {
      console.log(JSON.stringify({
        event: "peer",
        peer: m.user,
        address: m.address,
        path: m.route.path,
        transport: m.route.transport,
        kind: m.route.kind,
        rtt_ms: Math.round(m.route.rttMs * 10) / 10,
        exposes: m.services.map((x) => ({
          proto: x.proto,
          port: x.port,
          ...(x.game ? { game: x.game } : {}),
        })),
      }));
    }
    return 0;
  }
  if (members.length === 0) {
    console.log(`linked to nobody yet (node pid ${client.hello.pid}, mailmeet ${client.hello.command})`);
    return 0;
  }
  for (const m of members) {
    const how = m.route.path === "relay" ? "relayed" : `direct (${m.route.kind})`;
    const exposes = m.services.map((x) => `${x.proto} ${x.port}${x.game ? ` (${x.game})` : ""}`).join(", ");
    console.log(
      `${m.user.padEnd(16)} ${how} over ${m.route.transport}, ${m.route.rttMs.toFixed(1)} ms — ${m.address}${
        exposes ? `; exposes ${exposes}` : ""
      }`,
    );
  }
  return 0;
}
