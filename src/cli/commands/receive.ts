import { join, resolve } from "node:path";
import { type OfferSummary, receiveFiles } from "../../apps/file_receive.ts";
import { FILE_PROTOCOL, formatBytes } from "../../apps/file_proto.ts";
import type { AppEvent } from "../../apps/app_host.ts";
import type { MuxStream } from "../../net/mux.ts";
import { UsageError } from "../errors.ts";
import type { ExtraNames, ExtraOption, Resolved } from "../options.ts";
import {
  aborted,
  appOutput,
  files,
  progressReporter,
  runApp,
  took,
  transferFailed,
  writeStderr,
} from "./app_common.ts";
import { describeFsError } from "../../apps/file_send.ts";

export const RECEIVE_HELP = `mailmeet receive [--out DIR] [--yes] [--force] — take files a peer sends

Meets your group like \`mailmeet join\` (same options) and waits for a peer's \`mailmeet send\`.
Shows the offered names and sizes and asks before accepting (--yes accepts without asking; when
not on a terminal the answer is read as a line from stdin). Files go into DIR (default: the
current folder) and nowhere else: names with "..", absolute paths and symbolic links on the way
are refused, and an existing file is never overwritten unless --force. Each file is written as
.NAME.mailmeet-part and renamed only after its SHA-256 matched the sender's; if the transfer
breaks off the partial file stays, and the sender's retry resumes from it.
Exit codes: 0 received · 3 nobody connected within --timeout · 4 refused, declined or broken off.

Example:
  mailmeet receive --out ~/Downloads --address bob@isp-b.test --via lan-host@game.test --key-file group.key`;

export const RECEIVE_EXTRAS = [
  { name: "out", kind: "string", arg: "DIR", help: "where the files go (default: the current folder)" },
  { name: "yes", kind: "boolean", short: "y", help: "accept the offer without asking" },
  { name: "force", kind: "boolean", help: "overwrite files that already exist" },
] as const satisfies readonly ExtraOption[];

function describe(e: AppEvent, took = ""): string | undefined {
  switch (e.event) {
    case "accepted":
      return `receiving ${files(e.files as number)}, ${formatBytes(e.bytes as number)}, from ${e.peer}`;
    case "resume":
      return `resuming ${e.path} at ${formatBytes(e.offset as number)}`;
    case "restart":
      return `starting ${e.path} over: ${e.reason}`;
    case "file_done":
      return `${e.path}: ${formatBytes(e.bytes as number)}, SHA-256 verified`;
    case "received":
      return `received ${files(e.files as number)}, ${
        formatBytes(e.bytes as number)
      }, from ${e.peer}${took} into ${e.out}`;
    default:
      return undefined;
  }
}

/** The first line of stdin (null at end of input). */
async function readAnswer(): Promise<string | null> {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text === "" ? null : text;
      text += value;
      const nl = text.indexOf("\n");
      if (nl >= 0) return text.slice(0, nl);
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * The --out folder, made if missing and proven writable now: a folder that cannot take the files
 * fails before the meeting and the accept, not after.
 */
async function prepareOut(root: string): Promise<void> {
  const fail = (why: string) => new UsageError(`Cannot receive into --out ${root}: ${why}.`);
  try {
    await Deno.mkdir(root, { recursive: true });
  } catch (err) {
    throw fail(describeFsError(err));
  }
  const info = await Deno.lstat(root).catch((err) => {
    throw fail(describeFsError(err));
  });
  if (!info.isDirectory) throw fail("it is not a folder");
  const probe = join(root, `.mailmeet-write-test-${crypto.randomUUID().slice(0, 8)}`);
  try {
    await Deno.writeFile(probe, new Uint8Array(), { createNew: true });
  } catch (err) {
    throw fail(
      err instanceof Deno.errors.PermissionDenied
        ? "this user may not write there; pick a folder you can write to"
        : describeFsError(err),
    );
  }
  await Deno.remove(probe).catch(() => {});
}

export async function receiveCommand(r: Resolved<ExtraNames<typeof RECEIVE_EXTRAS>>): Promise<number> {
  const out = appOutput(r);
  const emit = (e: AppEvent, took = "") => out.app(e, describe(e, took));
  const root = resolve(typeof r.extra.out === "string" ? r.extra.out : ".");
  await prepareOut(root);
  const yes = r.extra.yes === true;
  const force = r.extra.force === true;
  const offered = Promise.withResolvers<{ stream: MuxStream; peer: string }>();
  let busy = false;
  return await runApp(r, out.node, {
    protocols: [FILE_PROTOCOL],
    stream: (s, m) => {
      if (busy) return s.reset("this peer is busy with another transfer; try again when it is done");
      busy = true;
      offered.resolve({ stream: s, peer: m.user });
    },
  }, async (run) => {
    const status = run.status;
    try {
      status.setApp({ app: "receive", out: root, state: "waiting", bytes: 0, total: 0 });
      await run.firstLink();
      out.app({ event: "waiting_offer", out: root }, `waiting for a peer to send files into ${root}`);
      const got = await run.waitFor(offered.promise, {
        interrupted: "Interrupted before anyone offered files; nothing was received.",
        untimed: true,
      });
      const bar = progressReporter(out, "received", got.peer);
      const decide = async (o: OfferSummary): Promise<boolean> => {
        const lines = o.entries.map((e) =>
          `  ${e.dir ? `${e.path}/` : e.path}${e.dir ? "" : `  ${formatBytes(e.size!)}`}`
        );
        out.app(
          { event: "offer", peer: o.peer, entries: o.entries, bytes: o.total, resumable: o.resumable },
          `${o.peer} offers ${files(o.entries.filter((e) => !e.dir).length)}, ${formatBytes(o.total)}${
            o.resumable > 0 ? ` (${formatBytes(o.resumable)} already here from an earlier try)` : ""
          }:\n${lines.join("\n")}`,
        );
        status.setApp({
          app: "receive",
          out: root,
          peer: o.peer,
          state: "offered",
          bytes: 0,
          total: o.total,
        });
        if (yes) return true;
        const asking = Deno.stdin.isTerminal();
        if (asking) Deno.stderr.writeSync(new TextEncoder().encode("Accept? [y/N] "));
        // Ctrl-C at the question ends it at once (the sender is told), not at the next Enter.
        const answer = await Promise.race([readAnswer(), aborted(run.signal).then(() => null)]);
        if (run.signal.aborted) {
          if (asking) writeStderr("");
          return false;
        }
        return answer !== null && /^\s*y(es)?\s*$/i.test(answer);
      };
      try {
        const res = await receiveFiles(got.stream, got.peer, {
          root,
          force,
          decide,
          emit: (e) => {
            if (e.event === "accepted") {
              status.setApp({
                app: "receive",
                out: root,
                peer: got.peer,
                state: "receiving",
                bytes: 0,
                total: e.bytes as number,
              });
            }
            emit(e);
          },
          onProgress: (done, total, moved) => {
            bar.update(done, total, moved);
            status.progress(done);
          },
          signal: run.signal,
        });
        const t = bar.finish();
        status.setApp(undefined);
        emit({
          event: "received",
          peer: got.peer,
          files: res.files,
          bytes: res.bytes,
          resumed: res.resumed,
          out: root,
        }, took(t));
        return 0;
      } catch (err) {
        return transferFailed(out, bar, err);
      }
    } finally {
      // The node's links close when it stops.
    }
  }, { beforeLink: "Interrupted before any peer connected; nothing was received.", background: true });
}
