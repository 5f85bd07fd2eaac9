import assert from "node:assert/strict";
import { RoomNet } from "../helpers/room_net.ts";
import {
  decodeFrame,
  encodeFrame,
  MAX_HOPS,
  type RoomFrame,
  type SayFrame,
} from "../../src/node/room_wire.ts";
import { GAP_WAIT_MS, MAX_ORIGINS, MAX_RUNS, ORDER_WINDOW, SenderOrder } from "../../src/node/room_order.ts";
import { ROOM_BURST, ROOM_FRAMES_PER_SECOND, UNREACHABLE_GRACE_MS } from "../../src/node/room.ts";
import { HERE_EXPIRE_MS, Roster } from "../../src/node/room_roster.ts";
import { TokenBucket } from "../../src/node/token_bucket.ts";

const RUN = "0123456789abcdef";
const say = (o: string, s: number, t = `line ${s}`, h = MAX_HOPS): SayFrame => ({
  k: "say",
  o,
  r: RUN,
  h,
  at: 1_000_000,
  s,
  t,
});

Deno.test("room frames round-trip through their wire form, and a frame with a bad field is dropped whole", () => {
  const frames: RoomFrame[] = [
    say("ann", 7, "hi"),
    { k: "here", o: "bob", r: RUN, h: 3, at: 5, since: 4, v: 2, l: ["ann", "cy"], n: 0, bye: false },
    { k: "here", o: "bob", r: RUN, h: 0, at: 5, since: 4, v: 3, l: [], n: 12, bye: true },
  ];
  for (const f of frames) assert.deepEqual(decodeFrame(JSON.parse(JSON.stringify(encodeFrame(f)))), f);
  const good = encodeFrame(say("ann", 1));
  for (
    const bad of [
      { ...good, o: "" },
      { ...good, o: "ann\u001b[2J" },
      { ...good, r: "xyz" },
      { ...good, h: MAX_HOPS + 1 },
      { ...good, s: -1 },
      { ...good, s: 1.5 },
      { ...good, t: 5 },
      { ...good, t: "x".repeat(16 * 1024 + 1) },
      { ...good, k: "shout" },
      { ...good, at: "now" },
      { k: "here", o: "bob", r: RUN, h: 1, at: 5, since: 4, v: 1, n: 0, l: ["ok", 7] },
      { k: "here", o: "bob", r: RUN, h: 1, at: 5, since: 4, v: 1, n: 0, l: Array(65).fill("a") },
      { k: "here", o: "bob", r: RUN, h: 1, at: 5, since: 4, v: 1, l: [] },
      null,
      [],
      "say",
    ]
  ) assert.equal(decodeFrame(bad), undefined, JSON.stringify(bad).slice(0, 80));
});

Deno.test("a line said at one end of a chain of three reaches the other end through the middle, which needs no chat of its own", async () => {
  const net = new RoomNet();
  const ann = net.member("ann");
  const bob = net.member("bob", { listening: false }); // `join` without `chat`: it only forwards
  const cy = net.member("cy");
  net.link(ann, bob);
  net.link(bob, cy);
  await net.settle();
  ann.room.say("anyone up for a round?");
  await net.settle();
  assert.deepEqual(cy.lines(), ["ann via bob: anyone up for a round?"]);
  cy.room.say("me!");
  await net.settle();
  assert.deepEqual(ann.lines(), ["cy via bob: me!"]);
  // Our own line echoes in room form.
  assert.deepEqual(
    ann.heard.filter((e) => e.event === "said").map((e) => [e.peer, e.text]),
    [["ann", "anyone up for a round?"]],
  );
});

Deno.test("a line that reaches a member by several paths is shown there once", async () => {
  const net = new RoomNet();
  const [ann, bob, cy, dan] = ["ann", "bob", "cy", "dan"].map((n) => net.member(n));
  // Every pair but ann–cy: ann's lines reach cy through bob, through dan, and around.
  net.link(ann, bob);
  net.link(ann, dan);
  net.link(bob, dan);
  net.link(bob, cy);
  net.link(dan, cy);
  await net.settle();
  for (let i = 0; i < 20; i++) ann.room.say(`line ${i}`);
  await net.settle();
  const got = cy.lines().map((l) => l.replace(/ via \w+/, ""));
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `ann: line ${i}`));
  for (const m of [bob, dan]) assert.equal(m.lines().length, 20, `${m.name} heard each line once`);
});

