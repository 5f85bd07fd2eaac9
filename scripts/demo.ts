/**
 * `deno task demo`: a host and four peers as separate processes on a fresh maildir spool (no mail
 * server), with a readable timeline. `deno task demo -- --mailstack` does the same over the real
 * Postfix + Dovecot started by scripts/mailstack.sh (IMAP IDLE, SMTP submission with STARTTLS).
 */
import { parseArgs } from "node:util";
import { describe } from "../src/cli/output.ts";
import type { NodeEvent } from "../src/roles/events.ts";
import { generateKeyText } from "../src/protocol/keys.ts";
import { type CliEvent, type CliProcess, MAIN, runCli, spawnCli, useEntry } from "./lib/cli_process.ts";
import { DENO_PERMISSIONS } from "../src/cli/permissions.ts";

const { values } = parseArgs({
  args: Deno.args.filter((a) => a !== "--"),
  options: { mailstack: { type: "boolean", default: false } },
});
useEntry(MAIN);

const started = performance.now();
const COLORS = { host: 35, bob: 34, alice: 32, carol: 33, dave: 36 } as Record<string, number>;
const color = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
function say(who: string, text: string) {
  const t = ((performance.now() - started) / 1000).toFixed(1).padStart(5);
  const name = who.padEnd(5);
  console.log(`${t}s  ${color && COLORS[who] ? `\x1b[${COLORS[who]}m${name}\x1b[0m` : name}  ${text}`);
}
function narrate(text: string) {
  console.log(`\n${color ? "\x1b[1m" : ""}── ${text}${color ? "\x1b[0m" : ""}`);
}

const SHOWN = new Set([
  "request_sent",
  "reply",
  "waiting",
  "dial",
  "dial_failed",
  "failure_sent",
  "connected",
  "disconnected",
  "host_request",
  "host_reply",
  "host_failure",
  "host_dropped",
  "error",
]);

const dir = await Deno.makeTempDir({ prefix: "mailmeet-demo-" });
const key = generateKeyText();
const procs: CliProcess[] = [];
let exitCode = 0;

interface Account {
  address: string;
  smtp: string;
  inbox: string;
  extra: string[];
}

async function accounts(): Promise<(name: string, domain: string) => Account> {
  if (!values.mailstack) {
    const spool = `maildir://${dir}/spool`;
    return (name, domain) => ({ address: `${name}@${domain}`, smtp: spool, inbox: spool, extra: [] });
  }
  const script = new URL("./mailstack.sh", import.meta.url).pathname;
  const start = await new Deno.Command("bash", {
    args: [script, "start"],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!start.success) throw new Error("scripts/mailstack.sh start failed");
  const env = JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command("bash", { args: [script, "env", "--json"] }).output()).stdout,
    ),
  );
  const run = Date.now().toString(36);
  return (name, domain) => {
    const address = `demo-${run}-${name}@${domain}`;
    const cred = `${encodeURIComponent(address)}:${encodeURIComponent(env.password)}@${env.host}`;
    return {
      address,
      smtp: `smtp://${cred}:${env.ports.submission}`,
      inbox: `imap://${cred}:${env.ports.imap}/INBOX`,
      extra: ["--tls-ca", env.ca],
    };
  };
}

try {
  const account = await accounts();
  // The demo's nodes never read the user's own config file or data folder.
  const isolated = { XDG_CONFIG_HOME: `${dir}/config`, XDG_DATA_HOME: `${dir}/data` };
  const host = account("host", "game.test");
  const common = (
    a: Account,
  ) => ["--address", a.address, "--smtp", a.smtp, "--inbox", a.inbox, "--key", key, "--json", ...a.extra];
  const start = (name: string, args: string[]) => {
    // The nodes run with the permissions the README asks for, not -A.
    const p = spawnCli(name, args, isolated, (e: CliEvent) => {
      if (SHOWN.has(e.event)) say(name, describe(e as unknown as NodeEvent));
    }, { permissions: DENO_PERMISSIONS });
    procs.push(p);
    return p;
  };
  const peer = (name: string, domain: string, extra: string[] = []) => {
    const a = account(name, domain);
    return start(name, [
      "join",
      ...common(a),
      "--user",
      name,
      "--via",
      host.address,
      "--listen",
      "127.0.0.1:0",
      "--timeout",
      "300",
      ...extra,
    ]);
  };
  const isConnected = (e: CliEvent) => e.event === "connected";

  console.log(
    `mailmeet demo — ${
      values.mailstack ? "over the real Postfix + Dovecot (IMAP IDLE)" : `on a maildir spool in ${dir}`
    }`,
  );
  console.log("Everything mailed is sealed with one network key, made for this demo.");

  narrate("A spare PC starts hosting: it reads the host mailbox and keeps the peer table.");
  const hostProc = start("host", ["host", ...common(host), "--db", `${dir}/host.db`]);

  narrate("bob asks first: the table is empty, so he gets a formal reply with nobody in it and waits.");
  const bob = peer("bob", "isp-b.test");
  await bob.waitFor((e) => e.event === "waiting", 60_000, "bob waiting");

  narrate("alice asks: the host gives her bob, she dials him directly.");
  const alice = peer("alice", "isp-a.test");
  await alice.waitFor(isConnected, 60_000, "alice connected");
  await bob.waitFor(isConnected, 60_000, "bob connected");

  narrate("carol asks: the host gives her alice and bob (most recent first); she links to both.");
  const carol = peer("carol", "isp-a.test");
  await carol.waitForCount(isConnected, 2, 60_000, "carol connected twice");

  narrate("bob's machine goes away without a word (killed).");
  bob.kill("SIGKILL");
  await bob.status;
  say("bob", "(gone)");

  narrate(
    "dave asks: bob is still in the table; dave keeps trying him for --dial-window (45 s by default, " +
      "5 s here), then tells the host, and the host flags bob.",
  );
  const dave = peer("dave", "isp-b.test", ["--dial-window", "5"]);
  await dave.waitForCount(isConnected, 2, 60_000, "dave connected to carol and alice");
  await dave.waitFor((e) => e.event === "failure_sent", 60_000, "dave's failure notice");
  await hostProc.waitFor((e) => e.event === "host_failure", 60_000, "the host flagging bob");

  narrate("The host's table (the only place e-mail addresses are kept):");
  const table = await runCli(["table", "--db", `${dir}/host.db`], isolated, {
    permissions: DENO_PERMISSIONS,
  });
  console.log(table.stdout.trimEnd().split("\n").map((l) => `        ${l}`).join("\n"));

  narrate("Done: everyone still online is linked directly; nothing went through a server of ours.");
} catch (err) {
  console.error(`demo failed: ${(err as Error).message}`);
  exitCode = 1;
} finally {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.allSettled(procs.map((p) => p[Symbol.asyncDispose]()));
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
Deno.exit(exitCode);
