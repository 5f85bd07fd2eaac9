import assert from "node:assert/strict";
import {
  BASE_HISTORY_MS,
  BulkPacer,
  MIN_BULK_RATE,
  PACE_SLICE,
  PACE_TARGET_MS,
  PRESSURE_TARGET,
  PROBE_EVERY_MS,
} from "../../src/net/bulk_pacer.ts";
import { CpuPressure, parseCpuStall } from "../../src/net/cpu_pressure.ts";

const BASE = 0.2; // ms: a round trip with nothing queued

/** Sends `bytes` per ms, unpaced, from `from` for `ms`: the throughput a first cut starts from. */
function sendUnpaced(p: BulkPacer, from: number, ms: number, bytesPerMs: number): number {
  for (let t = from; t < from + ms; t++) assert.equal(p.charge(bytesPerMs, t), 0);
  return from + ms;
}

/** Drives a writer that always has data for `ms`: slices of PACE_SLICE, each after its wait. Bytes per ms sent. */
function sendPaced(p: BulkPacer, from: number, ms: number): number {
  let t = from;
  let sent = 0;
  while (t < from + ms) {
    assert.ok(p.rate !== null, "paced");
    t += p.charge(PACE_SLICE, t);
    sent += PACE_SLICE;
  }
  return sent / (t - from);
}

Deno.test("bulk data goes unpaced while the probes show no queue", () => {
  const p = new BulkPacer();
  let t = 0;
  for (let i = 0; i < 50; i++) {
    t = sendUnpaced(p, t, PROBE_EVERY_MS, 100_000);
    p.sample(BASE + (i % 3) * 0.1, t);
  }
  assert.equal(p.rate, null);
});

Deno.test("a queue over the target cuts the rate from the throughput measured until then, in proportion to the overshoot", () => {
  const p = new BulkPacer();
  let t = sendUnpaced(p, 0, 100, 50_000); // 50 MB/s
  p.sample(BASE, t);
  t = sendUnpaced(p, t, 100, 50_000);
  // Three samples two targets over the base (the filter takes the lowest of the last three).
  for (let i = 0; i < 3; i++) p.sample(BASE + 3 * PACE_TARGET_MS, t + i);
  const rate = p.rate!;
  assert.ok(rate !== null, "paced");
  assert.ok(
    rate <= 50_000_000 * 0.5 + 1 && rate >= 50_000_000 * 0.5 * 0.5 ** 2 - 1,
    `cut by half per sample: ${rate}`,
  );
});

Deno.test("a lone slow probe does not cut: the current delay is the lowest of the last few", () => {
  const p = new BulkPacer();
  let t = sendUnpaced(p, 0, 100, 50_000);
  p.sample(BASE, t);
  p.sample(BASE, t + 1);
  t = sendUnpaced(p, t, 100, 50_000);
  p.sample(BASE + 10 * PACE_TARGET_MS, t);
  assert.equal(p.rate, null);
});

Deno.test("a paced writer waits for its tokens: what it sends over time is the rate", () => {
  const p = new BulkPacer();
  let t = sendUnpaced(p, 0, 100, 20_000);
  for (let i = 0; i < 4; i++) p.sample(i === 0 ? BASE : BASE + 2 * PACE_TARGET_MS, t++);
  const rate = p.rate! / 1000; // bytes per ms
  const sent = sendPaced(p, t, 1000);
  assert.ok(
    Math.abs(sent - rate) / rate < 0.1,
    `sent ${sent.toFixed(0)} B/ms at a rate of ${rate.toFixed(0)}`,
  );
});

Deno.test("the rate never goes below MIN_BULK_RATE: the file still moves", () => {
  const p = new BulkPacer();
  let t = sendUnpaced(p, 0, 100, 1_000);
  p.sample(BASE, t);
  for (let i = 0; i < 200; i++) p.sample(BASE + 50, ++t);
  assert.equal(p.rate, MIN_BULK_RATE * 1000);
  const sent = sendPaced(p, t, 10_000);
  assert.ok(sent >= MIN_BULK_RATE * 0.95, `${sent} B/ms`);
});

