/**
 * The rendezvous, end to end: the bundled CLI as separate processes, on the maildir spool and over
 * the real Postfix + Dovecot by IMAP (IDLE) and by POP3 (polling). Patent claims 1–18 as behaviour.
 */
import assert from "node:assert/strict";
import { type Transport, world } from "../helpers/world.ts";
import { is } from "../helpers/events.ts";

const TRANSPORTS: Transport[] = ["maildir", "imap", "pop3"];

for (const transport of TRANSPORTS) {
  Deno.test(`[${transport}] peers meet through the host: empty formal reply, requester excluded, recent first, friends first, blocked never`, async () => {
    await using w = await world(transport);
    const hostAcct = w.account("host", "game.test");
    const host = w.host("host", hostAcct);

    // 【0045】: an empty table still yields a formal reply, and the peer waits for dials.
    const bob = w.peer("bob", w.account("bob", "isp-b.test"), [hostAcct]);
    const bobReply = await bob.waitFor(is("reply"), 30_000, "bob's reply");
    assert.equal(bobReply.peers, 0);
    await bob.waitFor(is("waiting"), 10_000, "bob waiting");

    const alice = w.peer("alice", w.account("alice"), [hostAcct]);
    assert.equal((await alice.waitFor(is("reply"), 30_000, "alice's reply")).peers, 1);
    await alice.waitFor(is("connected", { peer: "bob", direction: "out" }), 20_000, "alice → bob");
    // 【0029】【0036】: the one who waited is dialed by the later peer.
    await bob.waitFor(is("connected", { peer: "alice", direction: "in" }), 20_000, "bob ← alice");

    // Most recent first would be alice; --friend bob puts bob first.
    const carol = w.peer("carol", w.account("carol"), [hostAcct], ["--friend", "bob"]);
    assert.equal((await carol.waitFor(is("reply"), 30_000, "carol's reply")).peers, 2);
    await carol.waitForCount(is("connected"), 2, 20_000, "carol linked to both");
    assert.deepEqual(carol.events.filter(is("dial")).map((e) => e.peer), ["bob", "alice"]);

    // Without friends: most recent first (carol, then alice); --block bob: never dialed.
    const dave = w.peer("dave", w.account("dave", "isp-b.test"), [hostAcct], ["--block", "bob"]);
    assert.equal((await dave.waitFor(is("reply"), 30_000, "dave's reply")).peers, 3);
    await dave.waitForCount(is("connected"), 2, 20_000, "dave linked to two");
    assert.deepEqual(dave.events.filter(is("dial")).map((e) => e.peer), ["carol", "alice"]);

    // 【0043】: nobody is ever offered itself.
    for (const p of [bob, alice, carol, dave]) {
      assert.ok(!p.events.some((e) => e.event === "dial" && e.peer === p.name), `${p.name} dialed itself`);
    }
    assert.equal(host.events.filter(is("host_reply")).length, 4);
  });

  Deno.test(`[${transport}] a peer that vanished is reported by user id, flagged, and offered last`, async () => {
    await using w = await world(transport);
    const hostAcct = w.account("host", "game.test");
    const host = w.host("host", hostAcct);
    const bob = w.peer("bob", w.account("bob", "isp-b.test"), [hostAcct]);
    await bob.waitFor(is("waiting"), 30_000, "bob waiting");
    const alice = w.peer("alice", w.account("alice"), [hostAcct]);
    await alice.waitFor(is("connected", { peer: "bob" }), 30_000, "alice → bob");

    bob.kill("SIGKILL");
    await bob.status;

    // 【0034】【0035】【0047】: the dial fails, the host hears it by user id and flags bob.
    // --dial-window: how long to keep trying a peer behind a NAT that may still be on its way.
    const erin = w.peer("erin", w.account("erin"), [hostAcct], ["--dial-timeout", "2", "--dial-window", "3"]);
    await erin.waitFor(is("dial_failed", { peer: "bob" }), 30_000, "erin failing to reach bob");
    await erin.waitFor(is("failure_sent", { peer: "bob" }), 10_000, "erin reporting bob");
    await host.waitFor(is("host_failure", { peer: "bob", flagged: true }), 30_000, "host flagging bob");
    await erin.waitFor(is("connected", { peer: "alice" }), 10_000, "erin → alice");

    const table = await w.run(["table", "--db", `${w.dir}/host.db`, "--json"]);
    assert.equal(table.code, 0, table.stderr);
    const rows = table.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(rows.find((r) => r.user === "bob")?.flagged, true);
    assert.equal(rows.find((r) => r.user === "alice")?.flagged, false);

    // The flag travels in later replies: frank tries bob last although bob is not the oldest.
    const frank = w.peer("frank", w.account("frank"), [hostAcct], [
      "--dial-timeout",
      "2",
      "--dial-window",
      "3",
    ]);
    await frank.waitFor(is("dial_failed", { peer: "bob" }), 30_000, "frank trying bob");
    const dials = frank.events.filter(is("dial")).map((e) => e.peer);
    assert.equal(dials.at(-1), "bob");
    assert.deepEqual(dials.slice(0, -1).sort(), ["alice", "erin"]);
  });
}

