/**
 * Starting a node from the options: the network side (listener, UDP hub, candidates, links,
 * relaying: src/node/network.ts), the inbox loop (peer + auto-promoted host), the request.
 * `join`, `chat`, `send`, `receive` and `tunnel` all rendezvous through this, then run their app
 * on the node's links.
 */
import { openMailbox } from "../mail/open.ts";
import { openSender } from "../mail/smtp.ts";
import type { Mailbox } from "../mail/mailbox.ts";
import type { Sender } from "../mail/smtp.ts";
import { LinkError } from "../protocol/noise.ts";
import { formatHostPort } from "../protocol/candidate.ts";
import { NodeNetwork } from "../node/network.ts";
import { warmLinkCrypto } from "../net/link_warmup.ts";
import type { MailError } from "../mail/errors.ts";
import { patientSender } from "../mail/patience.ts";
import { AutoNode } from "../roles/auto.ts";
import type { EventSink } from "../roles/events.ts";
import { Host } from "../roles/host.ts";
import { hostSettings, selfEntry } from "./host_wiring.ts";
import { InboxReader } from "../roles/inbox.ts";
import { Peer } from "../roles/peer.ts";
import type { PeerTable } from "../table/table.ts";
import type { LinkApp } from "../apps/app_host.ts";
import { ControlServer, type NodeIdentity } from "../node/control.ts";
import { ControlClient } from "../node/control_client.ts";
import { statusDirFor } from "./paths.ts";
import { listenError, UsageError } from "./errors.ts";
import {
  addresses,
  dataDir,
  flag,
  list,
  loadKey,
  mailSettings,
  num,
  parseHostPort,
  str,
  userId,
} from "./context.ts";
import type { Resolved } from "./options.ts";
import { type NodeStatus, openNodeStatus } from "./status.ts";
import { bounceReports, recordingSender, reportUnreadable, SentMail } from "./mail_watch.ts";
import { openTable } from "./host_table.ts";
import { mailPatience } from "./mail_patience.ts";
import { openMailBudget } from "./mail_budget.ts";
import { loadRemembered, rememberedPath, saveRemembered } from "./remembered.ts";
import { budgetedSender } from "../mail/budget_sender.ts";
import { releaseFreedMemory } from "../util/release_memory.ts";

/**
 * How long a node coming back tries its last run's members before it asks by mail. A member still
 * online answers within a few round trips (TCP retries its SYN after 1 s); most addresses are gone
 * with the last run (the premise: addresses change), so every second here is the wait of a return.
 */
const COME_BACK_WINDOW_MS = 3_000;
const REMEMBER_EVERY_MS = 60_000;
/**
 * Unlinked this long after asking, a node readies its link crypto (src/net/link_warmup.ts) for the
 * newcomers it waits for. Not at once: on a local spool the reply comes within milliseconds, and
 * a newcomer's own first link would wait for the warm-up instead.
 */
const IDLE_WARM_UP_MS = 250;

export interface RunningNode extends AsyncDisposable {
  peer: Peer;
  user: string;
  network: NodeNetwork;
  /** Resolves when the first link is up. */
  firstLink: Promise<void>;
  /** What `mailmeet status` shows; apps add what they do (tunnel ports, transfers). */
  status: NodeStatus;
  /** Settles (rejects) if the inbox loop fails for good. */
  inboxLoop: Promise<void>;
  /** The mail server failure being waited out right now, if any (what a --timeout that passes should report). */
  mailError(): MailError | undefined;
}

/** The network options every command shares (join, apps, host, doctor). */
export function networkOptions(r: Resolved, user: string, events: EventSink, role: "peer" | "relay") {
  const listen = parseHostPort(str(r, "listen"), "listen");
  const adv = str(r, "advertise");
  return {
    user,
    listen: { ...listen, wildcard: listen.host === "0.0.0.0" && r.sources.listen === "default" },
    advertise: adv ? parseHostPort(adv, "advertise") : undefined,
    stun: list(r, "stun").length > 0 ? list(r, "stun") : undefined,
    portMapping: !flag(r, "no-port-mapping"),
    relay: flag(r, "no-relay") ? "off" as const : flag(r, "relay") ? "on" as const : "auto" as const,
    role,
    dialTimeoutMs: num(r, "dial-timeout"),
    blocked: new Set(list(r, "block")),
    events,
  };
}

/** Starts the network side, turning its one-sentence failures into usage errors. */
export async function startNetwork(
  r: Resolved,
  key: Awaited<ReturnType<typeof loadKey>>,
  user: string,
  events: EventSink,
  role: "peer" | "relay",
  onReachChange?: () => void,
): Promise<NodeNetwork> {
  const opts = networkOptions(r, user, events, role);
  try {
    return await NodeNetwork.start({ ...opts, key, onReachChange });
  } catch (err) {
    if (err instanceof LinkError) throw new UsageError(err.message);
    throw listenError(str(r, "listen"), err);
  }
}

