import { openMailbox } from "../../mail/open.ts";
import { openSender } from "../../mail/smtp.ts";
import { BootstrapError, DEFAULT_SKEW_MS, Host, roundLimit } from "../../roles/host.ts";
import { hostSettings, selfEntry } from "../host_wiring.ts";
import { InboxReader } from "../../roles/inbox.ts";
import { addresses, flag, loadKey, mailSettings, num, sinkFor, str, userId } from "../context.ts";
import { openTable, tablePath } from "../host_table.ts";
import { mailPatience } from "../mail_patience.ts";
import { startNetwork } from "../node.ts";
import type { NodeNetwork } from "../../node/network.ts";
import type { EventSink } from "../../roles/events.ts";
import { Forwarder } from "../../roles/forwarder.ts";
import { InterruptedError, UsageError } from "../errors.ts";
import { reportUnreadable } from "../mail_watch.ts";
import type { Resolved } from "../options.ts";
import { interruptSignal } from "../signals.ts";
import { openNodeStatus } from "../status.ts";
import { patientSender } from "../../mail/patience.ts";
import { budgetedSender } from "../../mail/budget_sender.ts";
import { openMailBudget } from "../mail_budget.ts";

export const HOST_HELP = `mailmeet host (or mailmeet --host) — answer rendezvous requests from a mailbox

Reads mailmeet requests from --inbox, keeps the peer table in --db, and mails each requester the
most recent other peers. Other mail in the box is never touched. Runs until interrupted, or with
--once answers what is in the box now and exits. Once the mailbox has answered, mail server
outages are waited out for as long as they last; a server that never answers ends it after
--timeout (default 120 s).

Example:
  mailmeet --host --address lan-host@game.test --inbox imaps://lan-host%40game.test:PASS@imap.game.test/INBOX \\
    --smtp smtps://lan-host%40game.test:PASS@smtp.game.test --key-file group.key`;

/** The host's own network side when it will relay; undefined when it cannot be reached (no use). */
async function relayNetwork(
  r: Resolved,
  key: Awaited<ReturnType<typeof loadKey>>,
  address: string,
  events: EventSink,
): Promise<NodeNetwork | undefined> {
  const network = await startNetwork(r, key, userId(r, address), events, "relay");
  if (network.relaying) {
    events({ event: "info", message: `relaying for members who cannot reach each other directly` });
    return network;
  }
  events({
    event: "info",
    message:
      "not relaying: this host has no address members could reach (no public address, mapping or --advertise)",
  });
  await network.close();
  return undefined;
}

