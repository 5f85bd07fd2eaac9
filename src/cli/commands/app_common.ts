/**
 * What chat, send, receive and tunnel share: rendezvous exactly as `join` does (startNode), wait
 * for a first link within --timeout, stop on Ctrl-C, and print app events beside the node's.
 */
import type { AppEvent } from "../../apps/app_host.ts";
import { formatBytes, Progress, TransferError, TransferInterrupted } from "../../apps/file_proto.ts";
import type { LinkApp } from "../../apps/app_host.ts";
import type { RoomHost } from "../../apps/chat.ts";
import type { EventSink } from "../../roles/events.ts";
import { addresses, flag, num } from "../context.ts";
import { EXIT, InterruptedError, NoPeerError, UsageError } from "../errors.ts";
import { LiveLine } from "../live_line.ts";
import { WaitReporter } from "../waiting.ts";
import type { Resolved } from "../options.ts";
import { eventSink } from "../output.ts";
import { findNode, nodeIdentity, startNode } from "../node.ts";
import { type AppStatus, openNodeStatus } from "../status.ts";
import { interruptSignal } from "../signals.ts";
import { deadline, DeadlineError } from "../../util/deadline.ts";
import { runInBackground } from "../background_priority.ts";

export interface AppOutput {
  /** The node's events (rendezvous). */
  node: EventSink;
  /** An app event: with --json one object per line on stdout, else `text` (if any) as a line. */
  app: (e: AppEvent, text?: string) => void;
  json: boolean;
  /** The redrawn line at the bottom of a terminal (progress), when stdout is one and not --json. */
  live?: LiveLine;
  /** A line on stderr (an error), after wiping the live line so the two never share a line. */
  stderr: (line: string) => void;
}

const encoder = new TextEncoder();
export const writeStdout = (line: string) => Deno.stdout.writeSync(encoder.encode(`${line}\n`));
export const writeStderr = (line: string) => Deno.stderr.writeSync(encoder.encode(`${line}\n`));

/**
 * `nodeTo: "stderr"` keeps stdout for the app's own lines (chat piped into another program); the
 * node's lines then go to stderr. With --json everything is one JSON object per line on stdout.
 */
export function appOutput(r: Resolved, nodeTo: "stdout" | "stderr" = "stdout"): AppOutput {
  const json = flag(r, "json");
  const quiet = flag(r, "quiet");
  const live = !json && nodeTo === "stdout" && Deno.stdout.isTerminal()
    ? new LiveLine((bytes) => Deno.stdout.writeSync(bytes))
    : undefined;
  const line = live ? (l: string) => live.print(l) : writeStdout;
  const node = eventSink({
    json,
    quiet,
    verbose: flag(r, "verbose"),
    write: json || nodeTo === "stdout" ? line : writeStderr,
  });
  return {
    json,
    node,
    live,
    app: (e, text) => {
      if (json) line(JSON.stringify({ time: new Date().toISOString(), ...e }));
      // --quiet hides what the node and apps report, never what people say in the chat.
      else if (
        text !== undefined && !(quiet && e.event !== "error" && e.event !== "chat" && e.event !== "said")
      ) line(text);
    },
    stderr: (l) => {
      live?.clear();
      writeStderr(l);
    },
  };
}

/** Where an app says what it is doing, for `mailmeet status`. */
export interface AppStatusBoard {
  setApp(app: AppStatus | undefined): void;
  /** Bytes a transfer moved so far (written with the next heartbeat). */
  progress(bytes: number): void;
}

export interface AppRun {
  /** Aborted on Ctrl-C / SIGTERM, or when the command ends. */
  signal: AbortSignal;
  status: AppStatusBoard;
  /** Settles when the node stops on its own; rejects with why (the inbox failed for good, …). */
  ended: Promise<void>;
  /** The node's chat room (undefined on a node that carries none). */
  room?: RoomHost;
  /**
   * Resolves once a first link is up. Throws NoPeerError (exit 3) when --timeout passes first
   * (see firstLinkTimeoutMs), InterruptedError (exit 130) on Ctrl-C, and UsageError (exit 1)
   * when every --via address bounced.
   */
  firstLink(opts?: { interactive?: boolean }): Promise<void>;
  /**
   * The same wait for something else (a link to one given peer): `sentences.timeout` (given what
   * the wait saw) replaces the generic --timeout sentence, `sentences.interrupted` the Ctrl-C one.
   */
  waitFor<T>(
    what: Promise<T>,
    sentences?: {
      timeout?: (seen: { linked: boolean; answered: boolean }) => string | undefined;
      interrupted?: string;
      /** No --timeout for this wait (it bounds only the wait for a first link). */
      untimed?: boolean;
      /** A person at a terminal waits for the others (see firstLinkTimeoutMs). */
      interactive?: boolean;
    },
  ): Promise<T>;
}

