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

Deno.test("property: the SQLite table admits, evicts and answers exactly as the pure policy says", async () => {
  const dir = await Deno.makeTempDir();
  let n = 0;
  try {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(
          fc.record({
            user: fc.constantFrom("a", "b", "c", "d", "e", "f", "g"),
            t: fc.integer({ min: 0, max: 40 }),
            learned: fc.boolean(),
            flagged: fc.boolean(),
            flagUser: fc.option(fc.constantFrom("a", "b", "c"), { nil: undefined }),
          }),
          { maxLength: 30 },
        ),
        (capacity, ops) => {
          const p = policy({ capacity, ttlMs: 20 * H, replyLimit: 3 });
          using t = new PeerTable(`${dir}/p${n++}.db`, p);
          let rows: TableEntry[] = [];
          for (const [i, op] of ops.entries()) {
            // Time moves on: rows written early expire later in the run.
            const now = T0 + i * H;
            const e = entry(op.user, now - op.t * H, {
              origin: op.learned ? "h2@x" : "",
              flagged: op.learned && op.flagged,
              email: op.learned ? "" : `${op.user}@isp-a.test`,
            });
            const v = admit(rows, e, p, now);
            const same = rows.find((r) => r.user === e.user);
            const got = op.learned ? t.learn(e, now) : t.register(e, now);
            if (v.accept && op.learned && same && same.stored === e.stored) {
              same.flagged = true;
            } else if (v.accept) {
              rows = rows.filter((r) => r.user !== e.user && !v.evict.includes(r.user));
              rows.push({ ...e });
            }
            assert.equal(got, v.accept);
            if (op.flagUser) {
              const row = rows.find((r) => r.user === op.flagUser);
              assert.equal(t.flag(op.flagUser), row !== undefined);
              if (row) row.flagged = true;
            }
            const key = (r: TableEntry) => `${r.user}/${r.stored}/${r.flagged}/${r.origin}`;
            for (const requester of ["a", "z"]) {
              assert.deepEqual(
                t.replyFor(requester, now).map(key),
                pickForReply(rows, requester, p, now).map(key),
              );
            }
            assert.equal(t.size(), rows.length, "the kept count");
          }
        },
      ),
      { numRuns: 150 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("what a request costs the table does not grow with it: index plans only, same rows read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const perRequest: number[] = [];
    for (const size of [100, 10_000]) {
      using t = new PeerTable(`${dir}/t${size}.db`, policy({ capacity: 1_000_000 }));
      t.store.transaction(() => {
        for (let i = 0; i < size; i++) t.store.put(entry(`old${i}`, T0 - 1000 - i));
      });
      assert.equal(t.size(), size);
      const before = t.store.rowsRead;
      for (let i = 0; i < 20; i++) {
        const now = T0 + i;
        assert.equal(t.checkNonce(`n${i}`, `m${i}`, now, now - 13 * H), "new");
        assert.equal(t.replyFor(`new${i}`, now).length, DEFAULT_POLICY.replyLimit);
        t.settle(`n${i}`, now, () => t.register(entry(`new${i}`, now), now));
        t.size();
      }
      perRequest.push((t.store.rowsRead - before) / 20);
    }
    assert.equal(perRequest[0], perRequest[1], `rows read per request: ${perRequest.join(" vs ")}`);
    using t = new PeerTable(`${dir}/plans.db`, policy());
    for (const [name, plan] of Object.entries(t.store.plans())) {
      for (const step of plan) {
        assert.ok(!/^SCAN (peers|nonces)$/.test(step), `${name} scans a whole table: ${plan.join("; ")}`);
        assert.ok(!/TEMP B-TREE/.test(step), `${name} sorts outside an index: ${plan.join("; ")}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a request answered before a crash is known as answered; an unfinished one is a retry", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/t.db`;
  try {
    {
      using t = new PeerTable(path, policy());
      assert.equal(t.checkNonce("n1", "mail-1", T0, T0 - H), "new");
      assert.equal(t.checkNonce("n2", "mail-2", T0, T0 - H), "new");
      t.settle("n1", T0, () => t.register(entry("a", T0), T0));
      // A settle whose work fails leaves nothing behind: neither the row nor the note.
      assert.throws(() =>
        t.settle("n2", T0, () => {
          t.register(entry("b", T0), T0);
          throw new Error("boom");
        })
      );
    }
    using t = new PeerTable(path, policy());
    assert.equal(t.checkNonce("n1", "mail-1", T0, T0 - H), "answered");
    assert.equal(t.checkNonce("n2", "mail-2", T0, T0 - H), "retry");
    assert.equal(t.checkNonce("n1", "mail-9", T0, T0 - H), "replay");
    assert.deepEqual(t.entries(T0).map((e) => e.user), ["a"]);
    t.sync();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a schema-2 table is upgraded in place: rows kept, counted, candidates default to none", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/old.db`;
  try {
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(path);
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('schema', '2');
      CREATE TABLE peers (user TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL, email TEXT NOT NULL,
        link_key BLOB NOT NULL, flagged INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL,
        origin TEXT NOT NULL DEFAULT '');
      CREATE INDEX peers_stored ON peers(stored);
      CREATE TABLE nonces (nonce TEXT PRIMARY KEY, message TEXT NOT NULL, seen INTEGER NOT NULL);
    `);
    const ins = db.prepare(
      "INSERT INTO peers (user, host, port, email, link_key, stored) VALUES (?, ?, ?, ?, ?, ?)",
    );
    for (const u of ["a", "b", "c"]) ins.run(u, "192.0.2.1", 4000, `${u}@x.test`, new Uint8Array(32), T0 - 5);
    db.prepare("INSERT INTO nonces VALUES ('n', 'mail', ?)").run(T0);
    db.close();
    using t = new PeerTable(path, policy());
    assert.equal(t.size(), 3);
    assert.equal(t.checkNonce("n", "mail", T0, T0 - H), "retry");
    const [row] = t.entries(T0, 1);
    assert.equal(row.candidates, undefined);
    const lan = { kind: "lan", transport: "tcp", host: "192.0.2.7", port: 4000 } as const;
    t.register(entry("d", T0, { candidates: [lan], mapping: "eim" }), T0);
    assert.deepEqual(t.store.get("d")?.candidates, [lan]);
    assert.equal(t.store.get("d")?.mapping, "eim");
    assert.equal(t.size(), 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
