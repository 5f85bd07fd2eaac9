/**
 * One room for the group, end to end with the bundled CLI: ann and cy never link (each blocks the
 * other, so neither dials nor accepts the other — a pair that cannot link), yet they chat through
 * bob, who runs only `join`, and dan, who chats. A line that reaches cy by several paths is shown
 * once, in order; dan leaving is announced and the room still carries lines through bob; a
 * latecomer's arrival is announced, and its own lines echo in room form even with --quiet.
 * And the first one in, at a terminal, waits for the others as long as it takes.
 */
import assert from "node:assert/strict";
import { type CliProcess, spawnCli } from "../../scripts/lib/cli_process.ts";
import { type Account, type World, world } from "../helpers/world.ts";
import { is } from "../helpers/events.ts";
import { personArgs } from "../helpers/people.ts";
import { terminal } from "../helpers/terminal.ts";
import { BUNDLE, OFFLINE_ENV } from "../../scripts/lib/cli_process.ts";

function chat(w: World, name: string, host: Account, extra: string[] = [], json = true): CliProcess {
  const common = w.common(w.account(name));
  return spawnCli(
    name,
    [
      "chat",
      ...(json ? common : common.filter((x) => x !== "--json")),
      "--user",
      name,
      "--via",
      host.address,
      "--listen",
      "127.0.0.1:0",
      "--timeout",
      "0",
      ...extra,
    ],
    w.env,
    undefined,
    { stdin: true },
  );
}

const lines = (p: CliProcess, from: string) =>
  p.events.filter(is("chat", { peer: from })).map((e) => String(e.text));

Deno.test("[maildir] chat reaches a member with no direct link through the others, once each, in order; leaves and joins are announced", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  // bob only forwards: his node carries the room with no chat attached.
  const bob = w.peer("bob", w.account("bob"), [hostAcct], ["--timeout", "0"]);
  await bob.waitFor(is("request_sent"), 30_000, "bob asking");
  await using ann = chat(w, "ann", hostAcct, ["--block", "cy"]);
  await using dan = chat(w, "dan", hostAcct);
  await using cy = chat(w, "cy", hostAcct, ["--block", "ann"]);

  // Everyone is in everyone's room; ann and cy through the others.
  for (
    const [p, others] of [[ann, ["bob", "cy", "dan"]], [cy, ["ann", "bob", "dan"]], [dan, [
      "ann",
      "bob",
      "cy",
    ]]] as const
  ) {
    for (const o of others) await p.waitFor(is("joined", { peer: o }), 30_000, `${o} in ${p.name}'s room`);
  }
  assert.equal(ann.events.find(is("joined", { peer: "cy" }))?.direct, false);
  assert.equal(cy.events.find(is("joined", { peer: "ann" }))?.direct, false);

  // cy's lines reach ann through bob and dan (two paths, and bob–dan around): each shown once, in order.
  const said = Array.from({ length: 10 }, (_, i) => `cy line ${i}`);
  for (const l of said) await cy.input(`${l}\n`);
  await ann.waitForCount(is("chat", { peer: "cy" }), said.length, 20_000, "cy's ten lines at ann");
  await dan.waitForCount(is("chat", { peer: "cy" }), said.length, 20_000, "cy's ten lines at dan");
  // A marker said after them: any late copy of the ten would have come before it on its path.
  await cy.input("over\n");
  await ann.waitFor(is("chat", { text: "over" }), 20_000, "cy's marker at ann");
  await dan.waitFor(is("chat", { text: "over" }), 20_000, "cy's marker at dan");
  assert.deepEqual(lines(ann, "cy"), [...said, "over"]);
  assert.deepEqual(lines(dan, "cy"), [...said, "over"]);
  const atAnn = ann.events.filter(is("chat", { peer: "cy" }));
  assert.ok(atAnn.every((e) => e.via === "bob" || e.via === "dan"), JSON.stringify(atAnn[0]));
  const ms = atAnn.map((e) => Date.parse(String(e.time)) - Date.parse(String(e.sent)));
  console.log(
    `cy → ann over 2 hops: median ${ms.sort((a, b) => a - b)[ms.length >> 1]} ms, max ${ms.at(-1)} ms`,
  );
  // Our own lines echo in room form (an event of their own, so scripts can tell them apart).
  assert.equal(cy.events.filter(is("said", { peer: "cy" })).length, said.length + 1);

  // ann and cy never linked, in either direction.
  assert.ok(!ann.events.some(is("connected", { peer: "cy" })));
  assert.ok(!cy.events.some(is("connected", { peer: "ann" })));

  // dan leaves: ann and cy are told, and the room still carries lines through bob alone.
  await dan.endInput();
  assert.equal((await dan.status).code, 0, dan.stderr.join("\n"));
  // Its goodbye went round the room before its links closed.
  const left = await ann.waitFor(is("left", { peer: "dan" }), 20_000, "ann told dan left");
  assert.equal(left.reason, "left the group");
  await cy.waitFor(is("left", { peer: "dan", reason: "left the group" }), 20_000, "cy told dan left");
  await ann.input("just us and bob now\n");
  const heard = await cy.waitFor(is("chat", { text: "just us and bob now" }), 20_000, "ann's line at cy");
  assert.equal(heard.peer, "ann");
  assert.equal(heard.via, "bob");
  console.log(
    `ann → cy through bob (join only): ${Date.parse(String(heard.time)) - Date.parse(String(heard.sent))} ms`,
  );

  // A latecomer in human mode with --quiet: its arrival is announced, it hears lines and its own.
  await using eve = chat(w, "eve", hostAcct, ["--quiet"], false);
  await ann.waitFor(is("joined", { peer: "eve" }), 30_000, "eve in ann's room");
  await cy.waitFor(is("joined", { peer: "eve" }), 30_000, "eve in cy's room");
  await cy.input("hi eve\n");
  await eve.input("hello all\n");
  await ann.waitFor(is("chat", { peer: "eve" }), 20_000, "eve's line at ann");
  const until = Date.now() + 20_000;
  const seen = () => eve.text.join("\n");
  while (
    !(/<cy( via \w+)?> hi eve$/m.test(seen()) && /<eve> hello all$/m.test(seen())) && Date.now() < until
  ) {
    await Promise.race([eve.status, new Promise((r) => setTimeout(r, 100))]);
  }
  assert.match(
    seen(),
    /^\d\d:\d\d:\d\d <cy( via \w+)?> hi eve$/m,
    `--quiet never hides a chat line:\n${seen()}\n${eve.stderr.join("\n")}`,
  );
  assert.match(seen(), /^\d\d:\d\d:\d\d <eve> hello all$/m, "our own line in room form");
  assert.ok(!/joined/.test(seen()), `--quiet hides the notices:\n${seen()}`);
});

