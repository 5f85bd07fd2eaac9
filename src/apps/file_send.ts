/**
 * Sending files and folders (`mailmeet send PATH… --to ID`): offer names and sizes, wait for the
 * answer, then stream each file from where the receiver already is, with its SHA-256.
 */
import { createHash, type Hash } from "node:crypto";
import { basename, join } from "node:path";
import type { MuxStream } from "../net/mux.ts";
import {
  type Answer,
  failureReason,
  FILE_PROTOCOL,
  formatBytes,
  header,
  M_ANSWER,
  M_DATA,
  M_END,
  M_FILE,
  M_OFFER,
  M_RESULT,
  MessageReader,
  type Offer,
  type OfferEntry,
  SENDER_STOPPED,
  TransferError,
  TransferInterrupted,
  writeJson,
} from "./file_proto.ts";
import type { AppSink, MemberMux } from "./app_host.ts";

/** File reads (and DATA messages) are this large: few reads, few AEAD calls per byte. */
const READ_SIZE = 1024 * 1024;

export interface LocalEntry extends OfferEntry {
  /** Where it is on this machine (files only). */
  source?: string;
}

/** The entries to offer for the paths given; symbolic links inside folders are skipped (reported). */
export async function collectEntries(paths: readonly string[], emit: AppSink): Promise<LocalEntry[]> {
  const out: LocalEntry[] = [];
  const tops = new Set<string>();
  const walk = async (dir: string, name: string) => {
    out.push({ path: name, dir: true });
    const children: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(dir)) children.push(e);
    children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of children) {
      const src = join(dir, e.name);
      const rel = `${name}/${e.name}`;
      if (e.isSymlink) {
        emit({ event: "skipped", path: rel, reason: "a symbolic link" });
      } else if (e.isDirectory) {
        await walk(src, rel);
      } else if (e.isFile) {
        out.push({ path: rel, size: (await Deno.stat(src)).size, source: src });
      } else {
        emit({ event: "skipped", path: rel, reason: "not a regular file" });
      }
    }
  };
  for (const p of paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(p);
    } catch (err) {
      throw new TransferError(`Cannot send ${p}: ${describeFsError(err)}.`, { cause: err });
    }
    const name = basename(p.replace(/[/\\]+$/, "")) || "root";
    if (tops.has(name)) {
      throw new TransferError(`Two of the paths are both named "${name}"; send them apart.`);
    }
    tops.add(name);
    if (info.isDirectory) await walk(p, name);
    else if (info.isFile) out.push({ path: name, size: info.size, source: p });
    else throw new TransferError(`Cannot send ${p}: it is not a file or a folder.`);
  }
  return out;
}

export function describeFsError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or folder";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  const code = (err as { code?: string }).code;
  if (code === "ENOSPC" || /No space left/i.test(String((err as Error)?.message))) return "the disk is full";
  if (code === "EDQUOT") return "the disk quota is used up";
  return err instanceof Error ? err.message.replace(/\.$/, "") : String(err);
}

export interface SendResult {
  files: number;
  bytes: number;
  /** Bytes skipped because the receiver already held them. */
  resumed: number;
}

/**
 * Runs one transfer on a new stream of `mux`. Emits offer/answer/progress/file_done events;
 * throws TransferError with one sentence when declined or broken off, and TransferInterrupted when
 * `signal` aborts (the receiver is told, and keeps what arrived for a resume).
 * `onProgress(sent, total, moved)`: `sent` counts bytes the receiver holds, `moved` only those
 * that travelled in this run (a resume skips the rest).
 */
