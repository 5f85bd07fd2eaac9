/**
 * Tunnels that find their service, end to end with the bundled CLI on the maildir spool: members
 * expose ports, and `tunnel --local` reaches the member that exposes each one without --to.
 */
import assert from "node:assert/strict";
import { memberApp as app, world } from "../helpers/world.ts";
import { ask, taggedEcho } from "../helpers/tagged_echo.ts";
import { is } from "../helpers/events.ts";

Deno.test("[maildir] tunnel --local without --to reaches the member that exposes each port, two tunnels in one command", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  await using annService = taggedEcho("ann");
  await using carolService = taggedEcho("carol");
  await using ann = app(w, "ann", hostAcct, ["tunnel", "--expose", String(annService.port)]);
  await ann.waitFor(is("waiting"), 30_000, "ann waiting");
  await using carol = app(w, "carol", hostAcct, ["tunnel", "--expose", String(carolService.port)]);
  await carol.waitFor(is("connected", { peer: "ann" }), 30_000, "carol linked to ann");
  // Bob names only ports; which member runs each is for the tunnels to find out.
  await using bob = app(w, "bob", hostAcct, [
    "tunnel",
    "--local",
    `0:${annService.port}`,
    "--local",
    `0:${carolService.port}`,
  ]);
  const toAnn = await bob.waitFor(
    is("tunnel_listening", { remote: annService.port }),
    30_000,
    "bob's first port",
  );
  const toCarol = await bob.waitFor(
    is("tunnel_listening", { remote: carolService.port }),
    30_000,
    "bob's second port",
  );
  await bob.waitFor(is("tunnel_target", { peer: "ann", port: annService.port }), 30_000, "ann found");
  await bob.waitFor(is("tunnel_target", { peer: "carol", port: carolService.port }), 30_000, "carol found");
  assert.equal(await ask(Number(toAnn.port), "hi"), "ann:hi");
  assert.equal(await ask(Number(toCarol.port), "hi"), "carol:hi");

  // `peers` shows what each member exposes.
  const peers = await w.run(["peers", ...w.common(w.account("bob")), "--user", "bob"]);
  assert.equal(peers.code, 0, peers.stderr);
  const listed = peers.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const exposes = Object.fromEntries(listed.map((p) => [p.peer, p.exposes]));
  assert.deepEqual(exposes, {
    ann: [{ proto: "tcp", port: annService.port }],
    carol: [{ proto: "tcp", port: carolService.port }],
  });
  assert.ok(listed.every((p) => typeof p.rtt_ms === "number" && p.rtt_ms >= 0));

  // `ping` measures round trips to a member over its link.
  const ping = await w.run(["ping", "ann", ...w.common(w.account("bob")), "--user", "bob", "--count", "2"]);
  assert.equal(ping.code, 0, ping.stderr);
  const rtts = ping.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(rtts.map((e) => e.event), ["rtt", "rtt", "ping_summary"]);
  assert.equal(rtts[2].answered, 2);
  const nobody = await w.run(["ping", "zed", ...w.common(w.account("bob")), "--user", "bob"]);
  assert.equal(nobody.code, 3, nobody.stderr);
  assert.match(nobody.stderr, /zed is not linked to this node/);
});
