/**
 * `deno task bench game` (issue 16, "game traffic stays fast while files move"): 64-byte UDP
 * round trips (p50/p99) through `mailmeet tunnel --udp`, on an idle link and while a file of
 * `fileMib` MiB moves over the same link (`send`/`receive` attached to the same two nodes), beside
 * the same pings straight to the UDP echo. Idle is measured before the transfer and after it, as
 * many round trips after as were measured under load (A B A). Loopback, one machine: it shows what the link adds
 * (queueing behind bulk data in the link's frames and the TCP socket), not a network's latency.
 * Then the link alone in one process (two muxes over a loopback TCP link, then over QUIC where
 * datagrams take QUIC's own lane; datagram ping-pong while one stream moves 512 MiB), which
 * leaves out the four processes and the control sockets of the CLI run — on a busy machine
 * those, not the link, decide its p99.
 *
 * The pings go one after another, over a thousand a second: far more than a game sends. While
 * they flow the transfer is paced (src/net/bulk_pacer.ts): to the queue it causes on the link and,
 * on Linux, to the CPU time the machine has to spare. So the transfer here is slower than alone;
 * its rate is printed beside the round trips.
 */
import { createSocket, type Socket } from "node:dgram";
import type { Buffer } from "node:buffer";
import { type CliProcess, spawnCli } from "../lib/cli_process.ts";
import { generateKeyText, networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { generateKeyPair } from "../../src/protocol/noise.ts";
import { acceptLink, initiateLink } from "../../src/net/link.ts";
import { Mux } from "../../src/net/mux.ts";
import { acceptQuic, connectQuic, quicAvailable } from "../../src/net/quic.ts";
import { quicIdentity } from "../../src/net/quic_identity.ts";
import { percentile } from "./stats.ts";

const MIB = 1024 * 1024;

export interface GameBenchOptions {
  rounds?: number;
  fileMib?: number;
}

function udpEcho(): Promise<Socket> {
  const s = createSocket("udp4");
  s.on("message", (m: Buffer, from) => s.send(m, from.port, from.address));
  return new Promise((r) => s.bind(0, "127.0.0.1", () => r(s)));
}

/** Round trips (µs) of 64-byte datagrams to 127.0.0.1:port, one at a time; lost ones counted. */
async function udpPings(
  port: number,
  rounds: number,
  keepGoing: () => boolean = () => true,
): Promise<{ samples: number[]; lost: number }> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const samples: number[] = [];
  let lost = 0;
  let waiting: ((seq: number) => void) | undefined;
  s.on("message", (m: Buffer) => waiting?.(m.readUInt32BE(0)));
  const msg = new Uint8Array(64);
  for (let i = 0; i < rounds && keepGoing(); i++) {
    new DataView(msg.buffer).setUint32(0, i);
    const t0 = performance.now();
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 1000);
      waiting = (seq) => {
        if (seq !== i) return;
        clearTimeout(timer);
        resolve(true);
      };
      s.send(msg, port, "127.0.0.1");
    });
    if (ok) samples.push((performance.now() - t0) * 1000);
    else lost++;
  }
  s.close();
  return { samples: samples.sort((a, b) => a - b), lost };
}

