import assert from "node:assert/strict";
import { decodePunch, encodePunch, isPunchPacket, type PunchPacket } from "../../src/protocol/punch.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { isForPair, PunchAttempt, type PunchTarget } from "../../src/net/punch.ts";
import { isStun } from "../../src/net/stun.ts";
import { SimInternet, type SimNatKind, type SimSocket } from "../helpers/sim_nat.ts";

const KEY = new Uint8Array(32).fill(5);
const A = new Uint8Array(32).fill(0xa);
const B = new Uint8Array(32).fill(0xb);

function seeded(seed: number) {
  let x = seed;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      out[i] = x >>> 16;
    }
    return out;
  };
}

const packet = (over: Partial<PunchPacket> = {}): PunchPacket => ({
  type: "probe",
  from: A,
  to: B,
  session: new Uint8Array(8).fill(1),
  time: Date.UTC(2026, 10, 27),
  body: { s: "203.0.113.5:4000" },
  ...over,
});

Deno.test("a punch packet round-trips, and is never taken for STUN or QUIC", () => {
  const bytes = encodePunch(KEY, packet());
  assert.ok(isPunchPacket(bytes));
  assert.ok(!isStun(bytes));
  assert.equal(bytes[0] & 0x40, 0, "QUIC's fixed bit is clear");
  assert.deepEqual(decodePunch(KEY, bytes), packet());
});

Deno.test("a punch packet under another key, changed on the way, or not ours raises ProtocolError", () => {
  const bytes = encodePunch(KEY, packet());
  assert.throws(
    () => decodePunch(new Uint8Array(32).fill(6), bytes),
    (e) => e instanceof ProtocolError && e.code === "unsealed",
  );
  const flipped = bytes.slice();
  flipped[flipped.length - 20] ^= 1;
  assert.throws(() => decodePunch(KEY, flipped), (e) => e instanceof ProtocolError && e.code === "unsealed");
  assert.throws(
    () => decodePunch(KEY, new Uint8Array(80)),
    (e) => e instanceof ProtocolError && e.code === "malformed",
  );
  const header = bytes.slice();
  header[4] = 9; // unknown type: refused before any decryption
  assert.throws(() => decodePunch(KEY, header), (e) => e instanceof ProtocolError);
});

interface Side {
  attempt: PunchAttempt;
  sockets: SimSocket[];
}

/** Two members behind the given NATs, each probing the other's STUN-mapped address. */
function pair(kindA: SimNatKind, kindB: SimNatKind, opts: { sprayA?: number; sprayB?: number } = {}) {
  const net = new SimInternet();
  const natA = net.nat("198.51.100.1", kindA, 7);
  const natB = net.nat("203.0.113.1", kindB, 11);
  const stunServer = { host: "192.0.2.53", port: 3478 };
  const socketsA = Array.from({ length: opts.sprayA ?? 1 }, () => natA.socket());
  const socketsB = Array.from({ length: opts.sprayB ?? 1 }, () => natB.socket());
  // What each published: its first socket's public address as STUN saw it.
  const pubA = natA.stun(socketsA[0], stunServer);
  const pubB = natB.stun(socketsB[0], stunServer);
  const target = (p: { host: string; port: number }): PunchTarget[] => [{ ...p, kind: "public" }];
  const mk = (
    sockets: SimSocket[],
    local: Uint8Array,
    remote: Uint8Array,
    targets: PunchTarget[],
    guess: string[],
    seed: number,
  ): Side => {
    const attempt = new PunchAttempt({
      key: KEY,
      localKey: local,
      remoteKey: remote,
      sockets,
      targets,
      guessHosts: guess,
      random: seeded(seed),
      clock: () => Date.UTC(2026, 10, 27),
    });
    for (const s of sockets) {
      s.onMessage((data, from) => {
        const p = decodePunch(KEY, data);
        if (isForPair(p, local, remote)) attempt.receive(p, from, s);
      });
    }
    return { attempt, sockets };
  };
  const a = mk(socketsA, A, B, target(pubB), kindB === "symmetric" ? [pubB.host] : [], 3);
  const b = mk(socketsB, B, A, target(pubA), kindA === "symmetric" ? [pubA.host] : [], 4);
  return { net, a, b, pubA, pubB };
}

function run(sides: Side[], ticks: number): number {
  for (let t = 0; t < ticks; t++) {
    for (const s of sides) s.attempt.tick();
    if (sides.every((s) => s.attempt.done)) return t;
  }
  return -1;
}

Deno.test("two port-restricted NATs: both sides probing open a path both ways within a few ticks", async () => {
  const { a, b, pubA, pubB } = pair("port-restricted", "port-restricted");
  const t = run([a, b], 40);
  assert.ok(t >= 0 && t < 5, `confirmed after ${t} ticks`);
  const pa = await a.attempt.confirmed;
  const pb = await b.attempt.confirmed;
  assert.deepEqual(pa.remote, pubB);
  assert.deepEqual(pa.seenAs, pubA, "the ack tells us our own public address");
  assert.deepEqual(pb.remote, pubA);
  assert.equal(pa.kind, "punched");
});

Deno.test("one side alone cannot get through a port-restricted NAT; it gets through once the other starts late", async () => {
  const { a, b } = pair("port-restricted", "port-restricted");
  assert.equal(run([a], 60), -1, "B's NAT drops A's probes while B says nothing");
  const t = run([a, b], 60);
  assert.ok(t >= 0 && t < 12, `confirmed ${t} ticks after B started`);
  await a.attempt.confirmed;
  await b.attempt.confirmed;
});

Deno.test("a symmetric NAT against a port-restricted one: many sockets on one side, random ports on the other", async () => {
  const { a, b, net } = pair("symmetric", "port-restricted", { sprayA: 128 });
  const t = run([a, b], 400);
  assert.ok(t >= 0, "the guesses met one of the symmetric side's mappings");
  const pa = await a.attempt.confirmed;
  const pb = await b.attempt.confirmed;
  assert.equal(pb.remote.host, "198.51.100.1");
  assert.ok(a.sockets.includes(pa.socket as SimSocket));
  assert.ok(b.attempt.guesses <= 4096, `${b.attempt.guesses} guesses`);
  assert.ok(net.delivered > 0);
});

Deno.test("two symmetric NATs without a way to guess never confirm (a relay is needed)", () => {
  const { a, b } = pair("symmetric", "symmetric");
  assert.equal(run([a, b], 200), -1);
});

Deno.test("a full-cone NAT lets the first probe in; an ack for another session confirms nothing", async () => {
  const { a, b } = pair("full-cone", "port-restricted");
  run([b], 1); // B probes A: A's full cone lets it in, A acks at once
  const t = run([a, b], 20);
  assert.ok(t >= 0);
  await a.attempt.confirmed;
  // A stray ack (wrong echo) is ignored.
  const stray = new PunchAttempt({ key: KEY, localKey: A, remoteKey: B, sockets: a.sockets, targets: [] });
  stray.receive(
    { type: "ack", from: B, to: A, session: new Uint8Array(8), time: 0, body: { e: "AAAAAAAAAAA" } },
    { host: "203.0.113.1", port: 1 },
    a.sockets[0],
  );
  assert.equal(stray.done, false);
  stray.stop();
  await assert.rejects(stray.confirmed);
});
