import assert from "node:assert/strict";
import { NetPeerDialer } from "../../src/roles/net_dialer.ts";
import type { ConnectedLink, Connector } from "../../src/net/connector.ts";
import type { PeerEntry } from "../../src/protocol/messages.ts";
import { LinkRegistry } from "../../src/node/link_registry.ts";
import { LinkError } from "../../src/protocol/noise.ts";
import { handshake, side } from "../helpers/linked_pair.ts";

const ME = side("me");
const BOB = side("bob");

/** A connector whose connect() calls are counted and settled by the test. */
function heldConnector() {
  const calls: PromiseWithResolvers<ConnectedLink>[] = [];
  const connector = {
    opts: { staticKey: ME.key },
    connect: () => {
      const call = Promise.withResolvers<ConnectedLink>();
      calls.push(call);
      return call.promise;
    },
  } as unknown as Connector;
  return { connector, calls };
}

const bob: PeerEntry = {
  user: "bob",
  linkKey: BOB.key.publicKey,
  candidates: [],
  mapping: "unknown",
  seen: 0,
  flagged: false,
} as unknown as PeerEntry;

async function linkToBob(): Promise<ConnectedLink> {
  const [mine] = await handshake(ME, BOB);
  return {
    link: mine,
    route: { path: "direct", transport: "tcp", kind: "lan", address: "192.0.2.7:4000", rttMs: 1 },
  };
}

Deno.test("two dials to one member at once make one attempt, and both callers get its link, adopted once", async () => {
  const { connector, calls } = heldConnector();
  const dialer = new NetPeerDialer(connector, () => ({ candidates: [], mapping: "unknown" }) as never);
  const deadline = Date.now() + 10_000;
  const first = dialer.dial(bob, deadline);
  const second = dialer.dial(bob, deadline); // e.g. the host's introduction and a member's word over a link
  await Promise.resolve();
  assert.equal(calls.length, 1, "one connect for both");
  const made = await linkToBob();
  calls[0].resolve(made);
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a, b, "the same link for both callers");

  const events: Record<string, unknown>[] = [];
  const registry = new LinkRegistry({ user: "me", events: (e) => events.push(e) });
  assert.equal(registry.adopt(a), true);
  assert.equal(registry.adopt(b), true, "adopting it again is no change");
  assert.equal(made.link.closed, false, "and does not close it");
  assert.equal(events.filter((e) => e.event === "connected").length, 1);
  await registry.close();
});

Deno.test("a dial waiting on another that failed dials itself", async () => {
  const { connector, calls } = heldConnector();
  const dialer = new NetPeerDialer(connector, () => ({ candidates: [], mapping: "unknown" }) as never);
  const first = dialer.dial(bob, Date.now() + 1_000);
  const second = dialer.dial(bob, Date.now() + 10_000);
  await Promise.resolve();
  calls[0].reject(new LinkError("no path", "timeout"));
  await assert.rejects(first, /no path/);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(calls.length, 2, "the waiting dial tried on its own");
  const made = await linkToBob();
  calls[1].resolve(made);
  assert.equal((await second).user, "bob");
  made.link.abort();
});
