/**
 * Hostile input end to end: spoofed and replayed mail, wrong keys, stale requests, strangers on
 * the link port, personal mail in the host's box, and a host killed mid-batch. Run on the maildir
 * spool and over the real Postfix + Dovecot by IMAP.
 */
import assert from "node:assert/strict";
import { parseMail } from "../../src/mail/parse.ts";
import { openText, sealToText } from "../../src/protocol/envelope.ts";
import { networkKeyFromSecret, parseNetworkKey } from "../../src/protocol/keys.ts";
import { type Message, reachAt, type Reply, type Request } from "../../src/protocol/messages.ts";
import { dialLink } from "../../src/net/link.ts";
import { openMailbox } from "../../src/mail/open.ts";
import { QUARANTINE_FOLDER } from "../../src/roles/inbox.ts";
import { generateKeyPair } from "../../src/protocol/noise.ts";
import { type Transport, type World, world } from "../helpers/world.ts";
import { is, request } from "../helpers/events.ts";

const MARKER = "mailmeet rendezvous";

async function opened(
  w: World,
  raw: Uint8Array,
): Promise<{ message: Message; body: string; subject: string }> {
  const mail = await parseMail(raw);
  return {
    message: openText(await parseNetworkKey(w.key), mail.text),
    body: mail.text,
    subject: mail.subject,
  };
}

