/**
 * `deno task bench rendezvous`: a peer's request sent → `connected`, through a host on the real
 * stack with IMAP IDLE, next to B (one mail hop) measured in the same run. Two hops are the floor.
 */
import { ensureBundle, spawnCli } from "../lib/cli_process.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { mailStack } from "../../tests/helpers/mailstack.ts";
import { measureHops } from "./mail_hop.ts";
import { line, ratio, summarize } from "./stats.ts";

export async function benchRendezvous(args: { runs: number }): Promise<void> {
  await ensureBundle();
  await using stack = await mailStack();
  const key = generateKeyText();
  const acct = (name: string, domain: string) => {
    const address = stack.freshAddress(name, domain);
    return [
      "--address",
      address,
      "--smtp",
      stack.url("submission", address),
      "--inbox",
      stack.url("imap", address),
      "--tls-ca",
      stack.caFile,
      "--key",
      key,
      "--json",
    ];
  };
  const dir = await Deno.makeTempDir();
  const hostAddr = stack.freshAddress("bench-host", "game.test");
  const hostArgs = acct("x", "game.test");
  hostArgs[1] = hostAddr;
  hostArgs[3] = stack.url("submission", hostAddr);
  hostArgs[5] = stack.url("imap", hostAddr);
  await using host = spawnCli("host", ["host", ...hostArgs, "--db", `${dir}/host.db`]);
  await using anchor = spawnCli("anchor", [
    "join",
    ...acct("bench-anchor", "isp-a.test"),
    "--user",
    "anchor",
    "--via",
    hostAddr,
    "--listen",
    "127.0.0.1:0",
    "--timeout",
    "3600",
  ]);
  await anchor.waitFor((e) => e.event === "waiting", 60_000, "the anchor peer waiting");

  const b = summarize((await measureHops(stack, "imap", args.runs + 1)).hop.slice(1));
  const peerArgs = acct("bench-peer", "isp-b.test");
  const total: number[] = [];
  for (let i = 0; i <= args.runs; i++) {
    await using peer = spawnCli("peer", [
      "join",
      ...peerArgs,
      "--user",
      "bench",
      "--via",
      hostAddr,
      "--listen",
      "127.0.0.1:0",
      "--no-host",
    ]);
    const sent = await peer.waitFor((e) => e.event === "request_sent", 60_000, "request");
    const conn = await peer.waitFor((e) => e.event === "connected", 60_000, "connected");
    if (i > 0) total.push(Date.parse(String(conn.time)) - Date.parse(String(sent.time)));
  }
  const hostMs = host.events.filter((e) => e.event === "host_reply").slice(2).map((e) => Number(e.ms));
  const t = summarize(total);
  const h = summarize(hostMs);
  console.log("rendezvous on Postfix + Dovecot, IMAP IDLE everywhere, host and peers as CLI processes");
  console.log(line("B: one mail hop (SMTP 250 → IDLE wake-up)", b));
  console.log(
    line(
      "request sent → connected",
      t,
      `p50 = ${ratio(t.p50, b.p50)} B (target ≤ 2.3), p95 = ${ratio(t.p95, b.p50)} B (target ≤ 3)`,
    ),
  );
  console.log(
    line("host: wake-up → reply accepted (250)", h, `p95 = ${ratio(h.p95, b.p50)} B (target ≤ 0.2)`),
  );
  await Deno.remove(dir, { recursive: true });
}
