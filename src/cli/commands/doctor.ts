/** `mailmeet doctor`: a line per step with ✓ or ✗ and the fix; exit 0 only when every step passed. */
import { flag } from "../context.ts";
import { type CheckResult, runDoctor } from "../doctor.ts";
import { EXIT } from "../errors.ts";
import type { Resolved } from "../options.ts";
import { paint } from "../output.ts";

export const DOCTOR_HELP =
  `mailmeet doctor — check every step your setup needs, and say how to fix the first that fails

With the same settings join uses (config file, MAILMEET_* variables, flags), doctor checks: the
settings and network key; for sending (--smtp) and for reading (--inbox) each, the server's name,
the connection, TLS and its certificate, the login, and whether the inbox pushes new mail (IMAP
IDLE); a real round trip (a mail to yourself, seen in the inbox, then deleted); with --via, that
each host answers a real request (it then lists you for a while, as when you join); that the
--listen port accepts connections; and the address others would dial. A step that fails skips the
steps that need it. ✓ passed, ! passed with a remark, ✗ failed, - skipped.

Exits 0 when nothing failed, 2 when a mail step failed, 1 otherwise. --timeout (default 30 s here)
bounds the wait for the round trip and for each host's reply.

Examples:
  mailmeet doctor
  mailmeet doctor --via lan-host@game.test --json`;

const MAIL_CHECK = /^(smtp_|inbox_|roundtrip)/;

export async function doctorCommand(r: Resolved): Promise<number> {
  const json = flag(r, "json");
  const quiet = flag(r, "quiet");
  const verbose = flag(r, "verbose");
  const mark = (s: CheckResult["status"]) =>
    s === "ok"
      ? paint("32", "✓")
      : s === "fail"
      ? paint("31", "✗")
      : s === "warn"
      ? paint("33", "!")
      : paint("2", "-");
  const results = await runDoctor(r, {
    report: (c) => {
      if (json) {
        console.log(JSON.stringify({ event: "check", ...c, ok: c.status !== "fail" }));
        return;
      }
      if (quiet && c.status !== "fail") return;
      const time = verbose && c.ms !== undefined ? paint("2", ` (${c.ms} ms)`) : "";
      console.log(`${mark(c.status)} ${c.title}${time}`);
      if (c.fix && (c.status === "fail" || c.status === "warn")) console.log(`    → ${c.fix}`);
    },
  });
  const failed = results.filter((c) => c.status === "fail");
  const passed = results.filter((c) => c.status === "ok" || c.status === "warn").length;
  if (json) {
    console.log(JSON.stringify({
      event: "doctor",
      ok: failed.length === 0,
      passed,
      failed: failed.length,
      skipped: results.filter((c) => c.status === "skip").length,
    }));
  } else if (!quiet || failed.length) {
    console.log(
      failed.length === 0 ? paint("32", `All ${passed} checks passed.`) : paint(
        "31",
        `${failed.length} check(s) failed; fix the first ✗ above and run \`mailmeet doctor\` again.`,
      ),
    );
  }
  if (failed.length === 0) return EXIT.ok;
  return failed.some((c) => MAIL_CHECK.test(c.check)) ? EXIT.mail : EXIT.usage;
}
