import assert from "node:assert/strict";
import type { OutgoingMail, Sender, SentInfo } from "../../src/mail/smtp.ts";
import type { ParsedMail } from "../../src/mail/parse.ts";
import { openText, sealToText } from "../../src/protocol/envelope.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import {
  type Intro,
  type Message,
  type PeerEntry,
  reachAt,
  type Request,
} from "../../src/protocol/messages.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import type { InboundMail } from "../../src/roles/inbox.ts";
import {
  type DialOptions,
  LINKED_REANNOUNCE_MS,
  type LinkedPeer,
  type LinkSet,
  Peer,
  type PeerDialer,
  type Reach,
} from "../../src/roles/peer.ts";

const key = networkKeyFromSecret(new Uint8Array(32).fill(4));
const NOW = Date.UTC(2026, 10, 27, 12);

class Outbox implements Sender {
  readonly label = "fake";
  sent: { to: readonly string[]; message: Message }[] = [];
  send(mail: OutgoingMail): Promise<SentInfo> {
    this.sent.push({ to: mail.to, message: openText(key, mail.text) });
    return Promise.resolve({ messageId: "<x@fake>", response: "250 ok" });
  }
  close() {
    return Promise.resolve();
  }
  [Symbol.asyncDispose]() {
    return this.close();
  }
}

function fakeLink(user: string): LinkedPeer {
  return {
    user,
    address: "198.51.100.10:4000",
    direction: "out",
    route: { path: "direct", transport: "tcp", kind: "lan", rttMs: 1 },
    closed: new Promise(() => {}),
    close: () => Promise.resolve(),
  };
}

class Links implements LinkSet {
  users = new Set<string>();
  adopt(link: LinkedPeer): boolean {
    this.users.add(link.user);
    return true;
  }
  has(user: string): boolean {
    return this.users.has(user);
  }
  get size(): number {
    return this.users.size;
  }
}

const REACH: Reach = { host: "198.51.100.10", port: 4000, ...reachAt("198.51.100.10", 4000) };

function setup(
  reachable: (user: string) => boolean,
  dialHook?: (entry: PeerEntry, opts?: DialOptions) => Promise<LinkedPeer>,
) {
  const outbox = new Outbox();
  const links = new Links();
  const events: NodeEvent[] = [];
  const dialled: { user: string; deadline: number }[] = [];
  const dialOpts: (DialOptions | undefined)[] = [];
  const dialer: PeerDialer = {
    publicKey: new Uint8Array(32).fill(1),
    reach: () => REACH,
    dial: (entry, deadline, opts) => {
      dialled.push({ user: entry.user, deadline });
      dialOpts.push(opts);
      if (dialHook) return dialHook(entry, opts);
      return reachable(entry.user)
        ? Promise.resolve(fakeLink(entry.user))
        : Promise.reject(new Error(`${entry.user} did not answer`));
    },
  };
  let clock = NOW;
  const peer = new Peer(
    {
      address: "me@isp.test",
      user: "me",
      vias: ["host@game.test"],
      marker: "m",
      friends: new Set(),
      blocked: new Set(["blocked"]),
      dialWindowMs: 30_000,
      maxLinks: 8,
      introDelayMs: 0,
    },
    { key, sender: outbox, dialer, links, events: (e) => events.push(e), clock: () => clock },
  );
  return { peer, outbox, links, events, dialled, dialOpts, tick: (ms: number) => clock += ms };
}

function entry(user: string, seen = NOW - 1000): PeerEntry {
  return {
    user,
    host: "203.0.113.9",
    port: 4000,
    linkKey: new Uint8Array(32).fill(2),
    seen,
    flagged: false,
    ...reachAt("203.0.113.9", 4000),
  };
}

function mail(message: Message): InboundMail {
  const m: ParsedMail = {
    subject: "m",
    date: new Date(NOW),
    recipients: ["me@isp.test"],
    text: "",
    from: "host@game.test",
  };
  return { id: "1", mail: m, message, wokeAt: 0 };
}

