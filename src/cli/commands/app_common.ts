/**
 * What chat, send, receive and tunnel share: rendezvous exactly as `join` does (startNode), wait
 * for a first link within --timeout, stop on Ctrl-C, and print app events beside the node's.
 */
import type { AppEvent } from "../../apps/links.ts";
import { formatBytes, Progress, TransferError } from "../../apps/file_proto.ts";
import type { NetPeerLink } from "../../net/peer_link.ts";
import type { EventSink } from "../../roles/events.ts";
import { flag, num } from "../context.ts";
import { NoPeerError, UsageError } from "../errors.ts";
import type { Resolved } from "../options.ts";
import { eventSink } from "../output.ts";
import { type RunningNode, startNode } from "../node.ts";
import { interruptSignal } from "../signals.ts";

export interface AppOutput {
  /** The node's events (rendezvous). */
  node: EventSink;
  /** An app event: with --json one object per line on stdout, else `text` (if any) as a line. */
  app: (e: AppEvent, text?: string) => void;
  json: boolean;
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
  const node = eventSink({
    json,
    quiet,
    verbose: flag(r, "verbose"),
    write: json || nodeTo === "stdout" ? writeStdout : writeStderr,
  });
  return {
    json,
    node,
    app: (e, text) => {
      if (json) writeStdout(JSON.stringify({ time: new Date().toISOString(), ...e }));
      else if (text !== undefined && !(quiet && e.event !== "error")) writeStdout(text);
    },
  };
}

export interface AppRun {
  node: RunningNode;
  /** Aborted on Ctrl-C / SIGTERM, or when the command ends. */
  signal: AbortSignal;
  /**
   * Resolves true once a first link is up, false if interrupted first; throws NoPeerError
   * (exit 3) when --timeout passes with nobody linked.
   */
  firstLink(): Promise<boolean>;
}

export async function runApp(
  r: Resolved,
  events: EventSink,
  onLink: (link: NetPeerLink) => void,
  body: (run: AppRun) => Promise<number>,
): Promise<number> {
  using stop = interruptSignal();
  const ctl = new AbortController();
  stop.signal.addEventListener("abort", () => ctl.abort(), { once: true });
  await using node = await startNode(r, events, onLink, ctl.signal);
  const firstLink = async () => {
    const timeoutMs = num(r, "timeout");
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    try {
      const first = await Promise.race([
        node.peer.firstLink.then(() => "link" as const),
        new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), timeoutMs)),
        new Promise<"stop">((resolve) => {
          onAbort = () => resolve("stop");
          if (ctl.signal.aborted) resolve("stop");
          else ctl.signal.addEventListener("abort", onAbort, { once: true });
        }),
        node.inboxLoop.then(() => "stop" as const),
      ]);
      if (first === "timeout") {
        // Still waiting for the mail server at the deadline: that is the reason (exit 2), not the peers.
        const mail = node.mailError();
        if (mail) throw mail;
        throw new NoPeerError(
          `No peer connected within ${Math.round(timeoutMs / 1000)} s; try again later or check --via.`,
        );
      }
      return first === "link";
    } finally {
      clearTimeout(timer);
      if (onAbort) ctl.signal.removeEventListener("abort", onAbort);
    }
  };
  try {
    return await body({ node, signal: ctl.signal, firstLink });
  } finally {
    ctl.abort();
  }
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

/**
 * Progress of a transfer: a bar redrawn in place on a terminal, a plain line every second
 * otherwise, and with --json a "progress" event twice a second.
 */
export function progressReporter(out: AppOutput, verb: "sent" | "received", peer: string) {
  const tty = !out.json && Deno.stdout.isTerminal();
  let progress: Progress | null = null;
  let drawn = false;
  const show = (final: boolean) => {
    const p = progress!;
    if (out.json) {
      out.app({
        event: "progress",
        peer,
        direction: verb,
        bytes: p.done,
        total: p.total,
        rate: Math.round(p.rate),
      });
    } else if (tty) {
      Deno.stdout.writeSync(new TextEncoder().encode(`\r${p.bar()}\x1b[K${final ? "\n" : ""}`));
      drawn = !final;
    } else {
      const pct = p.total > 0 ? Math.floor((p.done / p.total) * 100) : 100;
      out.app(
        { event: "progress" },
        `${verb} ${formatBytes(p.done)} of ${formatBytes(p.total)} (${pct}%), ${formatBytes(p.rate)}/s`,
      );
    }
  };
  return {
    update(done: number, total: number) {
      progress ??= new Progress(total, undefined, done);
      progress.done = done;
      if (progress.due(out.json ? 500 : tty ? 100 : 1000)) show(false);
    },
    finish() {
      if (progress) show(true);
    },
    /** Ends the bar's line before other output. */
    breakLine() {
      if (drawn) Deno.stdout.writeSync(new TextEncoder().encode("\n"));
      drawn = false;
    },
  };
}

/** `send` and `receive` exit with this when the transfer was declined or broken off. */
export const EXIT_TRANSFER = 4;

/**
 * How send and receive end on a failure: a transfer error becomes one sentence (and an event) and
 * EXIT_TRANSFER; anything else is not ours to explain here and goes on up.
 */
export function transferFailed(out: AppOutput, bar: { breakLine(): void }, err: unknown): number {
  bar.breakLine();
  if (!(err instanceof TransferError)) throw err;
  out.app({ event: "error", message: err.message });
  writeStderr(`mailmeet: ${err.message}`);
  return EXIT_TRANSFER;
}
