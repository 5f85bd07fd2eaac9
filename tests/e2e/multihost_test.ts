/**
 * Every node can host (patent 【0058】–【0066】): several hosts, table exchange, bootstrap,
 * representative forwarding, auto-promotion and chaining — the bundled CLI as processes, over the
 * real Postfix + Dovecot (hosts on different domains), and on the maildir spool where only counts
 * matter.
 */
import assert from "node:assert/strict";
import type { CliProcess } from "../../scripts/lib/cli_process.ts";
import { openText, sealToText } from "../../src/protocol/envelope.ts";
import { parseMail } from "../../src/mail/parse.ts";
import { parseNetworkKey } from "../../src/protocol/keys.ts";
import { type World, world } from "../helpers/world.ts";
import { info, is, request } from "../helpers/events.ts";

const MARKER = "mailmeet rendezvous";

async function table(w: World, db: string): Promise<Record<string, { stored: string; flagged: boolean }>> {
  const out = await w.run(["table", "--db", `${w.dir}/${db}.db`, "--json"]);
  assert.equal(out.code, 0, out.stderr);
  return Object.fromEntries(
    out.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)).map((r) => [r.user, r]),
  );
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

Deno.test("[imap] a peer with two hosts sends one mail to both and connects while one is down", async () => {
  await using w = await world("imap");
  const h1 = w.account("host1", "game.test");
  const down = w.account("host2", "isp-b.test"); // nobody reads this box
  w.host("h1", h1);
  const bob = w.peer("bob", w.account("bob"), [h1, down]);
  const sent = await bob.waitFor(is("request_sent"), 30_000, "bob's request");
  assert.deepEqual(sent.via, [h1.address, down.address]);
  await bob.waitFor(is("waiting"), 30_000, "bob waiting");
  const alice = w.peer("alice", w.account("alice", "isp-b.test"), [down, h1]);
  await alice.waitFor(is("connected", { peer: "bob" }), 30_000, "alice → bob");
  // each request mail reached both host boxes (one message, two recipients); h1 also sent the
  // down host a sync, having learned of it from the recipient list
  const key = await parseNetworkKey(w.key);
  const kinds = await Promise.all(
    (await w.raw(down)).map(async (r) => openText(key, (await parseMail(r)).text).kind),
  );
  assert.deepEqual(kinds.filter((k) => k === "request").length, 2);
});

Deno.test("[imap] hosts named together in a request exchange tables; entries keep their times; periodic sync converges", async () => {
  await using w = await world("imap");
  const a1 = w.account("hosta", "game.test");
  const a2 = w.account("hostb", "isp-b.test");
  const h1 = w.host("h1", a1, ["--sync-interval", "3s"]);
  const h2 = w.host("h2", a2, ["--sync-interval", "3s"]);
  const bob = w.peer("bob", w.account("bob"), [a1]);
  await bob.waitFor(is("waiting"), 30_000, "bob at h1 only");
  const alice = w.peer("alice", w.account("alice"), [a2]);
  await alice.waitFor(is("waiting"), 30_000, "alice at h2 only: nobody there yet");
  // carol mails both hosts at once: they learn of each other and swap entries
  const carol = w.peer("carol", w.account("carol", "isp-b.test"), [a1, a2]);
  await carol.waitFor(is("reply"), 30_000, "carol's first reply");
  await h1.waitFor(info(new RegExp(`sync from ${a2.address}`)), 30_000, "h1 hearing from h2");
  await h2.waitFor(info(new RegExp(`sync from ${a1.address}`)), 30_000, "h2 hearing from h1");
  const t1 = await table(w, "h1");
  const t2 = await table(w, "h2");
  for (const user of ["bob", "alice", "carol"]) {
    assert.ok(t1[user] && t2[user], `${user} in both tables: ${Object.keys(t1)} / ${Object.keys(t2)}`);
    assert.equal(t1[user].stored, t2[user].stored, `${user} keeps its original time`);
  }
  // dave registers at h1 only; the periodic sync brings him to h2
  const dave = w.peer("dave", w.account("dave"), [a1]);
  await dave.waitFor(is("reply"), 30_000, "dave's reply");
  await until("dave reaching h2's table", async () => "dave" in await table(w, "h2"));
  // and a newcomer at h2 now meets people who only ever registered at h1
  const erin = w.peer("erin", w.account("erin"), [a2]);
  await erin.waitFor(is("connected", { peer: "dave" }), 30_000, "erin → dave");
});

