/**
 * The auto role's decisions (patent 【0064】【0065】): which role takes each mail of the one inbox,
 * when the node promotes itself to host, and what a promoted host learns from our own hosts.
 */
import assert from "node:assert/strict";
import type { ParsedMail } from "../../src/mail/parse.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { type Message, type PeerEntry, reachAt } from "../../src/protocol/messages.ts";
import { AutoNode } from "../../src/roles/auto.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import type { Host } from "../../src/roles/host.ts";
import type { Disposition, InboundMail } from "../../src/roles/inbox.ts";
import type { Peer } from "../../src/roles/peer.ts";
import { request } from "../helpers/events.ts";

const NOW = Date.UTC(2026, 10, 27, 12);

function mail(message: Message | ProtocolError): InboundMail {
  const m: ParsedMail = { subject: "m", date: new Date(NOW), recipients: ["me@isp.test"], text: "" };
  return { id: "1", mail: m, message, wokeAt: 0 };
}

function entry(user: string): PeerEntry {
  return {
    user,
    host: "203.0.113.9",
    port: 4000,
    linkKey: new Uint8Array(32).fill(2),
    seen: NOW,
    flagged: false,
    ...reachAt("203.0.113.9", 4000),
  };
}

/** Stand-ins that record which role took what (the roles themselves have their own tests). */
function setup(canHost = true) {
  const took: string[] = [];
  const learned: string[] = [];
  const events: NodeEvent[] = [];
  let promotions = 0;
  const peer = {
    wants: (m: InboundMail) =>
      !(m.message instanceof ProtocolError) && (m.message.kind === "reply" || m.message.kind === "intro"),
    handle: (m: InboundMail): Disposition => {
      took.push(`peer ${m.message instanceof ProtocolError ? m.message.code : m.message.kind}`);
      return m.message instanceof ProtocolError ? "quarantine" : "delete";
    },
  } as unknown as Peer;
  const host = {
    handle: (m: InboundMail): Promise<Disposition> => {
      took.push(`host ${m.message instanceof ProtocolError ? m.message.code : m.message.kind}`);
      return Promise.resolve("delete");
    },
    learnFrom: (via: string, peers: readonly PeerEntry[]) =>
      learned.push(`${via}: ${peers.map((p) => p.user).join(",")}`),
  } as unknown as Host;
  const node = new AutoNode({
    peer,
    promote: canHost
      ? () => {
        promotions++;
        return host;
      }
      : undefined,
    events: (e) => events.push(e),
  });
  return { node, took, learned, events, promotions: () => promotions };
}

const reply: Message = { kind: "reply", session: new Uint8Array(16), time: NOW, peers: [] };
const req = () => request("ann", { address: "ann@isp-a.test" }, NOW);
const unsealed = () => new ProtocolError("The message does not open with our network key.", "unsealed");
const broken = () => new ProtocolError("The mailmeet block is not valid base64.", "malformed");

Deno.test("replies and introductions go to the peer role; the node stays a plain peer", async () => {
  const t = setup();
  assert.equal(await t.node.handle(mail(reply)), "delete");
  const intro: Message = {
    kind: "intro",
    peers: [entry("bob")],
    time: NOW,
    nonce: new Uint8Array(16),
    window: 45_000,
  };
  assert.equal(await t.node.handle(mail(intro)), "delete");
  assert.deepEqual(t.took, ["peer reply", "peer intro"]);
  assert.equal(t.node.hosting, false);
  assert.equal(t.promotions(), 0);
});

Deno.test("the first request that reaches our inbox promotes the node to host, once; later requests go to the same host", async () => {
  const t = setup();
  assert.equal(await t.node.handle(mail(req())), "delete");
  assert.equal(await t.node.handle(mail(req())), "delete");
  assert.deepEqual(t.took, ["host request", "host request"]);
  assert.equal(t.promotions(), 1);
  assert.equal(t.node.hosting, true);
  assert.equal(t.events.filter((e) => e.event === "promoted").length, 1);
  assert.equal(await t.node.handle(mail(reply)), "delete", "our own replies still go to the peer");
  assert.deepEqual(t.took.at(-1), "peer reply");
});

Deno.test("with --no-host a request is left in the mailbox and nothing is promoted", async () => {
  const t = setup(false);
  assert.equal(await t.node.handle(mail(req())), "keep");
  assert.deepEqual(t.took, []);
  assert.equal(t.node.host, undefined);
});

Deno.test("mail that does not open with our key is left alone by a plain peer (another group may share the inbox); broken mail is set aside", async () => {
  const t = setup();
  assert.equal(await t.node.handle(mail(unsealed())), "keep");
  assert.ok(t.events.some((e) => e.event === "reply_ignored" && /left in the mailbox/.test(e.reason)));
  assert.equal(await t.node.handle(mail(broken())), "quarantine");
  assert.deepEqual(t.took, ["peer malformed"]);
  assert.equal(t.promotions(), 0, "unopened mail promotes nobody");
});

Deno.test("once hosting, mail that does not open goes to the host (which sets it aside and logs it)", async () => {
  const t = setup();
  await t.node.handle(mail(req()));
  await t.node.handle(mail(unsealed()));
  await t.node.handle(mail(broken()));
  assert.deepEqual(t.took, ["host request", "host unsealed", "host malformed"]);
});

Deno.test("what our own hosts told us before promotion is handed to the new host, and later news at once (【0065】 chaining)", async () => {
  const t = setup();
  t.node.heard([entry("ann")], "up1@host.test");
  t.node.heard([entry("bob"), entry("cat")], "up2@host.test");
  t.node.heard([entry("ann"), entry("dan")], "up1@host.test"); // newer news from up1 replaces the old
  assert.deepEqual(t.learned, [], "no host yet");
  await t.node.handle(mail(req()));
  assert.deepEqual(t.learned, ["up1@host.test: ann,dan", "up2@host.test: bob,cat"]);
  t.node.heard([entry("eve")], "up2@host.test");
  assert.deepEqual(t.learned.at(-1), "up2@host.test: eve");
});