Deno.test("lines of one sender are shown in the order said, even when a later one comes first", () => {
  let t = 0;
  const order = new SenderOrder({ now: () => t });
  const shown: number[] = [];
  const take = (s: number) => {
    const r = order.accept({ frame: say("ann", s), via: "bob" });
    shown.push(...r.due.map((a) => a.frame.s));
    return r.verdict;
  };
  assert.equal(take(10), "new"); // the first line heard of a run starts it
  assert.equal(take(12), "new");
  assert.equal(take(13), "new");
  assert.deepEqual(shown, [10], "12 and 13 wait for 11");
  assert.equal(take(11), "new");
  assert.deepEqual(shown, [10, 11, 12, 13]);
  // A gap that never fills is waited on, then skipped; the missing line coming later is dropped.
  take(15);
  t += GAP_WAIT_MS - 1;
  assert.deepEqual(order.due(), []);
  t += 1;
  assert.deepEqual(order.due().map((a) => a.frame.s), [15]);
  assert.equal(take(14), "duplicate");
});

Deno.test("a replayed line is dropped, an id far ahead is refused, and forged senders and runs cannot grow memory", () => {
  const order = new SenderOrder({ now: () => 0 });
  assert.equal(order.accept({ frame: say("ann", 0), via: "bob" }).verdict, "new");
  assert.equal(order.accept({ frame: say("ann", 0), via: "cy" }).verdict, "duplicate");
  assert.equal(order.accept({ frame: say("ann", ORDER_WINDOW + 1), via: "bob" }).verdict, "too_far");
  // Held lines are bounded by the window whatever a member sends.
  for (let s = 2; s < 10_000; s++) order.accept({ frame: say("ann", s), via: "bob" });
  assert.ok(order.size.held < ORDER_WINDOW, `held ${order.size.held}`);
  for (let i = 0; i < 5_000; i++) {
    order.accept({ frame: { ...say(`forged${i}`, 0) }, via: "bob" });
    order.accept({ frame: { ...say("ann", 0), r: i.toString(16).padStart(16, "0") }, via: "bob" });
  }
  assert.ok(order.size.origins <= MAX_ORIGINS, `origins ${order.size.origins}`);
  assert.ok(order.size.runs <= MAX_ORIGINS * MAX_RUNS, `runs ${order.size.runs}`);
});

Deno.test("a neighbour cannot put words in the mouth of a member we are linked to", async () => {
  const net = new RoomNet();
  const [ann, bob, cy] = ["ann", "bob", "cy"].map((n) => net.member(n));
  net.link(ann, bob);
  net.link(ann, cy);
  await net.settle();
  ann.room.receive(encodeFrame(say("cy", 0, "I give up, bob wins")), "bob");
  await net.settle();
  assert.deepEqual(ann.lines(), []);
  // cy's own link speaks for cy.
  ann.room.receive(encodeFrame({ ...say("cy", 0, "gg"), r: "aaaaaaaaaaaaaaaa" }), "cy");
  assert.deepEqual(ann.lines(), ["cy: gg"]);
});

Deno.test("a member flooding the room is held to the bucket's rate; frames past their hops are not passed on", async () => {
  const net = new RoomNet();
  const [ann, bob, cy] = ["ann", "bob", "cy"].map((n) => net.member(n));
  net.link(ann, bob);
  net.link(bob, cy);
  await net.settle();
  const before = net.sent;
  for (let s = 0; s < 3 * ROOM_BURST; s++) bob.room.receive(encodeFrame(say("mallory", s, "spam")), "ann");
  // ann's link is the one flooding bob: after the burst, nothing more is taken from it this second.
  await net.settle();
  // The burst, less the presence ann sent over that link before.
  const took = bob.lines().length;
  assert.ok(took <= ROOM_BURST && took >= ROOM_BURST - 2, `took ${took}`);
  assert.equal(net.sent - before, took, "bob passed on only what it took");
  net.after(1_000);
  for (let s = took; s < took + ROOM_BURST; s++) {
    bob.room.receive(encodeFrame(say("mallory", s, "spam")), "ann");
  }
  await net.settle();
  assert.equal(bob.lines().length, took + ROOM_FRAMES_PER_SECOND, "then the rate, no more");

  const sent = net.sent;
  bob.room.receive(encodeFrame({ ...say("zed", 0, "last hop"), h: 0 }), "cy");
  await net.settle();
  assert.deepEqual(bob.lines().at(-1), "zed via cy: last hop");
  assert.equal(net.sent, sent, "a frame with no hops left is shown but not passed on");

  const bucket = new TokenBucket(2, 3, () => 0);
  assert.deepEqual([1, 2, 3, 4].map(() => bucket.take()), [true, true, true, false]);
});

