/**
 * One node per person, end to end: a running `join` serves every app of the same config through
 * its control socket — chat, a tunnel and a transfer at once over the same links — and a second
 * node for that config is refused with one sentence naming the first.
 */
import assert from "node:assert/strict";
import { type CliProcess, spawnCli } from "../../scripts/lib/cli_process.ts";
import { type Account, type World, world } from "../helpers/world.ts";
import { is } from "../helpers/events.ts";

/** `mailmeet ARGS` for an account that already has a node: the same config as its join. */
function app(w: World, name: string, a: Account, host: Account, args: string[], stdin = false): CliProcess {
  return spawnCli(
    `${name}:${args[0]}`,
    [
      args[0],
      ...w.common(a),
      "--user",
      name,
      "--via",
      host.address,
      "--listen",
      "127.0.0.1:0",
      ...args.slice(1),
    ],
    { XDG_CONFIG_HOME: `${w.dir}/config`, XDG_DATA_HOME: `${w.dir}/data` },
    undefined,
    { stdin },
  );
}

Deno.test("[maildir] a second node for the same config is refused, naming the running one", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const bob = w.account("bob");
  const first = w.peer("bob", bob, [hostAcct], ["--timeout", "0"]);
  await first.waitFor(is("request_sent"), 30_000, "bob's first node asking");
  const second = await w.run([
    "join",
    ...w.common(bob),
    "--user",
    "bob",
    "--via",
    hostAcct.address,
    "--listen",
    "127.0.0.1:0",
  ]);
  assert.equal(second.code, 1, second.stderr);
  assert.match(second.stderr, /already runs: pid \d+, `mailmeet join` since/);
  assert.ok(!second.stderr.includes("    at "), "one sentence, no stack trace");
  assert.ok(!first.events.some(is("error")), "the first node is undisturbed");
});

Deno.test("[maildir] chat, a tunnel and a transfer run at once on the links of one join per person", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const annAcct = w.account("ann");
  const bobAcct = w.account("bob", "isp-b.test");
  const ann = w.peer("ann", annAcct, [hostAcct], ["--timeout", "0"]);
  await ann.waitFor(is("request_sent"), 30_000, "ann asking");
  const bob = w.peer("bob", bobAcct, [hostAcct], ["--timeout", "0"]);
  await bob.waitFor(is("connected", { peer: "ann" }), 30_000, "bob linked to ann");
  await ann.waitFor(is("connected", { peer: "bob" }), 30_000, "ann linked to bob");

  // peers asks the running node.
  const peers = await w.run(["peers", ...w.common(bobAcct), "--user", "bob"]);
  assert.equal(peers.code, 0, peers.stderr);
  const listed = peers.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(listed.map((p) => [p.event, p.peer, p.path]), [["peer", "ann", "direct"]]);

  // A TCP echo service on ann's side, reached from bob's side through the tunnel.
  const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const echoPort = (echo.addr as Deno.NetAddr).port;
  const serving = (async () => {
    for await (const c of echo) {
      (async () => {
        const buf = new Uint8Array(4096);
        for (let n = await c.read(buf); n !== null; n = await c.read(buf)) await c.write(buf.subarray(0, n));
        c.close();
      })().catch(() => {});
    }
  })();
  await using expose = app(w, "ann", annAcct, hostAcct, ["tunnel", "--expose", String(echoPort)]);
  await using local = app(w, "bob", bobAcct, hostAcct, ["tunnel", "--local", "0", "--to", "ann"]);
  const listening = await local.waitFor(is("tunnel_listening"), 30_000, "bob's tunnel port");
  await expose.waitFor(is("tunnel_exposed"), 30_000, "ann's exposed port");

  // Chat on both sides at the same time.
  await using annChat = app(w, "ann", annAcct, hostAcct, ["chat"], true);
  await using bobChat = app(w, "bob", bobAcct, hostAcct, ["chat"], true);
  await annChat.waitFor(is("joined", { peer: "bob" }), 30_000, "bob in ann's room");
  await bobChat.waitFor(is("joined", { peer: "ann" }), 30_000, "ann in bob's room");

  // A transfer while the chat and the tunnel run.
  const file = `${w.dir}/notes.txt`;
  await Deno.writeTextFile(file, "level 3 spawn points\n".repeat(1000));
  await using receive = app(w, "ann", annAcct, hostAcct, ["receive", "--out", `${w.dir}/in`, "--yes"]);
  await receive.waitFor(is("waiting_offer"), 30_000, "ann ready to receive");
  await using send = app(w, "bob", bobAcct, hostAcct, ["send", file, "--to", "ann"]);

  await bobChat.input("anyone up for a round?\n");
  const heard = await annChat.waitFor(is("chat", { peer: "bob" }), 20_000, "bob's line at ann");
  assert.equal(heard.text, "anyone up for a round?");
  await annChat.input("yes, starting the server\n");
  await bobChat.waitFor(is("chat", { peer: "ann" }), 20_000, "ann's line at bob");
  // The room shows a member's latency on demand (and says nothing of it to the others).
  await bobChat.input("/ping ann\n");
  const latency = await bobChat.waitFor(is("latency", { peer: "ann" }), 20_000, "ann's round trip");
  assert.equal(typeof latency.rtt_ms, "number");
  assert.equal(latency.path, "direct");

  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(listening.port) });
  await conn.write(new TextEncoder().encode("ping through the node"));
  const buf = new Uint8Array(64);
  let got = "";
  while (got.length < 21) {
    const n = await conn.read(buf);
    if (n === null) break;
    got += new TextDecoder().decode(buf.subarray(0, n));
  }
  assert.equal(got, "ping through the node");
  conn.close();

  assert.equal((await send.status).code, 0, send.stderr.join("\n"));
  assert.equal((await receive.status).code, 0, receive.stderr.join("\n"));
  assert.equal(await Deno.readTextFile(`${w.dir}/in/notes.txt`), await Deno.readTextFile(file));
  // Every app used the running nodes' links: no node made a second link, and none was lost.
  assert.equal(bob.events.filter(is("connected")).length, 1);
  assert.ok(!bob.events.some(is("disconnected")), JSON.stringify(bob.events.filter(is("disconnected"))));
  for (const p of [expose, local, annChat, bobChat]) p.kill("SIGTERM");
  echo.close();
  await serving.catch(() => {});
});

Deno.test("[maildir] a group of six where each was told of one other completes to a full mesh over its links", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  // The host lists (and introduces) only the most recent member: mail makes a chain, no more.
  w.host("host", hostAcct, ["--reply-limit", "1"]);
  const names = ["p1", "p2", "p3", "p4", "p5", "p6"];
  const peers: CliProcess[] = [];
  for (const name of names) {
    const p = w.peer(name, w.account(name), [hostAcct], ["--timeout", "0"]);
    await p.waitFor(is("reply"), 30_000, `${name}'s reply`);
    peers.push(p);
  }
  const t0 = Date.now();
  // Distinct members: a link that drops and comes back at once says "connected" twice for one.
  const linkedTo = (p: CliProcess) => new Set(p.events.filter(is("connected")).map((e) => e.peer));
  for (const [i, p] of peers.entries()) {
    await p.waitFor(
      () => linkedTo(p).size === names.length - 1,
      30_000,
      `${names[i]} linked to all five others`,
    );
  }
  const ms = Date.now() - t0;
  console.log(`full mesh of ${names.length} in ${ms} ms after the last reply`);
  for (const [i, p] of peers.entries()) {
    assert.deepEqual([...linkedTo(p)].sort(), names.filter((n) => n !== names[i]));
  }
});
