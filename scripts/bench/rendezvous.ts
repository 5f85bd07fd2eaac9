/**
 * `deno task bench rendezvous`: a peer's request sent → `connected`, on the real stack with IMAP
 * IDLE, next to B (one mail hop) measured in the same run (two hops are the floor); the same
 * through a chain (peer → promoted node B → upstream C); and how many mails one request costs in
 * each layout: one host, two hosts, a representative with two workers, a chain.
 */
import { type CliEvent, type CliProcess, MAIN, spawnCli, useEntry } from "../lib/cli_process.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { type MailStack, mailStack } from "../../tests/helpers/mailstack.ts";
import { measureHops } from "./mail_hop.ts";
import { line, ratio, summarize } from "./stats.ts";
import { FreshHomes } from "./fresh_home.ts";

/** After `connected`, wait this long for the mail a request still causes (syncs upward). */
const SETTLE_MS = 2500;

class Layout implements AsyncDisposable {
  readonly procs: CliProcess[] = [];
  readonly #homes: FreshHomes;
  constructor(readonly stack: MailStack, readonly key: string, readonly dir: string) {
    this.#homes = new FreshHomes(dir);
  }

  /** A machine of its own for each process (fresh_home.ts). */
  home(name: string): Record<string, string> {
    return this.#homes.make(name);
  }

  address(name: string, domain = "game.test"): string {
    return this.stack.freshAddress(name, domain);
  }

  args(address: string): string[] {
    return [
      "--address",
      address,
      "--smtp",
      this.stack.url("submission", address),
      "--inbox",
      this.stack.url("imap", address),
      "--tls-ca",
      this.stack.caFile,
      "--key",
      this.key,
      "--json",
      "--verbose",
    ];
  }

  host(name: string, address: string, extra: string[] = []): CliProcess {
    return this.#track(
      spawnCli(
        name,
        ["host", ...this.args(address), "--db", `${this.dir}/${name}.db`, ...extra],
        this.home(name),
      ),
    );
  }

  peer(name: string, address: string, vias: string[], extra: string[] = []): CliProcess {
    return this.#track(spawnCli(name, [
      "join",
      ...this.args(address),
      "--user",
      name,
      ...vias.flatMap((v) => ["--via", v]),
      "--listen",
      "127.0.0.1:0",
      "--timeout",
      "3600",
      ...extra,
    ], this.home(name)));
  }

  /** Mails sent by every process of the layout so far. */
  mails(): number {
    return this.procs.reduce((n, p) => n + p.events.filter((e) => e.event === "mail_sent").length, 0);
  }

  #track(p: CliProcess): CliProcess {
    this.procs.push(p);
    return p;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled(this.procs.map((p) => p[Symbol.asyncDispose]()));
  }
}

interface Runs {
  times: number[];
  mails: number[];
}

/** Starts a fresh peer `runs + 1` times (the first is a warm-up) and times request → connected to `target`. */
async function joins(l: Layout, vias: string[], target: string, runs: number): Promise<Runs> {
  const address = l.address("bench-peer", "isp-b.test");
  const out: Runs = { times: [], mails: [] };
  for (let i = 0; i <= runs; i++) {
    const before = l.mails();
    await using peer = spawnCli("peer", [
      "join",
      ...l.args(address),
      "--user",
      "bench",
      ...vias.flatMap((v) => ["--via", v]),
      "--listen",
      "127.0.0.1:0",
      "--no-host",
    ], l.home("peer"));
    const sent = await peer.waitFor((e) => e.event === "request_sent", 60_000, "request");
    const conn = await peer.waitFor(
      (e: CliEvent) => e.event === "connected" && e.peer === target,
      60_000,
      "connected",
    );
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const own = peer.events.filter((e) => e.event === "mail_sent").length;
    if (i > 0) {
      out.times.push(Date.parse(String(conn.time)) - Date.parse(String(sent.time)));
      out.mails.push(l.mails() - before + own);
    }
  }
  return out;
}

