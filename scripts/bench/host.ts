/**
 * `deno task bench host`: what one host costs per request and how fast it empties a full mailbox,
 * each figure beside a reference measured in the same run, interleaved (ref, run, ref, run, …),
 * medians over the pairs:
 * - table scaling: ms per request and peak RSS with 10,000 and 100,000 rows in the table, against
 *   the same host with 100 rows (maildir spool, no mail server: the table is all that differs);
 * - capacity: requests/s with N requests queued, on the maildir spool and on IMAP + SMTP through
 *   Postfix + Dovecot, against Postfix's own `smtp-source -s 20` delivering N mails into the same
 *   stack; and the host's RSS growth from its 1,000th to its last reply;
 * - POP3 host: a peer's request → connected with the host reading its mailbox by POP3 (the CLI's
 *   default poll interval), against B, one mail hop (SMTP 250 → IMAP IDLE wake-up).
 * It runs the bundle users install (dist/mailmeet.js, rebuilt first); `--entry PATH` runs another
 * checkout's main.ts or bundle instead (a before/after comparison).
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import {
  buildBundle,
  BUNDLE,
  type CliEvent,
  type CliProcess,
  installedFlags,
  spawnCli,
  useEntry,
} from "../lib/cli_process.ts";
import { generateKeyText, type NetworkKey, parseNetworkKey } from "../../src/protocol/keys.ts";
import { sealToText } from "../../src/protocol/envelope.ts";
import { composeMail } from "../../src/mail/smtp.ts";
import { maildirFor } from "../../src/mail/maildir.ts";
import { request } from "../../tests/helpers/events.ts";
import { type MailStack, mailStack } from "../../tests/helpers/mailstack.ts";
import { HopMeter } from "./mail_hop.ts";
import { line, percentile, ratio, summarize } from "./stats.ts";
import { FreshHomes } from "./fresh_home.ts";

const MARKER = "mailmeet rendezvous";
/** Distinct mailboxes the queued requests ask replies to (users are all distinct). */
const REPLY_BOXES = 50;
const MiB = 1024 * 1024;

export interface HostBenchArgs {
  /** Reference/run pairs per figure. */
  pairs: number;
  /** Requests answered per table-scaling run. */
  requests: number;
  /** Requests queued per capacity run. */
  queued: number;
  /** main.ts or a bundle to run (default: this checkout's bundle, rebuilt). */
  entry?: string;
  /** Parts to run: table, capacity, pop3 (default all). */
  only?: string[];
}

const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

/** Raw request mails, composed as a peer's sender would (nodemailer), for `users`. */
async function requestMails(
  key: NetworkKey,
  hostAddress: string,
  users: string[],
  replyDomain: string,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const [i, user] of users.entries()) {
    const replyTo = `bench-peer${i % REPLY_BOXES}@${replyDomain}`;
    const { raw } = await composeMail({
      from: replyTo,
      to: [hostAddress],
      subject: MARKER,
      text: sealToText(key, request(user, { address: replyTo })),
    });
    out.push(raw);
  }
  return out;
}

let queued = 0;
/** Writes mails straight into a Maildir's new/ (tmp → new), owned like the folder (Dovecot's user). */
function queueInto(maildir: string, mails: readonly Uint8Array[]): void {
  for (const sub of ["tmp", "new", "cur"]) Deno.mkdirSync(join(maildir, sub), { recursive: true });
  const st = Deno.statSync(join(maildir, ".."));
  const owner = st.uid !== null && st.uid !== 0 && Deno.uid() === 0 ? st : undefined;
  if (owner) {
    for (const sub of ["", "tmp", "new", "cur"]) Deno.chownSync(join(maildir, sub), owner.uid, owner.gid);
  }
  const t = Math.floor(Date.now() / 1000);
  for (const raw of mails) {
    const name = `${t}.M${++queued}P${Deno.pid}.bench,S=${raw.length}`;
    Deno.writeFileSync(join(maildir, "tmp", name), raw, { mode: 0o600 });
    if (owner) Deno.chownSync(join(maildir, "tmp", name), owner.uid!, owner.gid!);
    Deno.renameSync(join(maildir, "tmp", name), join(maildir, "new", name));
  }
}

