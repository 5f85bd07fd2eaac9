import assert from "node:assert/strict";
import { generateKeyPair, type KeyPair } from "../../src/protocol/noise.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { acceptLink, initiateLink, type Link } from "../../src/net/link.ts";
import {
  MuxByteStream,
  openRelayed,
  RELAY_IN_PROTOCOL,
  RELAY_PROTOCOL,
  RelayService,
} from "../../src/net/relay.ts";
import { LinkRegistry } from "../../src/node/link_registry.ts";
import { NetLinkedPeer } from "../../src/roles/net_dialer.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import type { LinkRoute } from "../../src/roles/peer.ts";
import { DIRECT, handshake } from "../helpers/linked_pair.ts";

const NETWORK = networkKeyFromSecret(new Uint8Array(32).fill(9));

interface Node {
  user: string;
  key: KeyPair;
  links: LinkRegistry;
  events: NodeEvent[];
  /** Resolves when this node says it is connected to `peer` (at once if it said so already). */
  connected(peer: string): Promise<void>;
}

function node(user: string): Node {
  const events: NodeEvent[] = [];
  const waiters: { peer: string; resolve: () => void }[] = [];
  const said = (peer: string) => events.some((e) => e.event === "connected" && e.peer === peer);
  return {
    user,
    key: generateKeyPair(),
    links: new LinkRegistry({
      user,
      events: (e) => {
        events.push(e);
        if (e.event !== "connected") return;
        for (const w of waiters.filter((w) => w.peer === e.peer)) w.resolve();
      },
    }),
    events,
    connected: (peer) =>
      said(peer) ? Promise.resolve() : new Promise((resolve) => waiters.push({ peer, resolve })),
  };
}

/** Links a (dialer) and b over an in-memory pipe and hands each side's link to its registry. */
async function link(a: Node, b: Node, route: LinkRoute = DIRECT): Promise<void> {
  const [la, lb] = await handshake(a, b, NETWORK.secret);
  a.links.adopt(new NetLinkedPeer(la, b.user, "mem", "out", route));
  b.links.adopt(new NetLinkedPeer(lb, a.user, "mem", "in", route));
}

/** What a node does with a "relay-in" stream: the listener's handshake over it. */
function takeRelayed(n: Node): void {
  n.links.serve(RELAY_IN_PROTOCOL, (stream, relay) => {
    void acceptLink(new MuxByteStream(stream), {
      staticKey: n.key,
      networkKey: NETWORK.secret,
      localInfo: { user: n.user },
    })
      .then((l: Link) =>
        n.links.adopt(
          new NetLinkedPeer(l, String(l.remotePayload.user), `via ${relay.user}`, "in", {
            path: "relay",
            transport: "tcp",
            kind: "relayed",
            rttMs: l.rttMs,
          }),
        )
      );
  });
}

async function readLine(s: { read(): Promise<Uint8Array | null> }): Promise<string> {
  let text = "";
  for (let c = await s.read(); c !== null; c = await s.read()) {
    text += new TextDecoder().decode(c);
    if (text.includes("\n")) break;
  }
  return text.trim();
}

Deno.test("two members link end to end through a third: the relay splices, the handshake is theirs", async () => {
  const ann = node("ann");
  const bob = node("bob");
  const rita = node("rita");
  const relayed: unknown[] = [];
  const service = new RelayService({ links: rita.links, onRelay: (e) => relayed.push(e) });
  rita.links.serve(RELAY_PROTOCOL, (s, m) => void service.accept(s, m.user, m.key));
  takeRelayed(bob);
  await link(ann, rita);
  await link(bob, rita);

  const stream = await openRelayed(ann.links.muxFor(rita.key.publicKey)!, {
    user: "bob",
    linkKey: bob.key.publicKey,
  }, 5000);
  const l = await initiateLink(stream, {
    staticKey: ann.key,
    remoteStatic: bob.key.publicKey,
    networkKey: NETWORK.secret,
    localInfo: { user: "ann" },
  });
  ann.links.adopt(
    new NetLinkedPeer(l, "bob", "via rita", "out", {
      path: "relay",
      transport: "tcp",
      kind: "relayed",
      rttMs: 1,
    }),
  );
  await bob.connected("ann");
  assert.ok(bob.links.has("ann"), "bob adopted the relayed link");
  assert.deepEqual(relayed, [{ from: "ann", to: "bob", outcome: "spliced" }]);

  // An app stream across the relayed link, both ways.
  bob.links.attach({
    protocols: ["echo"],
    stream: (s) =>
      void (async () => {
        const line = await readLine(s);
        await s.write(new TextEncoder().encode(`bob heard ${line}\n`));
        s.closeWrite();
      })(),
  });
  const s = ann.links.member("bob")!.mux.open("echo");
  await s.write(new TextEncoder().encode("hello\n"));
  assert.equal(await readLine(s), "bob heard hello");
  const connected = ann.events.find((e) => e.event === "connected" && e.peer === "bob");
  assert.equal(connected && "path" in connected ? connected.path : undefined, "relay");

  await Promise.all([ann.links.close(), bob.links.close(), rita.links.close()]);
});