export interface AppOptions {
  /** The sentence for Ctrl-C before any link ("…; nothing was sent."). */
  beforeLink?: string;
  /** The sentence for Ctrl-C once the app ran. */
  interrupted?: string;
  /** A bulk app (send, receive): attached to a running node, it runs at background CPU priority. */
  background?: boolean;
}

/**
 * How long to wait for a first link, ms (0: for ever). Waiting is a state, not a failure: --wait
 * and --timeout 0 wait for ever, and so does an app a person started at a terminal (the first
 * one in waits for the others) unless --timeout was set; scripts keep the --timeout default.
 */
export function firstLinkTimeoutMs(r: Resolved, interactive = false): number {
  if (flag(r, "wait")) return 0;
  if (interactive && r.sources.timeout === "default") return 0;
  return num(r, "timeout");
}

/** How often the waiting node is asked whether to say it still waits. */
const WAIT_TICK_MS = 1_000;

export async function runApp(
  r: Resolved,
  events: EventSink,
  app: LinkApp | readonly LinkApp[] | undefined,
  body: (run: AppRun) => Promise<number>,
  opts: AppOptions = {},
): Promise<number> {
  using stop = interruptSignal();
  const ctl = new AbortController();
  stop.signal.addEventListener("abort", () => ctl.abort(), { once: true });
  // Until the first link the node says what it waits for, and gives up when every host bounced.
  const waiting = new WaitReporter({ vias: addresses(r, "via"), emit: events });
  const gaveUp = Promise.withResolvers<string>();
  const tracked = waiting.track(events);
  const watched: EventSink = (e) => {
    tracked(e);
    if (e.event === "bounced" && waiting.allBounced) gaveUp.resolve(waiting.allBounced);
  };
  const ticker = setInterval(() => waiting.tick(), WAIT_TICK_MS);
  try {
    const meeting = await meet(r, watched, app, ctl);
    // Closing links politely is best effort: a link whose peer vanished can hold a write for
    // minutes (TCP zero-window probes), and the command's result is known already.
    await using _ = {
      [Symbol.asyncDispose]: () => settledWithin(Promise.resolve(meeting[Symbol.asyncDispose]()), CLEANUP_MS),
    };
    if (meeting.attached) clearInterval(ticker); // the running node met the group already
    if (meeting.attached && opts.background) runInBackground();
    let linked = false;
    void meeting.firstLink.then(() => linked = true);
    const waitFor = async <T>(
      what: Promise<T>,
      sentences: {
        timeout?: (seen: { linked: boolean; answered: boolean }) => string | undefined;
        interrupted?: string;
        untimed?: boolean;
        interactive?: boolean;
      } = {},
    ): Promise<T> => {
      const timeoutMs = sentences.untimed ? 0 : firstLinkTimeoutMs(r, sentences.interactive);
      type Outcome = { got: T } | "timeout" | "stop" | { bounced: string };
      try {
        const race = Promise.race<Outcome>([
          what.then((got) => ({ got })),
          aborted(ctl.signal).then(() => "stop" as const),
          meeting.ended.then(() => "stop" as const),
          gaveUp.promise.then((bounced) => ({ bounced })),
        ]);
        const first = timeoutMs > 0
          ? await deadline(race, timeoutMs).catch((err): Outcome => {
            if (err instanceof DeadlineError) return "timeout";
            throw err;
          })
          : await race;
        if (first === "stop") {
          throw new InterruptedError(
            sentences.interrupted ?? opts.beforeLink ?? "Interrupted before any peer connected.",
          );
        }
        if (first === "timeout") {
          // Still waiting for the mail server at the deadline: that is the reason (exit 2), not the peers.
          const mail = meeting.mailError?.();
          if (mail) throw mail;
          throw new NoPeerError(
            sentences.timeout?.({ linked, answered: waiting.answered }) ?? waiting.timeoutSentence(timeoutMs),
          );
        }
        if ("bounced" in first) throw new UsageError(first.bounced);
        return first.got;
      } finally {
        clearInterval(ticker);
      }
    };
    const firstLink = (o: { interactive?: boolean } = {}) => waitFor(meeting.firstLink, o);
    let code: number;
    try {
      code = await body({
        signal: ctl.signal,
        status: meeting.status,
        ended: meeting.ended,
        room: meeting.room,
        firstLink,
        waitFor,
      });
    } catch (err) {
      // Whatever broke because Ctrl-C closed things under it is still an interruption.
      const e = stop.interrupted && !(err instanceof InterruptedError)
        ? new InterruptedError(opts.interrupted ?? "Interrupted; the links are closed.")
        : err;
      // Said now too, so a cleanup cut short by the grace still ends with this sentence.
      if (e instanceof InterruptedError) stop.explain(e.message);
      throw e;
    } finally {
      ctl.abort();
    }
    // Work cut short by Ctrl-C never ends with 0.
    if (stop.interrupted) {
      const e = new InterruptedError(opts.interrupted ?? "Interrupted; the links are closed.");
      stop.explain(e.message);
      throw e;
    }
    return code;
  } finally {
    clearInterval(ticker);
  }
}

