/**
 * A group that holds together (issue 10): people sharing one inbox never take each other's
 * replies, and a member who stops leaves the host's table at once instead of after --ttl.
 */
import assert from "node:assert/strict";
import type { CliProcess } from "../../scripts/lib/cli_process.ts";
import { type World, world } from "../helpers/world.ts";
import { is } from "../helpers/events.ts";

const ROUNDS = 20;

async function tableUsers(w: World, db: string): Promise<string[]> {
  const out = await w.run(["table", "--db", `${w.dir}/${db}.db`, "--json"]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l).user).sort();
}

Deno.test(`[maildir] two members reading one inbox, started 0–2 s apart, both get their replies (${ROUNDS} rounds)`, async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const anchor = w.peer("anchor", w.account("anchor", "isp-b.test"), [hostAcct], ["--timeout", "0"]);
  await anchor.waitFor(is("request_sent"), 30_000, "anchor asking");
  // One family mailbox, two people (two user ids) on it.
  const shared = w.account("family");
  for (let round = 0; round < ROUNDS; round++) {
    const gap = Math.floor(Math.random() * 2000);
    const first = w.peer(`kid${round}`, shared, [hostAcct]);
    await new Promise((r) => setTimeout(r, gap));
    const second = w.peer(`parent${round}`, shared, [hostAcct]);
    const both: [CliProcess, string][] = [[first, `kid${round}`], [second, `parent${round}`]];
    for (const [p, name] of both) {
      await p.waitFor(is("reply"), 30_000, `round ${round} (gap ${gap} ms): ${name}'s reply`);
      await p.waitFor(is("connected", { peer: "anchor" }), 30_000, `round ${round}: ${name} → anchor`);
    }
    for (const [p] of both) p.kill("SIGINT");
    await Promise.all(both.map(([p]) => p.status));
  }
});

Deno.test("[maildir] a member who stops leaves the host's table with its next mail, not after --ttl", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  const host = w.host("host", hostAcct);
  const ann = w.peer("ann", w.account("ann"), [hostAcct], ["--timeout", "0"]);
  const bob = w.peer("bob", w.account("bob", "isp-b.test"), [hostAcct], ["--timeout", "0"]);
  await ann.waitFor(is("connected", { peer: "bob" }), 30_000, "ann ↔ bob");
  assert.deepEqual(await tableUsers(w, "host"), ["ann", "bob"]);
  bob.kill("SIGINT");
  await bob.status;
  const left = await host.waitFor(is("host_leave", { peer: "bob" }), 30_000, "the host hears bob leave");
  assert.equal(left.forgotten, true);
  assert.deepEqual(await tableUsers(w, "host"), ["ann"]);
  await ann.waitFor(
    (e) => e.event === "disconnected" && e.peer === "bob",
    30_000,
    "ann sees bob's link close",
  );
});

Deno.test("[maildir] the first person in waits five minutes, still reachable, and links when a friend comes", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const early = w.peer("early", w.account("early"), [hostAcct], ["--wait"]);
  await early.waitFor(is("waiting"), 30_000, "early says it waits");
  await new Promise((r) => setTimeout(r, 5 * 60_000));
  assert.ok(!early.events.some(is("error")), "no error while waiting");
  const late = w.peer("late", w.account("late", "isp-b.test"), [hostAcct]);
  await late.waitFor(is("connected", { peer: "early" }), 30_000, "late → early");
  await early.waitFor(is("connected", { peer: "late" }), 30_000, "early → late");
});