Deno.test("[imap] a new host bootstraps its table from an existing one before answering", async () => {
  await using w = await world("imap");
  const old = w.account("oldhost", "game.test");
  const fresh = w.account("newhost", "isp-a.test");
  w.host("old", old);
  const bob = w.peer("bob", w.account("bob"), [old]);
  await bob.waitFor(is("waiting"), 30_000, "bob registered at the old host");
  const nh = w.host("new", fresh, ["--bootstrap", old.address]);
  await nh.waitFor(info(/table filled from/), 30_000, "the bootstrap");
  const erin = w.peer("erin", w.account("erin"), [fresh]);
  await erin.waitFor(is("connected", { peer: "bob" }), 30_000, "erin → bob through the new host");
  assert.equal((await table(w, "new")).bob?.flagged, false);
});

Deno.test("[maildir] a representative spreads 300 requests over 3 workers equally (within one)", async () => {
  await using w = await world("maildir");
  const rep = w.account("rep", "game.test");
  const workers = [w.account("w1", "game.test"), w.account("w2", "game.test"), w.account("w3", "isp-b.test")];
  const key = await parseNetworkKey(w.key);
  const asker = w.account("asker");
  for (let i = 0; i < 300; i++) await w.send(asker, [rep], MARKER, sealToText(key, request(`u${i}`, asker)));
  const out = await w.run([
    "host",
    ...w.common(rep),
    "--db",
    `${w.dir}/rep.db`,
    "--once",
    ...workers.flatMap((x) => ["--forward-to", x.address]),
  ]);
  assert.equal(out.code, 0, out.stderr);
  const counts = await Promise.all(workers.map(async (x) => (await w.raw(x)).length));
  assert.equal(counts.reduce((a, b) => a + b), 300);
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `uneven: ${counts}`);
  assert.equal((await w.raw(rep)).length, 0);
});

Deno.test("[imap] a representative skips a worker whose mail is refused, and workers answer the peer directly", async () => {
  await using w = await world("imap");
  const rep = w.account("rep", "game.test");
  const good = w.account("worker", "isp-b.test");
  w.host("worker", good);
  const r = w.host("rep", rep, ["--forward-to", "nobody@unserved.example", "--forward-to", good.address]);
  const bob = w.peer("bob", w.account("bob"), [rep]);
  await bob.waitFor(is("waiting"), 30_000, "bob answered by the worker");
  const alice = w.peer("alice", w.account("alice"), [rep]);
  await alice.waitFor(is("connected", { peer: "bob" }), 30_000, "alice → bob");
  assert.equal(alice.events.find(is("reply"))?.from, good.address);
  // refused once, then rested: the second request went straight to the good worker
  const refusals = r.events.filter((e) =>
    e.event === "error" && /nobody@unserved\.example/.test(String(e.message))
  );
  assert.equal(refusals.length, 1);
  assert.equal(r.events.filter(info(new RegExp(`to ${good.address}`))).length, 2);
});

Deno.test("[imap] the first node asked promotes itself to host and offers itself", async () => {
  await using w = await world("imap");
  const xa = w.account("xavier", "game.test");
  const x = w.peer("xavier", xa, []);
  await x.waitFor(is("waiting"), 30_000, "xavier waiting with no --via");
  const y = w.peer("yolanda", w.account("yolanda"), [xa]);
  await x.waitFor(is("promoted"), 30_000, "xavier promoted");
  await y.waitFor(is("connected", { peer: "xavier" }), 30_000, "yolanda → xavier");
  // a node started with --no-host leaves requests alone
  const na = w.account("nohost", "isp-b.test");
  const n = w.peer("nohost", na, [], ["--no-host"]);
  await n.waitFor(is("waiting"), 30_000, "nohost waiting");
  const z = w.peer("zach", w.account("zach"), [na], ["--timeout", "4"]);
  assert.equal((await z.status).code, 3);
  assert.ok(!n.events.some(is("promoted")));
});

