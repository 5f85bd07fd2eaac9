/**
 * `deno task bench nat`: reaching peers behind home routers, in the NAT lab (root, ip and nft;
 * scripts/natlab/tools.sh).
 *
 *  1. Per pair of router kinds: a newcomer's request sent → `connected`, as a multiple of B (one
 *     mail hop on the same maildir spool, measured in the same run), the path it took, and how
 *     many of --runs tries linked. The earlier peer alternates between the two kinds.
 *  2. Over a TCP link (forwarded ports), a QUIC link (two port-restricted NATs, punched) and a
 *     relayed link (two symmetric NATs): bulk throughput and 64-byte round trips through
 *     `mailmeet tunnel`, beside the TCP link as the reference — interleaved, medians.
 */
import { maildirHop } from "./maildir_hop.ts";
import { line, ratio, summarize } from "./stats.ts";
import type { CliProcess } from "../lib/cli_process.ts";
import { KINDS, type Meeting, meeting, siteName } from "../../tests/helpers/lab_meeting.ts";
import { labSkipReason, type NatKind } from "../../tests/helpers/natlab.ts";
import { is } from "../../tests/helpers/events.ts";

const SERVER_PORT = 27100;
const LOCAL_PORT = 27101;
const BULK_MIB = 128;
const PINGS = 500;

async function meet(m: Meeting, n: number, early: NatKind, late: NatKind) {
  const { address: via, proc: host } = await m.host(`host${n}`);
  const a = m.node(`early${n}`, siteName(early, 1), early, via, ["join", "--timeout", "0"]);
  await a.waitFor(is("waiting"), 30_000, "the earlier peer waiting");
  const b = m.node(`late${n}`, siteName(late, 2), late, via, ["join", "--timeout", "60"]);
  const sent = await b.waitFor(is("request_sent"), 30_000, "the newcomer's request");
  const t0 = Date.parse(String(sent.time));
  let result: { ms: number; path: string } | undefined;
  try {
    const c = await b.waitFor((e) => e.event === "connected" && e.peer === `early${n}`, 60_000, "link");
    result = { ms: Date.parse(String(c.time)) - t0, path: `${c.path}/${c.transport}/${c.kind}` };
  } catch {
    // counted as a failure below
  }
  for (const p of [a, b, host]) await p[Symbol.asyncDispose]();
  return result;
}

async function tunnelPair(
  m: Meeting,
  n: number,
  kinds: [NatKind, NatKind],
): Promise<{ procs: CliProcess[]; path: string }> {
  const { address: via, proc: host } = await m.host(`thost${n}`);
  const a = m.node(`tsrv${n}`, siteName(kinds[0], 1), kinds[0], via, [
    "tunnel",
    "--expose",
    String(SERVER_PORT),
    "--timeout",
    "0",
  ]);
  await a.waitFor(is("waiting"), 30_000, "the exposing side waiting");
  const b = m.node(`tcli${n}`, siteName(kinds[1], 2), kinds[1], via, [
    "tunnel",
    "--local",
    `${LOCAL_PORT}:${SERVER_PORT}`,
    "--to",
    `tsrv${n}`,
    "--timeout",
    "60",
  ]);
  const c = await b.waitFor((e) => e.event === "connected", 60_000, "the tunnel's link");
  return { procs: [a, b, host], path: `${c.path}/${c.transport}/${c.kind}` };
}

/** A TCP server on the exposing side: echoes 64-byte pings, swallows bulk and says how much. */
const SERVER = `
const l = Deno.listen({ hostname: "127.0.0.1", port: ${SERVER_PORT} });
for await (const c of l) (async () => {
  c.setNoDelay(true);
  const buf = new Uint8Array(1 << 20);
  const first = await c.read(buf);
  if (first === null) return c.close();
  if (buf[0] === 0x50) { // "P": ping-pong
    let n = first;
    for (;;) { while (n >= 64) { await c.write(buf.subarray(0, 64)); buf.copyWithin(0, 64, n); n -= 64; } const r = await c.read(buf.subarray(n)); if (r === null) break; n += r; }
  } else { // bulk: count until the other side half-closes, then answer with the count
    let total = first; for (;;) { const r = await c.read(buf); if (r === null) break; total += r; }
    await c.write(new TextEncoder().encode(String(total))); c.close();
  }
})();`;

