/** The host role with a fake outbox and a real SQLite table: replies, syncs, chaining limits. */
import assert from "node:assert/strict";
import type { OutgoingMail, Sender, SentInfo } from "../../src/mail/smtp.ts";
import type { ParsedMail } from "../../src/mail/parse.ts";
import { openText, sealToText } from "../../src/protocol/envelope.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import {
  type Intro,
  MAX_HOPS,
  MAX_INTRO_PEERS,
  type Message,
  type PeerEntry,
  reachAt,
  type Reply,
  type Sync,
} from "../../src/protocol/messages.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import { BootstrapError, DEFAULT_INTRO_WINDOW_MS, Host, INTRO_COALESCE_MS } from "../../src/roles/host.ts";
import type { Disposition, InboundMail } from "../../src/roles/inbox.ts";
import { DEFAULT_POLICY } from "../../src/table/policy.ts";
import { PeerTable } from "../../src/table/table.ts";
import { MailBudget, MemoryLedger } from "../../src/mail/budget.ts";
import { FakeTimers } from "../helpers/fake_timers.ts";

const key = networkKeyFromSecret(new Uint8Array(32).fill(5));
const NOW = Date.UTC(2026, 10, 24, 12);
let counter = 0;
const rnd = (n: number) => {
  const b = new Uint8Array(n);
  b[0] = ++counter & 0xff;
  b[1] = (counter >> 8) & 0xff;
  return b;
};

class Outbox implements Sender {
  readonly label = "fake";
  sent: { to: readonly string[]; message: Message; text: string; headers?: Record<string, string> }[] = [];
  /** While set, the server's answer waits for it (a reply on its way). */
  gate?: Promise<void>;
  /** A recipient the server refuses (its mail is not sent). */
  refuse?: string;
  send(mail: OutgoingMail): Promise<SentInfo> {
    if (mail.to.includes(this.refuse!)) {
      const gate = this.gate ?? Promise.resolve();
      return gate.then(() => Promise.reject(new Error(`550 ${this.refuse} refused`)));
    }
    this.sent.push({
      to: mail.to,
      message: openText(key, mail.text),
      text: mail.text,
      headers: mail.headers,
    });
    const info = { messageId: `<${this.sent.length}@fake>`, response: "250 ok" };
    return this.gate ? this.gate.then(() => info) : Promise.resolve(info);
  }
  close() {
    return Promise.resolve();
  }
  [Symbol.asyncDispose]() {
    return this.close();
  }
  of<K extends Message["kind"]>(kind: K) {
    return this.sent.filter((s) => s.message.kind === kind) as unknown as {
      to: readonly string[];
      message: Extract<Message, { kind: K }>;
    }[];
  }
}

