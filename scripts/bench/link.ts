/**
 * `deno task bench link`: the apps over the link, each figure beside its reference, in one run on
 * loopback:
 *  - one TCP stream through `mailmeet tunnel` vs through `ssh -L` (a local OpenSSH server this
 *    script starts on a high port with throw-away keys) vs iperf3 directly;
 *  - 64-byte ping-pong round trips (p50/p99) through the same three paths, and through two plain
 *    Deno TCP forwarders (deno_proxy.ts): the floor of Deno's own socket I/O;
 *  - a 1 GiB file by `mailmeet send/receive` vs a raw `nc` copy (interleaved pairs, each after a
 *    `sync`), and the peak RSS of both ends;
 *  - the link alone in one process (link_crypto.ts).
 * `--only stream|ping|file|crypto` (repeatable) runs just those parts.
 * Installs openssh-server, iperf3 and netcat-openbsd with apt-get when missing (needs root).
 */
import { createHash } from "node:crypto";
import {
  buildBundle,
  BUNDLE,
  type CliEvent,
  type CliProcess,
  installedFlags,
  spawnCli,
  useEntry,
} from "../lib/cli_process.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { DENO_PERMISSIONS } from "../../src/cli/permissions.ts";
import { percentile } from "./stats.ts";

const MIB = 1024 * 1024;

export interface LinkBenchOptions {
  /** Seconds per iperf3 run. */
  seconds?: number;
  /** Ping-pong round trips per path. */
  rounds?: number;
  /** File size in MiB. */
  fileMib?: number;
  /** Parts to run: stream, ping, file, crypto (default all). */
  only?: string[];
  /** Another build's bundle to run instead of this source's (A/B against an earlier commit). */
  entry?: string;
}

