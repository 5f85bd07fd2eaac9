/** Sending through the real Postfix (submission with STARTTLS + AUTH, SMTPS), and a scripted server for 4xx. */
import assert from "node:assert/strict";
import { MailError } from "../../src/mail/errors.ts";
import { parseMail } from "../../src/mail/parse.ts";
import { openSender } from "../../src/mail/smtp.ts";
import { mailStack } from "../helpers/mailstack.ts";

const code = (c: string) => (e: unknown) => e instanceof MailError && e.code === c;

for (const kind of ["submission", "smtps"] as const) {
  Deno.test(`[${kind}] a message sent with AUTH lands in the recipient's maildir with Date and Message-ID`, async () => {
    await using stack = await mailStack();
    const from = stack.freshAddress("sender", "isp-a.test");
    const to = [stack.freshAddress("rcpt1", "isp-b.test"), stack.freshAddress("rcpt2", "game.test")];
    await using sender = openSender(stack.url(kind, from), { caCerts: [stack.caPem] });
    const info = await sender.send({ from, to, subject: "hello both", text: "one mail, two recipients" });
    assert.match(info.response, /^250 /);
    for (const rcpt of to) {
      await stack.waitForMessages(rcpt, 1);
      const mail = await parseMail((await stack.rawMessages(rcpt))[0]);
      assert.equal(mail.subject, "hello both");
      assert.ok(mail.date && Math.abs(mail.date.getTime() - Date.now()) < 60_000);
      assert.equal(`<${mail.messageId?.replace(/^<|>$/g, "")}>`, info.messageId);
      assert.deepEqual(mail.recipients.sort(), [...to].sort());
    }
  });

  Deno.test(`[${kind}] a wrong password is an auth error that names the account, not the password`, async () => {
    await using stack = await mailStack();
    const from = stack.freshAddress("badpw", "isp-a.test");
    const url = stack.url(kind, from).replace(encodeURIComponent(stack.password), "not-the-password-42");
    await using sender = openSender(url, { caCerts: [stack.caPem] });
    await assert.rejects(() => sender.send({ from, to: [from], subject: "x", text: "x" }), (e: unknown) => {
      assert.ok(code("auth")(e), String(e));
      const m = (e as MailError).message;
      assert.match(m, /^Cannot log in to 127\.0\.0\.1:\d+ as ".*badpw.*": the server refused the password\./);
      assert.ok(!m.includes("not-the-password-42"));
      return true;
    });
  });

  Deno.test(`[${kind}] a server certificate from an unknown CA is refused`, async () => {
    await using stack = await mailStack();
    const from = stack.freshAddress("noca", "isp-a.test");
    await using sender = openSender(stack.url(kind, from));
    await assert.rejects(() => sender.send({ from, to: [from], subject: "x", text: "x" }), code("tls"));
  });
}

Deno.test("mail to a domain the server does not serve is refused for good (5xx)", async () => {
  await using stack = await mailStack();
  const from = stack.freshAddress("sender", "isp-a.test");
  await using sender = openSender(stack.url("smtp", from));
  await assert.rejects(
    () => sender.send({ from, to: ["someone@not-served.example"], subject: "x", text: "x" }),
    code("rejected"),
  );
});

Deno.test("a closed port is a connect error", async () => {
  await using sender = openSender("smtp://127.0.0.1:1?tls=none");
  await assert.rejects(
    () => sender.send({ from: "a@b.test", to: ["c@d.test"], subject: "x", text: "x" }),
    code("connect"),
  );
});

/** A minimal SMTP server that says 451 to the first `failures` DATA commands, then 250. */
function flakySmtp(failures: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  let refused = 0;
  const conns: Deno.Conn[] = [];
  const serve = async (conn: Deno.Conn) => {
    const enc = new TextEncoder();
    const say = (l: string) => conn.write(enc.encode(l + "\r\n")).catch(() => {});
    await say("220 flaky.test ESMTP");
    let buf = "";
    let inData = false;
    for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            if (refused < failures) {
              refused++;
              await say("451 4.3.0 try again later");
            } else {
              accepted++;
              await say("250 2.0.0 queued");
            }
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") await say("250-flaky.test\r\n250 8BITMIME");
        else if (verb === "DATA") {
          inData = true;
          await say("354 go on");
        } else if (verb === "QUIT") {
          await say("221 bye");
          conn.close();
          return;
        } else await say("250 ok");
      }
    }
  };
  const loop = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      serve(conn).catch(() => {});
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop.catch(() => {});
    },
  };
}

Deno.test("a 4xx answer is retried with backoff until the server accepts", async () => {
  const server = flakySmtp(1);
  try {
    const logs: string[] = [];
    const sender = openSender(`smtp://127.0.0.1:${server.port}?tls=none`, { log: (l) => logs.push(l) });
    const info = await sender.send({ from: "a@b.test", to: ["c@d.test"], subject: "x", text: "x" });
    await sender.close();
    assert.match(info.response, /^250/);
    assert.equal(server.refused, 1);
    assert.equal(server.accepted, 1);
    assert.match(logs.join("\n"), /try later/);
  } finally {
    await server.close();
  }
});
