import assert from "node:assert/strict";
import fc from "fast-check";
import {
  admit,
  DEFAULT_POLICY,
  freshness,
  pickForReply,
  rankCandidates,
  type TableEntry,
  type TablePolicy,
} from "../../src/table/policy.ts";
import { PeerTable } from "../../src/table/table.ts";

const H = 3600_000;
const T0 = Date.UTC(2026, 10, 24, 12);

function entry(user: string, stored: number, extra: Partial<TableEntry> = {}): TableEntry {
  return {
    user,
    host: "192.0.2.1",
    port: 4000,
    email: `${user}@isp-a.test`,
    linkKey: new Uint8Array(32),
    flagged: false,
    stored,
    origin: "",
    ...extra,
  };
}

const policy = (p: Partial<TablePolicy> = {}): TablePolicy => ({ ...DEFAULT_POLICY, ...p });

Deno.test("the reply lists the most recent others, never the requester, up to the limit", () => {
  const rows = [entry("a", T0 - 3), entry("b", T0 - 1), entry("c", T0 - 2), entry("me", T0)];
  assert.deepEqual(pickForReply(rows, "me", policy(), T0).map((e) => e.user), ["b", "c", "a"]);
  assert.deepEqual(pickForReply(rows, "me", policy({ replyLimit: 2 }), T0).map((e) => e.user), ["b", "c"]);
});

Deno.test("expired rows are never offered and are evicted on the next write", () => {
  const rows = [entry("old", T0 - 13 * H), entry("new", T0 - H)];
  assert.deepEqual(pickForReply(rows, "x", policy(), T0).map((e) => e.user), ["new"]);
  assert.deepEqual(admit(rows, entry("x", T0), policy(), T0), { accept: true, evict: ["old"] });
});

Deno.test("a full table overwrites its oldest row", () => {
  const rows = [entry("a", T0 - 3), entry("b", T0 - 2), entry("c", T0 - 1)];
  assert.deepEqual(admit(rows, entry("d", T0), policy({ capacity: 3 }), T0).evict, ["a"]);
  // a user already present replaces its own row: nothing else goes
  assert.deepEqual(admit(rows, entry("a", T0), policy({ capacity: 3 }), T0).evict, []);
});

Deno.test("an older request from a user does not replace the newer row", () => {
  const rows = [entry("a", T0)];
  assert.equal(admit(rows, entry("a", T0 - 5), policy(), T0).accept, false);
});

Deno.test("property: the table never exceeds capacity and keeps the newest rows", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.array(
        fc.tuple(fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h"), fc.integer({ min: 0, max: 1000 })),
        {
          maxLength: 40,
        },
      ),
      (capacity, writes) => {
        let rows: TableEntry[] = [];
        const p = policy({ capacity });
        for (const [user, t] of writes) {
          const v = admit(rows, entry(user, T0 + t), p, T0 + 1000);
          if (!v.accept) continue;
          rows = rows.filter((r) => r.user !== user && !v.evict.includes(r.user));
          rows.push(entry(user, T0 + t));
          assert.ok(rows.length <= capacity);
          assert.equal(new Set(rows.map((r) => r.user)).size, rows.length, "one row per user");
        }
      },
    ),
  );
});

Deno.test("an entry from another host must be newer, or bring a flag, and must not be expired", () => {
  const rows = [entry("a", T0 - 10)];
  const p = policy();
  assert.equal(
    admit(rows, entry("a", T0 - 10, { origin: "h2@x" }), p, T0).accept,
    false,
    "same time, no news",
  );
  assert.equal(
    admit(rows, entry("a", T0 - 10, { origin: "h2@x", flagged: true }), p, T0).accept,
    true,
    "a flag",
  );
  assert.equal(admit(rows, entry("a", T0 - 5, { origin: "h2@x" }), p, T0).accept, true, "newer");
  assert.equal(admit(rows, entry("a", T0 - 20, { origin: "h2@x" }), p, T0).accept, false, "older");
  assert.equal(admit([], entry("b", T0 - 13 * H, { origin: "h2@x" }), p, T0).accept, false, "expired");
  // a peer's own request at the same time is a retry and is accepted
  assert.equal(admit(rows, entry("a", T0 - 10), p, T0).accept, true);
});