Deno.test("who is in the room: a member reached through others joins, and leaves when its last path goes or it says goodbye", async () => {
  const net = new RoomNet();
  const [ann, bob, cy] = ["ann", "bob", "cy"].map((n) => net.member(n));
  net.link(ann, bob);
  const bc = net.link(bob, cy);
  await net.settle();
  const notices = () =>
    ann.heard.filter((e) => e.event === "joined" || e.event === "left").map((e) =>
      `${e.peer} ${e.event}${
        e.event === "joined" ? (e.direct ? " direct" : " through others") : ` (${e.reason})`
      }`
    );
  assert.deepEqual(notices(), ["bob joined direct", "cy joined through others"]);
  assert.deepEqual(ann.room.members, ["bob", "cy"]);
  bc.cut("the link timed out");
  await net.settle();
  assert.deepEqual(notices().slice(2), ["cy left (no longer reachable)"]);
  assert.deepEqual(ann.room.members, ["bob"]);

  // cy comes back through bob, then leaves for good.
  net.link(bob, cy);
  await net.settle();
  assert.deepEqual(notices().slice(3), ["cy joined through others"]);
  cy.room.close();
  await net.settle();
  assert.deepEqual(notices().slice(4), ["cy left (left the group)"]);
  const last = ann.heard.filter((e) => e.event === "room").at(-1);
  assert.deepEqual(last?.members, ["bob"]);
});

Deno.test("a newcomer linked to one member learns everyone already in the room", async () => {
  const net = new RoomNet();
  const [ann, bob, cy, dan] = ["ann", "bob", "cy", "dan"].map((n) => net.member(n));
  net.link(ann, bob);
  net.link(bob, cy);
  await net.settle();
  net.link(dan, cy);
  await net.settle();
  assert.deepEqual(dan.room.members, ["ann", "bob", "cy"]);
  assert.deepEqual(ann.room.members, ["bob", "cy", "dan"]);
});

Deno.test("renewed presences keep a member reached through others in the room as time passes", async () => {
  const net = new RoomNet();
  const [ann, bob, cy] = ["ann", "bob", "cy"].map((n) => net.member(n));
  net.link(ann, bob);
  net.link(bob, cy);
  await net.settle();
  assert.deepEqual(ann.room.members, ["bob", "cy"]);
  // Renewals keep the room whole while time passes.
  for (let i = 0; i < 5; i++) {
    net.after(HERE_EXPIRE_MS / 3);
    await net.settle();
  }
  assert.deepEqual(ann.room.members, ["bob", "cy"]);
});

Deno.test("lines said before anyone is linked go to the first member who comes", async () => {
  const net = new RoomNet();
  const [ann, bob] = ["ann", "bob"].map((n) => net.member(n));
  ann.room.say("first in, waiting");
  await net.settle();
  net.link(ann, bob);
  await net.settle();
  assert.deepEqual(bob.lines(), ["ann: first in, waiting"]);
});

Deno.test("a member of the group no dial reached is named unreachable unless the room brings it", async () => {
  const net = new RoomNet();
  const [ann, bob, cy] = ["ann", "bob", "cy"].map((n) => net.member(n));
  net.link(ann, bob);
  net.link(bob, cy);
  await net.settle();
  ann.room.unreachable("cy", "timed out"); // in the room through bob: nothing to say
  ann.room.unreachable("zed", "connection refused");
  net.after(UNREACHABLE_GRACE_MS - 1);
  const said = () => ann.heard.filter((e) => e.event === "unreachable").map((e) => e.peer);
  assert.deepEqual(said(), []);
  net.after(1);
  assert.deepEqual(said(), ["zed"]);
  const e = ann.heard.find((e) => e.event === "unreachable");
  assert.match(
    String(e?.reason),
    /^zed is in the group but not reachable: neither we nor anyone in the room is linked to it \(connection refused\)$/,
  );
  net.after(UNREACHABLE_GRACE_MS);
  assert.deepEqual(said(), ["zed"], "said once");
});

