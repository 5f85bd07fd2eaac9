/**
 * `mailmeet doctor` as a user runs it (the bundle, with the permissions the README asks for),
 * against the real Postfix + Dovecot with good settings and with each usual mistake.
 */
import assert from "node:assert/strict";
import { ensureBundle, runCli } from "../../scripts/lib/cli_process.ts";
import { DENO_PERMISSIONS } from "../../src/cli/permissions.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { mailStack } from "../helpers/mailstack.ts";

await ensureBundle();
const KEY = generateKeyText();

interface Check {
  event: string;
  check: string;
  status: "ok" | "fail" | "warn" | "skip";
  title: string;
  fix?: string;
}

/** Runs doctor in an empty home (no config file) with --json; the checks by name, and the exit code. */
async function doctor(args: string[]) {
  const home = await Deno.makeTempDir({ prefix: "mailmeet-doctor-home-" });
  try {
    const out = await runCli(
      ["doctor", "--key", KEY, "--json", "--timeout", "20", "--listen", "127.0.0.1:0", ...args],
      { HOME: home, XDG_CONFIG_HOME: "", XDG_DATA_HOME: "" },
      { permissions: DENO_PERMISSIONS },
    );
    const events = out.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const checks = new Map<string, Check>();
    for (const e of events) if (e.event === "check") checks.set(e.check, e);
    const summary = events.find((e) => e.event === "doctor");
    return { code: out.code, checks, summary, stdout: out.stdout, stderr: out.stderr };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

function expect(
  checks: Map<string, Check>,
  name: string,
  status: Check["status"],
  title?: RegExp,
  fix?: RegExp,
) {
  const c = checks.get(name);
  assert.ok(c, `no ${name} check in ${JSON.stringify([...checks.keys()])}`);
  assert.equal(c.status, status, `${name}: ${JSON.stringify(c)}`);
  if (title) assert.match(c.title, title);
  if (fix) assert.match(c.fix ?? "", fix);
}

/** A port nothing listens on: bound once to get a free number, then closed. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("doctor: good settings (IMAP STARTTLS, submission) pass every step, with a real round trip", async () => {
  await using stack = await mailStack();
  const a = stack.freshAddress("doc-good", "isp-a.test");
  const out = await doctor([
    "--address",
    a,
    "--smtp",
    stack.url("submission", a),
    "--inbox",
    stack.url("imap", a),
    "--tls-ca",
    stack.caFile,
  ]);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  for (
    const name of [
      "settings",
      "smtp_connect",
      "smtp_tls",
      "smtp_login",
      "inbox_connect",
      "inbox_tls",
      "inbox_login",
    ]
  ) {
    expect(out.checks, name, "ok");
  }
  expect(out.checks, "inbox_push", "ok", /IMAP IDLE/);
  expect(out.checks, "roundtrip", "ok", /arrived .* and was deleted/);
  expect(out.checks, "listen", "ok");
  expect(out.checks, "via", "skip");
  assert.deepEqual(out.summary.ok, true);
  // The test mail was deleted again: the box is empty.
  assert.equal((await stack.rawMessages(a)).length, 0);
});

Deno.test("doctor: POP3 passes with a remark that replies are polled and that it cannot see the junk folder", async () => {
  await using stack = await mailStack();
  const a = stack.freshAddress("doc-pop", "isp-b.test");
  const out = await doctor([
    "--address",
    a,
    "--smtp",
    stack.url("smtps", a),
    "--inbox",
    stack.url("pop3s", a),
    "--tls-ca",
    stack.caFile,
    "--poll",
    "0.25",
  ]);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  expect(out.checks, "inbox_push", "warn", /POP3 has no push/);
  expect(out.checks, "inbox_junk", "warn", /POP3 sees only the inbox/);
  expect(out.checks, "smtp_tls", "ok", /TLS to/);
  expect(out.checks, "roundtrip", "ok");
});

Deno.test("doctor: a wrong password fails the logins with the app-password hint, exit 2", async () => {
  await using stack = await mailStack();
  const a = stack.freshAddress("doc-pw", "isp-a.test");
  const wrong = (url: string) => url.replace(encodeURIComponent(stack.password), "not-the-password");
  const out = await doctor([
    "--address",
    a,
    "--smtp",
    wrong(stack.url("submission", a)),
    "--inbox",
    wrong(stack.url("imaps", a)),
    "--tls-ca",
    stack.caFile,
  ]);
  assert.equal(out.code, 2);
  expect(out.checks, "smtp_tls", "ok");
  expect(out.checks, "smtp_login", "fail", /refused the password/, /app password/);
  expect(out.checks, "inbox_login", "fail", /Cannot log in to 127\.0\.0\.1:\d+ as .*refused the password/);
  expect(out.checks, "roundtrip", "skip");
  assert.ok(!out.stdout.includes("not-the-password"), "a password in the output");
});

Deno.test("doctor: a wrong port is refused (with the usual ports), a wrong TLS mode fails TLS", async () => {
  await using stack = await mailStack();
  const a = stack.freshAddress("doc-port", "isp-a.test");
  const port = closedPort();
  const out = await doctor([
    "--address",
    a,
    // smtps:// (TLS from the first byte) to the STARTTLS submission port
    "--smtp",
    stack.url("submission", a).replace("smtp://", "smtps://"),
    "--inbox",
    stack.url("imaps", a).replace(`:${stack.ports.imaps}/`, `:${port}/`),
    "--tls-ca",
    stack.caFile,
  ]);
  assert.equal(out.code, 2);
  expect(out.checks, "smtp_connect", "ok");
  expect(out.checks, "smtp_tls", "fail", /does not speak TLS from the start/, /465 \(smtps:\/\/\) and 587/);
  expect(
    out.checks,
    "inbox_connect",
    "fail",
    new RegExp(`127\\.0\\.0\\.1:${port}.*refused`),
    /993 \(imaps:\/\/\)/,
  );
  expect(out.checks, "inbox_tls", "skip");
});

Deno.test("doctor: a server name is looked up first; an unknown one fails with a hint to check for typos", async () => {
  await using stack = await mailStack();
  const a = stack.freshAddress("doc-dns", "isp-a.test");
  const out = await doctor([
    "--address",
    a,
    "--smtp",
    stack.url("submission", a).replace("@127.0.0.1:", "@localhost:"),
    "--inbox",
    stack.url("imaps", a).replace("@127.0.0.1:", "@no-such-host.invalid:"),
    "--tls-ca",
    stack.caFile,
  ]);
  assert.equal(out.code, 2);
  expect(out.checks, "smtp_dns", "ok", /localhost is 127\.0\.0\.1/);
  expect(out.checks, "smtp_login", "ok");
  expect(out.checks, "inbox_dns", "fail", /cannot find the server no-such-host\.invalid/, /typo/);
  expect(out.checks, "inbox_connect", "skip");
});

Deno.test("doctor: a --via mailbox nobody hosts fails after --timeout, naming the key to compare", async () => {
  await using stack = await mailStack();
  const a = stack.freshAddress("doc-via", "isp-a.test");
  const nobody = stack.freshAddress("no-host", "game.test");
  const args = ["--address", a, "--smtp", stack.url("submission", a), "--inbox", stack.url("imap", a)];
  const out = await doctor([...args, "--tls-ca", stack.caFile, "--via", nobody, "--timeout", "3"]);
  assert.equal(out.code, 1);
  expect(out.checks, "roundtrip", "ok");
  expect(
    out.checks,
    "via",
    "fail",
    new RegExp(`host ${nobody} did not answer within 3 s`),
    /fingerprint [0-9a-f]{4}-/,
  );
  // The request did go out: it waits in that mailbox for a host.
  await stack.waitForMessages(nobody, 1);
});

Deno.test("doctor: an untrusted certificate fails TLS and says to pass --tls-ca", async () => {
  await using stack = await mailStack();
  const a = stack.freshAddress("doc-ca", "isp-a.test");
  const out = await doctor([
    "--address",
    a,
    "--smtp",
    stack.url("submission", a),
    "--inbox",
    stack.url("imaps", a),
  ]);
  assert.equal(out.code, 2);
  expect(out.checks, "smtp_tls", "fail", /not trusted/, /--tls-ca FILE/);
  expect(out.checks, "inbox_tls", "fail", /not trusted/, /--tls-ca FILE/);
  expect(out.checks, "smtp_login", "skip");
});

Deno.test("doctor: a login in clear text is refused — by the server (tls=none) and by us (no STARTTLS)", async () => {
  await using stack = await mailStack();
  const a = stack.freshAddress("doc-clear", "isp-a.test");
  // A tiny IMAP server that offers no STARTTLS: our client must not send the password.
  const fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: string[] = [];
  const serving = (async () => {
    for await (const conn of fake) {
      (async () => {
        const enc = new TextEncoder();
        try {
          await conn.write(enc.encode("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n"));
          for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
            seen.push(chunk);
            const tag = chunk.split(" ")[0];
            if (/ LOGOUT/i.test(chunk)) {
              await conn.write(enc.encode(`* BYE\r\n${tag} OK bye\r\n`));
              break;
            }
            await conn.write(enc.encode(`${tag} BAD not here\r\n`));
          }
        } catch {
          // the client hung up
        } finally {
          try {
            conn.close();
          } catch { /* closed */ }
        }
      })();
    }
  })();
  try {
    const port = (fake.addr as Deno.NetAddr).port;
    const out = await doctor([
      "--address",
      a,
      "--smtp",
      `${stack.url("submission", a)}?tls=none`,
      "--inbox",
      `imap://${encodeURIComponent(a)}:${encodeURIComponent(stack.password)}@127.0.0.1:${port}/INBOX`,
    ]);
    assert.equal(out.code, 2);
    expect(out.checks, "smtp_tls", "warn", /in clear/);
    expect(out.checks, "smtp_login", "fail", /no login on an unencrypted connection/, /Remove \?tls=none/);
    expect(out.checks, "inbox_tls", "fail", /does not offer STARTTLS/, /imaps:\/\/ on 993/);
    assert.ok(!seen.join("").includes(stack.password), "the password went to a server without TLS");
  } finally {
    fake.close();
    await serving.catch(() => {});
  }
});

