import assert from "node:assert/strict";
import { NodeStatus, readStatuses, STALE_MS } from "../../src/cli/status.ts";
import { describeStatus } from "../../src/cli/commands/status.ts";
import { MailBudget, MemoryLedger } from "../../src/mail/budget.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "mailmeet-status-" });
  try {
    await fn(`${dir}/run`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a node's events become its status file: roles, peers and their latest round trip, last request and reply, table size", async () => {
  await withDir(async (dir) => {
    let now = Date.parse("2030-01-01T10:00:00Z");
    const seen: string[] = [];
    using status = new NodeStatus({
      dir,
      command: "join",
      address: "bob@isp-b.test",
      user: "bob",
      roles: ["peer"],
      pid: 4242,
      clock: () => now,
    });
    const events = status.track((e) => seen.push(e.event));
    events({ event: "listening", address: "0.0.0.0", port: 47000, advertise: "192.168.1.5:47000" });
    events({ event: "request_sent", via: ["h@x.test"], session: "ab" });
    now += 1000;
    events({ event: "reply", from: "h@x.test", peers: 2, session: "ab" });
    events({
      event: "connected",
      peer: "alice",
      address: "10.0.0.2:4000",
      direction: "out",
      path: "direct",
      transport: "tcp",
      kind: "lan",
      rtt_ms: 1,
    });
    events({
      event: "connected",
      peer: "carol",
      address: "10.0.0.3:4000",
      direction: "in",
      path: "direct",
      transport: "quic",
      kind: "punched",
      rtt_ms: 2,
    });
    events({ event: "disconnected", peer: "carol", address: "10.0.0.3:4000" });
    events({ event: "rtt", peer: "alice", rtt_ms: 12.5 }); // measured over the link since
    events({ event: "promoted", reason: "a request reached our inbox" });
    status.tableSize = () => 3;
    events({ event: "host_request", peer: "dave", address: "10.0.0.4:1", outcome: "stored" });
    events({ event: "host_reply", peer: "dave", peers: 1, ms: 5 });
    assert.equal(seen.length, 10, "every event is passed on");
    status.write();

    const [found] = await readStatuses(dir, now);
    const s = found.snapshot;
    assert.equal(found.alive, true);
    assert.equal(s.pid, 4242);
    assert.deepEqual(s.roles, ["peer", "host"]);
    assert.deepEqual(s.peers.map((p) => p.peer), ["alice"]);
    assert.equal(s.last_request, "2030-01-01T10:00:00.000Z");
    assert.equal(s.last_reply, "2030-01-01T10:00:01.000Z");
    assert.equal(s.host?.table_size, 3);
    assert.equal(s.host?.requests, 1);
    assert.equal(s.listening?.advertise, "192.168.1.5:47000");
    const text = describeStatus(s, now).join("\n");
    assert.match(text, /peer \+ host/);
    assert.match(text, /peers linked: 1/);
    assert.match(text, /alice at 10\.0\.0\.2:4000 — direct \(lan\) over tcp, 12\.5 ms, we dialed/);
    assert.match(text, /table holds 3 peer/);

    const mode = (await Deno.stat(found.path)).mode;
    if (mode !== null) assert.equal(mode & 0o077, 0, "owner-only");
    assert.equal(
      (await readStatuses(dir, now + STALE_MS + 1))[0].alive,
      false,
      "a stopped heartbeat is stale",
    );
  });
});

Deno.test("the status file is removed when the node ends", async () => {
  await withDir(async (dir) => {
    const status = new NodeStatus({ dir, command: "host", address: "h@x.test", roles: ["host"] }).start();
    assert.equal((await readStatuses(dir)).length, 1);
    status[Symbol.dispose]();
    assert.deepEqual(await readStatuses(dir), []);
  });
});

Deno.test("a folder that cannot be written never stops the node", () => {
  using status = new NodeStatus({
    dir: "/proc/no-such/run",
    command: "join",
    address: "a@x.test",
    roles: ["peer"],
  });
  status.write();
  status.track(() => {})({ event: "request_sent", via: [], session: "" });
});

Deno.test("status names the app at work, the members known but not reachable, and counts in words", async () => {
  await withDir(async (dir) => {
    const now = Date.parse("2030-01-01T10:00:00Z");
    using status = new NodeStatus({
      dir,
      command: "send",
      address: "ann@isp-a.test",
      roles: ["peer"],
      clock: () => now,
    });
    const events = status.track(() => {});
    events({ event: "dial_failed", peer: "carol", address: "10.0.0.3:4000", reason: "connection refused" });
    events({ event: "dial_failed", peer: "dave", address: "10.0.0.4:4000", reason: "no answer within 5 s" });
    events({
      event: "connected",
      peer: "dave",
      address: "10.0.0.4:4000",
      direction: "in",
      path: "direct",
      transport: "tcp",
      kind: "lan",
      rtt_ms: 1,
    });
    status.setApp({ app: "send", peer: "dave", state: "sending", bytes: 0, total: 200 * 1024 * 1024 });
    status.progress(50 * 1024 * 1024);
    status.write();
    const s = (await readStatuses(dir, now))[0].snapshot;
    const text = describeStatus(s, now).join("\n");
    assert.match(text, /known but not reachable: 1 \(they may still dial us\)/);
    assert.match(text, /carol at 10\.0\.0\.3:4000 — connection refused/);
    assert.ok(!/dave at 10\.0\.0\.4:4000 — no answer/.test(text), "dave linked later: reachable after all");
    assert.match(text, /send: sending to dave, 50\.0 MiB of 200\.0 MiB \(25%\)/);
  });
  const base = {
    version: 1,
    pid: 1,
    address: "h@x",
    started: "2030-01-01T10:00:00Z",
    updated: "",
    peers: [],
  };
  const now = Date.parse("2030-01-01T10:00:00Z");
  const host = (requests: number, replies: number) =>
    describeStatus(
      { ...base, command: "host", roles: ["host"], host: { requests, replies, table_size: 1 } },
      now,
    )
      .join("\n");
  assert.match(host(0, 0), /host: the table holds 1 peer; no requests yet/);
  assert.match(host(3, 1), /3 requests answered with 1 reply, the last never/);
  const tunnel = describeStatus({
    ...base,
    command: "tunnel",
    roles: ["peer"],
    app: { app: "tunnel", side: "expose", proto: "TCP", port: 25565, open: 2 },
  }, now).join("\n");
  assert.match(tunnel, /tunnel: linked peers reach TCP port 25565 here; 2 connections open/);
});

Deno.test("status shows the mails sent in the last 24 hours against --mail-budget, and a provider's pause", async () => {
  await withDir(async (dir) => {
    const now = Date.parse("2030-01-01T10:00:00Z");
    using status = new NodeStatus({
      dir,
      command: "host",
      address: "h@x.test",
      roles: ["host"],
      pid: 7,
      clock: () => now,
    });
    const budget = new MailBudget({
      account: "h@x.test",
      limit: 200,
      ledger: new MemoryLedger(),
      clock: () => now,
    });
    budget.record(37);
    status.mailBudget = budget;
    status.write();
    let [found] = await readStatuses(dir, now);
    assert.deepEqual(found.snapshot.mail, { sent_today: 37, budget: 200 });
    assert.match(describeStatus(found.snapshot, now).join("\n"), /mail sent today \(last 24 h\): 37 of 200/);
    budget.rateLimited();
    status.write();
    [found] = await readStatuses(dir, now);
    assert.match(describeStatus(found.snapshot, now).join("\n"), /the provider limits sending: paused until/);
  });
});