Deno.test("learning a flag keeps the row's e-mail address and origin", async () => {
  const dir = await Deno.makeTempDir();
  try {
    using t = new PeerTable(`${dir}/t.db`, policy());
    t.register(entry("a", T0 - 10), T0);
    assert.equal(t.learn(entry("a", T0 - 10, { origin: "h2@x", email: "", flagged: true }), T0), true);
    const [row] = t.entries(T0);
    assert.deepEqual([row.email, row.origin, row.flagged], ["a@isp-a.test", "", true]);
    assert.equal(t.learn(entry("a", T0 - 10, { origin: "h2@x", email: "" }), T0), false);
    assert.equal(t.learn(entry("b", T0 - 5, { origin: "h2@x", email: "" }), T0), true);
    assert.equal(t.entries(T0).find((r) => r.user === "b")?.origin, "h2@x");
    assert.equal(t.store.addHost("h2@x", T0), true);
    assert.equal(t.store.addHost("h2@x", T0), false);
    assert.deepEqual(t.store.hosts().map((h) => h.address), ["h2@x"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("candidates: blocked never, friends first, flagged last, recent first", () => {
  const peers = [
    { user: "old", seen: 1, flagged: false },
    { user: "new", seen: 5, flagged: false },
    { user: "flaggedNew", seen: 9, flagged: true },
    { user: "friend", seen: 0, flagged: false },
    { user: "flaggedFriend", seen: 8, flagged: true },
    { user: "enemy", seen: 10, flagged: false },
  ];
  const ranked = rankCandidates(peers, {
    friends: new Set(["friend", "flaggedFriend"]),
    blocked: new Set(["enemy"]),
  });
  assert.deepEqual(ranked.map((p) => p.user), ["friend", "flaggedFriend", "new", "old", "flaggedNew"]);
});

Deno.test("freshness refuses old requests and ones from the far future", () => {
  assert.equal(freshness(T0 - 11 * H, T0, 12 * H, 600_000), "ok");
  assert.equal(freshness(T0 - 13 * H, T0, 12 * H, 600_000), "old");
  assert.equal(freshness(T0 + 5 * 60_000, T0, 12 * H, 600_000), "ok");
  assert.equal(freshness(T0 + 20 * 60_000, T0, 12 * H, 600_000), "future");
});

Deno.test("the SQLite table keeps rows across reopen, flags by user id, and enforces capacity", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/table.db`;
  try {
    {
      using t = new PeerTable(path, policy({ capacity: 2 }));
      assert.ok(t.register(entry("a", T0 - 3), T0));
      assert.ok(t.register(entry("b", T0 - 2), T0));
      assert.ok(t.register(entry("c", T0 - 1), T0));
      assert.equal(t.flag("b"), true);
      assert.equal(t.flag("nobody"), false);
    }
    using t = new PeerTable(path, policy({ capacity: 2 }));
    const rows = t.entries(T0);
    assert.deepEqual(rows.map((r) => [r.user, r.flagged]), [["c", false], ["b", true]]);
    // re-registering clears the flag: the peer is back with a fresh address
    t.register(entry("b", T0), T0);
    assert.equal(t.entries(T0).find((r) => r.user === "b")?.flagged, false);
    assert.deepEqual(t.replyFor("c", T0).map((r) => r.user), ["b"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a nonce seen in another mail is a replay; in the same mail, a retry", async () => {
  const dir = await Deno.makeTempDir();
  try {
    using t = new PeerTable(`${dir}/t.db`, policy());
    assert.equal(t.checkNonce("n1", "mail-1", T0, T0 - 13 * H), "new");
    assert.equal(t.checkNonce("n1", "mail-1", T0, T0 - 13 * H), "retry");
    assert.equal(t.checkNonce("n1", "mail-2", T0, T0 - 13 * H), "replay");
    // old nonces are forgotten once they are outside the window
    assert.equal(t.checkNonce("n2", "mail-3", T0 + 20 * H, T0 + 20 * H - 13 * H), "new");
    assert.equal(t.checkNonce("n1", "mail-9", T0 + 20 * H, T0 + 20 * H - 13 * H), "new");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