Deno.test("a relay refuses a member it cannot reach, and one that is full, with a reason", async () => {
  const ann = node("ann");
  const rita = node("rita");
  const service = new RelayService({ links: rita.links, waitMs: 300, maxPairs: 1 });
  rita.links.serve(RELAY_PROTOCOL, (s, m) => void service.accept(s, m.user, m.key));
  await link(ann, rita);
  const mux = ann.links.muxFor(rita.key.publicKey)!;
  // The first request holds the only slot while the relay waits for "nobody" to link.
  const first = openRelayed(mux, { user: "nobody", linkKey: generateKeyPair().publicKey }, 5000);
  await assert.rejects(
    openRelayed(mux, { user: "other", linkKey: generateKeyPair().publicKey }, 5000),
    /this relay is full/,
  );
  await assert.rejects(first, /nobody is not linked to this relay/);
  await Promise.all([ann.links.close(), rita.links.close()]);
});

Deno.test("a second link to a member replaces the first only when its route is better; both ends agree", async () => {
  const ann = node("ann");
  const bob = node("bob");
  await link(ann, bob, { path: "relay", transport: "tcp", kind: "relayed", rttMs: 9 });
  assert.equal(ann.links.member("bob")!.route.kind, "relayed");
  // A punched path comes up (bob dialled): better, so it replaces the relayed one on both sides.
  await link(bob, ann, { path: "direct", transport: "quic", kind: "punched", rttMs: 3 });
  assert.equal(ann.links.member("bob")!.route.kind, "punched");
  assert.equal(bob.links.member("ann")!.route.kind, "punched");
  assert.ok(ann.events.some((e) => e.event === "link_replaced"));
  // A worse one (relayed again) is refused, and one connected event per member.
  await link(ann, bob, { path: "relay", transport: "tcp", kind: "relayed", rttMs: 9 });
  assert.equal(ann.links.member("bob")!.route.kind, "punched");
  assert.equal(ann.events.filter((e) => e.event === "connected").length, 1);
  // Between equal routes the link dialled by the smaller user id wins, on both sides.
  const carl = node("carl");
  const dana = node("dana");
  await link(dana, carl);
  await link(carl, dana);
  assert.equal(carl.links.member("dana")!.route.kind, "lan");
  const keptByCarl = (carl.links.member("dana") as unknown as { peer: NetLinkedPeer }).peer.direction;
  const keptByDana = (dana.links.member("carl") as unknown as { peer: NetLinkedPeer }).peer.direction;
  assert.equal(keptByCarl, "out", "carl < dana: carl's dial is kept");
  assert.equal(keptByDana, "in");
  await Promise.all([ann, bob, carl, dana].map((n) => n.links.close()));
});

Deno.test("streams go to the app or service that takes their protocol; others are refused", async () => {
  const ann = node("ann");
  const bob = node("bob");
  await link(ann, bob);
  const s = ann.links.member("bob")!.mux.open("nobody-takes-this");
  await assert.rejects(s.read(), /nothing here takes "nobody-takes-this" streams/);
  await Promise.all([ann.links.close(), bob.links.close()]);
});