/** Fills a table file with `rows` peers through the columns every schema version has. */
function prefill(entry: string, path: string, rows: number): Promise<void> {
  return (async () => {
    // Let the mailmeet under test create its own schema: a host answering an empty spool once.
    const spool = `maildir://${path}.spool`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        entry,
        "host",
        "--once",
        "--address",
        "prefill@bench.test",
        "--key",
        generateKeyText(),
        "--smtp",
        spool,
        "--inbox",
        spool,
        "--db",
        path,
        "--json",
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`cannot create ${path}: ${new TextDecoder().decode(out.stderr)}`);
    const db = new DatabaseSync(path);
    try {
      const now = Date.now();
      const ins = db.prepare(
        "INSERT INTO peers (user, host, port, email, link_key, flagged, stored, origin) VALUES (?, ?, ?, ?, ?, 0, ?, '')",
      );
      db.exec("BEGIN");
      const key = new Uint8Array(32).fill(7);
      for (let i = 0; i < rows; i++) {
        ins.run(`old${i}`, "192.0.2.1", 40000 + (i % 20000), `old${i}@isp-a.test`, key, now - 60_000 - i);
      }
      db.exec("COMMIT");
    } finally {
      db.close();
    }
  })();
}

interface HostRun {
  events: CliEvent[];
  /** ms from the first host_request to the last host_reply. */
  busyMs: number;
  replies: number;
  /** Peak RSS (VmHWM) of the host process, bytes. */
  peakRss: number;
  /** VmRSS when the n-th reply was seen, bytes. */
  rssAt: Map<number, number>;
}

function procStatus(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Runs `mailmeet host … --once` to completion, sampling its memory. */
async function runHost(
  args: string[],
  env: Record<string, string>,
  rssMarks: number[] = [],
): Promise<HostRun> {
  const rssAt = new Map<number, number>();
  let replies = 0;
  let peakRss = 0;
  const marks = new Set(rssMarks);
  const ref: { p?: CliProcess } = {};
  // The installed command's flags: its V8 heap settings shape the RSS figures.
  const opts = { permissions: installedFlags() };
  const p = ref.p = spawnCli("host", ["host", ...args, "--once", "--json"], env, (e) => {
    if (e.event !== "host_reply") return;
    replies++;
    if (marks.has(replies) && ref.p) rssAt.set(replies, procStatus(ref.p.pid, "VmRSS") ?? 0);
  }, opts);
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, procStatus(p.pid, "VmHWM") ?? 0);
  }, 50);
  const status = await p.status;
  clearInterval(sampler);
  if (!status.success) {
    throw new Error(
      `the host exited ${status.code}: ${p.stderr.join("\n")}\n${JSON.stringify(p.events.slice(-5))}`,
    );
  }
  const t = (e: CliEvent | undefined) => (e ? Date.parse(String(e.time)) : NaN);
  const first = p.events.find((e) => e.event === "host_request");
  const last = p.events.findLast((e) => e.event === "host_reply");
  return { events: p.events, busyMs: t(last) - t(first), replies, peakRss, rssAt };
}