export async function sendFiles(
  mux: MemberMux,
  entries: readonly LocalEntry[],
  emit: AppSink,
  onProgress: (sent: number, total: number, moved: number) => void,
  signal?: AbortSignal,
): Promise<SendResult> {
  const total = entries.reduce((n, e) => n + (e.size ?? 0), 0);
  const stream = mux.open(FILE_PROTOCOL);
  const reader = new MessageReader(stream);
  const peer = mux.peer;
  let sent = 0;
  let resumed = 0;
  let accepted = false;
  // Ctrl-C: the reset wakes whatever waits on the stream, and tells the receiver why.
  const stop = () => stream.reset(SENDER_STOPPED);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    if (signal?.aborted) throw new TransferError(SENDER_STOPPED);
    const offer: Offer = {
      entries: entries.map(({ path, size, dir }) => (dir ? { path, dir } : { path, size })),
      total,
    };
    await writeJson(stream, M_OFFER, offer);
    emit({ event: "offered", peer, files: entries.filter((e) => !e.dir).length, bytes: total });
    const m = await reader.next();
    if (m === null || m.kind !== M_ANSWER) throw new TransferError(`${peer} did not answer the offer.`);
    const answer = await reader.json<Answer>(m.len);
    if (!answer.accept) {
      const why = typeof answer.reason === "string" ? answer.reason.replace(/[.\s]+$/, "") : "";
      throw new TransferError(`${peer} declined${why ? `: ${why}` : ""}.`);
    }
    accepted = true;
    emit({ event: "accepted", peer });

    // Results come back while later files are still going out.
    const results = (async () => {
      const failures: string[] = [];
      let ok = 0;
      for (;;) {
        const r = await reader.next();
        if (r === null) break;
        if (r.kind !== M_RESULT) throw new TransferError(`${peer} sent an unexpected message.`);
        const res = await reader.json<{ i: number; ok: boolean; error?: string }>(r.len);
        if (res.ok) {
          ok++;
          emit({ event: "file_done", peer, path: entries[res.i]?.path });
        } else failures.push(res.error ?? `${entries[res.i]?.path} failed`);
      }
      return { ok, failures };
    })();
    results.catch(() => {});

    let files = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (e.dir || e.source === undefined) continue;
      files++;
      const size = e.size ?? 0;
      const have = answer.have?.[String(i)];
      let file: Deno.FsFile;
      try {
        file = await Deno.open(e.source, { read: true });
      } catch (err) {
        throw new TransferError(`Cannot read ${e.source}: ${describeFsError(err)}.`, { cause: err });
      }
      try {
        let hash = createHash("sha256");
        let offset = 0;
        if (have && have.offset > 0 && have.offset <= size) {
          // Resume only if our file starts with exactly the bytes the receiver holds.
          await hashPrefix(file, hash, have.offset);
          if (hash.copy().digest("hex") === have.sha256) {
            offset = have.offset;
          } else {
            hash = createHash("sha256");
            await file.seek(0, Deno.SeekMode.Start);
          }
        }
        await writeJson(stream, M_FILE, { i, offset });
        if (offset > 0) {
          resumed += offset;
          sent += offset;
          emit({ event: "resume", peer, path: e.path, offset });
          onProgress(sent, total, sent - resumed);
        }
        await sendBody(file, hash, size - offset, e.source, stream, (n) => {
          sent += n;
          onProgress(sent, total, sent - resumed);
        });
        await writeJson(stream, M_END, { i, sha256: hash.digest("hex") });
      } finally {
        file.close();
      }
    }
    stream.closeWrite();
    const { ok, failures } = await results;
    if (failures.length > 0) {
      throw new TransferError(`${peer} could not take every file: ${failures.join("; ")}`);
    }
    if (ok < files) throw new TransferError(`${peer} confirmed ${ok} of ${files} files.`);
    await stream.done.catch(() => {});
    return { files, bytes: total, resumed };
  } catch (err) {
    if (signal?.aborted) {
      stream.reset(SENDER_STOPPED);
      throw new TransferInterrupted(
        !accepted
          ? `Interrupted before ${peer} accepted; nothing was sent.`
          : `Interrupted after sending ${formatBytes(sent)} of ${
            formatBytes(total)
          } to ${peer}; run the same command again to resume.`,
      );
    }
    stream.reset(err instanceof Error ? err.message : String(err));
    throw asTransferError(err, peer, accepted ? { sent, total } : undefined);
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

async function hashPrefix(file: Deno.FsFile, hash: Hash, n: number): Promise<void> {
  const buf = new Uint8Array(READ_SIZE);
  let left = n;
  while (left > 0) {
    const got = await file.read(buf.subarray(0, Math.min(buf.length, left)));
    if (got === null) throw new TransferError("The file got shorter while it was being sent.");
    hash.update(buf.subarray(0, got));
    left -= got;
  }
}

/** Read buffers in rotation: a buffer is read into again only once the link took what it held. */
const READ_BUFFERS = 4;

async function sendBody(
  file: Deno.FsFile,
  hash: Hash,
  length: number,
  source: string,
  stream: MuxStream,
  onSent: (n: number) => void,
): Promise<void> {
  const bufs = Array.from({ length: Math.min(READ_BUFFERS, Math.ceil(length / READ_SIZE)) }, () => ({
    buf: new Uint8Array(READ_SIZE),
    free: Promise.resolve(),
  }));
  let left = length;
  for (let k = 0; left > 0; k++) {
    const slot = bufs[k % bufs.length];
    await slot.free;
    let got: number | null;
    try {
      // Synchronous for the reason file_receive.ts writes synchronously: the async read's thread hop
      // per MiB cost more CPU than the read itself. The loop still yields at every stream write.
      got = file.readSync(slot.buf.subarray(0, Math.min(READ_SIZE, left)));
    } catch (err) {
      throw new TransferError(`Cannot read ${source}: ${describeFsError(err)}.`, { cause: err });
    }
    if (got === null) throw new TransferError(`${source} got shorter while it was being sent.`);
    const chunk = slot.buf.subarray(0, got);
    hash.update(chunk);
    await stream.write(header(M_DATA, got));
    await stream.write(chunk);
    slot.free = stream.sent(stream.written);
    left -= got;
    onSent(got);
  }
}

function asTransferError(err: unknown, peer: string, at?: { sent: number; total: number }): TransferError {
  if (err instanceof TransferError) return err;
  const why = failureReason(err);
  if (!at) {
    return new TransferError(`${peer} did not answer the offer (${why}); nothing was sent.`, { cause: err });
  }
  return new TransferError(
    `The transfer to ${peer} broke off after ${formatBytes(at.sent)} of ${
      formatBytes(at.total)
    } (${why}); run the same command again once ${peer} runs \`mailmeet receive\`: it resumes where it stopped.`,
    { cause: err },
  );
}