/** The client side: bulk MiB/s and ping round trips (µs) through the tunnel's local port. */
const CLIENT = `
const port = ${LOCAL_PORT};
const out = {};
{
  const c = await Deno.connect({ hostname: "127.0.0.1", port }); c.setNoDelay(true);
  const msg = new Uint8Array(64).fill(0x50); const buf = new Uint8Array(64); const rtts = [];
  for (let i = 0; i < ${PINGS}; i++) { const t = performance.now(); await c.write(msg); let got = 0; while (got < 64) { const r = await c.read(buf.subarray(got)); if (r === null) throw new Error("the tunnel closed the connection"); got += r; } rtts.push((performance.now() - t) * 1000); }
  c.close(); rtts.sort((a, b) => a - b); out.p50 = rtts[Math.floor(rtts.length / 2)]; out.p99 = rtts[Math.floor(rtts.length * 0.99)];
}
{
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(256 * 1024).fill(0x42); const total = ${BULK_MIB} * 1024 * 1024;
  const t = performance.now();
  for (let sent = 0; sent < total; sent += chunk.length) { let o = 0; while (o < chunk.length) o += await c.write(chunk.subarray(o)); }
  await c.closeWrite();
  const buf = new Uint8Array(64); const n = await c.read(buf);
  out.mibps = ${BULK_MIB} / ((performance.now() - t) / 1000); out.echoed = Number(new TextDecoder().decode(buf.subarray(0, n ?? 0)));
  c.close();
}
console.log(JSON.stringify(out));`;

export async function benchNat(opts: { runs: number }): Promise<void> {
  const skip = await labSkipReason();
  if (skip) {
    console.log(`skipped: ${skip}`);
    return;
  }
  await using m = await meeting(KINDS.flatMap((nat) => [1, 2].map((i) => ({ name: siteName(nat, i), nat }))));
  const hops = await maildirHop(`${m.dir}/hop-spool`, 20);
  const b = summarize(hops).p50;
  console.log(line("B: one mail hop (maildir spool)", summarize(hops)));

  console.log(`\nrequest sent → connected, ${opts.runs} tries per pair (the earlier peer alternates)`);
  let n = 0;
  for (let i = 0; i < KINDS.length; i++) {
    for (let j = i; j < KINDS.length; j++) {
      const times: number[] = [];
      const paths = new Map<string, number>();
      for (let r = 0; r < opts.runs; r++) {
        const [early, late] = r % 2 === 0 ? [KINDS[i], KINDS[j]] : [KINDS[j], KINDS[i]];
        const res = await meet(m, ++n, early, late);
        if (!res) continue;
        times.push(res.ms);
        paths.set(res.path, (paths.get(res.path) ?? 0) + 1);
      }
      const label = `${KINDS[i]} ↔ ${KINDS[j]}`;
      const s = summarize(times.length > 0 ? times : [NaN]);
      const how = [...paths].map(([p, k]) => `${p}×${k}`).join(" ");
      console.log(`${line(label, s, `${ratio(s.p50, b)} B; linked ${times.length}/${opts.runs}; ${how}`)}`);
    }
  }

  console.log(
    `\nthrough \`mailmeet tunnel\`: ${BULK_MIB} MiB bulk and ${PINGS} 64-byte round trips, TCP link as reference`,
  );
  const layouts: [string, [NatKind, NatKind]][] = [
    ["TCP link (forwarded ports)", ["forward", "forward"]],
    ["QUIC link (punched, port-restricted)", ["port-restricted", "port-restricted"]],
    ["relayed link (two symmetric NATs)", ["symmetric", "symmetric"]],
  ];
  const results = new Map<string, { mibps: number[]; p50: number[]; p99: number[]; path: string }>();
  for (let round = 0; round < 3; round++) {
    for (const [label, kinds] of layouts) {
      const server = m.lab.spawn(m.lab.host(siteName(kinds[0], 1)).ns, Deno.execPath(), ["eval", SERVER]);
      const { procs, path } = await tunnelPair(m, ++n, kinds);
      await procs[1].waitFor(is("tunnel_listening"), 10_000, "the tunnel's local port");
      const run = await m.lab.exec(m.lab.host(siteName(kinds[1], 2)).ns, Deno.execPath(), ["eval", CLIENT], {
        check: false,
      });
      const r = results.get(label) ?? { mibps: [], p50: [], p99: [], path };
      try {
        const o = JSON.parse(run.stdout.trim());
        r.mibps.push(o.mibps);
        r.p50.push(o.p50);
        r.p99.push(o.p99);
      } catch {
        console.log(`${label}: the client failed: ${run.stderr.slice(-300)}`);
      }
      results.set(label, r);
      for (const p of procs) await p[Symbol.asyncDispose]();
      server.kill("SIGTERM");
      await server.status;
    }
  }
  const med = (xs: number[]) => summarize(xs.length ? xs : [NaN]).p50;
  const ref = results.get(layouts[0][0])!;
  for (const [label] of layouts) {
    const r = results.get(label)!;
    console.log(
      `${label.padEnd(40)} ${r.path.padEnd(22)} ${med(r.mibps).toFixed(0).padStart(5)} MiB/s (${
        ratio(med(r.mibps), med(ref.mibps))
      })  rtt p50 ${med(r.p50).toFixed(0)} µs (${ratio(med(r.p50), med(ref.p50))})  p99 ${
        med(r.p99).toFixed(0)
      } µs`,
    );
  }
}
