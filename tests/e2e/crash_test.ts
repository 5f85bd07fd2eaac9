/**
 * A host killed with kill -9 at random points over hundreds of queued requests (issue 11): every
 * request is answered, and each kill costs at most one duplicate reply per reply in flight (a
 * host answers HOST_MAILS_AT_ONCE at a time) — answered requests are noted in the table with
 * their row and deleted as the host goes, so a restart does not answer them again.
 */
import assert from "node:assert/strict";
import { parseMail } from "../../src/mail/parse.ts";
import { openText, sealToText } from "../../src/protocol/envelope.ts";
import { parseNetworkKey } from "../../src/protocol/keys.ts";
import type { Message, Request } from "../../src/protocol/messages.ts";
import { is, request } from "../helpers/events.ts";
import { type Transport, world } from "../helpers/world.ts";
import { roundLimit } from "../../src/roles/host.ts";
import { DEFAULT_POLICY } from "../../src/table/policy.ts";

/** Requests a host handles at once (src/cli/commands/host.ts), with the default --reply-limit. */
const HOST_MAILS_AT_ONCE = roundLimit(DEFAULT_POLICY.replyLimit);

const MARKER = "mailmeet rendezvous";
const QUEUED = Number(Deno.env.get("MAILMEET_CRASH_QUEUED") ?? 300);
const KILLS = Number(Deno.env.get("MAILMEET_CRASH_KILLS") ?? 8);
/** Replies go to a few mailboxes; the session id tells which request a reply answers. */
const REPLY_BOXES = 6;

for (const transport of ["maildir", "imap", "pop3"] as Transport[]) {
  Deno.test(`[${transport}] kill -9 at random points over ${QUEUED} queued requests: all answered, ≤ ${HOST_MAILS_AT_ONCE} duplicates per kill (one per reply in flight)`, async () => {
    await using w = await world(transport);
    const key = await parseNetworkKey(w.key);
    const hostAcct = w.account("host", "game.test");
    const boxes = Array.from({ length: REPLY_BOXES }, (_, i) => w.account(`asker${i}`));
    const sent: Request[] = [];
    for (let i = 0; i < QUEUED; i++) {
      const from = boxes[i % REPLY_BOXES];
      const req = request(`user${i}`, from);
      sent.push(req);
      await w.send(from, [hostAcct], MARKER, sealToText(key, req));
    }
    await w.waitForMail(hostAcct, QUEUED, 120_000);

    let kills = 0;
    let answered = 0;
    const seed = Math.floor(Math.random() * 2 ** 31);
    let state = seed;
    const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0;; round++) {
      const last = round >= KILLS;
      // One name, so one --db: the table (and its notes of what was answered) outlives each kill.
      const host = w.host("host", hostAcct, last ? ["--once"] : []);
      if (last) {
        assert.equal((await host.status).code, 0, host.stderr.join("\n"));
        answered += host.events.filter(is("host_reply")).length;
        break;
      }
      // Somewhere after the 1st and before the 40th reply of this run, a few ms either side.
      const after = 1 + Math.floor(random() * 40);
      const reached = await host.waitForCount(is("host_reply"), after, 30_000, `reply ${after}`).then(
        () => true,
        () => false,
      );
      await new Promise((r) => setTimeout(r, Math.floor(random() * 15)));
      host.kill("SIGKILL");
      await host.status;
      kills++;
      answered += host.events.filter(is("host_reply")).length;
      if (!reached) break; // the box ran dry before the kill: nothing left to interrupt
    }

    const count = async () => {
      const replies = new Map<string, number>();
      for (const box of boxes) {
        for (const raw of await w.raw(box)) {
          const m: Message = openText(key, parseMail(raw).text);
          if (m.kind !== "reply") continue;
          const s = m.session.toHex();
          replies.set(s, (replies.get(s) ?? 0) + 1);
        }
      }
      return replies;
    };
    // Replies still on their way through Postfix: wait for every accepted one, then a little more
    // for those whose 250 died with a killed host.
    let replies = await count();
    for (let i = 0; i < 600 && [...replies.values()].reduce((a, b) => a + b, 0) < answered; i++) {
      await new Promise((r) => setTimeout(r, 100));
      replies = await count();
    }
    await new Promise((r) => setTimeout(r, 1500));
    replies = await count();
    const unanswered = sent.filter((r) => !replies.has(r.session.toHex())).length;
    const duplicates = [...replies.values()].reduce((n, c) => n + c - 1, 0);
    const note = `seed ${seed}: ${kills} kills, ${answered} replies sent, ${duplicates} duplicates`;
    console.log(`[${transport}] ${note}`);
    assert.equal(unanswered, 0, `${unanswered} requests never answered (${note})`);
    assert.ok(
      duplicates <= kills * HOST_MAILS_AT_ONCE,
      `more than ${HOST_MAILS_AT_ONCE} duplicates (replies in flight) per kill (${note})`,
    );
    assert.equal((await w.raw(hostAcct)).length, 0, "the host's box is empty");
  });
}
