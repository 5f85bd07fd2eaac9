import assert from "node:assert/strict";
import { abortable, deadline, DeadlineError, deadlineSignal } from "../../src/util/deadline.ts";
import { FakeTimers } from "../helpers/fake_timers.ts";

Deno.test("deadline passes a value that arrives in time through and clears its timer", async () => {
  const timers = new FakeTimers();
  const got = deadline(Promise.resolve("ok"), 5_000, { timers });
  assert.deepEqual(timers.delays, [5_000]);
  assert.equal(await got, "ok");
  assert.equal(timers.pending, 0);
});

Deno.test("deadline passes a rejection that arrives in time through and clears its timer", async () => {
  const timers = new FakeTimers();
  await assert.rejects(deadline(Promise.reject(new RangeError("no")), 5_000, { timers }), RangeError);
  assert.equal(timers.pending, 0);
});

Deno.test("deadline rejects with a DeadlineError naming the time once the timer fires", async () => {
  const timers = new FakeTimers();
  const never = Promise.withResolvers<string>();
  const got = deadline(never.promise, 15_000, { timers });
  timers.fireAll();
  await assert.rejects(
    got,
    (err) => err instanceof DeadlineError && err.ms === 15_000 && err.code === "deadline",
  );
});

Deno.test("deadline hands a value that arrives after it gave up to onLate, once", async () => {
  const timers = new FakeTimers();
  const late = Promise.withResolvers<{ closed: boolean }>();
  const seen: { closed: boolean }[] = [];
  const got = deadline(late.promise, 1_000, { timers, onLate: (v) => seen.push(v) });
  timers.fireAll();
  await assert.rejects(got, DeadlineError);
  const value = { closed: false };
  late.resolve(value);
  await late.promise;
  await Promise.resolve();
  assert.deepEqual(seen, [value]);
});

Deno.test("deadline swallows a rejection that arrives after it gave up", async () => {
  const timers = new FakeTimers();
  const late = Promise.withResolvers<never>();
  const got = deadline(late.promise, 1_000, { timers });
  timers.fireAll();
  await assert.rejects(got, DeadlineError);
  late.reject(new Error("too late to matter")); // an unhandled rejection would fail this test
  await late.promise.catch(() => {});
});

Deno.test("deadline gives up with the caller's abort reason before its time, and clears its timer", async () => {
  const timers = new FakeTimers();
  const stop = new AbortController();
  const got = deadline(new Promise(() => {}), 60_000, { timers, signal: stop.signal });
  stop.abort(new Error("stopped"));
  await assert.rejects(got, { message: "stopped" });
  assert.equal(timers.pending, 0);
});

Deno.test("abortable rejects at once for a signal that is already aborted", async () => {
  const stop = new AbortController();
  stop.abort(new Error("already"));
  await assert.rejects(abortable(Promise.resolve(1), stop.signal), { message: "already" });
});

Deno.test("deadlineSignal aborts with a DeadlineError when its time comes", () => {
  const timers = new FakeTimers();
  using limit = deadlineSignal(30_000, { timers });
  assert.equal(limit.signal.aborted, false);
  timers.fireAll();
  assert.ok(limit.signal.reason instanceof DeadlineError);
});

Deno.test("disposing a deadlineSignal clears its timer and stops what watches it", () => {
  const timers = new FakeTimers();
  const limit = deadlineSignal(30_000, { timers });
  limit[Symbol.dispose]();
  assert.equal(timers.pending, 0);
  assert.equal(limit.signal.aborted, true);
  assert.ok(!(limit.signal.reason instanceof DeadlineError));
});
