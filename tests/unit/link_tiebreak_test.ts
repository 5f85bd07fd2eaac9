/**
 * Two peers that dial each other at once end up with two links to one member; both ends must keep
 * the same one (src/node/link_registry.ts): the better route kind, and between equals the link dialled by
 * the smaller user id.
 */
import assert from "node:assert/strict";
import type { Link } from "../../src/net/link.ts";
import { LinkRegistry } from "../../src/node/link_registry.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import { NetLinkedPeer } from "../../src/roles/net_dialer.ts";
import type { LinkRoute } from "../../src/roles/peer.ts";
import { DIRECT, handshake, side } from "../helpers/linked_pair.ts";

const RELAYED: LinkRoute = { path: "relay", transport: "tcp", kind: "relayed", rttMs: 5 };

function registry(user: string) {
  const events: NodeEvent[] = [];
  return { links: new LinkRegistry({ user, events: (e) => events.push(e) }), events };
}

/** The link a registry kept for `user`, as the handshake that made it. */
function kept(r: LinkRegistry, user: string): Link | undefined {
  return (r.member(user) as unknown as { peer: NetLinkedPeer } | undefined)?.peer.link;
}

async function bothDial(order: "own first" | "other's first", meRoute = DIRECT, bobRoute = DIRECT) {
  const [me, bob] = [side("me"), side("bob")];
  const ours = registry("me");
  const theirs = registry("bob");
  const [meOut, bobIn] = await handshake(me, bob); // me dialled bob
  const [bobOut, meIn] = await handshake(bob, me); // bob dialled me, at the same moment
  const mine = {
    out: new NetLinkedPeer(meOut, "bob", "mem", "out", meRoute),
    in: new NetLinkedPeer(meIn, "bob", "mem", "in", bobRoute),
  };
  const bobs = {
    out: new NetLinkedPeer(bobOut, "me", "mem", "out", bobRoute),
    in: new NetLinkedPeer(bobIn, "me", "mem", "in", meRoute),
  };
  const [first, second] = order === "own first" ? ["out", "in"] as const : ["in", "out"] as const;
  ours.links.adopt(mine[first]);
  ours.links.adopt(mine[second]);
  theirs.links.adopt(bobs[first]);
  theirs.links.adopt(bobs[second]);
  return { ours, theirs, meOut, meIn, bobOut, bobIn, mine, bobs };
}

for (const order of ["own first", "other's first"] as const) {
  Deno.test(`both sides dial at once (each adopts its ${order}): one link survives, the same on both sides, dialled by the smaller user id`, async () => {
    const t = await bothDial(order);
    try {
      assert.equal(t.ours.links.size, 1);
      assert.equal(t.theirs.links.size, 1);
      // "bob" < "me": bob's dial is kept at both ends — the two ends of one handshake.
      assert.equal(kept(t.ours.links, "bob"), t.meIn);
      assert.equal(kept(t.theirs.links, "me"), t.bobOut);
      assert.deepEqual(t.meIn.handshakeHash, t.bobOut.handshakeHash);
      // The other link (me's dial) is closed at both ends.
      await Promise.all([t.mine.out.closed, t.bobs.in.closed]);
      assert.equal(
        t.ours.events.filter((e) => e.event === "connected").length,
        1,
        "one member, one connected event",
      );
    } finally {
      await Promise.all([t.ours.links.close(), t.theirs.links.close()]);
    }
  });
}

Deno.test("between two links to one member the better route wins whoever dialled: a direct LAN link replaces a relayed one", async () => {
  // me dialled over the LAN; bob's dial went through a relay: me's dial wins though "me" > "bob".
  const t = await bothDial("other's first", DIRECT, RELAYED);
  try {
    assert.equal(kept(t.ours.links, "bob"), t.meOut);
    assert.equal(kept(t.theirs.links, "me"), t.bobIn);
    assert.ok(t.ours.events.some((e) => e.event === "link_replaced" && e.kind === "lan"));
  } finally {
    await Promise.all([t.ours.links.close(), t.theirs.links.close()]);
  }
});