for (const transport of ["maildir", "imap"] as Transport[]) {
  Deno.test(`[${transport}] no address, port, user id or e-mail address appears in clear in any mail`, async () => {
    await using w = await world(transport);
    const hostAcct = w.account("host", "game.test");
    const q = w.account("quentin");
    const p = w.account("patricia", "isp-b.test");
    const qp = w.peer("quentin", q, [hostAcct]);
    await qp.waitFor(is("request_sent"), 20_000, "quentin's request");
    await w.waitForMail(hostAcct, 1);
    const pp = w.peer("patricia", p, [hostAcct]);
    await pp.waitFor(is("request_sent"), 20_000, "patricia's request");
    const requests = await w.waitForMail(hostAcct, 2);
    const listen = [qp, pp].map((x) => String(x.events.find(is("listening"))!.port));
    qp.kill("SIGKILL");
    pp.kill("SIGKILL");
    await Promise.all([qp.status, pp.status]);

    const host = await w.run(["host", ...w.common(hostAcct), "--db", `${w.dir}/h.db`, "--once"]);
    assert.equal(host.code, 0, host.stderr);
    const replies = await w.waitForMail(p, 1);
    const clear = ["127.0.0.1", "quentin", "patricia", "isp-a.test", "isp-b.test", "game.test", ...listen];
    for (const raw of [...requests, ...replies]) {
      const { message, body, subject } = await opened(w, raw);
      assert.equal(subject, MARKER);
      for (const s of clear) assert.ok(!body.includes(s), `"${s}" in clear in a ${message.kind}:\n${body}`);
      assert.ok(!/@/.test(body), "an e-mail address in a body");
    }
    // and the sealed content is what it should be: patricia's reply names quentin
    const reply = (await opened(w, replies[0])).message as Reply;
    assert.deepEqual(reply.peers.map((e) => e.user), ["quentin"]);
  });

  Deno.test(`[${transport}] a peer ignores replies with another session id, another key, or garbage`, async () => {
    await using w = await world(transport);
    const hostAcct = w.account("host", "game.test");
    const me = w.account("pat");
    const pat = w.peer("pat", me, [hostAcct]);
    await pat.waitFor(is("request_sent"), 20_000, "pat's request");
    const key = await parseNetworkKey(w.key);
    const spoof: Reply = {
      kind: "reply",
      session: crypto.getRandomValues(new Uint8Array(16)),
      time: Date.now(),
      peers: [{
        user: "mallory",
        host: "127.0.0.9",
        port: 9,
        linkKey: new Uint8Array(32),
        seen: Date.now(),
        flagged: false,
        ...reachAt("127.0.0.9", 9),
      }],
    };
    const evil = w.account("mallory", "game.test");
    await w.send(evil, [me], MARKER, sealToText(key, spoof));
    await w.send(evil, [me], MARKER, sealToText(networkKeyFromSecret(new Uint8Array(32).fill(1)), spoof));
    await w.send(
      evil,
      [me],
      MARKER,
      "-----BEGIN MAILMEET MESSAGE-----\nAAAA\n-----END MAILMEET MESSAGE-----",
    );
    await pat.waitForCount(is("reply_ignored"), 3, 30_000, "three ignored replies");
    assert.ok(!pat.events.some(is("dial", { peer: "mallory" })));
    // The real host answers with the right session: that one counts.
    w.host("host", hostAcct);
    assert.equal((await pat.waitFor(is("reply"), 30_000, "the real reply")).peers, 0);
    // Afterwards: the real reply was used and deleted, the broken block set aside; the reply to
    // another session and the one under another key may belong to another process or group on
    // this inbox, so they stay until they are older than --max-age.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await w.raw(me)).length, 2);
  });

  Deno.test(`[${transport}] the host rejects a replayed request, stale ones, and ones under another key`, async () => {
    await using w = await world(transport);
    const hostAcct = w.account("host", "game.test");
    const key = await parseNetworkKey(w.key);
    const alice = w.account("alice");
    const H = 3600_000;
    // fresh (control), sealed 3 h ago, Date header 3 h ago, another network key
    await w.send(alice, [hostAcct], MARKER, sealToText(key, request("fresh", alice)));
    await w.send(alice, [hostAcct], MARKER, sealToText(key, request("oldseal", alice, Date.now() - 3 * H)));
    await w.send(
      alice,
      [hostAcct],
      MARKER,
      sealToText(key, request("olddate", alice)),
      new Date(Date.now() - 3 * H),
    );
    await w.send(
      alice,
      [hostAcct],
      MARKER,
      sealToText(networkKeyFromSecret(new Uint8Array(32).fill(3)), request("stranger", alice)),
    );
    const captured = await w.waitForMail(hostAcct, 4);
    const first = await w.run([
      "host",
      ...w.common(hostAcct),
      "--db",
      `${w.dir}/h.db`,
      "--once",
      "--max-age",
      "1h",
    ]);
    assert.equal(first.code, 0, first.stderr);
    const events = first.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(events.filter(is("host_request")).map((e) => e.peer), ["fresh"]);
    const dropped = events.filter(is("host_dropped")).map((e) => e.reason).join("\n");
    assert.match(dropped, /sealed longer ago than --max-age/);
    assert.match(dropped, /Date .* is older than --max-age/);
    assert.match(dropped, /does not open with our network key/);
    assert.equal((await w.raw(hostAcct)).length, 0, "every marker mail was dealt with and removed");
    if (w.stack) {
      // over IMAP the one that does not open is kept aside, in a quarantine folder, for a human
      const url = w.stack.url("imap", hostAcct.address).replace(/\/INBOX$/, `/${QUARANTINE_FOLDER}`);
      await using q = await openMailbox(url, { caCerts: [w.stack.caPem] });
      assert.equal((await q.list(MARKER)).length, 1);
    }

    // The same request mailed again is a replay: dropped, not answered.
    let freshRaw: Uint8Array | undefined;
    for (const raw of captured) {
      const m = await parseMail(raw);
      try {
        if ((openText(key, m.text) as Request).user === "fresh") freshRaw = raw;
      } catch { /* the stranger's */ }
    }
    await w.deliverRaw(hostAcct, freshRaw!);
    await w.waitForMail(hostAcct, 1);
    const again = await w.run(["host", ...w.common(hostAcct), "--db", `${w.dir}/h.db`, "--once"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already used: a replayed request/);
    assert.doesNotMatch(again.stdout, /"host_reply"/);
  });

  Deno.test(`[${transport}] the host leaves personal mail alone`, async () => {
    await using w = await world(transport);
    const hostAcct = w.account("host", "game.test");
    const friend = w.account("friend");
    await w.send(friend, [hostAcct], "lunch tomorrow?", "See you at noon.");
    await w.send(
      friend,
      [hostAcct],
      "Re: mailmeet rendezvous plans",
      "Not a mailmeet message, just the word in the subject.",
    );
    await w.waitForMail(hostAcct, 2);
    w.host("host", hostAcct);
    const bob = w.peer("bob", w.account("bob"), [hostAcct]);
    await bob.waitFor(is("waiting"), 30_000, "bob's reply");
    const left = await Promise.all((await w.raw(hostAcct)).map(parseMail));
    const subjects = left.map((m) => m.subject).sort();
    assert.ok(subjects.includes("lunch tomorrow?"), `personal mail gone: ${subjects}`);
    assert.equal(left.filter((m) => m.subject === MARKER).length, 0);
  });

  Deno.test(`[${transport}] a stranger or a wrong-key dialer on the link port is dropped`, async () => {
    await using w = await world(transport);
    const hostAcct = w.account("host", "game.test");
    const bob = w.peer("bob", w.account("bob"), [hostAcct]);
    await bob.waitFor(is("request_sent"), 20_000, "bob's request");
    const [raw] = await w.waitForMail(hostAcct, 1);
    const req = (await opened(w, raw)).message as Request;
    // Knows bob's address and published key, but not the network key.
    await assert.rejects(
      () =>
        dialLink({
          hostname: req.host,
          port: req.port,
          staticKey: generateKeyPair(),
          remoteStatic: req.linkKey,
          networkKey: new Uint8Array(32).fill(9),
          localInfo: { user: "mallory" },
          timeoutMs: 5000,
        }),
    );
    await bob.waitFor(is("link_refused"), 10_000, "bob refusing the stranger");
    assert.ok(!bob.events.some(is("connected")));
  });

  Deno.test(`[${transport}] a host killed with kill -9 mid-batch answers every request after a restart`, async () => {
    await using w = await world(transport);
    const hostAcct = w.account("host", "game.test");
    const key = await parseNetworkKey(w.key);
    const N = 24;
    const askers = Array.from({ length: N }, (_, i) => w.account(`asker${i}`));
    const sent = askers.map((a, i) => request(`user${i}`, a));
    for (let i = 0; i < N; i++) await w.send(askers[i], [hostAcct], MARKER, sealToText(key, sent[i]));
    await w.waitForMail(hostAcct, N, 60_000);

    const host = w.host("host", hostAcct);
    await host.waitForCount(is("host_reply"), 2, 60_000, "two replies");
    host.kill("SIGKILL");
    await host.status;
    const before = host.events.filter(is("host_reply")).length;
    const restart = await w.run(["host", ...w.common(hostAcct), "--db", `${w.dir}/host.db`, "--once"]);
    assert.equal(restart.code, 0, restart.stderr);
    // The kill landed mid-batch: the restarted host had work left, and did it.
    assert.ok(before < N, `the first host answered all ${N} before the kill; the test proves nothing`);
    assert.ok(restart.stdout.includes('"host_reply"'));

    for (let i = 0; i < N; i++) {
      const replies = (await Promise.all((await w.waitForMail(askers[i], 1, 30_000)).map((r) =>
        opened(w, r)
      )))
        .map((o) => o.message as Reply);
      assert.ok(
        replies.some((r) => r.kind === "reply" && r.session.toHex() === sent[i].session.toHex()),
        `asker ${i} got no reply with its session`,
      );
    }
    assert.equal(
      (await w.raw(hostAcct)).length,
      0,
      "the host's box is empty: every request answered, then deleted",
    );
  });
}
