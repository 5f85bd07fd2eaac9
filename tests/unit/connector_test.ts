/**
 * The connector tells a punch it stops why: another path won, or nothing answered in time (the
 * punch passes that on to the other side, and the log shows it).
 */
import assert from "node:assert/strict";
import { Connector } from "../../src/net/connector.ts";
import type { PunchHub } from "../../src/net/punch_hub.ts";
import { type Link, listenLinks } from "../../src/net/link.ts";
import { generateKeyPair } from "../../src/protocol/noise.ts";
import { generateKeyText, parseNetworkKey } from "../../src/protocol/keys.ts";
import type { Candidate } from "../../src/protocol/candidate.ts";

/** A hub whose punches never answer; it notes why each was stopped. */
function silentHub() {
  const stopped: string[] = [];
  const hub = {
    quic: true,
    mapping: "unknown",
    connect: (_key: Uint8Array, _reach: unknown, _deadline: number, signal?: AbortSignal) => {
      signal?.addEventListener("abort", () => stopped.push((signal.reason as Error).message), { once: true });
      return new Promise(() => {});
    },
  };
  return { hub: hub as unknown as PunchHub, stopped };
}

const udp: Candidate = { kind: "lan", transport: "udp", host: "192.0.2.7", port: 9 };

Deno.test("a punch still running when TCP linked is stopped as 'another path was used', just after the link is handed over", async () => {
  const networkKey = await parseNetworkKey(generateKeyText());
  const [ours, theirs] = await Promise.all([generateKeyPair(), generateKeyPair()]);
  const accepted: Link[] = [];
  const listener = listenLinks({
    hostname: "127.0.0.1",
    port: 0,
    staticKey: theirs,
    networkKey: networkKey.secret,
    onLink: (l) => void accepted.push(l),
  });
  const { hub, stopped } = silentHub();
  const connector = new Connector({ staticKey: ours, networkKey, localInfo: {}, hub, tcpTimeoutMs: 5_000 });
  const tcp: Candidate = { kind: "lan", transport: "tcp", host: "127.0.0.1", port: listener.addr.port };
  const r = await connector.connect(
    { user: "them", linkKey: theirs.publicKey, candidates: [tcp, udp], mapping: "unknown" },
    Date.now() + 10_000,
  );
  assert.equal(r.route.transport, "tcp");
  // Stopped right after the link is handed over (a stop costs a few ms the link need not wait for).
  assert.deepEqual(stopped, []);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(stopped, ["another path was used"]);
  r.link.abort();
  for (const l of accepted) l.abort();
  listener.close();
});

Deno.test("a punch still running when the dial gives up is stopped as 'no path answered in time', not as if another path won", async () => {
  const networkKey = await parseNetworkKey(generateKeyText());
  const [ours, theirs] = await Promise.all([generateKeyPair(), generateKeyPair()]);
  const { hub, stopped } = silentHub();
  const connector = new Connector({ staticKey: ours, networkKey, localInfo: {}, hub, tcpTimeoutMs: 5_000 });
  await assert.rejects(
    connector.connect(
      { user: "them", linkKey: theirs.publicKey, candidates: [udp], mapping: "unknown" },
      Date.now() + 30, // the deadline is the point here: nothing answers before it
    ),
  );
  assert.deepEqual(stopped, ["no path answered in time"]);
});

Deno.test("a dial the caller cancels passes the caller's reason to the punch", async () => {
  const networkKey = await parseNetworkKey(generateKeyText());
  const [ours, theirs] = await Promise.all([generateKeyPair(), generateKeyPair()]);
  const { hub, stopped } = silentHub();
  const connector = new Connector({ staticKey: ours, networkKey, localInfo: {}, hub, tcpTimeoutMs: 5_000 });
  const cancel = new AbortController();
  const dial = connector.connect(
    { user: "them", linkKey: theirs.publicKey, candidates: [udp], mapping: "unknown" },
    Date.now() + 60_000,
    cancel.signal,
  );
  cancel.abort(new Error("the node is stopping"));
  await assert.rejects(dial);
  assert.deepEqual(stopped, ["the node is stopping"]);
});
