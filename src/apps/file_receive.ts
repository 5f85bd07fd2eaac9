/**
 * Receiving files and folders (`mailmeet receive`): check every offered name, show names and
 * sizes, and on acceptance write each file into `.NAME.mailmeet-part` beside its final name; it
 * takes the final name only after its SHA-256 matched the sender's. A transfer that breaks off
 * leaves the partial file for the next try to resume from.
 */
import { createHash, type Hash } from "node:crypto";
import { sep as SEP } from "node:path";
import type { MuxStream } from "../net/mux.ts";
import { existingTarget, prepareTarget, safeComponents, UnsafePathError } from "./file_paths.ts";
import {
  type Answer,
  failureReason,
  formatBytes,
  M_ANSWER,
  M_DATA,
  M_END,
  M_FILE,
  M_OFFER,
  M_RESULT,
  MessageReader,
  type Offer,
  RECEIVER_STOPPED,
  TransferError,
  TransferInterrupted,
  writeJson,
} from "./file_proto.ts";
import { describeFsError } from "./file_send.ts";
import type { AppSink } from "./app_host.ts";

/** The offer was refused (unsafe or existing names) or declined: answered cleanly, no reset. */
class Declined extends TransferError {}

/** The sender's side of the stream ended before every file arrived. */
class BrokeOff extends Error {}

export interface OfferSummary {
  peer: string;
  entries: { path: string; size?: number; dir?: boolean }[];
  total: number;
  /** Bytes already here from an earlier, interrupted try. */
  resumable: number;
}

export interface ReceiveOptions {
  /** The target folder (exists; absolute). */
  root: string;
  force: boolean;
  /** Accept (true) or decline (false) an offer that passed the checks. */
  decide: (offer: OfferSummary) => Promise<boolean>;
  emit: AppSink;
  /** `done` counts what the target holds, `moved` only what travelled in this run. */
  onProgress: (done: number, total: number, moved: number) => void;
  /** Aborts the transfer (Ctrl-C): the sender is told, what arrived is kept for a resume. */
  signal?: AbortSignal;
}

export interface ReceiveResult {
  files: number;
  bytes: number;
  resumed: number;
}

interface Planned {
  parts: string[];
  size: number;
  dir: boolean;
  /** What an earlier try left. */
  have?: { offset: number; sha256: string; hash: Hash };
  done: boolean;
}

async function hashFile(path: string, upTo: number): Promise<Hash> {
  const hash = createHash("sha256");
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1024 * 1024);
  let left = upTo;
  while (left > 0) {
    const n = await f.read(buf.subarray(0, Math.min(buf.length, left)));
    if (n === null) break;
    hash.update(buf.subarray(0, n));
    left -= n;
  }
  return hash;
}

/** Checks an offer: every name safe, nothing overwritten without --force. Returns the plan or a reason to decline. */
async function plan(offer: Offer, root: string, force: boolean): Promise<Planned[] | string> {
  if (!offer || !Array.isArray(offer.entries) || offer.entries.length === 0) {
    return "the offer lists no files";
  }
  const seen = new Set<string>();
  const out: Planned[] = [];
  for (const e of offer.entries) {
    let parts: string[];
    try {
      parts = safeComponents(e?.path);
    } catch (err) {
      if (err instanceof UnsafePathError) return err.message;
      throw err;
    }
    const key = parts.join("/");
    if (seen.has(key)) return `the name "${key}" is offered twice`;
    seen.add(key);
    const dir = e.dir === true;
    const size = dir ? 0 : e.size;
    if (!dir && (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)) {
      return `the size of "${key}" is not a byte count`;
    }
    // Reasons go back to the sender: they name the offered name, never where this side keeps files.
    let target;
    try {
      target = await prepareTarget(root, dir ? [...parts, "_"] : parts, { createDirs: false });
      const final = dir ? target.path.slice(0, -2) : target.path;
      const info = await existingTarget(final);
      if (info && dir && !info.isDirectory) return `"${key}" exists and is not a folder`;
      if (info && !dir) {
        if (info.isDirectory) return `"${key}" exists and is a folder`;
        if (!force) return `"${key}" already exists (--force overwrites it)`;
      }
    } catch (err) {
      if (err instanceof UnsafePathError) return withoutRoot(err.message, root);
      throw err;
    }
    const p: Planned = { parts, size: size as number, dir, done: false };
    if (!dir) {
      const part = await existingTarget(target.part).catch((err) => {
        if (err instanceof UnsafePathError) return null;
        throw err;
      });
      if (part?.isFile && part.size > 0 && part.size <= p.size) {
        const hash = await hashFile(target.part, part.size);
        p.have = { offset: part.size, sha256: hash.copy().digest("hex"), hash };
      }
    }
    out.push(p);
  }
  return out;
}