class Scratch implements AsyncDisposable {
  constructor(readonly dir: string) {}
  static async make(): Promise<Scratch> {
    return new Scratch(await Deno.makeTempDir({ prefix: "mailmeet-bench-host-" }));
  }
  env(): Record<string, string> {
    return { XDG_CONFIG_HOME: join(this.dir, "config"), XDG_DATA_HOME: join(this.dir, "data") };
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/* ---------- table scaling ---------- */

async function tableRun(
  keyText: string,
  key: NetworkKey,
  template: string,
  requests: number,
  round: number,
): Promise<HostRun> {
  await using s = await Scratch.make();
  const db = join(s.dir, "table.db");
  await Deno.copyFile(template, db);
  const spool = join(s.dir, "spool");
  const host = "bench-host@game.test";
  const users = Array.from({ length: requests }, (_, i) => `r${round}-${i}`);
  queueInto(maildirFor(spool, host), await requestMails(key, host, users, "isp-b.test"));
  return await runHost(
    [
      "--address",
      host,
      "--smtp",
      `maildir://${spool}`,
      "--inbox",
      `maildir://${spool}`,
      "--key",
      keyText,
      "--db",
      db,
      "--capacity",
      "1000000",
    ],
    s.env(),
  );
}

async function benchTable(entry: string, args: HostBenchArgs): Promise<void> {
  console.log(
    `table scaling: ${args.requests} requests answered from a maildir spool, table prefilled; ` +
      `reference: the same host with 100 rows`,
  );
  const keyText = generateKeyText();
  const key = await parseNetworkKey(keyText);
  await using s = await Scratch.make();
  const templates = new Map<number, string>();
  for (const rows of [100, 10_000, 100_000]) {
    const path = join(s.dir, `template-${rows}.db`);
    await prefill(entry, path, rows);
    templates.set(rows, path);
  }
  const perReq = new Map<number, number[]>([[100, []], [10_000, []], [100_000, []]]);
  const rss = new Map<number, number[]>([[100, []], [10_000, []], [100_000, []]]);
  let round = 0;
  // ref, 10k, ref, 100k: every figure has a reference next to it in time.
  for (let pair = 0; pair < args.pairs; pair++) {
    for (const rows of [100, 10_000, 100, 100_000]) {
      const r = await tableRun(keyText, key, templates.get(rows)!, args.requests, round++);
      perReq.get(rows)!.push(r.busyMs / Math.max(1, r.replies - 1));
      rss.get(rows)!.push(r.peakRss);
    }
  }
  const ref = median(perReq.get(100)!);
  for (const rows of [100, 10_000, 100_000]) {
    const ms = median(perReq.get(rows)!);
    const mem = median(rss.get(rows)!);
    console.log(
      `  ${`${rows.toLocaleString("en")} rows`.padEnd(14)} ${ms.toFixed(2).padStart(8)} ms/request  ` +
        `peak RSS ${(mem / MiB).toFixed(0).padStart(4)} MiB  ${
          rows === 100 ? "(reference)" : `${ratio(ms, ref)} of 100 rows`
        }` +
        `  (n=${perReq.get(rows)!.length})`,
    );
  }
}

/* ---------- capacity against smtp-source ---------- */

/** Postfix's own load generator: `queued` mails in 20 sessions to one mailbox; mails/s until all are stored. */
async function smtpSource(stack: MailStack, queued: number, size: number): Promise<number> {
  const to = stack.freshAddress("bench-sink", "isp-b.test");
  const dir = `${stack.spool}/${to}`;
  const t0 = performance.now();
  const out = await new Deno.Command("/usr/sbin/smtp-source", {
    args: [
      "-s",
      "20",
      "-m",
      String(queued),
      "-l",
      String(size),
      "-f",
      "bench-source@isp-a.test",
      "-t",
      to,
      `${stack.host}:${stack.ports.smtp}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`smtp-source failed: ${new TextDecoder().decode(out.stderr)}`);
  await stack.waitForMessages(to, queued, 600_000);
  const secs = (performance.now() - t0) / 1000;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  return queued / secs;
}

interface CapacityRun {
  rate: number;
  mailsPerRequest: number;
  introsPerRequest: number;
  growth?: number;
  rss1k?: number;
  rssEnd?: number;
}

async function capacityRun(
  kind: "maildir" | "imap",
  stack: MailStack,
  queued: number,
): Promise<CapacityRun> {
  await using s = await Scratch.make();
  const keyText = generateKeyText();
  const key = await parseNetworkKey(keyText);
  const spool = kind === "maildir" ? join(s.dir, "spool") : stack.spool;
  const host = kind === "maildir" ? "bench-host@game.test" : stack.freshAddress("bench-host", "game.test");
  // Replies go to REPLY_BOXES mailboxes (on the stack, isp-b.test takes any local part).
  const users = Array.from({ length: queued }, (_, i) => `q${i}`);
  const mails = await requestMails(key, host, users, "isp-b.test");
  queueInto(maildirFor(spool, host), mails);
  const mailArgs = kind === "maildir"
    ? ["--smtp", `maildir://${spool}`, "--inbox", `maildir://${spool}`]
    : ["--smtp", stack.url("submission", host), "--inbox", stack.url("imap", host), "--tls-ca", stack.caFile];
  const mark = Math.min(1000, Math.floor(queued / 10));
  try {
    const r = await runHost(
      // No mail budget: this measures what the host and its mail server can do, not a free
      // account's daily allowance (200 by default, which a capacity run spends in seconds).
      [
        "--address",
        host,
        ...mailArgs,
        "--key",
        keyText,
        "--db",
        join(s.dir, "table.db"),
        "--mail-budget",
        "1000000000",
      ],
      s.env(),
      [mark, queued],
    );
    if (r.replies !== queued) throw new Error(`the host answered ${r.replies} of ${queued} requests`);
    // Replies, introductions, syncs: every mail the host sent, per request answered.
    const sent = r.events.filter((e) => e.event === "mail_sent");
    const mails = sent.reduce((n, e) => n + Number(e.recipients), 0);
    const intros = sent.filter((e) => e.event === "mail_sent" && e.kind === "intro").length;
    const rss1k = r.rssAt.get(mark);
    const rssEnd = r.rssAt.get(queued);
    return {
      rate: (r.replies - 1) / (r.busyMs / 1000),
      mailsPerRequest: mails / r.replies,
      introsPerRequest: intros / r.replies,
      rss1k,
      rssEnd,
      growth: rss1k && rssEnd ? (rssEnd - rss1k) / rss1k : undefined,
    };
  } finally {
    if (kind === "imap") {
      await Deno.remove(maildirFor(spool, host), { recursive: true }).catch(() => {});
      for (let i = 0; i < REPLY_BOXES; i++) {
        await Deno.remove(join(stack.spool, `bench-peer${i}@isp-b.test`), { recursive: true }).catch(
          () => {},
        );
      }
    }
  }
}

async function benchCapacity(args: HostBenchArgs): Promise<void> {
  await using stack = await mailStack();
  console.log(
    `capacity: ${args.queued.toLocaleString("en")} requests queued, host --once; reference: ` +
      `smtp-source -s 20 -m ${args.queued} delivering into the same Postfix + Dovecot`,
  );
  const refs: number[] = [];
  const runs = { maildir: [] as CapacityRun[], imap: [] as CapacityRun[] };
  for (let pair = 0; pair < args.pairs; pair++) {
    refs.push(await smtpSource(stack, args.queued, 1300));
    runs.maildir.push(await capacityRun("maildir", stack, args.queued));
    refs.push(await smtpSource(stack, args.queued, 1300));
    runs.imap.push(await capacityRun("imap", stack, args.queued));
  }
  const ref = median(refs);
  console.log(
    `  ${"smtp-source -s 20 → maildir".padEnd(34)} ${
      ref.toFixed(0).padStart(6)
    } mails/s  (reference, n=${refs.length})`,
  );
  for (const kind of ["maildir", "imap"] as const) {
    const rate = median(runs[kind].map((r) => r.rate));
    console.log(
      `  ${`host, ${kind === "maildir" ? "maildir spool" : "IMAP + SMTP submission"}`.padEnd(34)} ${
        rate.toFixed(0).padStart(6)
      } requests/s  ${ratio(rate, ref)} of smtp-source  (n=${runs[kind].length}); ${
        median(runs[kind].map((r) => r.mailsPerRequest)).toFixed(2)
      } mails sent per request (${
        median(runs[kind].map((r) => r.introsPerRequest)).toFixed(2)
      } introductions)`,
    );
    const g = runs[kind].map((r) => r.growth).filter((x): x is number => x !== undefined);
    const r1 = median(runs[kind].map((r) => r.rss1k ?? 0));
    const rEnd = median(runs[kind].map((r) => r.rssEnd ?? 0));
    if (g.length > 0) {
      console.log(
        `  ${"".padEnd(34)} RSS ${(r1 / MiB).toFixed(0)} MiB at reply ${
          Math.min(1000, args.queued / 10)
        } → ` +
          `${(rEnd / MiB).toFixed(0)} MiB at reply ${args.queued}: ${(median(g) * 100).toFixed(0)}% growth`,
      );
    }
  }
}

/* ---------- POP3 host rendezvous ---------- */

async function benchPop3(args: HostBenchArgs): Promise<void> {
  await using stack = await mailStack();
  await using s = await Scratch.make();
  const keyText = generateKeyText();
  console.log(
    "POP3 host: request sent → connected, host on POP3 (default --poll), peers on IMAP IDLE; " +
      "reference: B, one mail hop (SMTP 250 → IDLE wake-up), interleaved",
  );
  const common = (address: string, inbox: "imap" | "pop3") => [
    "--address",
    address,
    "--smtp",
    stack.url("submission", address),
    "--inbox",
    stack.url(inbox, address),
    "--tls-ca",
    stack.caFile,
    "--key",
    keyText,
    "--json",
  ];
  const hostAddr = stack.freshAddress("pop3-host", "game.test");
  await using _host = spawnCli(
    "host",
    ["host", ...common(hostAddr, "pop3"), "--db", join(s.dir, "host.db")],
    s.env(),
  );
  const anchorAddr = stack.freshAddress("anchor", "isp-a.test");
  await using anchor = spawnCli("anchor", [
    "join",
    ...common(anchorAddr, "imap"),
    "--user",
    "anchor",
    "--via",
    hostAddr,
    "--listen",
    "127.0.0.1:0",
    "--timeout",
    "3600",
  ], s.env());
  await anchor.waitFor((e) => e.event === "waiting" || e.event === "connected", 60_000, "anchor ready");
  const peerAddr = stack.freshAddress("bench-peer", "isp-b.test");
  const times: number[] = [];
  const hops: number[] = [];
  const runs = Math.max(args.pairs * 3, 5);
  const homes = new FreshHomes(s.dir);
  await using meter = await HopMeter.open(stack, "imap");
  await meter.hop(); // cold
  for (let i = 0; i <= runs; i++) {
    const hop = await meter.hop();
    await using peer = spawnCli("peer", [
      "join",
      ...common(peerAddr, "imap"),
      "--user",
      "bench",
      "--via",
      hostAddr,
      "--listen",
      "127.0.0.1:0",
      "--no-host",
      // A machine of its own each time: no link remembered from the last run is dialled before the request.
    ], homes.make("peer"));
    const sent = await peer.waitFor((e) => e.event === "request_sent", 60_000, "request");
    const conn = await peer.waitFor(
      (e) => e.event === "connected" && e.peer === "anchor",
      60_000,
      "connected",
    );
    if (i === 0) continue; // warm-up
    hops.push(hop.hop);
    times.push(Date.parse(String(conn.time)) - Date.parse(String(sent.time)));
  }
  const b = summarize(hops);
  const t = summarize(times);
  console.log(line("B: one mail hop (SMTP 250 → IDLE wake-up)", b));
  console.log(line("POP3 host: request sent → connected", t, `p50 = ${ratio(t.p50, b.p50)} B (target ≤ 3)`));
}

export async function benchHost(args: HostBenchArgs): Promise<void> {
  // By default what an installed user runs: the bundle (deno task install copies it), built from
  // this source. Running main.ts adds the source's module graph to every RSS figure (~15 MB).
  if (!args.entry) await buildBundle();
  const entry = args.entry ?? BUNDLE;
  useEntry(entry);
  const only = new Set(args.only?.length ? args.only : ["table", "capacity", "pop3"]);
  if (entry !== BUNDLE) console.log(`running ${entry}`);
  if (only.has("table")) await benchTable(entry, args);
  if (only.has("capacity")) await benchCapacity(args);
  if (only.has("pop3")) await benchPop3(args);
}