Deno.test("a reply's peers are all dialled at once; the unreachable one is reported to the host that listed it", async () => {
  const t = setup((u) => u !== "gone");
  const req = await t.peer.announce();
  assert.equal(req.quiet, false, "not linked yet: introductions wanted");
  t.peer.handle(
    mail({
      kind: "reply",
      session: req.session,
      time: NOW,
      peers: [entry("ann"), entry("gone"), entry("bob"), entry("blocked")],
    }),
  );
  await t.peer.dialing;
  assert.deepEqual(t.dialled.map((d) => d.user).sort(), ["ann", "bob", "gone"], "blocked never dialled");
  assert.ok(t.dialled.every((d) => d.deadline === NOW + 30_000), "one window for all");
  assert.deepEqual([...t.links.users].sort(), ["ann", "bob"]);
  const failures = t.outbox.sent.filter((s) => s.message.kind === "failure");
  assert.deepEqual(failures.map((f) => [f.to, (f.message as { target: string }).target]), [[[
    "host@game.test",
  ], "gone"]]);
  // Linked now: a later request asks only to stay in the table.
  assert.equal((await t.peer.announce()).quiet, true);
});

Deno.test("an introduction makes the earlier peer dial the newcomer within the introduction's window", async () => {
  const t = setup(() => true);
  const intro: Intro = {
    kind: "intro",
    peers: [entry("newbie", NOW)],
    time: NOW,
    nonce: new Uint8Array(16),
    window: 45_000,
  };
  assert.equal(t.peer.handle(mail(intro)), "delete");
  await t.peer.dialing;
  assert.deepEqual(t.dialled, [{ user: "newbie", deadline: NOW + 45_000 }]);
  assert.ok(t.links.has("newbie"));
  assert.ok(t.events.some((e) => e.event === "introduced" && e.peer === "newbie"));
  // Linked already: a second introduction dials nothing; no failure is reported for introductions.
  t.peer.handle(mail({ ...intro, nonce: new Uint8Array(16).fill(1) }));
  await t.peer.dialing;
  assert.equal(t.dialled.length, 1);
});

Deno.test("one introduction of several newcomers dials each of them, skipping ourselves and those already linked", async () => {
  const t = setup(() => true);
  t.links.users.add("linked");
  const intro: Intro = {
    kind: "intro",
    peers: [entry("n1", NOW), entry("me", NOW), entry("linked", NOW), entry("n2", NOW)],
    time: NOW,
    nonce: new Uint8Array(16),
    window: 45_000,
  };
  assert.equal(t.peer.handle(mail(intro)), "delete");
  await t.peer.dialing;
  assert.deepEqual(t.dialled.map((d) => d.user).sort(), ["n1", "n2"]);
  assert.deepEqual(
    t.events.filter((e) => e.event === "introduced").map((e) => e.peer),
    ["n1", "linked", "n2"],
    "told of each other newcomer, never of ourselves",
  );
});

Deno.test("an introduction that came after its window makes the peer ask again, at most once a minute, once it has asked at all", async () => {
  const t = setup(() => true);
  const late: Intro = {
    kind: "intro",
    peers: [entry("newbie", NOW - 120_000)],
    time: NOW - 120_000,
    nonce: new Uint8Array(16),
    window: 45_000,
  };
  const requests = () => t.outbox.sent.filter((s) => s.message.kind === "request").length;
  // announce() hands its mail to the sender before its first await: what was asked is counted at once.
  t.peer.handle(mail(late));
  assert.equal(requests(), 0, "read at start, before our own request (which is about to go): no second one");
  await t.peer.announce();
  t.peer.handle(mail(late));
  t.peer.handle(mail(late));
  await t.peer.dialing;
  assert.equal(t.dialled.length, 0, "nobody is trying any more: no dial");
  assert.equal(requests(), 2, "asked again once");
  t.tick(61_000);
  t.peer.handle(mail(late));
  assert.equal(requests(), 3);
});

