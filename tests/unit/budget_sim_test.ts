/**
 * The mail budget in a simulated day (virtual clock, the real Host and Peer roles): the host stays
 * within --mail-budget and every member online for a few minutes is linked with every other.
 */
import assert from "node:assert/strict";
import { DEFAULT_MAIL_BUDGET } from "../../src/mail/budget.ts";
import { allDaySessions, eveningSessions, simulateGroup } from "../helpers/group_sim.ts";

const HOUR = 3600_000;

Deno.test("an all-day group (20 members all day, 10 visits an hour) keeps its host within the default budget and everyone meets", async () => {
  const r = await simulateGroup({
    sessions: allDaySessions(20, 10),
    durationMs: 24 * HOUR,
    budget: DEFAULT_MAIL_BUDGET,
    comeBack: true,
  });
  assert.equal(r.sessions, 260);
  assert.ok(r.hostPeak24h <= DEFAULT_MAIL_BUDGET, `the host sent ${r.hostPeak24h} mails in 24 h`);
  assert.deepEqual(r.apart.slice(0, 3), [], "every settled member is linked with every other");
  assert.equal(r.held, 0, "no newcomer's request had to wait for the budget");
  for (const [account, n] of r.sent) assert.ok(n <= DEFAULT_MAIL_BUDGET, `${account} sent ${n}`);
});

Deno.test("without coming back by dialing, a group with visitors all day would spend its host's budget on returns", async () => {
  const r = await simulateGroup({
    sessions: allDaySessions(20, 10),
    durationMs: 24 * HOUR,
    budget: DEFAULT_MAIL_BUDGET,
    comeBack: false,
  });
  assert.ok(r.hostPeak24h <= DEFAULT_MAIL_BUDGET, "the budget holds even so");
  assert.ok(r.held > 0, "but requests wait for it");
});

Deno.test("an evening of 8 friends (4 hours, one router restart) costs each a handful of mails and everyone meets", async () => {
  const r = await simulateGroup({
    sessions: eveningSessions(),
    durationMs: 4 * HOUR,
    budget: DEFAULT_MAIL_BUDGET,
    comeBack: true,
  });
  assert.deepEqual(r.apart, []);
  const members = [...r.sent].filter(([a]) => a !== "host@sim.test");
  for (const [account, n] of members) assert.ok(n <= 4, `${account} sent ${n}`);
  assert.ok((r.sent.get("host@sim.test") ?? 0) <= 40);
});
