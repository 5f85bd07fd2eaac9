import assert from "node:assert/strict";
import { failureReason, Progress, RATE_WINDOW_MS, STALL_MS } from "../../src/apps/file_proto.ts";

const MiB = 1024 * 1024;

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => t += ms };
}

Deno.test("the speed is over the bytes moved lately, and falls to a stall when nothing moves", () => {
  const c = clock();
  const p = new Progress(100 * MiB, c.now);
  for (let i = 1; i <= 10; i++) {
    c.advance(1000);
    p.update(i * 8 * MiB, i * 8 * MiB);
  }
  assert.equal(Math.round(p.rate / MiB), 8);
  assert.ok(p.bar().endsWith("80%  80.0 MiB / 100.0 MiB  8.0 MiB/s, 0:03 left"), p.bar());
  // The peer is gone: no byte for 12 s. The bar says so instead of freezing at the last speed.
  c.advance(2000);
  assert.equal(p.stalledMs, 0);
  assert.ok(p.rate < 8 * MiB);
  c.advance(10_000);
  assert.equal(p.stalledMs, 12_000);
  assert.equal(p.rate, 0);
  assert.ok(p.bar().endsWith("80%  80.0 MiB / 100.0 MiB  stalled 12 s"), p.bar());
  // It moves again: the stall is over.
  c.advance(1000);
  p.update(81 * MiB, 81 * MiB);
  assert.equal(p.stalledMs, 0);
  assert.ok(STALL_MS > 1000 && RATE_WINDOW_MS >= STALL_MS);
});

Deno.test("a resumed transfer counts what was already there for the total, never for the speed", () => {
  const c = clock();
  const p = new Progress(100 * MiB, c.now);
  // 60 MiB were there from an earlier try; 2 MiB travelled in the first second.
  p.update(60 * MiB, 0);
  c.advance(1000);
  p.update(62 * MiB, 2 * MiB);
  assert.equal(Math.round(p.rate / MiB), 2);
  assert.equal(p.percent, 62);
  assert.equal(Math.round(p.average / MiB), 2);
});

Deno.test("why a transfer broke, as a phrase: a reset's reason, a broken connection, a lowered sentence", () => {
  assert.equal(
    failureReason(new Error("ann reset the stream: the sender was interrupted")),
    "the sender was interrupted",
  );
  assert.equal(
    failureReason(new Error("Cannot send to 127.0.0.1:4: the connection broke (Broken pipe (os error 32)).")),
    "the connection broke",
  );
  assert.equal(failureReason(new Error("The link to bob closed.")), "the link to bob closed");
});
