/**
 * Starting a node from the options: listener, inbox loop (peer + auto-promoted host), the request.
 * `join`, `chat`, `send`, `receive` and `tunnel` all rendezvous through this, then run their app.
 */
import { openMailbox } from "../mail/open.ts";
import { openSender } from "../mail/smtp.ts";
import type { Mailbox } from "../mail/mailbox.ts";
import type { Sender } from "../mail/smtp.ts";
import type { MailError } from "../mail/errors.ts";
import { patientSender } from "../mail/patience.ts";
import { detectAdvertiseHost } from "../net/address.ts";
import { NetLinker, type NetPeerLink } from "../net/peer_link.ts";
import { AutoNode } from "../roles/auto.ts";
import type { EventSink } from "../roles/events.ts";
import { DEFAULT_SKEW_MS, Host } from "../roles/host.ts";
import { InboxReader } from "../roles/inbox.ts";
import { formatAddress, Peer } from "../roles/peer.ts";
import type { PeerTable } from "../table/table.ts";
import { UsageError } from "./errors.ts";
import { addresses, flag, list, loadKey, mailSettings, num, parseHostPort, str, userId } from "./context.ts";
import type { Resolved } from "./options.ts";
import { openNodeStatus } from "./status.ts";
import { mailPatience, openTable } from "./commands/host.ts";

export interface RunningNode extends AsyncDisposable {
  peer: Peer;
  user: string;
  /** Settles (rejects) if the inbox loop fails for good. */
  inboxLoop: Promise<void>;
  /** The mail server failure being waited out right now, if any (what a --timeout that passes should report). */
  mailError(): MailError | undefined;
}

export async function startNode(
  r: Resolved,
  events: EventSink,
  onLink: (link: NetPeerLink) => void,
  signal: AbortSignal,
): Promise<RunningNode> {
  const mail = await mailSettings(r);
  const key = await loadKey(r);
  const user = userId(r, mail.address);
  // No --via: the first node of a group; it waits to be asked (and hosts) or dialed.
  const vias = addresses(r, "via");
  const listen = parseHostPort(str(r, "listen")!, "listen");
  const blocked = new Set(list(r, "block"));
  const linker = new NetLinker(key.secret, user);
  const stack = new AsyncDisposableStack();
  // A started node waits out mail server outages (issue 11): until --timeout while it has no link,
  // for ever once it has one (mail is then only for meeting newcomers).
  const timeoutMs = num(r, "timeout");
  const startedAt = Date.now();
  let linked = false;
  const patience = mailPatience(events, () => (linked || timeoutMs <= 0 ? Infinity : startedAt + timeoutMs));
  // What `mailmeet status` shows comes from this node's own events (src/cli/status.ts).
  const status = stack.use(openNodeStatus(r.command, { address: mail.address, user, roles: ["peer"] }));
  events = status.track(events);
  try {
    // The listener is up before the peer exists (the peer advertises its port).
    const ref: { peer?: Peer } = {};
    const listener = linker.listen({
      hostname: listen.host,
      port: listen.port,
      signal,
      onError: (err) => events({ event: "link_refused", address: "", reason: err.message }),
      onLink: (link) => {
        if (blocked.has(link.user)) {
          events({ event: "link_refused", address: link.address, reason: `${link.user} is blocked` });
          void link.close();
          return;
        }
        if (!ref.peer) void link.close();
        else ref.peer.accepted(link);
      },
    });
    stack.defer(() => listener.close());
    const port = listener.addr.port;
    let advertise: { host: string; port: number };
    const adv = str(r, "advertise");
    if (adv) {
      advertise = parseHostPort(adv, "advertise");
    } else {
      const host = detectAdvertiseHost(listen.host);
      if (!host) {
        throw new UsageError(
          "Cannot find an address others could dial: pass --advertise IP:PORT (your public or LAN address).",
        );
      }
      advertise = { host, port };
    }
    events({
      event: "listening",
      address: listen.host,
      port,
      advertise: formatAddress(advertise.host, advertise.port),
    });

    const smtp: Sender = openSender(mail.smtp, { caCerts: mail.caCerts });
    stack.use(smtp);
    const sender = patientSender(smtp, patience, signal);
    const inbox: Mailbox = await patience.run("reading", () =>
      openMailbox(mail.inbox, {
        address: mail.address,
        caCerts: mail.caCerts,
        pollIntervalMs: mail.pollMs,
        log: (line) => events({ event: "info", message: line }),
      }), signal);
    stack.use(inbox);

    const peer = new Peer(
      {
        address: mail.address,
        user,
        vias,
        marker: str(r, "marker")!,
        advertise,
        friends: new Set(list(r, "friend")),
        blocked,
        dialTimeoutMs: num(r, "dial-timeout"),
        maxLinks: num(r, "max-links"),
      },
      // Every link the peer adopts, dialed or accepted, goes to the app.
      {
        key,
        sender,
        linker,
        events,
        onLink: (link) => onLink(link as NetPeerLink),
        onPeers: (peers, via) => auto.heard(peers, via),
      },
    );
    ref.peer = peer;
    stack.defer(() => peer.close());
    peer.firstLink.then(() => (linked = true));

    let table: PeerTable | undefined;
    stack.defer(() => table?.close());
    const auto = new AutoNode({
      peer,
      events,
      promote: flag(r, "no-host") ? undefined : () => {
        table = openTable(r, mail.address);
        status.tableSize = () => table?.size() ?? 0;
        const host = new Host(
          {
            address: mail.address,
            marker: str(r, "marker")!,
            maxAgeMs: num(r, "max-age"),
            skewMs: DEFAULT_SKEW_MS,
            upstream: vias,
            syncIntervalMs: num(r, "sync-interval"),
          },
          {
            key,
            table,
            sender,
            events,
            // A promoted node is a peer too: it offers itself first (it is online right now).
            self: () => ({
              user,
              host: advertise.host,
              port: advertise.port,
              linkKey: linker.publicKey,
              seen: Date.now(),
              flagged: false,
            }),
          },
        );
        host.runSync(signal).catch((err) =>
          events({ event: "error", message: `sync stopped: ${err.message}` })
        );
        return host;
      },
    });
    const reader = new InboxReader(inbox, {
      marker: str(r, "marker")!,
      key,
      onError: (id, err) => events({ event: "error", message: `mail ${id}: ${(err as Error).message}` }),
      durable: async () => {
        await sender.flush?.();
        table?.sync();
      },
      patience,
    });
    // Read what is already in the box before asking, so an old reply cannot be mistaken for the new one.
    await patience.run("reading", () => reader.pass(auto.handle), signal);
    if (vias.length > 0) {
      await peer.announce();
      // Long sessions: stay in the hosts' tables (--ttl) and hear of peers that came meanwhile.
      const every = num(r, "reannounce");
      if (every > 0) {
        const timer = setInterval(() => {
          peer.announce().catch((err) =>
            events({ event: "error", message: `Could not ask the host(s) again: ${(err as Error).message}` })
          );
        }, every);
        stack.defer(() => clearInterval(timer));
      }
    } else events({ event: "waiting", reason: "no --via given: waiting to be asked or dialed" });
    const inboxLoop = reader.run(signal, auto.handle);
    inboxLoop.catch(() => {});
    stack.defer(() => inboxLoop.catch(() => {}));
    return {
      peer,
      user,
      inboxLoop,
      mailError: () => patience.lastError,
      [Symbol.asyncDispose]: () => stack.disposeAsync(),
    };
  } catch (err) {
    await stack.disposeAsync();
    throw err;
  }
}