/** A message about a path under `root`, naming it relative to root (the sender sees it). */
function withoutRoot(message: string, root: string): string {
  return message.split(`${root}${SEP}`).join("").replace(/\.$/, "");
}

/** Runs one transfer on a stream the sender opened. Throws TransferError (one sentence) when it fails or was declined. */
export async function receiveFiles(
  stream: MuxStream,
  peer: string,
  opts: ReceiveOptions,
): Promise<ReceiveResult> {
  const reader = new MessageReader(stream);
  let current: { file: Deno.FsFile; part: string; got: number } | null = null;
  let received = 0;
  let resumed = 0;
  let total = 0;
  const signal = opts.signal;
  // Ctrl-C: the reset wakes whatever waits on the stream, and tells the sender why.
  const stop = () => stream.reset(RECEIVER_STOPPED);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    const m = await reader.next();
    if (m === null || m.kind !== M_OFFER) {
      throw new TransferError(`${peer} opened a transfer but offered nothing.`);
    }
    const offer = await reader.json<Offer>(m.len);
    const planned = await plan(offer, opts.root, opts.force);
    if (typeof planned === "string") {
      await writeJson(stream, M_ANSWER, { accept: false, reason: planned } satisfies Answer);
      stream.closeWrite();
      throw new Declined(`Refused the offer from ${peer}: ${planned}.`);
    }
    total = planned.reduce((n, p) => n + p.size, 0);
    const resumable = planned.reduce((n, p) => n + (p.have?.offset ?? 0), 0);
    const summary: OfferSummary = {
      peer,
      entries: planned.map((
        p,
      ) => (p.dir ? { path: p.parts.join("/"), dir: true } : { path: p.parts.join("/"), size: p.size })),
      total,
      resumable,
    };
    if (signal?.aborted || !(await opts.decide(summary))) {
      await writeJson(stream, M_ANSWER, { accept: false, reason: "the receiver said no" } satisfies Answer);
      stream.closeWrite();
      throw new Declined(`Declined the offer from ${peer}.`);
    }
    for (const p of planned) {
      if (p.dir) {
        const { path } = await prepareTarget(opts.root, [...p.parts, "_"], { createDirs: true });
        await Deno.mkdir(path.slice(0, -2), { recursive: true });
      }
    }
    const have: Answer["have"] = {};
    planned.forEach((p, i) => {
      if (p.have) have[String(i)] = { offset: p.have.offset, sha256: p.have.sha256 };
    });
    await writeJson(stream, M_ANSWER, { accept: true, have } satisfies Answer);
    opts.emit({ event: "accepted", peer, files: planned.filter((p) => !p.dir).length, bytes: total });

    let hash: Hash | null = null;
    let index = -1;
    let target: { path: string; part: string } | null = null;
    for (;;) {
      const msg = await reader.next();
      if (msg === null) break;
      if (msg.kind === M_FILE) {
        const { i, offset } = await reader.json<{ i: number; offset: number }>(msg.len);
        const p = planned[i];
        if (!p || p.dir || p.done || current) throw new TransferError(`${peer} sent a file out of turn.`);
        if (offset !== 0 && offset !== p.have?.offset) {
          throw new TransferError(`${peer} resumed at a wrong offset.`);
        }
        index = i;
        target = await prepareTarget(opts.root, p.parts, { createDirs: true });
        await existingTarget(target.part);
        let file: Deno.FsFile;
        try {
          file = await Deno.open(target.part, { write: true, create: true, truncate: offset === 0 });
          if (offset > 0) {
            await file.truncate(offset);
            await file.seek(offset, Deno.SeekMode.Start);
          }
        } catch (err) {
          throw new TransferError(`Cannot write ${target.part}: ${describeFsError(err)}.`, { cause: err });
        }
        current = { file, part: target.part, got: offset };
        hash = offset > 0 ? p.have!.hash : createHash("sha256");
        if (offset > 0) {
          resumed += offset;
          received += offset;
          opts.emit({ event: "resume", peer, path: p.parts.join("/"), offset });
        } else if (p.have) {
          opts.emit({
            event: "restart",
            peer,
            path: p.parts.join("/"),
            reason: "the sender's file differs from the partial one",
          });
        }
        opts.onProgress(received, total, received - resumed);
      } else if (msg.kind === M_DATA) {
        if (!current || !hash) throw new TransferError(`${peer} sent data outside a file.`);
        const p = planned[index];
        if (current.got + msg.len > p.size) {
          throw new TransferError(`${peer} sent more than the size it offered.`);
        }
        let left = msg.len;
        while (left > 0) {
          const chunk = await reader.some(left);
          if (chunk === null) break;
          hash.update(chunk);
          try {
            // Synchronous on purpose: Deno's async file write hands every chunk to a blocking thread
            // (a dup of the descriptor, a copy, a wake-up), which for 1 GiB cost 1.5 s of extra CPU
            // and 20 MB of RSS; a write into the page cache takes well under a millisecond.
            let off = 0;
            while (off < chunk.length) off += current.file.writeSync(chunk.subarray(off));
          } catch (err) {
            throw new TransferError(`Cannot write ${target!.path}: ${describeFsError(err)}.`, { cause: err });
          }
          current.got += chunk.length;
          received += chunk.length;
          left -= chunk.length;
          opts.onProgress(received, total, received - resumed);
        }
        if (left > 0) break; // the stream ended inside DATA: reported below
      } else if (msg.kind === M_END) {
        const { i, sha256 } = await reader.json<{ i: number; sha256: string }>(msg.len);
        const p = planned[i];
        if (!current || i !== index || !hash) throw new TransferError(`${peer} ended a file out of turn.`);
        current.file.close();
        const { part, got } = current;
        current = null;
        const digest = hash.digest("hex");
        hash = null;
        const name = p.parts.join("/");
        if (got !== p.size || digest !== sha256) {
          await Deno.remove(part).catch(() => {});
          const error = got !== p.size
            ? `${name}: ${formatBytes(got)} arrived, ${formatBytes(p.size)} were offered`
            : `${name}: the SHA-256 does not match the sender's, so the partial file was removed`;
          await writeJson(stream, M_RESULT, { i, ok: false, error });
          throw new TransferError(`The file ${error}.`);
        }
        try {
          await Deno.rename(part, target!.path);
        } catch (err) {
          throw new TransferError(`Cannot move ${part} to ${target!.path}: ${describeFsError(err)}.`, {
            cause: err,
          });
        }
        p.done = true;
        opts.emit({ event: "file_done", peer, path: name, bytes: p.size, sha256: digest });
        await writeJson(stream, M_RESULT, { i, ok: true });
      } else {
        throw new TransferError(`${peer} sent a message this version does not understand.`);
      }
    }
    const missing = planned.filter((p) => !p.dir && !p.done);
    if (missing.length > 0) throw new BrokeOff(`${peer} stopped sending`);
    stream.closeWrite();
    await stream.done.catch(() => {});
    return { files: planned.filter((p) => !p.dir).length, bytes: total, resumed };
  } catch (err) {
    const part = current?.part;
    current?.file.close();
    current = null;
    if (err instanceof Declined) {
      await stream.done.catch(() => {}); // the answer reaches the sender before the stream ends
      throw err;
    }
    // One sentence: what happened, how far it got, where the partial file is, and what to do next.
    const how = `after ${formatBytes(received)} of ${formatBytes(total)}`;
    const kept = part ? `; what arrived is kept in ${part}` : "";
    if (signal?.aborted) {
      stream.reset(RECEIVER_STOPPED);
      throw new TransferInterrupted(
        received === 0 && !part
          ? `Interrupted before the transfer from ${peer} began; nothing was received.`
          : `Interrupted ${how} from ${peer}${kept}: run \`mailmeet receive\` again and have ${peer} send again to resume.`,
      );
    }
    if (err instanceof UnsafePathError) {
      stream.reset(err.message);
      throw new TransferError(err.message, { cause: err });
    }
    const next = `: run \`mailmeet receive\` again and have ${peer} send again${part ? " to resume" : ""}`;
    if (err instanceof TransferError) {
      // Our own finding (a bad hash, a message out of turn, a full disk): it says what happened.
      stream.reset(err.message.replace(/\.$/, ""));
      if (!part && received === 0) throw err;
      throw new TransferError(`${err.message.replace(/\.$/, "")}${kept}${next}.`, { cause: err });
    }
    const why = failureReason(err);
    stream.reset(why);
    throw new TransferError(`The transfer from ${peer} broke off ${how} (${why})${kept}${next}.`, {
      cause: err,
    });
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}
