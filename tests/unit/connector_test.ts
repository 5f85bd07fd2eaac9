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

/** A hub whose punches never answer; it notes each punch begun, and why each was stopped. */
function silentHub() {
  const stopped: string[] = [];
  let started = 0;
  const hub = {
    quic: true,
    mapping: "unknown",
    connect: (_key: Uint8Array, _reach: unknown, _deadline: number, signal?: AbortSignal) => {
      started++;
      signal?.addEventListener("abort", () => stopped.push((signal.reason as Error).message), { once: true });
      return new Promise(() => {});
    },
  };
  return { hub: hub as unknown as PunchHub, stopped, started: () => started };
}

/** A port where nothing listens (bound, then closed). */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const udp: Candidate = { kind: "lan", transport: "udp", host: "192.0.2.7", port: 9 };

/** Our keys and theirs, and a link listener of theirs on loopback with the TCP candidate that reaches it. */
async function theirListener() {
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
  const tcp: Candidate = { kind: "lan", transport: "tcp", host: "127.0.0.1", port: listener.addr.port };
  return {
    networkKey,
    ours,
    theirs,
    tcp,
    async close() {
      for (const l of accepted) l.abort();
      await listener.close();
    },
  };
}

Deno.test("a punch still running when TCP linked is stopped as 'another path was used', just after the link is handed over", async () => {
  const { networkKey, ours, theirs, tcp, close } = await theirListener();
  const { hub, stopped } = silentHub();
  const connector = new Connector({ staticKey: ours, networkKey, localInfo: {}, hub, tcpTimeoutMs: 5_000 });
  // As when introduced: punching at once, TCP after (tcpWhen), so the punch is running.
  const r = await connector.connect(
    { user: "them", linkKey: theirs.publicKey, candidates: [tcp, udp], mapping: "unknown" },
    Date.now() + 10_000,
    undefined,
    Promise.resolve(true),
  );
  assert.equal(r.route.transport, "tcp");
  // Stopped right after the link is handed over (a stop costs a few ms the link need not wait for).
  assert.deepEqual(stopped, []);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(stopped, ["another path was used"]);
  r.link.abort();
  await close();
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

Deno.test("dialling TCP and UDP candidates, punching waits for TCP: a LAN link that answers at once means no punch at all", async () => {
  const { networkKey, ours, theirs, tcp, close } = await theirListener();
  const { hub, started } = silentHub();
  const connector = new Connector({
    staticKey: ours,
    networkKey,
    localInfo: {},
    hub,
    tcpTimeoutMs: 5_000,
    punchAfterTcpMs: 60_000, // TCP answers well within it
  });
  const r = await connector.connect(
    { user: "them", linkKey: theirs.publicKey, candidates: [tcp, udp], mapping: "unknown" },
    Date.now() + 10_000,
  );
  assert.equal(r.route.transport, "tcp");
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(started(), 0, "no punch was begun");
  r.link.abort();
  await close();
});

/**
 * Dials `tcp` and a UDP candidate with a silent hub and the given head start for TCP; how many
 * punches had begun once one did (or 2 s passed). The dial is cancelled after.
 */
async function punchesBegun(tcp: Candidate, punchAfterTcpMs: number): Promise<number> {
  const networkKey = await parseNetworkKey(generateKeyText());
  const [ours, theirs] = await Promise.all([generateKeyPair(), generateKeyPair()]);
  const { hub, started } = silentHub();
  const connector = new Connector({
    staticKey: ours,
    networkKey,
    localInfo: {},
    hub,
    tcpTimeoutMs: 5_000,
    punchAfterTcpMs,
  });
  const cancel = new AbortController();
  const dial = connector.connect(
    { user: "them", linkKey: theirs.publicKey, candidates: [tcp, udp], mapping: "unknown" },
    Date.now() + 10_000,
    cancel.signal,
  );
  dial.catch(() => {});
  for (let i = 0; i < 200 && started() === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const n = started();
  cancel.abort(new Error("done"));
  await assert.rejects(dial);
  return n;
}

Deno.test("punching starts as soon as every TCP attempt failed, without waiting out its head start", async () => {
  const refused: Candidate = { kind: "lan", transport: "tcp", host: "127.0.0.1", port: closedPort() };
  // Were the head start waited out, the punch would not start before the deadline.
  assert.equal(await punchesBegun(refused, 60_000), 1, "the punch began once the refused TCP attempt failed");
});

Deno.test("a TCP attempt that hangs holds punching back only for its head start", async () => {
  // Accepts and never answers the handshake: the TCP attempt stays pending.
  const mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of mute) held.push(c);
  })().catch(() => {});
  const tcp: Candidate = { kind: "lan", transport: "tcp", host: "127.0.0.1", port: mute.addr.port };
  assert.equal(await punchesBegun(tcp, 20), 1, "the punch began while TCP still hung");
  mute.close();
  for (const c of held) c.close();
  await accepting;
});