Deno.test("[imap] through a chain A → B → C, a peer that knows only B meets a peer registered at C", async () => {
  await using w = await world("imap");
  const c = w.account("hostc", "game.test");
  const hostC = w.host("C", c);
  const zed = w.peer("zed", w.account("zed", "isp-b.test"), [c]);
  await zed.waitFor(is("waiting"), 30_000, "zed at C");
  const ba = w.account("bea", "isp-a.test");
  const bea = w.peer("bea", ba, [c]);
  await bea.waitFor(is("connected", { peer: "zed" }), 30_000, "bea (B) → zed");
  const pat = w.peer("pat", w.account("pat", "isp-b.test"), [ba]);
  await bea.waitFor(is("promoted"), 30_000, "bea promoted");
  await pat.waitFor(is("connected", { peer: "zed" }), 30_000, "pat → zed, learned through B");
  await pat.waitFor(is("connected", { peer: "bea" }), 30_000, "pat → bea");
  // and B passed pat's request upward: C answered pat itself and keeps pat in its table
  await until("pat in C's table", async () => "pat" in await table(w, "C"));
  assert.ok(hostC.events.some(is("host_request", { peer: "pat" })));
  assert.ok(bea.events.some(info(new RegExp(`passed pat's request up to ${c.address}`))));
});

Deno.test("[maildir] a chain answers from fresh knowledge: a member that came back with a new key is reached through the upstream host", async () => {
  await using w = await world("maildir");
  const c = w.account("hostc", "game.test");
  const hostC = w.host("C", c);
  const daveAcct = w.account("dave", "isp-b.test");
  // dave comes back on the same port: the stale entry then reaches a listener with another key.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const daveArgs = ["--listen", `127.0.0.1:${port}`, "--timeout", "0"];
  const dave1 = w.peer("dave", daveAcct, [c], daveArgs);
  await hostC.waitFor(is("host_request", { peer: "dave" }), 30_000, "dave's first run at C");
  const ba = w.account("bea", "isp-a.test");
  const bea = w.peer("bea", ba, [c], ["--timeout", "0"]);
  await bea.waitFor(is("connected", { peer: "dave" }), 30_000, "bea (B) → dave's first run");
  dave1.kill("SIGINT");
  await dave1.status;
  const dave2 = w.peer("dave", daveAcct, [c], daveArgs);
  await hostC.waitForCount(is("host_request", { peer: "dave" }), 2, 30_000, "dave's second run at C");
  const alice = w.peer("alice", w.account("alice"), [ba]);
  await alice.waitFor(is("connected", { peer: "dave" }), 30_000, "alice → dave's current run");
  await dave2.waitFor(is("connected", { peer: "alice" }), 30_000, "dave → alice");
  // B passed alice's request up; C answered her from its own table, where dave is current.
  await hostC.waitFor(is("host_request", { peer: "alice" }), 30_000, "C answered alice itself");
  assert.ok(bea.events.some(info(new RegExp(`passed alice's request up to ${c.address}`))));
  assert.ok(!alice.events.some(is("error")), "no error on alice's side");
});

Deno.test("[imap] two nodes that name each other as host settle: the loop ends, mail stays bounded", async () => {
  await using w = await world("imap");
  const aa = w.account("anna", "game.test");
  const ba = w.account("boris", "isp-a.test");
  const anna = w.peer("anna", aa, [ba], ["--sync-interval", "0"]);
  const boris = w.peer("boris", ba, [aa], ["--sync-interval", "0"]);
  await anna.waitFor(is("connected", { peer: "boris" }), 30_000, "anna ↔ boris");
  await new Promise((r) => setTimeout(r, 4000));
  const count = (p: CliProcess) =>
    p.events.filter((e) => e.event === "host_reply" || info(/^sync from/)(e)).length;
  const before = count(anna) + count(boris);
  await new Promise((r) => setTimeout(r, 4000));
  assert.equal(count(anna) + count(boris), before, "mail still flowing after the loop should have settled");
  assert.ok(before <= 6, `too much mail for two nodes: ${before}`);
  assert.equal((await w.raw(aa)).length + (await w.raw(ba)).length, 0);
});
