/**
 * `mailmeet ping USER`: round trips to a linked member over its link, like ping(8), through the
 * running node's echo (src/node/rtt.ts). What it measures is the link (and this machine's control
 * socket), the same thing a game's packets cross.
 */
import { RTT_PROTOCOL, RttProber } from "../../node/rtt.ts";
import { flag } from "../context.ts";
import { NoPeerError, UsageError } from "../errors.ts";
import type { ExtraNames, ExtraOption, Resolved } from "../options.ts";
import { findNode, nodeIdentity } from "../node.ts";
import { writeStdout } from "./app_common.ts";

export const PING_HELP = `mailmeet ping USER — round trips to a linked member, like ping(8)

Asks the running node of this config (a \`mailmeet join\`, or an app that started one) to send
probes to USER over its link, one a second, and prints each round trip, then the loss and
min/avg/max. The node also measures every link all along: \`mailmeet peers\` shows the result.
Exits 1 when no node runs, 3 when USER is not linked or never answers.

Examples:
  mailmeet ping ann
  mailmeet ping ann --count 10 --json`;

export const PING_EXTRAS = [
  { name: "count", kind: "string", arg: "N", help: "probes to send (default 4)" },
] as const satisfies readonly ExtraOption[];

/** A probe not answered within this long is lost. */
const LOST_AFTER_MS = 2_000;
const EVERY_MS = 1_000;

export async function pingCommand(r: Resolved<ExtraNames<typeof PING_EXTRAS>>): Promise<number> {
  const user = r.positionals[0];
  if (!user || r.positionals.length > 1) throw new UsageError("Say whom to ping: mailmeet ping USER.");
  const countText = typeof r.extra.count === "string" ? r.extra.count : "4";
  const count = Number(countText);
  if (!/^\d+$/.test(countText) || count < 1 || count > 100_000) {
    throw new UsageError(`--count ${countText} is not a number of probes (1 or more).`);
  }
  const json = flag(r, "json");
  const client = await findNode(r);
  if (!client) {
    const id = await nodeIdentity(r);
    throw new UsageError(
      `No mailmeet node runs for ${id.address} (user ${id.user}) on this machine; start one with \`mailmeet join\`.`,
    );
  }
  await using attached = client.attach({});
  await attached.ready;
  const member = attached.members().find((m) => m.user === user);
  if (!member) {
    throw new NoPeerError(
      `${user} is not linked to this node (linked: ${
        attached.members().map((m) => m.user).join(", ") || "nobody"
      }).`,
    );
  }
  const times: number[] = [];
  const answered = new Map<number, () => void>();
  const prober = new RttProber(member.mux.open(RTT_PROTOCOL, {}), (seq, ms) => {
    times.push(ms);
    if (json) writeStdout(JSON.stringify({ event: "rtt", peer: user, seq, rtt_ms: round(ms) }));
    else writeStdout(`rtt from ${user}: seq=${seq} time=${ms.toFixed(2)} ms`);
    answered.get(seq)?.();
  });
  if (!json) writeStdout(`PING ${user} over its ${member.route.path} ${member.route.transport} link`);
  for (let i = 0; i < count; i++) {
    const seq = prober.send();
    const got = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), LOST_AFTER_MS);
      answered.set(seq, () => {
        clearTimeout(timer);
        resolve(true);
      });
      void prober.ended.then(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    answered.delete(seq);
    if (!got && !json) writeStdout(`no answer from ${user}: seq=${seq}`);
    if (i + 1 < count && got) await new Promise((r) => setTimeout(r, EVERY_MS));
  }
  prober.close();
  const lost = count - times.length;
  const sorted = [...times].sort((a, b) => a - b);
  const avg = times.reduce((a, b) => a + b, 0) / (times.length || 1);
  if (json) {
    writeStdout(JSON.stringify({
      event: "ping_summary",
      peer: user,
      sent: count,
      answered: times.length,
      ...(times.length
        ? { min_ms: round(sorted[0]), avg_ms: round(avg), max_ms: round(sorted.at(-1)!) }
        : {}),
    }));
  } else {
    writeStdout(`--- ${user} ping statistics ---`);
    writeStdout(
      `${count} sent, ${times.length} answered, ${Math.round((lost / count) * 100)}% lost${
        times.length
          ? `; rtt min/avg/max = ${sorted[0].toFixed(2)}/${avg.toFixed(2)}/${sorted.at(-1)!.toFixed(2)} ms`
          : ""
      }`,
    );
  }
  if (times.length === 0) throw new NoPeerError(`${user} did not answer any probe.`);
  return 0;
}

const round = (ms: number) => Math.round(ms * 100) / 100;
