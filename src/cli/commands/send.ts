import { collectEntries, sendFiles } from "../../apps/file_send.ts";
import { formatBytes, TransferError } from "../../apps/file_proto.ts";
import type { AppEvent, MemberMux } from "../../apps/app_host.ts";
import { num } from "../context.ts";
import { UsageError } from "../errors.ts";
import type { ExtraNames, ExtraOption, Resolved } from "../options.ts";
import { appOutput, files, progressReporter, runApp, took, transferFailed } from "./app_common.ts";

export const SEND_HELP = `mailmeet send PATH… --to ID — send files and folders to one peer

Meets your group like \`mailmeet join\` (same options), waits for a link to the peer with user id
ID (within --timeout), and offers it the files: it sees names and sizes and accepts (it runs
\`mailmeet receive\`). A progress bar shows on a terminal, plain progress lines otherwise. Each file
is checked with SHA-256 at the other end. If a transfer breaks off, run the same command again:
it resumes where it stopped. Symbolic links inside folders are skipped.
Exit codes: 0 sent · 3 the peer did not connect in time · 4 declined or broken off.

Example:
  mailmeet send holiday/ notes.txt --to bob --address ann@isp-a.test --via lan-host@game.test --key-file group.key`;

export const SEND_EXTRAS = [
  { name: "to", kind: "string", arg: "ID", help: "who gets the files (their user id)" },
] as const satisfies readonly ExtraOption[];

function describe(e: AppEvent, took = ""): string | undefined {
  switch (e.event) {
    case "offered":
      return `offered ${files(e.files as number)}, ${
        formatBytes(e.bytes as number)
      }, to ${e.peer}; waiting for an answer`;
    case "accepted":
      return `${e.peer} accepted`;
    case "resume":
      return `resuming ${e.path} at ${formatBytes(e.offset as number)}`;
    case "skipped":
      return `skipped ${e.path}: ${e.reason}`;
    case "sent":
      return `sent ${files(e.files as number)}, ${
        formatBytes(e.bytes as number)
      }, to ${e.peer}${took}; checked by SHA-256`;
    default:
      return undefined;
  }
}

export async function sendCommand(r: Resolved<ExtraNames<typeof SEND_EXTRAS>>): Promise<number> {
  const to = typeof r.extra.to === "string" ? r.extra.to : undefined;
  if (!to) throw new UsageError("Say who gets the files with --to USER-ID.");
  const paths = r.positionals;
  if (paths.length === 0) {
    throw new UsageError("Name the files or folders to send: mailmeet send PATH… --to ID.");
  }
  const out = appOutput(r);
  /** `took` goes into the readable line only (" in 4 s (48.2 MiB/s)"). */
  const emit = (e: AppEvent, took = "") => out.app(e, describe(e, took));
  let entries;
  try {
    entries = await collectEntries(paths, emit);
  } catch (err) {
    if (err instanceof TransferError) throw new UsageError(err.message);
    throw err;
  }
  const total = entries.reduce((n, e) => n + (e.size ?? 0), 0);
  const linked = Promise.withResolvers<MemberMux>();
  return await runApp(r, out.node, {
    added: (m) => {
      if (m.user === to) linked.resolve(m.mux);
    },
  }, async (run) => {
    try {
      run.status.setApp({ app: "send", peer: to, state: "waiting", bytes: 0, total });
      const mux = await run.waitFor(linked.promise, {
        interrupted: `Interrupted before ${to} connected; nothing was sent.`,
        timeout: ({ linked, answered }) =>
          linked || answered
            ? `${to} did not connect within ${
              Math.round(num(r, "timeout") / 1000)
            } s; is it running \`mailmeet receive\` with the same --via?`
            : undefined,
      });
      const bar = progressReporter(out, "sent", to);
      run.status.setApp({ app: "send", peer: to, state: "offering", bytes: 0, total });
      try {
        const res = await sendFiles(mux, entries, (e) => {
          if (e.event === "accepted") {
            run.status.setApp({ app: "send", peer: to, state: "sending", bytes: 0, total });
          }
          emit(e);
        }, (done, all, moved) => {
          bar.update(done, all, moved);
          run.status.progress(done);
        }, run.signal);
        const t = bar.finish();
        run.status.setApp(undefined);
        emit(
          { event: "sent", peer: to, files: res.files, bytes: res.bytes, resumed: res.resumed },
          took(t),
        );
        return 0;
      } catch (err) {
        return transferFailed(out, bar, err);
      }
    } finally {
      // The node's links close when it stops.
    }
  }, { interrupted: "Interrupted; nothing more was sent.", background: true });
}