const waiting = (p: CliProcess) =>
  p.waitFor((e) => e.event === "waiting" || e.event === "connected", 60_000, "ready");

export async function benchRendezvous(args: { runs: number }): Promise<void> {
  // The source, not dist/: a bundle being rebuilt must not pull the ground from under a long run.
  useEntry(MAIN);
  await using stack = await mailStack();
  const key = generateKeyText();
  const dir = await Deno.makeTempDir();
  const countRuns = Math.max(3, Math.min(10, args.runs));
  try {
    console.log("rendezvous on Postfix + Dovecot, IMAP IDLE everywhere, every node a CLI process");
    const b = summarize((await measureHops(stack, "imap", args.runs + 1)).hop.slice(1));
    console.log(line("B: one mail hop (SMTP 250 → IDLE wake-up)", b));

    let direct: Runs;
    let hostMs: number[];
    {
      await using l = new Layout(stack, key, dir);
      const h = l.address("host");
      const host = l.host("host", h);
      await waiting(l.peer("anchor", l.address("anchor", "isp-a.test"), [h]));
      direct = await joins(l, [h], "anchor", args.runs);
      hostMs = host.events.filter((e) => e.event === "host_reply").slice(2).map((e) => Number(e.ms));
    }
    const t = summarize(direct.times);
    console.log(line(
      "one host: request sent → connected",
      t,
      `p50 = ${ratio(t.p50, b.p50)} B (target ≤ 2.3), p95 = ${ratio(t.p95, b.p50)} B (target ≤ 3)`,
    ));
    const h = summarize(hostMs);
    console.log(
      line("host: wake-up → reply accepted (250)", h, `p95 = ${ratio(h.p95, b.p50)} B (target ≤ 0.2)`),
    );

    let chain: Runs;
    {
      await using l = new Layout(stack, key, dir);
      const c = l.address("upstream");
      l.host("C", c);
      await waiting(l.peer("anchor", l.address("anchor2", "isp-a.test"), [c]));
      const mid = l.address("middle", "isp-a.test");
      await waiting(l.peer("middle", mid, [c]));
      chain = await joins(l, [mid], "anchor", args.runs);
    }
    const ct = summarize(chain.times);
    console.log(line(
      "chain: peer → B (promoted) → C: request → connected",
      ct,
      `p50 = ${ratio(ct.p50, b.p50)} B, ${ratio(ct.p50, t.p50)} of one host`,
    ));

    const counts: [string, number[]][] = [["one host", direct.mails.slice(0, countRuns)], [
      "chain (B passes the newcomer up to C)",
      chain.mails.slice(0, countRuns),
    ]];
    {
      await using l = new Layout(stack, key, dir);
      const h1 = l.address("twohost1");
      const h2 = l.address("twohost2", "isp-a.test");
      l.host("h1", h1);
      l.host("h2", h2);
      await waiting(l.peer("anchor", l.address("anchor3", "isp-a.test"), [h1, h2]));
      counts.push(["two hosts (one mail to both)", (await joins(l, [h1, h2], "anchor", countRuns)).mails]);
    }
    {
      await using l = new Layout(stack, key, dir);
      const w1 = l.address("worker1");
      const w2 = l.address("worker2", "isp-b.test");
      const rep = l.address("rep");
      // Workers pass new peers to each other, so whichever answers knows everyone.
      l.host("w1", w1, ["--via", w2]);
      l.host("w2", w2, ["--via", w1]);
      l.host("rep", rep, ["--forward-to", w1, "--forward-to", w2]);
      await waiting(l.peer("anchor", l.address("anchor4", "isp-a.test"), [rep]));
      counts.push([
        "representative + 2 workers (workers sync)",
        (await joins(l, [rep], "anchor", countRuns)).mails,
      ]);
    }
    console.log("mails sent per request (request, replies, forwards, syncs), median over runs:");
    for (const [name, mails] of counts) {
      const s = summarize(mails);
      console.log(`  ${name.padEnd(44)} ${s.p50}  (min ${s.min}, max ${s.max}, n=${s.n})`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
