/**
 * `deno task bench meet [--runs N] [--entry FILE]`: the fast local meeting on the embedded maildir spool (no mail
 * server). One `mailmeet host` and one member already waiting; then N times a fresh `join` peer,
 * timed from its `request_sent` event to its `connected` event with that member. Interleaved with
 * it (A B A B) the reference: hyperswarm on a local HyperDHT testnet, from `swarm.join(topic)` on a
 * fresh swarm to its `connection` event with the peer already joined (scripts/bench/hyperswarm_ref,
 * run by Node; without Node or npm, a plain TCP connect on loopback is the floor shown instead).
 * That swarm joins from one long-lived Node process; a second reference joins from a fresh Node
 * process each time, as every mailmeet meeting here is a fresh `join` (neither times module loading).
 */
import { type CliEvent, type CliProcess, installedFlags, spawnCli, useEntry } from "../lib/cli_process.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { percentile } from "./stats.ts";
import { FreshHomes } from "./fresh_home.ts";

const REF_DIR = new URL("./hyperswarm_ref/", import.meta.url).pathname;

/** A reference measurement: one call, one sample in milliseconds. */
interface Reference extends AsyncDisposable {
  readonly name: string;
  once(): Promise<number>;
  /** The same meeting from a fresh process (like each mailmeet `join`), where the reference can. */
  readonly fresh?: { readonly name: string; once(): Promise<number> };
}

async function installed(dir: string): Promise<boolean> {
  try {
    await Deno.stat(`${dir}node_modules/hyperswarm/package.json`);
    return true;
  } catch {
    const out = await new Deno.Command("npm", {
      args: ["ci", "--no-audit", "--no-fund", "--silent"],
      cwd: dir,
      stdout: "null",
      stderr: "inherit",
    }).output().catch(() => undefined);
    return out?.success === true;
  }
}

/** hyperswarm by Node, one long-lived process: a line "run" in, a line {"ms": …} out. */
async function hyperswarm(): Promise<Reference | undefined> {
  if (!(await installed(REF_DIR))) return undefined;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("node", {
      args: ["join_time.mjs"],
      cwd: REF_DIR,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
  } catch {
    return undefined;
  }
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const writer = child.stdin.getWriter();
  let rest = "";
  const next = async (): Promise<Record<string, unknown>> => {
    while (!rest.includes("\n")) {
      const r = await lines.read();
      if (r.done) throw new Error("the hyperswarm reference process ended");
      rest += r.value;
    }
    const i = rest.indexOf("\n");
    const line = rest.slice(0, i);
    rest = rest.slice(i + 1);
    return JSON.parse(line);
  };
  // {"ready": true, "bootstrap": …}: the testnet is up and the waiting swarm announced
  const { bootstrap } = await next();
  return {
    name: "hyperswarm 4.17.2, local HyperDHT testnet (Node): join → connection",
    async once() {
      await writer.write(new TextEncoder().encode("run\n"));
      return Number((await next()).ms);
    },
    fresh: {
      name: "the same, each join from a fresh Node process (modules loaded, then timed)",
      async once() {
        const out = await new Deno.Command("node", {
          args: ["join_once.mjs", JSON.stringify(bootstrap)],
          cwd: REF_DIR,
          stdout: "piped",
          stderr: "inherit",
        }).output();
        if (!out.success) throw new Error("the fresh hyperswarm process failed");
        return Number(JSON.parse(new TextDecoder().decode(out.stdout).trim()).ms);
      },
    },
    async [Symbol.asyncDispose]() {
      await writer.close().catch(() => {});
      await child.status;
    },
  };
}

/** The floor when hyperswarm cannot run: connect() to a listener on loopback, first byte back. */
function tcpFloor(): Reference {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const c of listener) {
      c.write(new Uint8Array([1])).finally(() => c.close());
    }
  })().catch(() => {});
  return {
    name: "floor: TCP connect + one byte back on loopback",
    async once() {
      const t0 = performance.now();
      const c = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      await c.read(new Uint8Array(1));
      const ms = performance.now() - t0;
      c.close();
      return ms;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving;
    },
  };
}

class Spool implements AsyncDisposable {
  readonly procs: CliProcess[] = [];
  readonly key = generateKeyText();
  readonly #homes: FreshHomes;
  constructor(readonly dir: string) {
    this.#homes = new FreshHomes(dir);
  }

  get url(): string {
    return `maildir://${this.dir}/spool`;
  }

  /** A machine of its own for each process (fresh_home.ts). */
  home(name: string): Record<string, string> {
    return this.#homes.make(name);
  }

  args(address: string): string[] {
    return [
      "--address",
      address,
      "--smtp",
      this.url,
      "--inbox",
      this.url,
      "--key",
      this.key,
      "--json",
      "--verbose",
    ];
  }

  spawn(name: string, args: string[], extra: string[] = []): CliProcess {
    // What an installed user runs (deno task install): its permissions and V8 flags, never -A.
    const p = spawnCli(name, [...args, ...extra], this.home(name), undefined, {
      permissions: installedFlags(),
    });
    this.procs.push(p);
    return p;
  }