Deno.test("doctor: a maildir spool needs no server; human output is a line per step with ✓ and the summary", async () => {
  const spool = await Deno.makeTempDir({ prefix: "mailmeet-doctor-spool-" });
  const home = await Deno.makeTempDir({ prefix: "mailmeet-doctor-home-" });
  try {
    const out = await runCli(
      [
        "doctor",
        "--address",
        "me@lan.test",
        "--smtp",
        `maildir://${spool}`,
        "--inbox",
        `maildir://${spool}`,
        "--key",
        KEY,
        "--listen",
        "127.0.0.1:0",
      ],
      { HOME: home, XDG_CONFIG_HOME: "", XDG_DATA_HOME: "" },
      { permissions: DENO_PERMISSIONS },
    );
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const lines = out.stdout.trim().split("\n");
    for (const l of lines.slice(0, -1)) assert.match(l, /^([✓!✗-] | {4}→ )/, l);
    assert.match(out.stdout, /✓ round trip: a mail to yourself was sent/);
    assert.match(out.stdout, /✓ sending: maildir spool/);
    assert.match(lines.at(-1)!, /^All \d+ checks passed\.$/);
    assert.ok(!out.stdout.includes("\x1b["), "colour without a terminal");
  } finally {
    await Deno.remove(spool, { recursive: true });
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("doctor: missing settings are one ✗ that says to run init", async () => {
  const out = await doctor([]);
  assert.equal(out.code, 1);
  expect(out.checks, "settings", "fail", /--address/, /mailmeet init/);
});
