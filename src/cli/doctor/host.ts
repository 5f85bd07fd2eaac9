/**
 * doctor's --via check: each host answers a real request (a probe: answered, never stored), within
 * --timeout. Old replies already in the box do not count.
 */
import { openMailbox } from "../../mail/open.ts";
import { openSender } from "../../mail/smtp.ts";
import { equalBytes } from "../../protocol/bytes.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import type { NetworkKey } from "../../protocol/keys.ts";
import type { NodeEvent } from "../../roles/events.ts";
import { type Disposition, type InboundMail, InboxReader } from "../../roles/inbox.ts";
import { Peer } from "../../roles/peer.ts";
import { deadlineSignal } from "../../util/deadline.ts";
import { type MailSettings, str } from "../context.ts";
import { sentenceFor } from "../errors.ts";
import type { Resolved } from "../options.ts";
import { type CheckResult, fmtMs, ms } from "./check.ts";
import type { Listening } from "./network.ts";

export async function checkHosts(
  r: Resolved,
  mail: MailSettings,
  key: NetworkKey,
  user: string,
  vias: string[],
  listening: Listening,
  waitMs: number,
  report: (c: CheckResult) => void,
): Promise<void> {
  const replies = new Map<string, { from: string; peers: number; ms: number }>();
  const t0 = performance.now();
  await using stack = new AsyncDisposableStack();
  const sender = stack.use(openSender(mail.smtp, { caCerts: mail.caCerts, tokens: mail.tokens }));
  const inbox = stack.use(
    await openMailbox(mail.inbox, {
      address: mail.address,
      caCerts: mail.caCerts,
      tokens: mail.tokens,
      pollIntervalMs: mail.pollMs,
    }),
  );
  // One peer per host, each with its own session id, so each host's answer is seen; they never
  // dial (maxLinks 0): doctor only wants to know that the host answers.
  const probes = vias.map((via) => {
    const peer = new Peer(
      {
        address: mail.address,
        user,
        vias: [via],
        marker: str(r, "marker"),
        friends: new Set(),
        blocked: new Set(),
        dialWindowMs: 1,
        maxLinks: 0,
        // Asking only: the hosts answer but never put doctor's throwaway listener in their tables.
        probe: true,
      },
      {
        key,
        sender,
        dialer: listening.dialer,
        links: { adopt: () => false, has: () => false, size: 0 },
        events: (e: NodeEvent) => {
          if (e.event === "reply") replies.set(via, { from: e.from, peers: e.peers, ms: ms(t0) });
        },
      },
    );
    return { via, peer, session: undefined as Uint8Array | undefined };
  });
  const reader = new InboxReader(inbox, { marker: str(r, "marker"), key });
  // Old replies in the box must not count: read what is there first, as join does.
  const handler = (m: InboundMail): Promise<Disposition> => {
    if (m.message instanceof ProtocolError || m.message.kind !== "reply") return Promise.resolve("keep");
    const reply = m.message;
    const probe = probes.find((p) => p.session && equalBytes(p.session, reply.session));
    return Promise.resolve(probe ? probe.peer.handle(m) : "keep");
  };
  await reader.pass(handler);
  for (const p of probes) {
    try {
      p.session = (await p.peer.announce()).session;
    } catch (err) {
      report({
        check: "via",
        status: "fail",
        title: `host ${p.via}: cannot mail a request: ${sentenceFor(err)}`,
        fix: "Check that --via is an address your SMTP server accepts mail for.",
      });
    }
  }
  const asked = probes.filter((p) => p.session);
  if (asked.length === 0) return;
  {
    // Disposing the limit ends the watch too.
    using limit = deadlineSignal(waitMs);
    for await (const _ of inbox.watch(limit.signal)) {
      if (limit.signal.aborted) break;
      await reader.pass(handler);
      if (asked.every((p) => replies.has(p.via))) break;
    }
  }
  for (const p of asked) {
    const got = replies.get(p.via);
    report(
      got
        ? {
          check: "via",
          status: "ok",
          title: `host ${p.via} answered in ${fmtMs(got.ms)} (${got.peers} other peer(s) online)`,
          ms: got.ms,
        }
        : {
          check: "via",
          status: "fail",
          title: `host ${p.via} did not answer within ${waitMs / 1000} s`,
          fix:
            `Is a host reading that mailbox (\`mailmeet --host\` on the spare PC, or a peer whose own address it is)? Does it use the same network key (fingerprint ${key.fingerprint})?`,
        },
    );
  }
}