  join(name: string, address: string, via: string, extra: string[] = []): CliProcess {
    return this.spawn(name, [
      "join",
      ...this.args(address),
      "--user",
      name,
      "--via",
      via,
      "--listen",
      "127.0.0.1:0",
      "--timeout",
      "3600",
    ], extra);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled(this.procs.map((p) => p[Symbol.asyncDispose]()));
  }
}

const at = (e: CliEvent) => Date.parse(String(e.time));

/** Milliseconds from the first event matching `from` to the first matching `to` (after it), or NaN. */
function span(events: CliEvent[], from: (e: CliEvent) => boolean, to: (e: CliEvent) => boolean): number {
  const a = events.find(from);
  if (!a) return NaN;
  const b = events.find((e) => to(e) && at(e) >= at(a));
  return b ? at(b) - at(a) : NaN;
}

/** One meeting: a fresh peer's events (request_sent … connected to `target`). */
async function meetOnce(s: Spool, target: string, via: string, i: number): Promise<CliEvent[]> {
  const peer = s.spawn(`peer${i}`, [
    "join",
    ...s.args(`bench-peer${i}@isp-b.test`),
    "--user",
    `bench${i}`,
    "--via",
    via,
    "--listen",
    "127.0.0.1:0",
    "--no-host",
  ]);
  try {
    await peer.waitFor((e) => e.event === "request_sent", 60_000, "request");
    await peer.waitFor((e) => e.event === "connected" && e.peer === target, 60_000, "connected");
    return [...peer.events];
  } finally {
    await peer[Symbol.asyncDispose]();
  }
}

const row = (label: string, xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return {
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    text: `${label.padEnd(66)} p50 ${percentile(s, 50).toFixed(1).padStart(7)} ms  p90 ${
      percentile(s, 90).toFixed(1).padStart(7)
    } ms  min ${s[0].toFixed(1).padStart(6)}  max ${s.at(-1)!.toFixed(1).padStart(6)}  (n=${s.length})`,
  };
};

/** `entry`: the mailmeet script the processes run (default dist/mailmeet.js), to compare two builds. */
export async function benchMeet(args: { runs: number; entry?: string }): Promise<void> {
  if (args.entry) useEntry(args.entry);
  const dir = await Deno.makeTempDir({ prefix: "mailmeet-bench-meet-" });
  try {
    await using ref = (await hyperswarm()) ?? tcpFloor();
    await using s = new Spool(dir);
    const host = "host@game.test";
    const hostProc = s.spawn("host", ["host", ...s.args(host), "--db", `${dir}/host.db`]);
    const member = s.join("member", "member@isp-a.test", host);
    await member.waitFor((e) => e.event === "waiting" || e.event === "connected", 60_000, "member waiting");
    console.log(
      `meeting on a maildir spool (${dir}), one host, one member waiting; ${args.runs} runs after a warm-up`,
    );
    const a: number[] = [];
    const b: number[] = [];
    const c: number[] = [];
    const phases: Record<string, number[]> = {};
    for (let i = 0; i <= args.runs; i++) {
      const events = await meetOnce(s, "member", host, i);
      const rb = await ref.once();
      const rc = await ref.fresh?.once();
      if (i === 0) continue; // warm-up
      a.push(span(events, (e) => e.event === "request_sent", (e) => e.event === "connected"));
      b.push(rb);
      if (rc !== undefined) c.push(rc);
      // Where the peer's time went: the reply's round trip by mail, then reaching the member.
      const sent = (e: CliEvent) => e.event === "request_sent";
      const reply = (e: CliEvent) => e.event === "reply";
      const connected = (e: CliEvent) => e.event === "connected";
      (phases["request_sent → reply read"] ??= []).push(span(events, sent, reply));
      (phases["reply read → dial"] ??= []).push(span(events, reply, (e) => e.event === "dial"));
      (phases["dial → connected"] ??= []).push(span(events, (e) => e.event === "dial", connected));
    }
    const hostMs = hostProc.events.filter((e) => e.event === "host_reply").slice(2).map((e) => Number(e.ms));
    const ra = row("mailmeet: request_sent → connected (maildir spool)", a);
    const rb = row(`reference, ${ref.name}`, b);
    console.log(ra.text);
    console.log(rb.text);
    console.log(
      `ratio mailmeet / reference: p50 ${(ra.p50 / rb.p50).toFixed(2)}×  p90 ${
        (ra.p90 / rb.p90).toFixed(2)
      }×`,
    );
    if (ref.fresh && c.length > 0) {
      // Each mailmeet meeting is a new process, its code run for the first time; the reference
      // above joins from a process that has joined many times. This one is like for like.
      const rc = row(`reference, ${ref.fresh.name}`, c);
      console.log(rc.text);
      console.log(
        `ratio mailmeet / fresh-process reference: p50 ${(ra.p50 / rc.p50).toFixed(2)}×  p90 ${
          (ra.p90 / rc.p90).toFixed(2)
        }×`,
      );
    }
    console.log("where the peer's time went (p50 / p90, ms):");
    for (const [name, xs] of Object.entries({ ...phases, "host: wake-up → reply accepted": hostMs })) {
      const sorted = xs.filter((x) => !Number.isNaN(x)).sort((x, y) => x - y);
      console.log(
        `  ${name.padEnd(34)} ${percentile(sorted, 50)} / ${percentile(sorted, 90)}  (n=${sorted.length})`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