Deno.test("a reply to another request is left for its owner until it is old; an introduction of ourselves is ignored", async () => {
  const t = setup(() => true);
  await t.peer.announce();
  const foreign = mail({
    kind: "reply",
    session: new Uint8Array(16).fill(9),
    time: NOW,
    peers: [entry("x")],
  });
  assert.equal(t.peer.handle(foreign), "keep", "maybe another process's on this inbox");
  foreign.mail.date = new Date(NOW - 13 * 3600_000);
  assert.equal(t.peer.handle(foreign), "delete", "older than --max-age: nobody needs it");
  t.peer.handle(
    mail({ kind: "intro", peers: [entry("me")], time: NOW, nonce: new Uint8Array(16), window: 1000 }),
  );
  await t.peer.dialing;
  assert.equal(t.dialled.length, 0);
  assert.ok(t.events.some((e) => e.event === "reply_ignored"));
  const req = t.outbox.sent[0].message as Request;
  assert.deepEqual(req.candidates, REACH.candidates, "the request carries our candidates");
});

Deno.test("a linked peer skips re-announcing by mail, but renews its host row before it expires", async () => {
  const t = setup(() => true);
  await t.peer.announce();
  t.tick(30 * 60_000);
  assert.ok(await t.peer.reannounce(), "no link yet: asks again");
  t.links.users.add("ann");
  t.tick(30 * 60_000);
  assert.equal(await t.peer.reannounce(), undefined, "linked: the links keep it in the group");
  assert.equal(t.outbox.sent.length, 2);
  t.tick(LINKED_REANNOUNCE_MS);
  const renewed = await t.peer.reannounce();
  assert.equal(renewed?.quiet, true, "a quiet renewal: no introductions wanted");
  t.links.users.clear();
  t.tick(60_000);
  assert.ok(await t.peer.reannounce(), "the links are gone: asks again at once");
});

Deno.test("a peer coming back dials the members it was linked to last time; linked, its request is quiet", async () => {
  const t = setup((u) => u === "ann");
  assert.equal(await t.peer.comeBack([entry("gone"), entry("ann")], 10_000), true);
  assert.deepEqual(t.dialled.map((d) => d.user).sort(), ["ann", "gone"]);
  assert.equal(t.outbox.sent.length, 0, "no failure notice for the one that left");
  assert.equal((await t.peer.announce()).quiet, true, "the host keeps its row; no introductions wanted");
  const alone = setup(() => false);
  assert.equal(await alone.peer.comeBack([entry("gone")], 10_000), false, "nobody answered: ask by mail");
});

Deno.test("a peer coming back goes on at its first link, while a dial to a member that left still waits", async () => {
  const never = Promise.withResolvers<LinkedPeer>();
  const t = setup(() => true, (e) => e.user === "gone" ? never.promise : Promise.resolve(fakeLink(e.user)));
  const back = t.peer.comeBack([entry("gone"), entry("ann")], 10_000);
  // One turn of the event loop settles every promise already resolved; the dial to "gone" is not.
  const first = await Promise.race([back, new Promise((r) => setTimeout(r, 0, "still waiting"))]);
  assert.equal(first, true, "ann's link is enough");
  never.reject(new Error("no answer"));
  await t.peer.close();
});

Deno.test("a reply whose session id is not ours dials nothing; before any request every reply is someone else's", async () => {
  const t = setup(() => true);
  const before = mail({ kind: "reply", session: new Uint8Array(16).fill(3), time: NOW, peers: [entry("x")] });
  assert.equal(t.peer.handle(before), "keep", "we asked nothing yet: not ours to delete");
  const req = await t.peer.announce();
  const forged = new Uint8Array(req.session);
  forged[0] ^= 1;
  assert.equal(
    t.peer.handle(mail({ kind: "reply", session: forged, time: NOW, peers: [entry("x")] })),
    "keep",
    "one bit off is another request's reply",
  );
  await t.peer.dialing;
  assert.deepEqual(t.dialled, []);
  assert.equal(t.events.filter((e) => e.event === "reply").length, 0);
  assert.equal(t.events.filter((e) => e.event === "reply_ignored").length, 2);
});