/** `app` runs on the node's links from the first one on (attached before anyone can link). */
/** Who a node is, for its control socket: one node per mail address and user id. */
export async function nodeIdentity(r: Resolved): Promise<NodeIdentity> {
  const mail = await mailSettings(r);
  return { address: mail.address, user: userId(r, mail.address) };
}

/** The folder of the control sockets (the owner-only run folder, beside the status files). */
export function controlDir(): string {
  return statusDirFor(Deno.env.toObject());
}

/** The running node of this identity, when there is one (apps attach to it). */
export async function findNode(r: Resolved): Promise<ControlClient | undefined> {
  return await ControlClient.connect(controlDir(), await nodeIdentity(r));
}

export async function startNode(
  r: Resolved,
  events: EventSink,
  signal: AbortSignal,
  app?: LinkApp | readonly LinkApp[],
): Promise<RunningNode> {
  const mail = await mailSettings(r);
  const key = await loadKey(r);
  const user = userId(r, mail.address);
  const running = await ControlClient.connect(controlDir(), { address: mail.address, user });
  if (running) {
    const h = running.hello;
    await running.close();
    // Two nodes on one inbox would take each other's replies; one node serves every app.
    throw new UsageError(
      `A mailmeet node for ${h.address} (user ${h.user}) already runs: pid ${h.pid}, \`mailmeet ${h.command}\` since ${
        new Date(h.since).toLocaleTimeString()
      }. Stop it first, or use it: \`mailmeet chat\`, \`send\`, \`receive\`, \`tunnel\` and \`peers\` attach to it.`,
    );
  }
  // No --via: the first node of a group; it waits to be asked (and hosts) or dialed.
  const vias = addresses(r, "via");
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
  const ref: { peer?: Peer } = {};
  try {
    const network = await startNetwork(r, key, user, events, "peer", () => {
      // A new public address (the router restarted): tell the hosts, so newcomers find us.
      if (vias.length > 0) ref.peer?.announce().catch(() => {});
    });
    stack.defer(() => network.close());
    // Whom we are linked to, for the next run (saved now and then, and last thing before the links close).
    const rememberAt = rememberedPath(dataDir(), mail.address, user);
    const remember = () => saveRemembered(rememberAt, network.linkedEntries(), Date.now());
    const remembering = setInterval(remember, REMEMBER_EVERY_MS);
    Deno.unrefTimer(remembering);
    stack.defer(() => {
      clearInterval(remembering);
      remember();
    });
    for (const a of [app ?? []].flat()) network.links.attach(a);
    // Apps started later attach here instead of meeting the group again.
    const started = new Date().toISOString();
    const control = await ControlServer.open({
      dir: controlDir(),
      identity: { address: mail.address, user },
      host: network.links,
      room: network.room,
      hello: () => ({ pid: Deno.pid, since: started, address: mail.address, user, command: r.command }),
      onApp: (e) =>
        events({
          event: "info",
          message: e.event === "app_attached"
            ? `an app attached (${e.protocols.join(", ") || "no streams"})`
            : "an app detached",
        }),
    }).catch((err) => {
      events({ event: "info", message: `apps cannot attach to this node: ${(err as Error).message}` });
      return undefined;
    });
    stack.defer(() => control?.close());
    const reach = network.reach();
    releaseFreedMemory(); // what start-up (module loading) freed: see release_memory.ts
    events({
      event: "listening",
      address: network.listenHost,
      port: network.tcpPort,
      advertise: formatHostPort(reach.host, reach.port),
    });

    // Bounces of our own mail (a mistyped --via) are matched to it by Message-ID (mail_watch.ts).
    const sentMail = new SentMail();
    const smtp: Sender = recordingSender(
      openSender(mail.smtp, { caCerts: mail.caCerts, tokens: mail.tokens }),
      sentMail,
    );
    stack.use(smtp);
    // Free accounts allow a few hundred mails a day: the budget holds back the least important first.
    const budget = stack.use(openMailBudget(r, mail.address)); // its last counts written on the way out
    status.mailBudget = budget;
    const sender = patientSender(budgetedSender(smtp, budget), patience, signal);
    const inbox: Mailbox = await patience.run("reading", () =>
      openMailbox(mail.inbox, {
        address: mail.address,
        caCerts: mail.caCerts,
        tokens: mail.tokens,
        pollIntervalMs: mail.pollMs,
        idleRenewMs: mail.idleRenewMs,
        log: (line) => events({ event: "info", message: line }),
      }), signal);
    stack.use(inbox);

    const peer = new Peer(
      {
        address: mail.address,
        user,
        vias,
        marker: str(r, "marker"),
        friends: new Set(list(r, "friend")),
        blocked: new Set(list(r, "block")),
        dialWindowMs: num(r, "dial-window"),
        maxLinks: num(r, "max-links"),
        maxAgeMs: num(r, "max-age"),
      },
      {
        key,
        sender,
        dialer: network.dialer,
        links: network.links,
        // A member no dial reached may still be in the room through others; if not, chat says so.
        events: (e) => {
          if (e.event === "dial_failed") network.room?.unreachable(e.peer, e.reason);
          events(e);
        },
        onPeers: (peers, via) => {
          network.learn(peers);
          auto.heard(peers, via);
        },
        onIntro: (p) => network.learn([p]),
      },
    );
    ref.peer = peer;
    stack.defer(() => peer.close());
    // Runs before the sender closes (deferred earlier): the hosts hear we go.
    stack.defer(() => peer.leave(undefined, sentMail.failed));
    network.links.firstLink.then(() => (linked = true));

    let table: PeerTable | undefined;
    stack.defer(() => table?.close());
    const auto = new AutoNode({
      peer,
      events,
      promote: flag(r, "no-host") ? undefined : () => {
        table = openTable(r, mail.address);
        status.tableSize = () => table?.size() ?? 0;
        const host = new Host(hostSettings(r, mail.address, vias), {
          key,
          table,
          sender,
          events,
          budget,
          self: selfEntry(network, user),
          // The newcomer is ours to reach too: no mail to ourselves.
          introduceSelf: (intro) => void peer.introduce(intro, mail.address),
        });
        host.runSync(signal).catch((err) =>
          events({ event: "error", message: `sync stopped: ${err.message}` })
        );
        return host;
      },
    });
    const reader = new InboxReader(inbox, {
      marker: str(r, "marker"),
      key,
      onError: (id, err) => events({ event: "error", message: `mail ${id}: ${(err as Error).message}` }),
      reports: bounceReports(sentMail, events),
      durable: async () => {
        await sender.flush?.();
        table?.sync();
      },
      afterPass: async () => await auto.host?.flushIntroductions(),
      onWatching: () => watching.resolve(),
      patience,
    });
    const watching = Promise.withResolvers<void>();
    const handle = reportUnreadable(auto.handle, events);
    // Read what is already in the box before asking, so an old reply cannot be mistaken for the new
    // one; that first read is the watch's own, so the reply wakes a reader already waiting for it.
    // Its own stop too: a start that fails after this point (the request cannot be sent) ends it.
    const inboxStop = new AbortController();
    const inboxLoop = reader.run(AbortSignal.any([signal, inboxStop.signal]), handle);
    inboxLoop.catch(() => {});
    stack.defer(async () => {
      inboxStop.abort();
      await inboxLoop.catch(() => {});
    });
    await Promise.race([watching.promise, inboxLoop]);
    // Coming back: the members we were linked to may still be online; one link spares the mail.
    const remembered = loadRemembered(rememberAt, Date.now());
    const back = remembered.length > 0 &&
      await peer.comeBack(remembered, Math.min(num(r, "dial-window"), COME_BACK_WINDOW_MS));
    if (back) events({ event: "info", message: "linked again to members of the last run" });
    if (vias.length > 0) {
      // The hosts still hear of this run (its new key and address); linked, the request is quiet.
      await peer.announce();
      const warm = setTimeout(() => linked || void warmLinkCrypto(), IDLE_WARM_UP_MS);
      stack.defer(() => clearTimeout(warm));
      // Long sessions: stay in the hosts' tables (--ttl) and hear of peers that came meanwhile.
      const every = num(r, "reannounce");
      if (every > 0) {
        const timer = setInterval(() => {
          // Linked: the links keep us in the group; mail only keeps the host's row alive.
          peer.reannounce().catch((err) =>
            events({ event: "error", message: `Could not ask the host(s) again: ${(err as Error).message}` })
          );
        }, every);
        stack.defer(() => clearInterval(timer));
      }
    } else {
      events({ event: "waiting", reason: "no --via given: waiting to be asked or dialed" });
      void warmLinkCrypto();
    }
    return {
      peer,
      user,
      network,
      firstLink: network.links.firstLink,
      status,
      inboxLoop,
      mailError: () => patience.lastError,
      [Symbol.asyncDispose]: () => stack.disposeAsync(),
    };
  } catch (err) {
    await stack.disposeAsync();
    throw err;
  }
}
