import { resolve } from "node:path";
import { type OfferSummary, receiveFiles } from "../../apps/file_receive.ts";
import { FILE_PROTOCOL, formatBytes } from "../../apps/file_proto.ts";
import type { AppEvent } from "../../apps/links.ts";
import type { MuxStream } from "../../net/mux.ts";
import { UsageError } from "../errors.ts";
import type { ExtraOption, Resolved } from "../options.ts";
import { aborted, appOutput, progressReporter, runApp, transferFailed } from "./app_common.ts";

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

export const RECEIVE_EXTRAS: ExtraOption[] = [
  { name: "out", kind: "string" },
  { name: "yes", kind: "boolean", short: "y" },
  { name: "force", kind: "boolean" },
];

function describe(e: AppEvent): string | undefined {
  switch (e.event) {
    case "accepted":
      return `receiving ${e.files} file(s), ${formatBytes(e.bytes as number)}, from ${e.peer}`;
    case "resume":
      return `resuming ${e.path} at ${formatBytes(e.offset as number)}`;
    case "restart":
      return `starting ${e.path} over: ${e.reason}`;
    case "file_done":
      return `${e.path}: ${formatBytes(e.bytes as number)}, SHA-256 verified`;
    case "received":
      return `received ${e.files} file(s), ${formatBytes(e.bytes as number)}, from ${e.peer} into ${e.out}`;
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

export async function receiveCommand(r: Resolved): Promise<number> {
  const out = appOutput(r);
  const emit = (e: AppEvent) => out.app(e, describe(e));
  const root = resolve(typeof r.extra.out === "string" ? r.extra.out : ".");
  try {
    await Deno.mkdir(root, { recursive: true });
    const info = await Deno.lstat(root);
    if (!info.isDirectory) throw new UsageError(`--out ${root} is not a folder.`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`Cannot use --out ${root}: ${(err as Error).message}.`);
  }
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
    try {
      if (!(await run.firstLink())) return 0;
      out.app({ event: "waiting_offer", out: root }, `waiting for a peer to send files into ${root}`);
      const got = await Promise.race([offered.promise, aborted(run.signal).then(() => null)]);
      if (got === null) return 0;
      const bar = progressReporter(out, "received", got.peer);
      const decide = async (o: OfferSummary): Promise<boolean> => {
        const lines = o.entries.map((e) =>
          `  ${e.dir ? `${e.path}/` : e.path}${e.dir ? "" : `  ${formatBytes(e.size!)}`}`
        );
        out.app(
          { event: "offer", peer: o.peer, entries: o.entries, bytes: o.total, resumable: o.resumable },
          `${o.peer} offers ${o.entries.filter((e) => !e.dir).length} file(s), ${formatBytes(o.total)}${
            o.resumable > 0 ? ` (${formatBytes(o.resumable)} already here from an earlier try)` : ""
          }:\n${lines.join("\n")}`,
        );
        if (yes) return true;
        if (Deno.stdin.isTerminal()) Deno.stderr.writeSync(new TextEncoder().encode("Accept? [y/N] "));
        const answer = await readAnswer();
        return answer !== null && /^\s*y(es)?\s*$/i.test(answer);
      };
      try {
        const res = await receiveFiles(got.stream, got.peer, {
          root,
          force,
          decide,
          emit: (e) => {
            bar.breakLine();
            emit(e);
          },
          onProgress: (done, total) => bar.update(done, total),
        });
        bar.finish();
        emit({
          event: "received",
          peer: got.peer,
          files: res.files,
          bytes: res.bytes,
          resumed: res.resumed,
          out: root,
        });
        return 0;
      } catch (err) {
        return transferFailed(out, bar, err);
      }
    } finally {
      // The node's links close when it stops.
    }
  });
}