async function makeFile(path: string, mib: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(MIB);
  for (let i = 0; i < block.length; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
  for (let m = 0; m < mib; m++) {
    new DataView(block.buffer).setUint32(0, m);
    let off = 0;
    while (off < block.length) off += await f.write(block.subarray(off));
  }
}

const fmt = (r: { samples: number[]; lost: number }) =>
  `p50 ${(percentile(r.samples, 50) / 1000).toFixed(3)} ms  p99 ${
    (percentile(r.samples, 99) / 1000).toFixed(3)
  } ms  (${r.samples.length} answered, ${r.lost} lost)`;

// MAILMEET_BENCH_PROF=DIR: a V8 CPU profile of every node and app process lands in DIR.
const PROF = Deno.env.get("MAILMEET_BENCH_PROF");
const runOpts = PROF ? { permissions: ["-A", "--unstable-net", "--cpu-prof", `--cpu-prof-dir=${PROF}`] } : {};

export async function benchGame(opts: GameBenchOptions = {}): Promise<void> {
  const rounds = opts.rounds ?? 2000;
  const fileMib = opts.fileMib ?? 1024;
  const dir = await Deno.makeTempDir({ prefix: "mailmeet-bench-game-" });
  const spool = `maildir://${dir}/spool`;
  const key = generateKeyText();
  // Our own names and run folder: apps attach to these nodes only, whoever else benches here.
  const tag = crypto.randomUUID().slice(0, 8);
  const env = {
    XDG_RUNTIME_DIR: `${dir}/run`,
    XDG_CONFIG_HOME: `${dir}/config`,
    XDG_DATA_HOME: `${dir}/data`,
  };
  await Deno.mkdir(`${dir}/run`, { mode: 0o700 });
  const procs: CliProcess[] = [];
  const run = (name: string, args: string[]) => {
    const p = spawnCli(
      name,
      [
        args[0],
        "--address",
        `${name}-${tag}@bench.test`,
        "--user",
        name,
        "--smtp",
        spool,
        "--inbox",
        spool,
        "--key",
        key,
        "--json",
        "--via",
        `host-${tag}@bench.test`,
        "--listen",
        "127.0.0.1:0",
        ...args.slice(1),
      ],
      env,
      undefined,
      runOpts,
    );
    procs.push(p);
    return p;
  };
  const echo = await udpEcho();
  try {
    procs.push(spawnCli("host", [
      "host",
      "--address",
      `host-${tag}@bench.test`,
      "--smtp",
      spool,
      "--inbox",
      spool,
      "--key",
      key,
      "--json",
      "--db",
      `${dir}/host.db`,
    ], env));
    const echoPort = echo.address().port;
    const ann = run("ann", ["tunnel", "--expose", `${echoPort}/udp`]);
    await ann.waitFor((e) => e.event === "waiting", 30_000, "ann waiting");
    const bob = run("bob", ["tunnel", "--local", `0:${echoPort}/udp`]);
    const local = (await bob.waitFor((e) => e.event === "tunnel_listening", 30_000, "bob listening"))
      .port as number;
    await bob.waitFor((e) => e.event === "tunnel_target", 30_000, "bob finding ann's port");

    await udpPings(local, 200); // warm up
    const direct = await udpPings(echoPort, rounds);
    const idle = await udpPings(local, rounds);

    const src = `${dir}/big.bin`;
    await makeFile(src, fileMib);
    // Both attach to the running nodes: the file moves on the very link the pings use.
    const recv = run("bob", ["receive", "--out", `${dir}/in`, "--yes"]);
    await recv.waitFor((e) => e.event === "waiting_offer", 30_000, "bob ready to receive");
    const send = run("ann", ["send", src, "--to", "bob"]);
    await recv.waitFor(
      (e) => e.event === "accepted" || e.event === "progress",
      60_000,
      "the transfer starting",
    );
    let moving = true;
    const t0 = performance.now();
    void recv.status.then(() => moving = false);
    // Bounded, and far more than a paced transfer of fileMib takes: the pings end with the transfer.
    const loaded = await udpPings(local, rounds * 1000, () => moving);
    const status = await Promise.all([send.status, recv.status]);
    const seconds = (performance.now() - t0) / 1000;
    // The files go first: their dirty pages would otherwise be written back during the idle run.
    await Deno.remove(`${dir}/in`, { recursive: true }).catch(() => {});
    await Deno.remove(src).catch(() => {});
    // Idle again, as many round trips as under load: the same span of time, so the rare things
    // that are not the transfer (timers, the machine's other work) weigh the same on both sides.
    const after = await udpPings(local, Math.max(rounds, loaded.samples.length));
    const idleAll = {
      samples: [...idle.samples, ...after.samples].sort((a, b) => a - b),
      lost: idle.lost + after.lost,
    };
    console.log(`64-byte UDP round trips, loopback (${rounds} each; under load: while ${fileMib} MiB moved)`);
    console.log(`  direct to the echo         ${fmt(direct)}`);
    console.log(`  through the tunnel, idle   ${fmt(idleAll)}   (before ${fmt(idle)}; after ${fmt(after)})`);
    console.log(
      `  through the tunnel, bulk   ${fmt(loaded)}   transfer ${seconds.toFixed(1)} s (${
        (fileMib / seconds).toFixed(0)
      } MiB/s), ${status.every((s) => s.success) ? "ok" : "FAILED"}`,
    );
    const ratio = percentile(loaded.samples, 99) / percentile(idleAll.samples, 99);
    console.log(`  p99 under load / idle p99  ${ratio.toFixed(2)}× (goal ≤ 2×)`);
    await linkAlone(512, rounds, "tcp");
    if (quicAvailable()) await linkAlone(512, rounds, "quic");
  } finally {
    echo.close();
    for (const p of procs) p.kill("SIGTERM");
    await Promise.allSettled(procs.map((p) => p.status));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Two free UDP ports on loopback. */
async function freeUdpPorts(): Promise<[number, number]> {
  const a = createSocket("udp4");
  const b = createSocket("udp4");
  await Promise.all([a, b].map((s) => new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()))));
  const ports: [number, number] = [a.address().port, b.address().port];
  await Promise.all([a, b].map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** Two ends of one link in this process, over loopback TCP or QUIC. */
async function linkPair(transport: "tcp" | "quic") {
  const secret = networkKeyFromSecret(crypto.getRandomValues(new Uint8Array(32))).secret;
  const [ka, kb] = [generateKeyPair(), generateKeyPair()];
  const dial = { staticKey: ka, remoteStatic: kb.publicKey, networkKey: secret, localInfo: {} };
  const accept = { staticKey: kb, networkKey: secret, localInfo: {} };
  if (transport === "quic") {
    const identity = quicIdentity(secret);
    const [pa, pb] = await freeUdpPorts();
    return await Promise.all([
      connectQuic(pa, identity, { host: "127.0.0.1", port: pb }, 5_000).then((q) => initiateLink(q, dial)),
      acceptQuic(pb, identity, { host: "127.0.0.1", port: pa }, 5_000).then((q) => acceptLink(q, accept)),
    ]);
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [ca, cb] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  // As dialLink and the listener do for every real link: a small frame must not wait for an ACK.
  ca.setNoDelay(true);
  cb.setNoDelay(true);
  return await Promise.all([initiateLink(ca, dial), acceptLink(cb, accept)]);
}

/** Datagram round trips (µs) over one link in this process, idle and while a stream moves `mib` MiB. */
export async function linkAlone(mib = 512, rounds = 2000, transport: "tcp" | "quic" = "tcp"): Promise<void> {
  const [la, lb] = await linkPair(transport);
  let pong: ((ch: number) => void) | undefined;
  let received = 0;
  const allRead = Promise.withResolvers<void>();
  const theirs: Mux = new Mux(lb, {
    peer: "b",
    onStream: (s) =>
      void (async () => {
        for (let c = await s.read(); c; c = await s.read()) received += c.length;
      })().catch(() => {}).finally(() => allRead.resolve()),
    onDatagram: (ch, d) => theirs.sendDatagram(ch, d.slice()),
  });
  const ours = new Mux(la, { peer: "a", onDatagram: (ch) => pong?.(ch) });
  const pings = async (n: number, go = () => true) => {
    const out: number[] = [];
    for (let i = 0; i < n && go(); i++) {
      const t0 = performance.now();
      await new Promise<void>((r) => {
        pong = (ch) => ch === i && r();
        ours.sendDatagram(i, new Uint8Array(64));
      });
      out.push((performance.now() - t0) * 1000);
    }
    return { samples: out.sort((a, b) => a - b), lost: 0 };
  };
  const idle = await pings(rounds);
  const total = mib * MIB;
  const s = ours.open("bulk", {});
  const t0 = performance.now();
  const bulk = (async () => {
    for (let sent = 0; sent < total; sent += 256 * 1024) await s.write(new Uint8Array(256 * 1024));
    s.closeWrite();
  })();
  // Bounded, and far more than a paced stream of `mib` takes: the pings end with the stream.
  const loaded = await pings(rounds * 1000, () => received < total);
  await bulk;
  await allRead.promise;
  const rate = total / MIB / ((performance.now() - t0) / 1000);
  const lane = transport === "quic" ? ` (${ours.laneDatagrams} on QUIC's datagram lane)` : "";
  console.log(
    `the link alone over ${transport}, one process: datagram round trips, idle and while ${mib} MiB move${lane}`,
  );
  console.log(`  idle                       ${fmt(idle)}`);
  const paced = ours.pacer.rate === null
    ? "unpaced at the end"
    : `paced to ${(ours.pacer.rate / MIB).toFixed(1)} MiB/s at the end`;
  console.log(`  bulk                       ${fmt(loaded)}   stream ${rate.toFixed(0)} MiB/s (${paced})`);
  await Promise.all([ours.close(), theirs.close()]);
}