/** What runApp needs of the node it runs on: its own, or the running one it attached to. */
interface Meeting extends AsyncDisposable {
  attached: boolean;
  firstLink: Promise<void>;
  /** Settles when the node stops on its own: rejects with why (the inbox failed, the node went). */
  ended: Promise<void>;
  status: AppStatusBoard;
  /** The mail server failure being waited out right now, if any (what a --timeout that passes should report). */
  mailError?(): Error | undefined;
  room?: RoomHost;
}

/**
 * One node per person (design: "One node per person"): an app started while `join` or another
 * app runs uses that node's links; otherwise it starts its own node and meets the group. `join`
 * (no app) always starts its own, and is told if one runs already.
 */
async function meet(
  r: Resolved,
  events: EventSink,
  app: LinkApp | readonly LinkApp[] | undefined,
  ctl: AbortController,
): Promise<Meeting> {
  const apps = [app ?? []].flat();
  const client = apps.length > 0 ? await findNode(r) : undefined;
  if (!client || apps.length === 0) {
    const node = await startNode(r, events, ctl.signal, app);
    return {
      attached: false,
      firstLink: node.firstLink,
      ended: node.inboxLoop,
      status: node.status,
      mailError: () => node.mailError(),
      room: node.network.room,
      [Symbol.asyncDispose]: () => node[Symbol.asyncDispose](),
    };
  }
  const h = client.hello;
  events({ event: "info", message: `attached to the running node (pid ${h.pid}, mailmeet ${h.command})` });
  // One control connection per app: each takes its own streams and datagrams (several tunnels).
  const more = await Promise.all(apps.slice(1).map(() => findNode(r)));
  if (more.some((c) => !c)) {
    throw new UsageError(`The running node (pid ${h.pid}) went away while attaching.`);
  }
  const attachments = [client, ...more].map((c, i) => c!.attach(apps[i]));
  const attachment = attachments[0];
  const room = client.room();
  // What the app does shows in a status file of its own: the node's belongs to the node.
  const identity = await nodeIdentity(r);
  const status = openNodeStatus(r.command, { ...identity, roles: ["app"] });
  const ended = attachment.nodeGone.then((reason) => {
    ctl.abort();
    throw new UsageError(
      `The running node this app used (pid ${h.pid}, \`mailmeet ${h.command}\`) stopped${
        reason ? `: ${reason.replace(/\.$/, "")}` : ""
      }.`,
    );
  });
  ended.catch(() => {});
  return {
    attached: true,
    firstLink: attachment.firstLink,
    ended,
    status,
    room,
    [Symbol.asyncDispose]: async () => {
      status[Symbol.dispose]();
      await Promise.all(attachments.map((a) => a[Symbol.asyncDispose]()));
    },
  };
}

/** How long closing links and the mailbox may take once a command's work is done. */
export const CLEANUP_MS = 2_000;

/** Waits for `work` to settle, but no longer than `ms`. Never throws. */
export async function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  await deadline(work, ms).catch(() => {});
}

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** `--NAME PORT` as a port number, or a one-sentence usage error. */
export function portOption(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || !/^\d+$/.test(value) || n < 1 || n > 65535) {
    throw new UsageError(`--${name} ${String(value)} is not a port number (1–65535).`);
  }
  return n;
}