Deno.test("a reply sealed with another network key (a stranger posing as a host) is set aside and dials nothing", async () => {
  const t = setup(() => true);
  const req = await t.peer.announce();
  const stranger = networkKeyFromSecret(new Uint8Array(32).fill(5));
  const text = sealToText(stranger, { kind: "reply", session: req.session, time: NOW, peers: [entry("x")] });
  let opened: Message | ProtocolError;
  try {
    opened = openText(key, text);
  } catch (err) {
    opened = err as ProtocolError;
  }
  assert.ok(opened instanceof ProtocolError && opened.code === "unsealed");
  const m = mail({ kind: "reply", session: req.session, time: NOW, peers: [] });
  m.message = opened;
  assert.equal(t.peer.wants(m), false, "an unopened mail is no reply for the peer role");
  assert.equal(t.peer.handle(m), "quarantine");
  await t.peer.dialing;
  assert.deepEqual(t.dialled, []);
  assert.ok(t.events.some((e) => e.event === "reply_ignored" && /another key/.test(e.reason)));
});

Deno.test("a host we never asked that echoes our session (an upstream host, 【0065】) is heard; the session id, not the From, proves the answer", async () => {
  const heard: string[] = [];
  const t = setup(() => true);
  t.peer.deps.onPeers = (_peers, via) => heard.push(via);
  const req = await t.peer.announce();
  const m = mail({ kind: "reply", session: req.session, time: NOW, peers: [entry("ann"), entry("me")] });
  m.mail.from = "upstream@far.test";
  assert.equal(t.peer.handle(m), "delete");
  await t.peer.dialing;
  assert.deepEqual(heard, ["upstream@far.test"]);
  assert.deepEqual(t.dialled.map((d) => d.user), ["ann"], "a host listing us never makes us dial ourselves");
});

Deno.test("later replies to one request are taken for five minutes; after that one is deleted as a replay", async () => {
  const t = setup(() => true);
  const req = await t.peer.announce();
  const reply = (user: string) =>
    mail({ kind: "reply", session: req.session, time: NOW, peers: [entry(user)] });
  assert.equal(t.peer.handle(reply("ann")), "delete");
  t.tick(4 * 60_000);
  assert.equal(t.peer.handle(reply("bob")), "delete");
  t.tick(2 * 60_000);
  assert.equal(t.peer.handle(reply("cat")), "delete");
  await t.peer.dialing;
  assert.deepEqual(t.dialled.map((d) => d.user), ["ann", "bob"], "the late reply dials nobody");
  assert.ok(t.events.some((e) => e.event === "reply_ignored" && /answered long ago/.test(e.reason)));
});

Deno.test("an introduced peer punches at once but dials TCP only if the newcomer has not reached us meanwhile", async () => {
  const dial = Promise.withResolvers<LinkedPeer>();
  const t = setup(() => true, () => dial.promise);
  const intro: Intro = {
    kind: "intro",
    peers: [entry("newbie", NOW)],
    time: NOW,
    nonce: new Uint8Array(16),
    window: 45_000,
  };
  t.peer.handle(mail(intro));
  assert.equal(t.dialled.length, 1, "the dial (punching) starts at once");
  const tcpWhen = t.dialOpts[0]?.tcpWhen;
  assert.ok(tcpWhen);
  t.links.users.add("newbie"); // the newcomer's own dial reached us first
  assert.equal(await tcpWhen, false, "no second (TCP) link to close");
  dial.reject(new Error("gave up"));
  await t.peer.dialing;
  assert.ok(!t.events.some((e) => e.event === "dial_failed"), "it reached us: nothing failed");
});

Deno.test("close() aborts the dials under way and reports no failure for them", async () => {
  const t = setup(
    () => true,
    (_e, opts) =>
      new Promise((_resolve, reject) =>
        opts?.signal?.addEventListener("abort", () => reject(new Error("aborted")), { once: true })
      ),
  );
  const req = await t.peer.announce();
  t.peer.handle(mail({ kind: "reply", session: req.session, time: NOW, peers: [entry("ann")] }));
  assert.equal(t.dialled.length, 1);
  await t.peer.close();
  assert.equal(t.outbox.sent.filter((s) => s.message.kind === "failure").length, 0);
  assert.ok(!t.events.some((e) => e.event === "dial_failed" || e.event === "waiting"));
});