export async function hostCommand(r: Resolved): Promise<number> {
  const mail = await mailSettings(r);
  const key = await loadKey(r);
  // What `mailmeet status` shows comes from the host's own events (src/cli/status.ts).
  using status = openNodeStatus("host", { address: mail.address, roles: ["host"] });
  const events = status.track(sinkFor(r));
  using table = openTable(r, mail.address);
  status.tableSize = () => table.size();
  using stop = interruptSignal();
  const once = flag(r, "once");
  // A host runs for days: once its mailbox has answered, a mail server outage is waited out,
  // however long. Before that, an outage and a mistyped server look alike, so it waits --timeout
  // (a host started at boot before the network is up), then says so. --once fails at once.
  const startedAt = Date.now();
  let reached = false;
  const patience = once ? undefined : mailPatience(
    events,
    () => (reached || num(r, "timeout") <= 0 ? Infinity : startedAt + num(r, "timeout")),
  );
  await using smtp = openSender(mail.smtp, { caCerts: mail.caCerts, tokens: mail.tokens });
  using budget = openMailBudget(r, mail.address); // its last counts written on the way out
  status.mailBudget = budget;
  const budgeted = budgetedSender(smtp, budget);
  const sender = patience ? patientSender(budgeted, patience, stop.signal) : budgeted;
  const open = () =>
    openMailbox(mail.inbox, {
      address: mail.address,
      caCerts: mail.caCerts,
      tokens: mail.tokens,
      pollIntervalMs: mail.pollMs,
      idleRenewMs: mail.idleRenewMs,
      log: (line) => events({ event: "info", message: line }),
    });
  await using inbox = patience ? await patience.run("reading", open, stop.signal) : await open();
  reached = true;
  const marker = str(r, "marker");
  const interrupted = () => new InterruptedError("Interrupted; the host stopped.");
  // Made below, once the reader can fill its table (a bootstrap); each pass ends with its introductions.
  const made: { host?: Host } = {};
  const reader = new InboxReader(inbox, {
    marker,
    afterPass: async () => await made.host?.flushIntroductions(),
    onStall: (stall) => made.host?.releaseReplies(stall),
    // Requests handled at once: read together, they are answered in one round whose replies list
    // each other (src/roles/host.ts), so a burst of newcomers needs few introductions; the replies
    // share the SMTP pool's connections (src/mail/smtp.ts). A host killed meanwhile answers at most
    // these again after its restart (a reply whose acceptance died with it), harmless to the peer.
    concurrency: roundLimit(table.policy.replyLimit),
    key,
    onSkip: (id, reason) => events({ event: "host_dropped", reason, detail: `mail ${id}` }),
    onError: (id, err) =>
      events({
        event: "error",
        message: `mail ${id} stays in the box for a retry: ${(err as Error).message}`,
      }),
    // Replies and rows (with their "answered" notes) survive a power cut before the requests are
    // deleted: maildir replies are fsynced in the background until here, the table's WAL here.
    durable: async () => {
      await sender.flush?.();
      table.sync();
    },
    patience,
  });

  const workers = addresses(r, "forward-to");
  if (workers.length === 0 && !flag(r, "once")) {
    events({
      event: "hosting",
      address: mail.address,
      inbox: inbox.label,
      table: tablePath(r, mail.address),
    });
  }
  if (workers.length > 0) {
    // 【0062】 A representative: it only passes requests on.
    const forwarder = new Forwarder(
      { address: mail.address, marker, workers, maxAgeMs: num(r, "max-age"), skewMs: DEFAULT_SKEW_MS },
      { sender, table, events },
    );
    const handle = reportUnreadable((m) => forwarder.handle(m), events);
    if (once) await reader.pass(handle);
    else {
      events({ event: "info", message: `representing ${workers.join(", ")} at ${mail.address}` });
      await reader.run(stop.signal, handle);
    }
    if (stop.interrupted) throw interrupted();
    return 0;
  }

  // A host with a reachable address relays for members who cannot reach each other (design:
  // "Relay"); it is listed in its replies as a relay-only member, never dialled up front.
  const network = flag(r, "once") || flag(r, "no-relay")
    ? undefined
    : await relayNetwork(r, key, mail.address, events);
  await using _network = { [Symbol.asyncDispose]: () => network?.close() ?? Promise.resolve() };
  // Requests read together are answered in rounds that list each other (releaseReplies above).
  const settings = { ...hostSettings(r, mail.address, addresses(r, "via")), gatherReplies: true };
  const host = made.host = new Host(settings, {
    key,
    table,
    sender,
    events,
    budget,
    self: network && selfEntry(network, network.links.opts.user),
  });
  const bootstrap = str(r, "bootstrap");
  if (bootstrap) {
    // 【0060】 Fill the table from an existing host before answering anyone.
    try {
      await host.fillFrom(bootstrap, num(r, "timeout"), reader, stop.signal);
    } catch (err) {
      if (stop.interrupted) throw interrupted();
      if (err instanceof BootstrapError) {
        throw new UsageError(`Could not bootstrap from ${bootstrap}: ${err.message}.`);
      }
      throw err;
    }
    events({ event: "info", message: `table filled from ${bootstrap}: ${table.size()} entries` });
  }
  const handle = reportUnreadable((m) => host.handle(m), events);
  if (once) {
    await reader.pass(handle);
    if (stop.interrupted) throw interrupted();
    return 0;
  }
  const syncing = host.runSync(stop.signal);
  await reader.run(stop.signal, handle);
  await syncing;
  if (stop.interrupted) throw interrupted();
  return 0;
}