async function setup(
  opts: {
    upstream?: string[];
    self?: PeerEntry;
    introLimit?: number;
    budget?: MailBudget;
    timers?: FakeTimers;
  } = {},
) {
  const dir = await Deno.makeTempDir();
  const table = new PeerTable(`${dir}/t.db`, DEFAULT_POLICY);
  const outbox = new Outbox();
  const events: NodeEvent[] = [];
  const introducedSelf: Intro[] = [];
  let clock = NOW;
  const host = new Host(
    {
      address: "me@host.test",
      marker: "m",
      maxAgeMs: 12 * 3600_000,
      skewMs: 600_000,
      upstream: opts.upstream,
      introLimit: opts.introLimit,
    },
    {
      key,
      table,
      sender: outbox,
      events: (e) => events.push(e),
      clock: () => clock,
      random: rnd,
      self: opts.self && (() => opts.self!),
      introduceSelf: (intro) => introducedSelf.push(intro),
      budget: opts.budget,
      timers: opts.timers,
    },
  );
  return {
    host,
    table,
    outbox,
    events,
    introducedSelf,
    tick: (ms: number) => clock += ms,
    async [Symbol.asyncDispose]() {
      table.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function mail(message: Message, recipients = ["me@host.test"], extra: Partial<ParsedMail> = {}): InboundMail {
  const m: ParsedMail = {
    subject: "m",
    date: new Date(NOW),
    recipients,
    text: sealToText(key, message, rnd),
    from: "x@y.test",
    ...extra,
  };
  return { id: `id-${++counter}`, mail: m, message, wokeAt: performance.now() };
}

function entry(user: string, seen = NOW - 1000): PeerEntry {
  return {
    user,
    host: "192.0.2.9",
    port: 4000,
    linkKey: new Uint8Array(32).fill(1),
    seen,
    flagged: false,
    ...reachAt("192.0.2.9", 4000),
  };
}

function request(user: string, time = NOW, quiet = false) {
  return {
    kind: "request" as const,
    user,
    host: "192.0.2.1",
    port: 5000,
    ...reachAt("192.0.2.1", 5000),
    quiet,
    probe: false,
    session: rnd(16),
    linkKey: new Uint8Array(32).fill(2),
    time,
    nonce: rnd(16),
    replyTo: `${user}@peers.test`,
  };
}

function sync(from: string, entries: PeerEntry[], visited: string[], want = false): Sync {
  return { kind: "sync", host: from, entries, want, visited, time: NOW, nonce: rnd(16) };
}

Deno.test("a promoted node offers itself first, and the peers its own host told it about", async () => {
  await using t = await setup({ self: entry("node", NOW), upstream: ["up@host.test"] });
  assert.equal(t.host.learnFrom("up@host.test", [entry("zed"), entry("node")]), 1, "never learns itself");
  await t.host.handle(mail(request("pat")));
  const reply = t.outbox.of("reply")[0].message as Reply;
  assert.deepEqual(reply.peers.map((p) => p.user), ["node", "zed"]);
});

Deno.test("a newcomer's request goes up as it came (the upstream answers it itself), but not to a host it asked itself", async () => {
  await using t = await setup({ upstream: ["up@host.test", "up2@host.test"] });
  const req = request("pat");
  const inbound = mail(req, ["me@host.test", "up2@host.test"]);
  await t.host.handle(inbound);
  const up = t.outbox.sent.filter((s) => s.to[0] !== req.replyTo);
  assert.deepEqual(up.map((s) => s.to), [["up@host.test"]], "one mail up, to the host it did not ask");
  assert.equal(
    up[0].text,
    inbound.mail.text,
    "the very block the newcomer sealed: its nonce, session and reply address",
  );
  assert.deepEqual(up[0].headers, { "X-Mailmeet-Hops": "1" });
  assert.equal(t.outbox.of("sync").length, 0);
});

Deno.test("a chained request stops going up at the hop limit (a sync carries the row on) and never goes back to its sender", async () => {
  await using t = await setup({ upstream: ["up@host.test", "down@host.test"] });
  await t.host.handle(
    mail(request("pat"), ["me@host.test"], { hops: MAX_HOPS, from: "down@host.test" }),
  );
  const up = t.outbox.sent.filter((s) => s.message.kind !== "reply");
  assert.deepEqual(up.map((s) => [s.to[0], s.message.kind]), [["up@host.test", "sync"]]);
  assert.deepEqual((up[0].message as Sync).entries.map((e) => e.user), ["pat"]);
});

Deno.test("a re-announce goes up as a sync: the upstream keeps the row without answering", async () => {
  await using t = await setup({ upstream: ["up@host.test"] });
  await t.host.handle(mail(request("pat", NOW, true)));
  const up = t.outbox.sent.filter((s) => s.to[0] === "up@host.test");
  assert.deepEqual(up.map((s) => s.message.kind), ["sync"]);
  assert.equal(up[0].headers, undefined);
});

Deno.test("hosts named beside us in a request become known hosts and get our table once", async () => {
  await using t = await setup();
  await t.host.handle(mail(request("a"), ["me@host.test", "other@host.test"]));
  await t.host.handle(mail(request("b"), ["me@host.test", "other@host.test"]));
  const syncs = t.outbox.of("sync");
  assert.equal(syncs.length, 1, "one exchange per newly learned host");
  assert.deepEqual(syncs[0].to, ["other@host.test"]);
  assert.deepEqual(t.table.store.hosts().map((h) => h.address), ["other@host.test"]);
});

Deno.test("a sync never goes back where it has been, and stops at the hop limit", async () => {
  await using t = await setup({ upstream: ["a@host.test", "b@host.test"] });
  await t.host.handle(mail(sync("a@host.test", [entry("p1")], ["a@host.test"])));
  assert.deepEqual(t.outbox.of("sync").map((s) => s.to), [["b@host.test"]], "onward to b only");
  assert.deepEqual(t.outbox.of("sync")[0].message.visited, ["a@host.test", "me@host.test"]);
  t.outbox.sent = [];
  const long = Array.from({ length: MAX_HOPS }, (_, i) => `h${i}@host.test`);
  await t.host.handle(mail(sync("h0@host.test", [entry("p2")], long)));
  assert.equal(t.outbox.of("sync").length, 0, "past the hop limit nothing goes on");
  t.outbox.sent = [];
  await t.host.handle(mail(sync("c@host.test", [entry("p1")], ["c@host.test"])));
  assert.equal(t.outbox.of("sync").length, 0, "nothing new learned: nothing passed on");
});

Deno.test("a sync that wants an answer gets our entries; entries keep their own times", async () => {
  await using t = await setup();
  await t.host.handle(mail(request("pat", NOW - 5000)));
  await t.host.handle(mail(sync("new@host.test", [entry("q", NOW - 7000)], ["new@host.test"], true)));
  const answer = t.outbox.of("sync").find((s) => s.to[0] === "new@host.test")!.message;
  assert.equal(answer.want, false);
  const byUser = Object.fromEntries(answer.entries.map((e) => [e.user, e.seen]));
  assert.equal(byUser.pat, NOW - 5000);
  assert.equal(byUser.q, NOW - 7000);
  assert.ok(
    t.table.entries(NOW).every((e) => e.user !== "q" || e.email === ""),
    "no e-mail for learned peers",
  );
});

Deno.test("a replayed sync is dropped", async () => {
  await using t = await setup();
  const s = sync("a@host.test", [entry("p")], ["a@host.test"]);
  await t.host.handle(mail(s));
  await t.host.handle(mail(s));
  assert.ok(t.events.some((e) => e.event === "host_dropped" && /replayed/.test(e.reason)));
});

Deno.test("a host mails the newcomer's introduction to the most recent peers it holds an address for", async () => {
  await using t = await setup({ introLimit: 2 });
  for (const [u, age] of [["old", 9000], ["mid", 5000], ["new", 1000]] as const) {
    await t.host.handle(mail(request(u, NOW - age)));
  }
  await t.host.flushIntroductions();
  t.outbox.sent = [];
  await t.host.handle(mail(request("pat")));
  assert.equal(t.outbox.of("intro").length, 0, "gathered until the pass ends");
  await t.host.flushIntroductions();
  const intros = t.outbox.of("intro");
  assert.deepEqual(
    intros.map((i) => i.to),
    [["new@peers.test"], ["mid@peers.test"]],
    "limit 2, most recent first",
  );
  const intro = intros[0].message;
  assert.deepEqual(intro.peers.map((p) => p.user), ["pat"]);
  assert.deepEqual(intro.peers[0].linkKey, new Uint8Array(32).fill(2));
  assert.ok(intro.window > 0);
  // The reply still lists all three; the introductions only add mail for the first two.
  assert.deepEqual((t.outbox.of("reply")[0].message as Reply).peers.map((p) => p.user), [
    "new",
    "mid",
    "old",
  ]);
  assert.ok(!JSON.stringify(intro).includes("@"), "no e-mail address travels in an introduction");
});

Deno.test("no introductions for a quiet request, nor to flagged peers, relay-only members or peers learned elsewhere", async () => {
  await using t = await setup();
  await t.host.handle(mail(request("flagged", NOW - 3000)));
  t.table.flag("flagged");
  await t.host.handle(mail(sync("other@host.test", [entry("remote", NOW - 2000)], ["other@host.test"])));
  await t.host.handle(mail({ ...request("relay", NOW - 1000), role: "relay", relay: true }));
  await t.host.flushIntroductions();
  t.outbox.sent = [];
  await t.host.handle(mail(request("quiet", NOW, true)));
  await t.host.flushIntroductions();
  assert.equal(t.outbox.of("intro").length, 0, "a quiet request is only kept in the table");
  await t.host.handle(mail(request("pat")));
  await t.host.flushIntroductions();
  assert.deepEqual(
    t.outbox.of("intro").map((i) => i.to),
    [["quiet@peers.test"]],
    "flagged, learned and relay-only peers are skipped; the quiet one is introduced",
  );
  assert.equal(t.outbox.of("reply").length, 2);
});

Deno.test("an auto-promoted host introduces newcomers to its own peer role without mail", async () => {
  await using t = await setup({ self: entry("node", NOW) });
  await t.host.handle(mail(request("pat")));
  assert.deepEqual(
    t.introducedSelf.map((i) => i.peers.map((p) => p.user)),
    [["pat"]],
    "at once, not at the pass's end",
  );
  await t.host.flushIntroductions();
  assert.equal(t.outbox.of("intro").length, 0);
});

Deno.test("requests that come while a reply is on its way are answered together and list each other; only the earlier peer is introduced", async () => {
  await using t = await setup();
  const server = Promise.withResolvers<void>();
  t.outbox.gate = server.promise;
  const ann = t.host.handle(mail(request("ann", NOW - 3000)));
  assert.deepEqual(
    t.outbox.of("reply").map((r) => r.to[0]),
    ["ann@peers.test"],
    "a request alone is answered at once",
  );
  const bob = t.host.handle(mail(request("bob", NOW - 2000)));
  const cid = t.host.handle(mail(request("cid", NOW - 1000)));
  assert.ok(
    t.table.get("bob") && t.table.get("cid"),
    "rows are written while ann's reply waits for the server",
  );
  assert.equal(t.outbox.of("reply").length, 1, "bob and cid wait for the next round");
  server.resolve();
  assert.deepEqual(await Promise.all([ann, bob, cid]), ["delete", "delete", "delete"]);
  const lists = Object.fromEntries(
    t.outbox.of("reply").map((r) => [r.to[0], (r.message as Reply).peers.map((p) => p.user)]),
  );
  assert.deepEqual(lists, {
    "ann@peers.test": [],
    "bob@peers.test": ["cid", "ann"],
    "cid@peers.test": ["bob", "ann"],
  }, "bob's reply names cid, who came after it, and cid's names bob");
  await t.host.flushIntroductions();
  assert.deepEqual(
    t.outbox.of("intro").map((i) => [i.to[0], i.message.peers.map((p) => p.user)]),
    [["ann@peers.test", ["bob", "cid"]]],
    "ann's reply went before they came: it is told of both; bob and cid dial each other already",
  );
});

Deno.test("round mates come first in each other's replies even when their clocks run behind the others'", async () => {
  await using t = await setup();
  const server = Promise.withResolvers<void>();
  t.outbox.gate = server.promise;
  const fast = t.host.handle(mail(request("fast", NOW)));
  // Both asked after "fast", but their requests say a minute earlier (slow clocks).
  const slow1 = t.host.handle(mail(request("slow1", NOW - 61_000)));
  const slow2 = t.host.handle(mail(request("slow2", NOW - 60_000)));
  server.resolve();
  assert.deepEqual(await Promise.all([fast, slow1, slow2]), ["delete", "delete", "delete"]);
  const lists = Object.fromEntries(
    t.outbox.of("reply").map((r) => [r.to[0], (r.message as Reply).peers.map((p) => p.user)]),
  );
  assert.deepEqual(lists["slow1@peers.test"], ["slow2", "fast"]);
  assert.deepEqual(lists["slow2@peers.test"], ["slow1", "fast"]);
  await t.host.flushIntroductions();
  assert.deepEqual(
    t.outbox.of("intro").map((i) => [i.to[0], i.message.peers.map((p) => p.user).sort()]),
    [["fast@peers.test", ["slow1", "slow2"]]],
    "none between the round mates",
  );
});

Deno.test("a reply the server refuses fails only its own request; the others of its round are answered", async () => {
  await using t = await setup();
  const server = Promise.withResolvers<void>();
  t.outbox.gate = server.promise;
  const ann = t.host.handle(mail(request("ann", NOW - 3000)));
  t.outbox.refuse = "bob@peers.test";
  const bobMail = mail(request("bob", NOW - 2000));
  const bob = t.host.handle(bobMail);
  const cid = t.host.handle(mail(request("cid", NOW - 1000)));
  server.resolve();
  await assert.rejects(bob, /refused/);
  assert.deepEqual(await Promise.all([ann, cid]), ["delete", "delete"]);
  assert.ok(t.events.some((e) => e.event === "host_reply" && e.peer === "cid"));
  assert.ok(!t.events.some((e) => e.event === "host_reply" && e.peer === "bob"));
  t.outbox.refuse = undefined;
  // bob's mail stayed in the box: its retry is answered, naming cid, whose reply named bob.
  assert.equal(await t.host.handle(bobMail), "delete");
  assert.deepEqual((t.outbox.of("reply").at(-1)!.message as Reply).peers.map((p) => p.user), ["cid", "ann"]);
});

Deno.test("a burst of newcomers costs each earlier peer one introduction naming them all, not one mail per newcomer", async () => {
  await using t = await setup({ introLimit: 8 });
  for (const [u, age] of [["a", 9000], ["b", 8000]] as const) {
    await t.host.handle(mail(request(u, NOW - age)));
  }
  await t.host.flushIntroductions();
  t.outbox.sent = [];
  t.events.length = 0;
  for (const u of ["n1", "n2", "n3"]) await t.host.handle(mail(request(u)));
  assert.equal(t.outbox.of("intro").length, 0);
  await t.host.flushIntroductions();
  const byBox = Object.fromEntries(
    t.outbox.of("intro").map((i) => [i.to[0], i.message.peers.map((p) => p.user)]),
  );
  assert.deepEqual(byBox, {
    "a@peers.test": ["n1", "n2", "n3"],
    "b@peers.test": ["n1", "n2", "n3"],
    "n1@peers.test": ["n2", "n3"],
    "n2@peers.test": ["n3"],
  });
  assert.equal(t.outbox.of("reply").length, 3, "every newcomer still has its own reply at once");
  const told = t.events.filter((e) => e.event === "host_intro");
  assert.equal(told.length, 9, "one host_intro per newcomer and earlier peer, as before");
  await t.host.flushIntroductions();
  assert.equal(t.outbox.of("intro").length, 4, "sent once");
});

Deno.test("a long burst sends the introductions it gathered every second", async () => {
  await using t = await setup({ introLimit: 1 });
  await t.host.handle(mail(request("early", NOW - 9000)));
  t.outbox.sent = [];
  await t.host.handle(mail(request("n0")));
  t.tick(INTRO_COALESCE_MS);
  await t.host.handle(mail(request("n1")));
  assert.deepEqual(
    t.outbox.of("intro").map((i) => [i.to[0], i.message.peers.map((p) => p.user)]),
    [["early@peers.test", ["n0"]], ["n0@peers.test", ["n1"]]],
    "a second after the first was gathered, the next request's handling sends them",
  );
  const window = t.outbox.of("intro")[0].message.window;
  assert.equal(
    window,
    DEFAULT_INTRO_WINDOW_MS + INTRO_COALESCE_MS,
    "the window still covers the last newcomer",
  );
});

Deno.test("an introduction names at most MAX_INTRO_PEERS newcomers; the next ones start another mail", async () => {
  await using t = await setup({ introLimit: 1 });
  await t.host.handle(mail(request("a")));
  t.outbox.sent = [];
  // Older than "a": each newcomer's one introduction goes to "a", the most recent member.
  for (let i = 0; i <= MAX_INTRO_PEERS; i++) await t.host.handle(mail(request(`n${i}`, NOW - 60_000 + i)));
  assert.deepEqual(t.outbox.of("intro").map((i) => i.message.peers.length), [MAX_INTRO_PEERS]);
  await t.host.flushIntroductions();
  assert.deepEqual(t.outbox.of("intro").map((i) => i.message.peers.length), [MAX_INTRO_PEERS, 1]);
  assert.deepEqual(t.outbox.of("intro")[1].message.peers.map((p) => p.user), [`n${MAX_INTRO_PEERS}`]);
});

Deno.test("a peer that says it leaves is forgotten at once — only the row of that run", async () => {
  await using t = await setup();
  await t.host.handle(mail(request("pat")));
  const leave = (key: number) => ({
    kind: "leave" as const,
    user: "pat",
    linkKey: new Uint8Array(32).fill(key),
    time: NOW,
    nonce: rnd(16),
  });
  await t.host.handle(mail(leave(9)));
  assert.deepEqual(t.table.entries(NOW).map((e) => e.user), ["pat"], "another run's key forgets nothing");
  await t.host.handle(mail(leave(2)));
  assert.deepEqual(t.table.entries(NOW), []);
  assert.ok(t.events.some((e) => e.event === "host_leave" && e.forgotten));
});

Deno.test("doctor's probe is answered but never stored or introduced", async () => {
  await using t = await setup();
  await t.host.handle(mail(request("pat")));
  t.outbox.sent = [];
  await t.host.handle(mail({ ...request("doctor"), probe: true }));
  assert.equal(t.outbox.of("reply").length, 1);
  assert.equal(t.outbox.of("intro").length, 0);
  assert.deepEqual(t.table.entries(NOW).map((e) => e.user), ["pat"]);
});

Deno.test("a failure notice naming an older run of a peer (another link key) does not flag the run that is alive", async () => {
  await using t = await setup();
  await t.host.handle(mail(request("pat")));
  const failure = (key: number) => ({
    kind: "failure" as const,
    user: "rep",
    target: "pat",
    targetKey: new Uint8Array(32).fill(key),
    time: NOW,
    nonce: rnd(16),
  });
  await t.host.handle(mail(failure(7)));
  assert.equal(
    t.table.entries(NOW)[0].flagged,
    false,
    "pat started again: its new run is not the one that failed",
  );
  await t.host.handle(mail(failure(2)));
  assert.equal(t.table.entries(NOW)[0].flagged, true);
});

Deno.test("a host near its mail budget skips syncs (and replies to re-announces), then introductions, then leaves requests in the box for later", async () => {
  const budget = new MailBudget({
    account: "me@host.test",
    limit: 20,
    ledger: new MemoryLedger(),
    clock: () => NOW,
  });
  await using t = await setup({ upstream: ["up@host.test"], budget });
  for (const u of ["ann", "bob", "cat"]) await t.host.handle(mail(request(u, NOW, true)));
  budget.record(10 - budget.sent()); // half of 20 spent: syncs stop
  await t.host.handle(mail(request("dan", NOW, true)));
  assert.notEqual(
    t.outbox.of("reply").at(-1)?.to[0],
    "dan@peers.test",
    "a re-announce's reply is skipped like a sync",
  );
  assert.ok(t.table.store.get("dan"), "but its row is kept");
  assert.equal(
    t.outbox.sent.filter((s) => s.to[0] === "up@host.test").length,
    3,
    "no sync for dan's re-announce",
  );
  await t.host.handle(mail(request("eve")));
  await t.host.flushIntroductions();
  assert.ok(t.outbox.of("intro").length > 0, "introductions still go below 70%");
  budget.record(14 - budget.sent());
  const before = t.outbox.of("intro").length;
  await t.host.handle(mail(request("fay")));
  await t.host.flushIntroductions();
  assert.equal(t.outbox.of("intro").length, before, "no introductions above 70%");
  assert.equal(t.outbox.of("reply").at(-1)?.to[0], "fay@peers.test", "but the reply goes");
  budget.record(18 - budget.sent());
  assert.equal(await t.host.handle(mail(request("gus"))), "later", "the request waits in the mailbox");
  assert.notEqual(t.outbox.of("reply").at(-1)?.to[0], "gus@peers.test");
  const held = t.events.filter((e) => e.event === "budget_held").map((e) => (e as { kind: string }).kind);
  assert.deepEqual(held, ["sync", "intro", "reply"], "each said once");
});

Deno.test("a bootstrap nobody answers gives up after its time limit, naming the host", async () => {
  const timers = new FakeTimers();
  await using t = await setup({ timers });
  const asking = t.host.bootstrap("old@host.test", 30_000);
  const failed = assert.rejects(asking, {
    message: "old@host.test did not answer the bootstrap within 30 s",
  });
  while (timers.pending === 0) await new Promise((r) => queueMicrotask(() => r(undefined)));
  assert.equal(t.outbox.of("sync").length, 1);
  timers.fireAll();
  await failed;
  assert.equal(timers.pending, 0);
});

Deno.test("the first requester gets a formal reply with no peers; the next gets the first, never itself, at its own address and session", async () => {
  await using t = await setup();
  const ann = request("ann");
  assert.equal(await t.host.handle(mail(ann)), "delete");
  const bob = request("bob");
  assert.equal(await t.host.handle(mail(bob)), "delete");
  const replies = t.outbox.of("reply");
  assert.deepEqual(replies.map((r) => r.to), [[ann.replyTo], [bob.replyTo]]);
  assert.deepEqual(replies[0].message.peers, [], "an empty table still answers (formally)");
  assert.deepEqual(replies[0].message.session, ann.session);
  assert.deepEqual(replies[1].message.peers.map((p) => p.user), ["ann"]);
  assert.deepEqual(replies[1].message.session, bob.session);
  assert.ok(
    replies.every((r) => !JSON.stringify(r.message.peers).includes("@")),
    "e-mail addresses stay in the host (【0045】)",
  );
});

Deno.test("a failure notice flags the peer it names by user id, and later replies carry the flag (【0047】)", async () => {
  await using t = await setup();
  const ann = request("ann");
  await t.host.handle(mail(ann));
  await t.host.handle(mail(request("bob")));
  const notice = {
    kind: "failure" as const,
    user: "bob",
    target: "ann",
    targetKey: ann.linkKey,
    time: NOW,
    nonce: rnd(16),
  };
  assert.equal(await t.host.handle(mail(notice)), "delete");
  assert.ok(t.events.some((e) => e.event === "host_failure" && e.peer === "ann" && e.flagged === true));
  await t.host.handle(mail(request("cat")));
  const last = t.outbox.of("reply").at(-1)!.message;
  // The host only marks it; each peer ranks flagged ones last itself (table/policy.ts).
  assert.deepEqual(last.peers.map((p) => [p.user, p.flagged]).sort(), [["ann", true], ["bob", false]]);
});

Deno.test("a request replayed in another mail (same nonce) is dropped and not answered again", async () => {
  await using t = await setup();
  const ann = request("ann");
  await t.host.handle(mail(ann));
  await t.host.handle(mail(ann));
  assert.equal(t.outbox.of("reply").length, 1);
  assert.ok(t.events.some((e) => e.event === "host_dropped" && /replayed/.test(e.reason)));
});

/** An inbox that hands the host a list of mails once, then waits until stopped (or fails, if told to). */
function scriptedInbox(mails: InboundMail[], opts: { failWith?: Error } = {}) {
  const seen: { kind: string; disposition: Disposition }[] = [];
  return {
    seen,
    async run(signal: AbortSignal, handle: (m: InboundMail) => Promise<Disposition>): Promise<void> {
      for (const m of mails) {
        const kind = m.message instanceof Error ? "unreadable" : m.message.kind;
        seen.push({ kind, disposition: await handle(m) });
      }
      if (opts.failWith) throw opts.failWith;
      if (signal.aborted) return;
      await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    },
  };
}

Deno.test("filling the table from another host reads only syncs, leaves requests for later, and ends once the answer is stored", async () => {
  await using t = await setup();
  const stop = new AbortController();
  const answer = sync("first@host.test", [entry("early", NOW - 2000)], ["first@host.test"]);
  const inbox = scriptedInbox([mail(request("waiting")), mail(answer)]);
  await t.host.fillFrom("First@host.test", 60_000, inbox, stop.signal);
  assert.deepEqual(inbox.seen, [{ kind: "request", disposition: "later" }, {
    kind: "sync",
    disposition: "delete",
  }]);
  assert.equal(t.outbox.of("sync")[0].to[0], "first@host.test", "it asked for the table");
  assert.equal(t.outbox.of("sync")[0].message.want, true);
  assert.ok(t.table.get("early"), "the answer's entries are stored");
  assert.equal(t.table.get("waiting"), undefined, "the request waits until the host answers everyone");
});

Deno.test("filling the table fails with a BootstrapError when no answer comes in time", async () => {
  await using t = await setup();
  const err = await t.host.fillFrom("first@host.test", 5, scriptedInbox([]), new AbortController().signal)
    .then(() => undefined, (e) => e);
  assert.ok(err instanceof BootstrapError, String(err));
  assert.match(err.message, /first@host\.test did not answer/);
});

Deno.test("filling the table gives up at once with the mailbox's own error when reading fails", async () => {
  await using t = await setup();
  const broken = new Error("mailbox gone");
  const err = await t.host.fillFrom(
    "first@host.test",
    60_000,
    scriptedInbox([], { failWith: broken }),
    new AbortController().signal,
  ).then(() => undefined, (e) => e);
  assert.equal(err, broken);
});
