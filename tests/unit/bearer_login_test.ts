/**
 * The OAuth2 SASL exchanges of our IMAP and POP3 clients against tiny scripted servers (127.0.0.1,
 * plain TCP): what Dovecot does not do on demand — offer XOAUTH2 only, no SASL-IR, a token too long
 * for a POP3 AUTH line, a failure challenge that must be answered before the NO.
 */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { MailError } from "../../src/mail/errors.ts";
import { ImapClient } from "../../src/mail/imap/client.ts";
import { LineReader } from "../../src/mail/line_reader.ts";
import { Pop3Session } from "../../src/mail/pop3/session.ts";

const TIMEOUTS = { connectTimeoutMs: 5_000, greetingTimeoutMs: 5_000, commandTimeoutMs: 5_000 };
const enc = (s: string) => new TextEncoder().encode(s);
const decode = (b64: string) => new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
const FAILURE = btoa(JSON.stringify({ status: "401", schemes: "bearer", scope: "mail" }));

/** Tokens "stale" then, on renew, "good"; records every ask. */
function tokens() {
  const asks: boolean[] = [];
  return {
    asks,
    accessToken: (opts: { renew?: boolean } = {}) => {
      asks.push(opts.renew ?? false);
      return Promise.resolve(opts.renew ? "good" : "stale");
    },
  };
}

/** A one-connection server: `script` gets a line reader and a writer; returns the port and what ran. */
function serve(script: (read: () => Promise<string>, write: (s: string) => Promise<void>) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    const reader = new LineReader(conn);
    try {
      await script(
        async () => (await reader.readLine()) ?? "",
        async (s) => void await conn.write(enc(s)),
      );
    } finally {
      conn.close();
      listener.close();
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, done };
}

Deno.test("IMAP uses XOAUTH2 when it is all the server offers, answers the failure challenge, and retries once with a renewed token", async () => {
  const seen: string[] = [];
  const server = serve(async (read, write) => {
    await write("* OK ready\r\n");
    for (;;) {
      const line = await read();
      const [tag, cmd] = line.split(" ");
      if (cmd === "CAPABILITY") {
        await write(`* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n${tag} OK done\r\n`);
      } else if (cmd === "AUTHENTICATE") {
        seen.push(line);
        await write("+ \r\n"); // no SASL-IR: the response comes as a continuation
        const response = decode(await read());
        seen.push(response);
        if (response.includes("auth=Bearer good")) {
          await write(`${tag} OK authenticated\r\n`);
        } else {
          await write(`+ ${FAILURE}\r\n`);
          seen.push(`after challenge: "${await read()}"`);
          await write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`);
        }
      } else if (cmd === "LOGOUT") {
        await write(`* BYE\r\n${tag} OK bye\r\n`);
        return;
      }
    }
  });
  const t = tokens();
  const account = parseAccount(
    `imap://bob%40outlook.com@127.0.0.1:${server.port}/INBOX?tls=none&auth=oauth2`,
  );
  const client = await ImapClient.connect(account, { ...TIMEOUTS, tokens: t });
  await client.logout(5_000);
  await server.done;
  assert.deepEqual(seen, [
    "A2 AUTHENTICATE XOAUTH2",
    "user=bob@outlook.com\x01auth=Bearer stale\x01\x01",
    'after challenge: ""',
    "A3 AUTHENTICATE XOAUTH2",
    "user=bob@outlook.com\x01auth=Bearer good\x01\x01",
  ]);
  assert.deepEqual(t.asks, [false, true]);
});

Deno.test("IMAP without any OAuth2 mechanism says so and sends no token", async () => {
  const server = serve(async (read, write) => {
    await write("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n");
    await read(); // LOGOUT never comes: the client gives up before login and closes
  });
  const t = tokens();
  const account = parseAccount(
    `imap://bob%40outlook.com@127.0.0.1:${server.port}/INBOX?tls=none&auth=oauth2`,
  );
  await assert.rejects(
    ImapClient.connect(account, { ...TIMEOUTS, tokens: t }),
    (e: unknown) => e instanceof MailError && e.code === "auth" && /offers no OAuth2 login/.test(e.message),
  );
  await server.done;
  assert.deepEqual(t.asks, []);
});

function pop3Server(seen: string[], tokenLength: number) {
  return serve(async (read, write) => {
    await write("+OK ready\r\n");
    for (;;) {
      const line = await read();
      const cmd = line.split(" ")[0];
      if (cmd === "CAPA") {
        await write("+OK\r\nSASL PLAIN OAUTHBEARER\r\nUIDL\r\nTOP\r\n.\r\n");
      } else if (cmd === "AUTH") {
        seen.push(line.length > 40 ? `${line.slice(0, 16)} … (${line.length} octets)` : line);
        let response = line.split(" ")[2];
        if (response === undefined) {
          await write("+ \r\n");
          response = await read();
        }
        const text = decode(response);
        seen.push(text.replace(/Bearer (\S{20})\S+/, "Bearer $1…"));
        if (text.includes("auth=Bearer good") || text.length > tokenLength) {
          await write("+OK logged in\r\n");
        } else {
          await write(`+ ${FAILURE}\r\n`);
          seen.push(`after challenge: ${JSON.stringify(decode(await read()))}`);
          await write("-ERR [AUTH] Authentication failed.\r\n");
        }
      } else if (cmd === "UIDL" || cmd === "LIST") {
        await write("+OK\r\n.\r\n");
      } else if (cmd === "QUIT") {
        await write("+OK bye\r\n");
        return;
      }
    }
  });
}

Deno.test("POP3 answers an OAUTHBEARER failure challenge with ^A and retries once with a renewed token", async () => {
  const seen: string[] = [];
  const server = await pop3Server(seen, 10_000);
  const t = tokens();
  const account = parseAccount(`pop3://bob%40outlook.com@127.0.0.1:${server.port}?tls=none&auth=oauth2`);
  const session = await Pop3Session.open(account, { ...TIMEOUTS, tokens: t });
  await session.quit();
  await server.done;
  const port = server.port;
  // A short token: the initial response rides on the AUTH line, both times.
  assert.match(seen[0], /^AUTH OAUTHBEARER … \(\d+ octets\)$/);
  assert.match(seen[3], /^AUTH OAUTHBEARER … \(\d+ octets\)$/);
  assert.deepEqual(seen.filter((_, i) => i !== 0 && i !== 3), [
    `n,a=bob@outlook.com,\x01host=127.0.0.1\x01port=${port}\x01auth=Bearer stale\x01\x01`,
    'after challenge: "\\u0001"',
    `n,a=bob@outlook.com,\x01host=127.0.0.1\x01port=${port}\x01auth=Bearer good\x01\x01`,
  ]);
  assert.deepEqual(t.asks, [false, true]);
});

Deno.test("POP3 sends a token too long for the AUTH line as a continuation (RFC 5034 §4)", async () => {
  const seen: string[] = [];
  const server = await pop3Server(seen, 200);
  const long = "x".repeat(1500); // Microsoft's access tokens run to well over 1000 characters
  const account = parseAccount(`pop3://bob%40outlook.com@127.0.0.1:${server.port}?tls=none&auth=oauth2`);
  const session = await Pop3Session.open(account, {
    ...TIMEOUTS,
    tokens: { accessToken: () => Promise.resolve(long) },
  });
  await session.quit();
  await server.done;
  assert.equal(seen[0], "AUTH OAUTHBEARER");
  assert.match(seen[1], /auth=Bearer x{20}…/);
});