/** How often the bar is redrawn even when no byte moved (so a stall shows). */
const TICK_MS = 1_000;
/** Without a terminal: a progress line this often while bytes move, and one per STALL_LINE_MS of a stall. */
const LINE_MS = 1_000;
const STALL_LINE_MS = 10_000;

export interface ProgressReporter {
  update(done: number, total: number, moved: number): void;
  /** Ends the bar (it leaves no line behind); returns the transfer's average speed and duration. */
  finish(): { seconds: number; rate: number } | undefined;
  /** Wipes the bar before other output (a line printed above it redraws it anyway). */
  breakLine(): void;
}

/**
 * Progress of a transfer: on a terminal a bar redrawn in place every second, bytes or not (a
 * stall shows as "stalled 12 s"); otherwise a plain line every second while bytes move and one
 * every 10 s of a stall; with --json a "progress" event twice a second and every second of a stall.
 */
export function progressReporter(out: AppOutput, verb: "sent" | "received", peer: string): ProgressReporter {
  let progress: Progress | null = null;
  let ticker: ReturnType<typeof setInterval> | undefined;
  let lastShown = -Infinity;
  let lastLineMoved = -1;
  let lastStallLine = 0;
  const show = (force: boolean) => {
    const p = progress!;
    const now = p.now();
    if (out.json) {
      if (!force && now - lastShown < 500) return;
      lastShown = now;
      out.app({
        event: "progress",
        peer,
        direction: verb,
        bytes: p.done,
        total: p.total,
        rate: Math.round(p.rate),
        stalled: Math.floor(p.stalledMs / 1000),
      });
    } else if (out.live) {
      if (!force && now - lastShown < 100) return;
      lastShown = now;
      out.live.show(p.bar());
    } else {
      const stalled = p.stalledMs;
      if (stalled > 0) {
        const step = Math.floor(stalled / STALL_LINE_MS);
        if (step === lastStallLine) return;
        lastStallLine = step;
      } else {
        lastStallLine = 0;
        if (p.moved === lastLineMoved || now - lastShown < LINE_MS) return;
      }
      lastShown = now;
      lastLineMoved = p.moved;
      out.app(
        { event: "progress" },
        `${verb} ${formatBytes(p.done)} of ${formatBytes(p.total)} (${p.percent}%), ${p.pace()}`,
      );
    }
  };
  const stopTicker = () => {
    clearInterval(ticker);
    ticker = undefined;
  };
  return {
    update(done, total, moved) {
      if (!progress) {
        progress = new Progress(total);
        ticker = setInterval(() => show(true), TICK_MS);
      }
      progress.update(done, moved);
      show(false);
    },
    finish() {
      stopTicker();
      out.live?.clear();
      if (!progress) return undefined;
      return { seconds: (progress.now() - progress.started) / 1000, rate: progress.average };
    },
    breakLine() {
      stopTicker();
      out.live?.clear();
    },
  };
}

/** "1 file", "3 files". */
export function files(n: number): string {
  return n === 1 ? "1 file" : `${n} files`;
}

/** " in 4 s (48.2 MiB/s)" for the closing line of a transfer. */
export function took(t: { seconds: number; rate: number } | undefined): string {
  if (!t || t.seconds < 0.5) return "";
  const s = Math.round(t.seconds);
  const time = s < 120 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  return ` in ${time} (${formatBytes(t.rate)}/s)`;
}

/** `send` and `receive` exit with this when the transfer was declined or broken off. */
export const EXIT_TRANSFER = EXIT.transfer;

/**
 * How send and receive end on a failure: Ctrl-C is exit 130 (the sentence says what was kept);
 * a transfer error becomes one sentence (and an event) and EXIT_TRANSFER; anything else is not
 * ours to explain here and goes on up.
 */
export function transferFailed(out: AppOutput, bar: { breakLine(): void }, err: unknown): number {
  bar.breakLine();
  if (err instanceof TransferInterrupted) throw new InterruptedError(err.message);
  if (!(err instanceof TransferError)) throw err;
  out.app({ event: "error", message: err.message });
  out.stderr(`mailmeet: ${err.message}`);
  return EXIT_TRANSFER;
}