Deno.test("under the target the rate grows back, and once far ahead of what the writers send, pacing stops", () => {
  const p = new BulkPacer();
  let t = sendUnpaced(p, 0, 100, 10_000);
  for (let i = 0; i < 4; i++) p.sample(i === 0 ? BASE : BASE + 3 * PACE_TARGET_MS, t++);
  const cut = p.rate!;
  // The queue drained: each sample lets the rate grow, as long as writers keep up with it.
  for (let i = 0; i < 5; i++) {
    sendPaced(p, t, PROBE_EVERY_MS);
    t += PROBE_EVERY_MS;
    p.sample(BASE, t);
  }
  assert.ok(p.rate! > cut, `grew from ${cut} to ${p.rate}`);
  // The writers now send little (an app that reads a slow disk): a rate far above that means nothing.
  for (let i = 0; i < 200 && p.rate !== null; i++) {
    for (const end = t + PROBE_EVERY_MS; t < end; t++) p.charge(100, t);
    p.sample(BASE, t);
  }
  assert.equal(p.rate, null);
});

Deno.test("the base is the lowest round trip of the last BASE_HISTORY_MS: a route that got slower becomes the new base", () => {
  const p = new BulkPacer();
  let t = sendUnpaced(p, 0, 100, 10_000);
  p.sample(BASE, t);
  // From now on every round trip is 5 ms longer (a new route): a queue at first…
  for (let i = 0; i < 3; i++) p.sample(BASE + 5, ++t);
  assert.ok(p.rate !== null);
  // …but once the old base left the history, 5 ms longer is just the way it is.
  t += BASE_HISTORY_MS + 1;
  p.sample(BASE + 5, t);
  p.sample(BASE + 5, t + 1);
  p.sample(BASE + 5, t + 2);
  assert.equal(p.lastQueueingMs, 0);
});

Deno.test("CPU pressure over its target cuts once per new figure, even with no queue on the link", () => {
  const p = new BulkPacer();
  let t = sendUnpaced(p, 0, 100, 40_000);
  p.sample(BASE, t, 0);
  assert.equal(p.rate, null);
  p.sample(BASE, ++t, Math.min(1, PRESSURE_TARGET * 3));
  const once = p.rate!;
  assert.ok(once !== null && once < 40_000_000, `cut: ${once}`);
  // The same figure holds until a new one comes: no further cut, and no growth either.
  p.sample(BASE, ++t);
  p.sample(BASE, ++t);
  assert.equal(p.rate, once);
  // A new figure under the target: the rate may grow again.
  p.sample(BASE, ++t, 0);
  assert.ok(p.rate! > once);
});

Deno.test("reset forgets the rate: a game that starts again starts unpaced", () => {
  const p = new BulkPacer();
  const t = sendUnpaced(p, 0, 100, 40_000);
  p.sample(BASE, t, 1);
  assert.ok(p.rate !== null);
  p.reset();
  assert.equal(p.rate, null);
  assert.equal(p.charge(PACE_SLICE, t + 1), 0);
});

Deno.test("the CPU stall figure is read from PSI text, and its share of wall time computed between reads", () => {
  const psi = "some avg10=4.79 avg60=16.99 avg300=15.30 total=6668838145\n" +
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
  assert.equal(parseCpuStall(psi), 6668838145);
  assert.equal(parseCpuStall("full avg10=0.00 total=12\n"), null);
  assert.equal(parseCpuStall(""), null);
  let stall = 1_000_000;
  const pressure = new CpuPressure(() => stall);
  assert.equal(pressure.sample(100), null, "nothing to compare the first figure with");
  stall += 25_000; // 25 ms of stall in 100 ms
  assert.equal(pressure.sample(200), 0.25);
  stall += 500_000; // more stall than time (several tasks waiting): a share is at most 1
  assert.equal(pressure.sample(300), 1);
});

Deno.test("where there is no CPU stall figure, pressure is never known (and never read again)", () => {
  let reads = 0;
  const pressure = new CpuPressure(() => {
    reads++;
    return null;
  });
  assert.equal(pressure.sample(0), null);
  assert.equal(pressure.sample(100), null);
  assert.equal(reads, 1);
});
