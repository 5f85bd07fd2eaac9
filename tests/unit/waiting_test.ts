import assert from "node:assert/strict";
import type { NodeEvent } from "../../src/roles/events.ts";
import { HOST_HINT_MS, WAIT_REPORT_MS, WaitReporter } from "../../src/cli/waiting.ts";
import { firstLinkTimeoutMs } from "../../src/cli/commands/app_common.ts";
import { resolveOptions } from "../../src/cli/options.ts";

function setup(vias: string[]) {
  let t = 0;
  const seen: NodeEvent[] = [];
  const w = new WaitReporter({ vias, emit: (e) => seen.push(e), now: () => t });
  const sink = w.track(() => {});
  const after = (ms: number) => {
    t += ms;
    w.tick();
  };
  const said = () => seen.map((e) => (e.event === "waiting" ? e.reason : e.event));
  return { w, sink, after, said, seen };
}

Deno.test("a node waiting for its host says so now and then, and adds the likely reasons later", () => {
  const { sink, after, said } = setup(["host@game.test"]);
  sink({ event: "request_sent", via: ["host@game.test"], session: "00" });
  after(WAIT_REPORT_MS - 1);
  assert.deepEqual(said(), [], "not before the first interval");
  after(1);
  after(WAIT_REPORT_MS);
  after(WAIT_REPORT_MS);
  after(WAIT_REPORT_MS);
  assert.deepEqual(said(), [
    "still waiting for host@game.test to answer (asked 15 s ago)",
    "still waiting for host@game.test to answer (asked 30 s ago)",
    "still waiting for host@game.test to answer (asked 45 s ago)",
    "still waiting for host@game.test to answer (asked 60 s ago); is the host running, with the same network key?",
  ]);
  assert.ok(HOST_HINT_MS === 4 * WAIT_REPORT_MS);
});

Deno.test("after the host answered that nobody else is there, it says no one else is online yet; once linked it is quiet", () => {
  const { sink, after, said } = setup(["host@game.test"]);
  sink({ event: "request_sent", via: ["host@game.test"], session: "00" });
  sink({ event: "reply", from: "host@game.test", peers: 0, session: "00" });
  after(WAIT_REPORT_MS);
  sink({
    event: "connected",
    peer: "ann",
    address: "127.0.0.1:1",
    direction: "in",
    path: "direct",
    transport: "tcp",
    kind: "lan",
    rtt_ms: 1,
  });
  after(WAIT_REPORT_MS);
  assert.deepEqual(said(), [
    "no one else is online yet (host@game.test answered 15 s ago); waiting for them",
  ]);
});

Deno.test("the first node of a group (no --via) waits to be asked or dialed", () => {
  const { after, said } = setup([]);
  after(WAIT_REPORT_MS);
  assert.deepEqual(said(), [
    "no one else is online yet: still waiting to be asked or dialed (15 s so far)",
  ]);
});

Deno.test("a bounced host address is left out; when every one bounced, nobody will answer", () => {
  const { w, sink, after, said } = setup(["host@game.test", "host2@gmae.test"]);
  sink({ event: "request_sent", via: ["host@game.test", "host2@gmae.test"], session: "00" });
  sink({
    event: "bounced",
    address: "host2@gmae.test",
    reason: "Host or domain name not found",
    final: true,
  });
  assert.equal(w.allBounced, undefined);
  after(WAIT_REPORT_MS);
  assert.deepEqual(said().filter((s) => s.startsWith("still")), [
    "still waiting for host@game.test to answer (asked 15 s ago)",
  ]);
  // A delay is not a failure.
  sink({ event: "bounced", address: "host@game.test", reason: "connection timed out", final: false });
  assert.equal(w.allBounced, undefined);
  sink({ event: "bounced", address: "host@game.test", reason: "no such mailbox (5.1.1)", final: true });
  assert.equal(
    w.allBounced,
    "Every host address bounced, so no host will answer: host@game.test (no such mailbox (5.1.1)), host2@gmae.test (Host or domain name not found); check --via.",
  );
});

Deno.test("the --timeout sentence says what was still missing", () => {
  const a = setup(["host@game.test"]);
  a.sink({ event: "request_sent", via: ["host@game.test"], session: "00" });
  assert.equal(
    a.w.timeoutSentence(60_000),
    "No peer connected within 60 s: host@game.test never answered; check that the host runs with the same network key, and --via for typos.",
  );
  a.sink({ event: "reply", from: "host@game.test", peers: 1, session: "00" });
  assert.match(a.w.timeoutSentence(60_000), /host@game\.test answered, but no listed peer could be reached/);
  assert.equal(
    setup([]).w.timeoutSentence(5_000),
    "No peer connected within 5 s; nobody asked or dialed this node.",
  );
});

Deno.test("waiting for a first link: --wait and --timeout 0 wait for ever, and so does a chat typed at a terminal unless --timeout was set", async () => {
  const ms = async (args: string[], interactive: boolean) =>
    firstLinkTimeoutMs(await resolveOptions(args, {}), interactive);
  assert.equal(await ms(["chat"], true), 0, "the first one in at a terminal waits for the others");
  assert.equal(await ms(["chat"], false), 120_000, "a piped chat keeps the default");
  assert.equal(await ms(["chat", "--timeout", "30"], true), 30_000, "an explicit --timeout holds");
  assert.equal(await ms(["chat", "--timeout", "30", "--wait"], true), 0);
  assert.equal(await ms(["join", "--wait"], false), 0);
  assert.equal(await ms(["join", "--timeout", "0"], false), 0);
  assert.equal(await ms(["join"], false), 120_000);
});

Deno.test("a reply that listed others none of whom linked: it waits for a peer to dial, not 'no one else'", () => {
  const { sink, after, said } = setup(["host@game.test"]);
  sink({ event: "request_sent", via: ["host@game.test"], session: "00" });
  sink({ event: "reply", from: "host@game.test", peers: 2, session: "00" });
  after(WAIT_REPORT_MS);
  assert.deepEqual(said(), ["still waiting for a peer to dial us (host@game.test answered 15 s ago)"]);
});