Deno.test("control characters in a line never reach the terminal", async () => {
  const net = new RoomNet();
  const [ann, bob] = ["ann", "bob"].map((n) => net.member(n));
  net.link(ann, bob);
  await net.settle();
  ann.room.receive(encodeFrame(say("bob", 0, "hi\u001b[2J\n12:00:00 <cy> fake")), "bob");
  assert.deepEqual(ann.lines(), ["bob: hi[2J12:00:00 <cy> fake"]);
});

Deno.test("a presence never renewed is forgotten: its member leaves the room even while a neighbour still lists it", () => {
  let t = 0;
  const roster = new Roster({ self: "ann", now: () => t });
  const here = (o: string, v: number, l: string[], bye = false) => ({
    k: "here" as const,
    o,
    r: RUN,
    h: 3,
    at: t,
    since: 1,
    v,
    l,
    n: 0,
    bye,
  });
  roster.setDirect(["bob"]);
  assert.ok(roster.admit(here("bob", 1, ["ann", "cy"])));
  assert.ok(roster.admit(here("cy", 1, ["bob"])));
  assert.deepEqual(roster.members(), ["bob", "cy"]);
  assert.equal(roster.admit(here("cy", 1, ["bob"])), false, "the same version again is not news");
  assert.equal(roster.admit(here("cy", 0, [])), false, "nor an older one");
  // A link only one end claims does not count: cy cannot pull dan in alone.
  assert.ok(roster.admit(here("cy", 2, ["bob", "dan"])));
  assert.deepEqual(roster.members(), ["bob", "cy"]);
  // A new run of a member is taken over its own link even if its clock went back.
  assert.equal(roster.admit({ ...here("bob", 0, ["ann", "cy"]), r: "ffffffffffffffff", since: 0 }), false);
  assert.ok(roster.admit({ ...here("bob", 0, ["ann", "cy"]), r: "ffffffffffffffff", since: 0 }, true));
  t += HERE_EXPIRE_MS - 1;
  assert.ok(roster.admit(here("bob", 2, ["ann", "cy"])));
  t += 1;
  roster.expire();
  assert.deepEqual(roster.members(), ["bob"], "cy's presence expired; bob's was renewed");
});

Deno.test("a line said before its member linked to us still comes through others; after, only that member's link speaks for it", async () => {
  const net = new RoomNet();
  const [ann, bob, cy] = ["ann", "bob", "cy"].map((n) => net.member(n));
  const cyRun = "63".repeat(8); // RoomNet's runs: the name's first letter, repeated
  net.link(ann, bob);
  net.link(bob, cy);
  await net.settle();
  cy.room.say("said while only bob linked us"); // on its way through bob…
  net.link(ann, cy); // …while ann and cy link directly
  await net.settle();
  assert.deepEqual(ann.lines().map((l) => l.replace(/ via bob/, "")), ["cy: said while only bob linked us"]);
  // bob forging cy's next line (right run, next number) is refused: cy's own link says it.
  ann.room.receive(encodeFrame({ ...say("cy", 1, "bob is right"), r: cyRun }), "bob");
  cy.room.say("real line");
  await net.settle();
  assert.deepEqual(ann.lines().slice(1), ["cy: real line"]);
});

Deno.test("in a full mesh a line costs one frame per member; in a chain, one per link", async () => {
  for (const [n, full, frames] of [[6, true, 5], [12, true, 11], [5, false, 4]] as const) {
    const net = new RoomNet();
    const ms = Array.from({ length: n }, (_, i) => net.member(`m${String(i).padStart(2, "0")}`));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) if (full || j === i + 1) net.link(ms[i], ms[j]);
    }
    await net.settle();
    const before = net.sent;
    ms[0].room.say("x");
    await net.settle();
    assert.equal(net.sent - before, frames, `${n} members, ${full ? "full mesh" : "chain"}`);
    for (const m of ms.slice(1)) {
      assert.deepEqual(m.lines().map((l) => l.replace(/ via \w+/, "")), ["m00: x"]);
    }
  }
});
