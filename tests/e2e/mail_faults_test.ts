/**
 * Joins while the mail servers fail under them (issue 11): Dovecot restarted, Postfix stopped for
 * 20 s (submission refused, then `454 4.7.0 Temporary authentication failure` while Dovecot's auth
 * is down). A started join waits the outage out and is answered; none exits.
 *
 * The suite runs a short schedule; the full one is
 *   MAILMEET_FAULT_JOINS=60 MAILMEET_FAULT_SECONDS=180 MAILMEET_FAULT_DOVECOT=5 MAILMEET_FAULT_POSTFIX=2
 */
import assert from "node:assert/strict";
import type { CliProcess } from "../../scripts/lib/cli_process.ts";
import { is } from "../helpers/events.ts";
import { type Transport, world } from "../helpers/world.ts";
import { mailStack } from "../helpers/mailstack.ts";

const env = (name: string, fallback: number) => Number(Deno.env.get(`MAILMEET_FAULT_${name}`) ?? fallback);
const JOINS = env("JOINS", 12);
const SECONDS = env("SECONDS", 48);
const DOVECOT_RESTARTS = env("DOVECOT", 3);
const POSTFIX_STOPS = env("POSTFIX", 1);
const POSTFIX_DOWN_MS = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

for (const transport of ["imap", "pop3"] as Transport[]) {
  Deno.test(`[${transport}] ${JOINS} joins while Dovecot restarts ${DOVECOT_RESTARTS}× and Postfix stops 20 s ${POSTFIX_STOPS}×: all answered`, async () => {
    await using w = await world(transport);
    const stack = w.stack!;
    const hostAcct = w.account("host", "game.test");
    w.host("host", hostAcct);
    const anchor = w.peer("anchor", w.account("anchor"), [hostAcct], ["--timeout", "600"]);
    await anchor.waitFor((e) => e.event === "waiting" || e.event === "connected", 60_000, "the anchor");

    const t0 = Date.now();
    const at = (s: number) => sleep(t0 + s * 1000 - Date.now());
    const faults: Promise<void>[] = [];
    const log: string[] = [];
    const note = (what: string) => log.push(`${((Date.now() - t0) / 1000).toFixed(1)} s ${what}`);
    for (let k = 0; k < DOVECOT_RESTARTS; k++) {
      faults.push(
        at((SECONDS * (k + 0.5)) / DOVECOT_RESTARTS).then(async () => {
          note("dovecot restart");
          await stack.restartDovecot();
        }),
      );
    }
    for (let j = 0; j < POSTFIX_STOPS; j++) {
      faults.push(
        at((SECONDS * (j + 1)) / (POSTFIX_STOPS + 1) - POSTFIX_DOWN_MS / 2000).then(async () => {
          note("postfix stop");
          await stack.stopPostfix();
          await sleep(POSTFIX_DOWN_MS);
          note("postfix start");
          await stack.startPostfix();
        }),
      );
    }

    const outcomes: Promise<{ name: string; answered: boolean; waited: boolean; why: string }>[] = [];
    for (let i = 0; i < JOINS; i++) {
      await at((SECONDS * i) / JOINS);
      const name = `joiner${i}`;
      const p: CliProcess = w.peer(name, w.account(name, "isp-b.test"), [hostAcct], ["--timeout", "120"]);
      outcomes.push(
        p.waitFor(is("reply"), 150_000, "a reply").then(
          () => ({ name, answered: true, why: "" }),
          // What it said last is what tells why it gave up.
          (err) => ({
            name,
            answered: false,
            why: `${p.stderr.join(" ")} … ${String(err.message).slice(-600)}`,
          }),
        ).then(async (o) => {
          const waited = p.events.some((e) => e.event === "waiting" && /mail server/.test(String(e.reason)));
          p.kill("SIGTERM");
          await p.status;
          return { ...o, waited };
        }),
      );
    }
    const results = await Promise.all(outcomes);
    await Promise.all(faults);
    const answered = results.filter((r) => r.answered).length;
    const waited = results.filter((r) => r.waited).length;
    console.log(
      `[${transport}] ${answered}/${JOINS} joins answered; ${waited} waited for the mail server; ${
        log.join(", ")
      }`,
    );
    assert.equal(
      answered,
      JOINS,
      results.filter((r) => !r.answered).map((r) => `${r.name}: ${r.why}`).join("\n"),
    );
    // The host lived through it all and still answers.
    const late = w.peer("late", w.account("late", "isp-b.test"), [hostAcct]);
    await late.waitFor(is("reply"), 60_000, "a reply after the faults");
  });
}

Deno.test("a mail server restarted by a command that holds a lock does not inherit the lock", async () => {
  await using stack = await mailStack();
  const lockFile = await Deno.makeTempFile({ prefix: "mailmeet-lock-" });
  const script = new URL("../../scripts/mailstack.sh", import.meta.url).pathname;
  try {
    // As `flock FILE deno test …` runs the suite: the lock on a descriptor every child inherits.
    const out = await new Deno.Command("bash", {
      args: [
        "-c",
        `exec 7<"${lockFile}"; bash "${script}" restart-dovecot && bash "${script}" restart-postfix`,
      ],
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    for (const comm of ["dovecot", "master"]) {
      for (const pid of await pidsOf(comm)) {
        for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
          const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
          assert.notEqual(target, lockFile, `${comm} (pid ${pid}) holds the lock file open`);
        }
      }
    }
    assert.ok(stack.host);
  } finally {
    await Deno.remove(lockFile);
  }
});

async function pidsOf(comm: string): Promise<number[]> {
  const out: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const c = await Deno.readTextFile(`/proc/${e.name}/comm`).catch(() => "");
    if (c.trim() === comm) out.push(Number(e.name));
  }
  return out;
}