Deno.test("[maildir] a full table overwrites its oldest row, and entries expire after --ttl", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct, ["--capacity", "2", "--ttl", "4s"]);
  const p1 = w.peer("p1", w.account("p1"), [hostAcct]);
  await p1.waitFor(is("waiting"), 20_000, "p1 waiting");
  const p2 = w.peer("p2", w.account("p2"), [hostAcct]);
  await p2.waitFor(is("connected", { peer: "p1" }), 20_000, "p2 → p1");
  const p3 = w.peer("p3", w.account("p3"), [hostAcct]);
  await p3.waitFor(is("connected", { peer: "p2" }), 20_000, "p3 → p2");
  // capacity 2: storing p3 overwrote p1, the oldest (claim 10). (p3's reply, made before its row
  // was stored, may still list p1: the row and the note "answered" go in one transaction after it.)
  const table = await w.run(["table", "--db", `${w.dir}/host.db`, "--json"]);
  assert.equal(table.code, 0, table.stderr);
  const users = table.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l).user).sort();
  assert.deepEqual(users, ["p2", "p3"]);

  // 【0042】: after --ttl the entries are gone and a newcomer hears of nobody.
  await new Promise((r) => setTimeout(r, 4500));
  const p4 = w.peer("p4", w.account("p4"), [hostAcct]);
  assert.equal((await p4.waitFor(is("reply"), 20_000, "p4's reply")).peers, 0);
});

Deno.test("[maildir] join exits 3 when nobody connects before --timeout", async () => {
  await using w = await world("maildir");
  const a = w.account("lonely");
  const out = await w.run([
    "join",
    ...w.common(a),
    "--via",
    "nobody@game.test",
    "--listen",
    "127.0.0.1:0",
    "--timeout",
    "1",
  ]);
  assert.equal(out.code, 3, out.stderr);
  assert.match(out.stderr, /No peer connected within 1 s/);
  assert.ok(!out.stderr.includes("    at "), "no stack trace");
});

Deno.test("[maildir] a long-running peer asks again every --reannounce, staying fresh in the host's table", async () => {
  await using w = await world("maildir");
  const h = w.account("host", "game.test");
  const host = w.host("host", h);
  const bob = w.peer("bob", w.account("bob"), [h], ["--reannounce", "1s"]);
  await bob.waitFor(is("waiting"), 20_000, "bob waiting");
  const stored = async () => {
    const out = await w.run(["table", "--db", `${w.dir}/host.db`, "--json"]);
    return Date.parse(JSON.parse(out.stdout.trim().split("\n")[0]).stored);
  };
  const first = await stored();
  await host.waitForCount(
    is("host_request", { peer: "bob", outcome: "stored" }),
    3,
    20_000,
    "bob asking again",
  );
  assert.ok(await stored() > first, "bob's row was refreshed");
  // each new request had its own session: bob used every answer, ignoring none as a mismatch
  await bob.waitForCount(is("reply"), 3, 10_000, "three replies");
  assert.ok(!bob.events.some((e) => e.event === "reply_ignored"));
});