async function sh(cmd: string, args: string[], opts: { allowFail?: boolean } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

async function have(bin: string): Promise<boolean> {
  return (await new Deno.Command("sh", { args: ["-c", `command -v ${bin}`], stdout: "null", stderr: "null" })
    .output())
    .success;
}

async function ensureTools(): Promise<void> {
  const missing: string[] = [];
  if (!(await have("/usr/sbin/sshd")) || !(await have("ssh"))) {
    missing.push("openssh-server", "openssh-client");
  }
  if (!(await have("iperf3"))) missing.push("iperf3");
  if (!(await have("nc"))) missing.push("netcat-openbsd");
  if (missing.length === 0) return;
  console.log(`installing ${missing.join(", ")} with apt-get…`);
  await sh("apt-get", ["update", "-qq"]);
  const out = await new Deno.Command("apt-get", {
    args: ["install", "-y", "-qq", "--no-install-recommends", ...missing],
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`apt-get install ${missing.join(" ")} failed`);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = l.addr.port;
  l.close();
  return p;
}

async function waitPort(port: number, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      if (Date.now() > until) throw new Error(`nothing listens on port ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A local sshd (throw-away host key, one authorized throw-away client key) and `ssh -L` through it. */
async function sshForward(dir: string, target: number) {
  await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/host_key`]);
  await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/client_key`]);
  await Deno.copyFile(`${dir}/client_key.pub`, `${dir}/authorized_keys`);
  await Deno.chmod(`${dir}/authorized_keys`, 0o600);
  const sshPort = freePort();
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    [
      `Port ${sshPort}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host_key`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin yes",
      "AllowTcpForwarding yes",
      `PidFile ${dir}/sshd.pid`,
    ].join("\n") + "\n",
  );
  await Deno.mkdir("/run/sshd", { recursive: true }); // privilege separation directory
  const sshd = new Deno.Command("/usr/sbin/sshd", {
    args: ["-D", "-e", "-f", `${dir}/sshd_config`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitPort(sshPort);
  const local = freePort();
  const ssh = new Deno.Command("ssh", {
    args: [
      "-N",
      "-i",
      `${dir}/client_key`,
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "LogLevel=ERROR",
      "-p",
      String(sshPort),
      "-L",
      `127.0.0.1:${local}:127.0.0.1:${target}`,
      `${Deno.env.get("USER") ?? "root"}@127.0.0.1`,
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  await waitPort(local);
  return {
    port: local,
    async close() {
      for (const p of [ssh, sshd]) {
        try {
          p.kill("SIGTERM");
        } catch { /* gone */ }
        await p.status;
      }
    },
  };
}

/** iperf3 client against `port`: received throughput in MiB/s. */
async function iperf(port: number, seconds: number): Promise<number> {
  const out = await sh("iperf3", ["-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-J"]);
  const j = JSON.parse(out);
  return j.end.sum_received.bits_per_second / 8 / MIB;
}

/** TCP echo on 127.0.0.1:port, in this process. */
function echoServer(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const conns = new Set<Deno.Conn>();
  const done = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      conn.setNoDelay(true);
      void (async () => {
        const buf = new Uint8Array(65536);
        try {
          for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
            let o = 0;
            while (o < n) o += await conn.write(buf.subarray(o, n));
          }
        } catch { /* gone */ }
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })();
  return {
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await done.catch(() => {});
    },
  };
}

/** Two deno_proxy.ts processes in a row in front of `target`: their listening port, and a close. */
async function denoProxies(target: number) {
  const script = new URL("./deno_proxy.ts", import.meta.url).pathname;
  const second = freePort();
  const first = freePort();
  const procs = [[second, target], [first, second]].map(([listen, to]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", script, String(listen), String(to)],
      stdout: "null",
      stderr: "inherit",
    }).spawn()
  );
  await waitPort(second);
  await waitPort(first);
  return {
    port: first,
    async close() {
      for (const p of procs) p.kill("SIGTERM");
      await Promise.all(procs.map((p) => p.status));
    },
  };
}

/** 64-byte ping-pong round trips (µs) through `port`. */
async function pingPong(port: number, rounds: number): Promise<number[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const msg = new Uint8Array(64).fill(7);
  const buf = new Uint8Array(64);
  const samples: number[] = [];
  try {
    for (let i = 0; i < rounds + 100; i++) {
      const t0 = performance.now();
      await conn.write(msg);
      let got = 0;
      while (got < 64) {
        const n = await conn.read(buf.subarray(got));
        if (n === null) throw new Error("the echo ended");
        got += n;
      }
      if (i >= 100) samples.push((performance.now() - t0) * 1000);
    }
  } finally {
    conn.close();
  }
  return samples.sort((a, b) => a - b);
}

/** Peak RSS (VmHWM, MB) of the process whose command line holds `token`, or NaN. */
async function peakRss(token: string): Promise<number> {
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (!cmd.includes(token)) continue;
      const status = await Deno.readTextFile(`/proc/${e.name}/status`);
      const m = /VmHWM:\s+(\d+) kB/.exec(status);
      if (m) return Number(m[1]) / 1000;
    } catch { /* exited */ }
  }
  return NaN;
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

async function ncCopy(src: string, dst: string): Promise<number> {
  const port = freePort();
  const server = new Deno.Command("sh", {
    args: ["-c", `exec nc -l 127.0.0.1 ${port} > '${dst}'`],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.now();
  const client = await new Deno.Command("sh", {
    args: ["-c", `exec nc -N 127.0.0.1 ${port} < '${src}'`],
    stdout: "null",
    stderr: "inherit",
  }).output();
  await server.status;
  const ms = performance.now() - t0;
  if (!client.success) throw new Error("nc copy failed");
  return ms;
}

/** nc / send-receive pairs, interleaved. */
const FILE_PAIRS = 3;

function mid(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

type NodeSpawner = (name: string, args: string[], onEvent?: (e: CliEvent) => void) => CliProcess;

/** One `mailmeet receive` + `mailmeet send` of `src`: ms from the offer to the verified file, peak RSS of each. */
async function sendReceive(node: NodeSpawner, src: string, out: string, want: string) {
  let started = 0;
  let finished = 0;
  const recv = node("carol", ["receive", "--out", out, "--yes"], (e) => {
    if (e.event === "received") finished = performance.now();
  });
  await recv.waitFor((e) => e.event === "waiting", 30_000, "carol waiting");
  const send = node("dave", ["send", src, "--to", "carol"], (e) => {
    if (e.event === "offered") started = performance.now();
  });
  let rssSend = 0;
  let rssRecv = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssSend = Math.max(rssSend, (await peakRss("--user\0dave")) || 0);
      rssRecv = Math.max(rssRecv, (await peakRss("--user\0carol")) || 0);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  await recv.waitFor((e) => e.event === "received", 600_000, "the file");
  sampling = false;
  await sampler;
  const [sendStatus, recvStatus] = await Promise.all([send.status, recv.status]);
  if (!sendStatus.success || !recvStatus.success) throw new Error("the transfer failed");
  const name = src.slice(src.lastIndexOf("/") + 1);
  if ((await digest(`${out}/${name}`)) !== want) {
    throw new Error("the received file differs from the sent one");
  }
  return { ms: finished - started, rssSend, rssRecv };
}
/** Interleaved passes of the 64-byte ping-pong over its four paths. */
const PING_PASSES = 5;
/** ssh -L / tunnel stream pairs, interleaved. */
const STREAM_PAIRS = 3;

export async function benchLink(opts: LinkBenchOptions = {}): Promise<void> {
  const seconds = opts.seconds ?? 5;
  const rounds = opts.rounds ?? 2000;
  const fileMib = opts.fileMib ?? 1024;
  const only = new Set(opts.only?.length ? opts.only : ["stream", "ping", "file", "crypto"]);
  await ensureTools();
  // What an installed user runs: the bundle (deno task install copies it), built from this source.
  if (opts.entry) {
    useEntry(opts.entry);
  } else {
    await buildBundle();
    useEntry(BUNDLE);
  }
  const dir = await Deno.makeTempDir({ prefix: "mailmeet-bench-link-" });
  const procs: CliProcess[] = [];
  const spool = `maildir://${dir}/spool`;
  const key = generateKeyText();
  const node = (name: string, args: string[], onEvent?: (e: CliEvent) => void) => {
    const p = spawnCli(
      name,
      [
        args[0],
        "--address",
        `${name}@bench.test`,
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
        "host@bench.test",
        "--listen",
        "127.0.0.1:0",
        ...args.slice(1),
      ],
      {},
      onEvent,
      // What an installed user runs (deno task install), never -A.
      { permissions: installedFlags() },
    );
    procs.push(p);
    return p;
  };
  try {
    const host = spawnCli(
      "host",
      [
        "host",
        "--address",
        "host@bench.test",
        "--smtp",
        spool,
        "--inbox",
        spool,
        "--key",
        key,
        "--json",
        "--db",
        `${dir}/host.db`,
      ],
      {},
      undefined,
      { permissions: DENO_PERMISSIONS },
    );
    procs.push(host);
    if (only.has("stream") || only.has("ping")) await tunnelPaths(only, node, dir, seconds, rounds);
    if (only.has("file")) await fileCopies(node, dir, fileMib);
    if (only.has("crypto")) {
      // ── the link alone, both ends in one process ──
      console.log("the link alone (scripts/bench/link_crypto.ts, 256 MiB in one process):");
      const lc = await sh(Deno.execPath(), [
        "run",
        "-A",
        new URL("./link_crypto.ts", import.meta.url).pathname,
        "256",
      ]);
      for (const l of lc.trim().split("\n")) console.log(`  ${l}`);
    }
  } finally {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.allSettled(procs.map((p) => p[Symbol.asyncDispose]()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** One TCP stream and 64-byte round trips: the tunnel beside ssh -L, direct, and plain Deno proxies. */
async function tunnelPaths(
  only: Set<string>,
  node: NodeSpawner,
  dir: string,
  seconds: number,
  rounds: number,
): Promise<void> {
  // ── one TCP stream: tunnel vs ssh -L vs direct ──
  const target = freePort();
  let iperfServer: Deno.ChildProcess | undefined = new Deno.Command("iperf3", {
    args: ["-s", "-p", String(target)],
    stdout: "null",
    stderr: "null",
  })
    .spawn();
  let ssh: Awaited<ReturnType<typeof sshForward>> | undefined;
  try {
    await waitPort(target);
    ssh = await sshForward(dir, target);
    const ann = node("ann", ["tunnel", "--expose", String(target)]);
    await ann.waitFor((e) => e.event === "waiting", 30_000, "ann waiting");
    const bob = node("bob", ["tunnel", "--local", "0"]);
    const local = (await bob.waitFor((e) => e.event === "tunnel_listening", 30_000, "bob listening"))
      .port as number;
    await bob.waitFor((e) => e.event === "connected", 30_000, "bob linked");
    if (only.has("stream")) {
      await iperf(target, 1); // warm up every path once
      await iperf(ssh.port, 1);
      await iperf(local, 1);
      const direct = await iperf(target, seconds);
      // ssh -L and the tunnel interleaved (A B A B …): the machine's drift weighs on both alike.
      const sshRuns: number[] = [];
      const tunnelRuns: number[] = [];
      for (let pair = 0; pair < STREAM_PAIRS; pair++) {
        sshRuns.push(await iperf(ssh.port, seconds));
        tunnelRuns.push(await iperf(local, seconds));
      }
      const viaSsh = mid(sshRuns);
      const viaTunnel = mid(tunnelRuns);
      const ratios = tunnelRuns.map((t, i) => (t / sshRuns[i]).toFixed(2)).join(", ");
      console.log(
        `one TCP stream, ${seconds} s each (iperf3), medians of ${STREAM_PAIRS} interleaved pairs:`,
      );
      console.log(`  direct (iperf3)        ${direct.toFixed(0).padStart(6)} MiB/s`);
      console.log(`  ssh -L                 ${viaSsh.toFixed(0).padStart(6)} MiB/s`);
      console.log(
        `  mailmeet tunnel        ${viaTunnel.toFixed(0).padStart(6)} MiB/s   ${
          (viaTunnel / viaSsh).toFixed(2)
        }× ssh -L (target ≥ 2×; pairs: ${ratios}), ${(viaTunnel / direct).toFixed(2)}× direct`,
      );
    }
    iperfServer.kill("SIGTERM");
    await iperfServer.status;
    iperfServer = undefined;
    if (only.has("ping")) await pingPaths(target, ssh.port, local, rounds);
    for (const p of [ann, bob]) {
      p.kill("SIGTERM");
      await p.status;
    }
  } finally {
    iperfServer?.kill("SIGTERM");
    await iperfServer?.status;
    await ssh?.close();
  }
}

/** 64-byte ping-pong through the same paths (an echo server now on the exposed port). */
async function pingPaths(target: number, sshPort: number, local: number, rounds: number): Promise<void> {
  const echo = echoServer(target);
  const proxies = await denoProxies(target);
  try {
    // Interleaved: PING_PASSES passes over the four paths, each pass in a rotated order, so that
    // a busy moment of this shared machine falls on all of them alike; samples pooled per path.
    const ports = [target, sshPort, proxies.port, local];
    const pooled: number[][] = ports.map(() => []);
    const each = Math.max(100, Math.round(rounds / PING_PASSES));
    for (let pass = 0; pass < PING_PASSES; pass++) {
      for (let k = 0; k < ports.length; k++) {
        const i = (k + pass) % ports.length;
        pooled[i].push(...await pingPong(ports[i], each));
      }
    }
    const [d, s, f, t] = pooled.map((v) => v.sort((a, b) => a - b));
    const us = (x: number) => `${x.toFixed(0).padStart(5)} µs`;
    const row = (label: string, v: number[], extra = "") =>
      console.log(
        `  ${label.padEnd(22)} p50 ${us(percentile(v, 50))}  p99 ${us(percentile(v, 99))}${extra}`,
      );
    console.log(
      `64-byte ping-pong, ${each * PING_PASSES} round trips per path in ${PING_PASSES} interleaved passes:`,
    );
    row("direct", d);
    row("ssh -L", s, `   adds p50 ${us(percentile(s, 50) - percentile(d, 50))}`);
    row(
      "two plain Deno proxies",
      f,
      `   adds p50 ${
        us(percentile(f, 50) - percentile(d, 50))
      } (the floor of Deno's socket I/O, deno_proxy.ts)`,
    );
    row(
      "mailmeet tunnel",
      t,
      `   adds p50 ${us(percentile(t, 50) - percentile(d, 50))} (ssh -L adds ${
        us(percentile(s, 50) - percentile(d, 50))
      }; target ≤), p99 ${us(percentile(t, 99) - percentile(d, 99))} vs ${
        us(percentile(s, 99) - percentile(d, 99))
      }`,
    );
    const ratio = (q: number) => (percentile(t, q) / percentile(s, q)).toFixed(2);
    console.log(
      `  round trip through the tunnel / through ssh -L: p50 ${ratio(50)}×, p99 ${ratio(99)}× (goal ≤ 1×); ` +
        `through two plain Deno proxies / ssh -L: p50 ${(percentile(f, 50) / percentile(s, 50)).toFixed(2)}×`,
    );
  } finally {
    await proxies.close();
    await echo.close();
  }
}

/** A 1 GiB file: mailmeet send/receive vs nc, interleaved pairs. */
async function fileCopies(node: NodeSpawner, dir: string, fileMib: number): Promise<void> {
  const src = `${dir}/file.bin`;
  await makeFile(src, fileMib);
  const want = await digest(src);
  const ncRuns: number[] = [];
  const mmRuns: number[] = [];
  let rssSend = 0;
  let rssRecv = 0;
  for (let pair = 0; pair < FILE_PAIRS; pair++) {
    // Each copy starts with no dirty pages: the kernel writing back the last copy's 1 GiB (or the
    // source file) must not weigh on the next one.
    await sh("sync", []);
    ncRuns.push(await ncCopy(src, `${dir}/nc-copy.bin`));
    await Deno.remove(`${dir}/nc-copy.bin`);
    await sh("sync", []);
    const run = await sendReceive(node, src, `${dir}/received`, want);
    mmRuns.push(run.ms);
    rssSend = Math.max(rssSend, run.rssSend);
    rssRecv = Math.max(rssRecv, run.rssRecv);
    await Deno.remove(`${dir}/received`, { recursive: true });
  }
  const ncMs = mid(ncRuns);
  const mmMs = mid(mmRuns);
  console.log(
    `${fileMib} MiB file (offer to verified, both ends SHA-256), medians of ${FILE_PAIRS} interleaved pairs:`,
  );
  console.log(`  nc copy                ${(ncMs / 1000).toFixed(2).padStart(6)} s`);
  console.log(
    `  mailmeet send/receive  ${(mmMs / 1000).toFixed(2).padStart(6)} s   ${
      (mmMs / ncMs).toFixed(2)
    }× nc (target ≤ 1.2× nc + 1 s = ${((1.2 * ncMs + 1000) / 1000).toFixed(2)} s; pairs: ${
      mmRuns.map((m, i) => (m / ncRuns[i]).toFixed(2)).join(", ")
    }), ${(fileMib / (mmMs / 1000)).toFixed(0)} MiB/s, identical`,
  );
  console.log(
    `  peak RSS (highest run) sender ${rssSend.toFixed(0)} MB, receiver ${
      rssRecv.toFixed(0)
    } MB (target ≤ 100 MB)`,
  );
}

async function digest(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path);
  const buf = new Uint8Array(MIB);
  for (let n = await f.read(buf); n !== null; n = await f.read(buf)) h.update(buf.subarray(0, n));
  return h.digest("hex");
}

if (import.meta.main) await benchLink();
