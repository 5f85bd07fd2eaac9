import assert from "node:assert/strict";
import { RTT_PROTOCOL, RttProber, smoothRtt } from "../../src/node/rtt.ts";
import { linkedPair } from "../helpers/linked_pair.ts";

Deno.test("the smoothed round trip takes the first sample, then moves an eighth towards each new one (RFC 6298)", () => {
  assert.equal(smoothRtt(undefined, 8), 8);
  assert.equal(smoothRtt(8, 16), 9);
  assert.equal(smoothRtt(9, 1), 8);
});

Deno.test("a member echoes rtt probes; the prober matches each echo to its probe with the injected clock", async () => {
  await using pair = await linkedPair();
  let now = 100;
  const got: [number, number][] = [];
  const two = Promise.withResolvers<void>();
  const prober = new RttProber(pair.ours.member("bob")!.mux.open(RTT_PROTOCOL, {}), (seq, ms) => {
    got.push([seq, ms]);
    if (got.length === 2) two.resolve();
  }, () => now);
  assert.equal(prober.send(), 0);
  now += 5;
  assert.equal(prober.send(), 1);
  now += 2;
  await two.promise;
  assert.deepEqual(got, [[0, 7], [1, 2]]);
  prober.close();
});

Deno.test("every link's route shows a measured round trip soon after it comes up", async () => {
  await using pair = await linkedPair();
  const bob = pair.ours.member("bob")!;
  assert.equal(bob.route.rttMs, 1, "the handshake's figure first");
  // The first probe goes out at once; its echo replaces the handshake's figure.
  for (let i = 0; i < 100 && bob.route.rttMs === 1; i++) await new Promise((r) => setTimeout(r, 0));
  assert.notEqual(bob.route.rttMs, 1);
  assert.ok(bob.route.rttMs >= 0 && bob.route.rttMs < 1000);
});
