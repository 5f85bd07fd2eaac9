/** atMost: a bounded number of tasks at once, items taken in order, stopping when told. */
import assert from "node:assert/strict";
import { atMost } from "../../src/util/at_most.ts";

Deno.test("atMost runs every item in order, never more than n at once", async () => {
  let busy = 0;
  let most = 0;
  const started: number[] = [];
  await atMost(2, [1, 2, 3, 4, 5], async (i) => {
    started.push(i);
    most = Math.max(most, ++busy);
    await Promise.resolve();
    busy--;
  });
  assert.deepEqual(started, [1, 2, 3, 4, 5]);
  assert.equal(most, 2);
});

Deno.test("atMost takes no new item once more() says no, and finishes those taken", async () => {
  const done: number[] = [];
  let open = true;
  await atMost(1, [1, 2, 3], async (i) => {
    await Promise.resolve();
    done.push(i);
    if (i === 2) open = false;
  }, () => open);
  assert.deepEqual(done, [1, 2]);
  await atMost(3, [], () => Promise.reject(new Error("never called")));
});