Deno.test("[maildir] a member the host still lists but nobody reaches is named in the chat as not reachable", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  // zed vanishes without a word (no goodbye mail): the host still lists it.
  const zed = w.peer("zed", w.account("zed"), [hostAcct], ["--timeout", "0"]);
  await zed.waitFor(is("reply"), 30_000, "zed's reply");
  zed.kill("SIGKILL");
  await zed.status;
  await using ann = chat(w, "ann", hostAcct, ["--dial-window", "3"]);
  const e = await ann.waitFor(is("unreachable", { peer: "zed" }), 60_000, "zed named unreachable");
  assert.match(String(e.reason), /^zed is in the group but not reachable: .*the connection was refused\)$/);
  assert.ok(ann.events.some(is("dial_failed", { peer: "zed" })));
});

Deno.test("[tty] the first one in at a terminal waits with no --timeout, says no one else is online yet, then chats with whoever comes", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  // What a person types: no --timeout (the helper's --timeout 60 is left out).
  const args = personArgs(w, "ann", hostAcct, ["chat"], w.account("ann"));
  const at = args.indexOf("--timeout");
  args.splice(at, 2);
  await using ann = await terminal([Deno.execPath(), "run", "-A", "--unstable-net", BUNDLE, ...args], {
    width: 110,
    height: 30,
    env: { ...OFFLINE_ENV, ...w.env },
  });
  await ann.waitFor(/answered: nobody else yet/, 30_000, "ann's host answer");
  await ann.waitFor(
    /no one else is online yet \(host@game\.test answered 1\d s ago\); waiting for them/,
    30_000,
  );
  await using bob = chat(w, "bob", hostAcct);
  await ann.waitFor(/\* bob joined$/m, 30_000, "bob in ann's room");
  await ann.type("hi bob");
  await ann.keys("Enter");
  const screen = await ann.waitFor(/^\d\d:\d\d:\d\d <ann> hi bob$/m, 10_000, "ann's own line in room form");
  assert.equal(screen.match(/hi bob/g)?.length, 1, `the typed line is replaced by its room form:\n${screen}`);
  await bob.waitFor(is("chat", { peer: "ann", text: "hi bob" }), 20_000, "ann's line at bob");
  await bob.input("hi ann\n");
  await ann.waitFor(/^\d\d:\d\d:\d\d <bob> hi ann$/m, 20_000, "bob's line at ann");
  await ann.keys("C-d");
  assert.equal(await ann.exit(10_000), 0, await ann.screen());
});
