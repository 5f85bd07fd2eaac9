/**
 * What a running node tells `mailmeet status`: a small JSON file per process in the data folder
 * (run/<pid>.json, owner-only), rewritten when something changes and on a heartbeat, removed on
 * exit. The node's own events feed it, so the roles need no hook of their own. A file whose
 * heartbeat stopped belongs to a node that died without cleaning up; `status` skips it.
 */
import { join } from "node:path";
import type { EventSink, NodeEvent } from "../roles/events.ts";
import { SECRET_DIR_MODE, SECRET_FILE_MODE } from "./config_file.ts";
import { statusDirFor } from "./paths.ts";

export const STATUS_VERSION = 1;
/** How often a quiet node still rewrites its file, so readers can tell it is alive. */
export const HEARTBEAT_MS = 5_000;
/** A file not rewritten for this long belongs to a node that is gone. */
export const STALE_MS = 3 * HEARTBEAT_MS;
/** A host's requests are coalesced: a burst of them costs one write. */
export const FLUSH_DELAY_MS = 200;

export interface LinkStatus {
  peer: string;
  address: string;
  direction: "out" | "in";
  since: string;
  /** How the link reaches the peer (absent in files of an older mailmeet). */
  path?: "direct" | "relay";
  transport?: "tcp" | "quic";
  kind?: string;
  rtt_ms?: number;
}

/** What the app on this node does (send, receive, tunnel, chat); `mailmeet status` shows it. */
export type AppStatus =
  | { app: "send"; peer: string; state: "waiting" | "offering" | "sending"; bytes: number; total: number }
  | {
    app: "receive";
    out: string;
    peer?: string;
    state: "waiting" | "offered" | "receiving";
    bytes: number;
    total: number;
  }
  | {
    app: "tunnel";
    side: "expose" | "local";
    proto: "TCP" | "UDP";
    port: number;
    peer?: string;
    open: number;
  }
  | { app: "chat"; room: string[] };

/** A peer the host listed that could not be reached (it may still dial us). */
export interface UnreachableStatus {
  peer: string;
  address: string;
  reason: string;
  since: string;
}

export interface StatusSnapshot {
  version: number;
  pid: number;
  command: string;
  address: string;
  user?: string;
  roles: string[];
  started: string;
  updated: string;
  listening?: { address: string; port: number; advertise: string };
  peers: LinkStatus[];
  /** When this node last mailed a request to its host(s), and when a reply came back. */
  last_request?: string;
  last_reply?: string;
  host?: {
    table?: string;
    table_size?: number;
    requests: number;
    replies: number;
    last_request?: string;
    last_reply?: string;
  };
  last_error?: string;
  /** Mails this node's account sent in the last 24 hours, against --mail-budget. */
  mail?: { sent_today: number; budget: number; paused_until?: string };
  app?: AppStatus;
  /** Members known from a host's reply that did not answer our dial. */
  unreachable?: UnreachableStatus[];
}

export interface StatusOptions {
  dir: string;
  command: string;
  address: string;
  user?: string;
  roles: string[];
  pid?: number;
  clock?: () => number;
}

export class NodeStatus implements Disposable {
  readonly path: string;
  /** Rows in the host's table, read when the file is written (set by whoever opened the table). */
  tableSize?: () => number;
  /** The node's mail budget, read when the file is written. */
  mailBudget?: { sent(): number; readonly limit: number; pausedUntil(): number | undefined };
  #snap: StatusSnapshot;
  #clock: () => number;
  #flushTimer?: ReturnType<typeof setTimeout>;
  #beat?: ReturnType<typeof setInterval>;
  #closed = false;
  #broken = false;

  constructor(readonly opts: StatusOptions) {
    this.#clock = opts.clock ?? Date.now;
    const pid = opts.pid ?? Deno.pid;
    this.path = join(opts.dir, `${pid}.json`);
    const now = new Date(this.#clock()).toISOString();
    this.#snap = {
      version: STATUS_VERSION,
      pid,
      command: opts.command,
      address: opts.address,
      user: opts.user,
      roles: [...opts.roles],
      started: now,
      updated: now,
      peers: [],
    };
    if (opts.roles.includes("host")) this.#snap.host = { requests: 0, replies: 0 };
  }

  /** Starts writing: once now, then on changes and on the heartbeat. */
  start(): this {
    this.write();
    const beat = setInterval(() => this.write(), HEARTBEAT_MS);
    // A status file must never keep a node alive that has nothing else to do.
    Deno.unrefTimer(beat);
    this.#beat = beat;
    return this;
  }

  /** What the app does now (undefined: nothing to show); written at once. */
  setApp(app: AppStatus | undefined): void {
    if (app === undefined) delete this.#snap.app;
    else this.#snap.app = app;
    this.write();
  }

  /** Bytes a transfer moved so far: kept for the next write (the heartbeat), not written per chunk. */
  progress(bytes: number): void {
    const app = this.#snap.app;
    if (app && (app.app === "send" || app.app === "receive")) app.bytes = bytes;
  }

  get snapshot(): StatusSnapshot {
    return structuredClone(this.#snap);
  }

  /** Passes every event on unchanged, noting what `status` shows. */
  track(next: EventSink): EventSink {
    return (e) => {
      this.note(e);
      next(e);
    };
  }

  note(e: NodeEvent): void {
    const s = this.#snap;
    const now = new Date(this.#clock()).toISOString();
    switch (e.event) {
      case "listening":
        s.listening = { address: e.address, port: e.port, advertise: e.advertise };
        break;
      case "request_sent":
        s.last_request = now;
        break;
      case "reply":
        s.last_reply = now;
        break;
      case "connected":
        s.peers = s.peers.filter((p) => p.peer !== e.peer);
        if (s.unreachable) s.unreachable = s.unreachable.filter((u) => u.peer !== e.peer);
        s.peers.push({
          peer: e.peer,
          address: e.address,
          direction: e.direction,
          since: now,
          path: e.path,
          transport: e.transport,
          kind: e.kind,
          rtt_ms: e.rtt_ms,
        });
        break;
      case "rtt":
        for (const p of s.peers) if (p.peer === e.peer) p.rtt_ms = e.rtt_ms;
        break;
      case "link_replaced":
        for (const p of s.peers) {
          if (p.peer !== e.peer) continue;
          p.path = e.path;
          p.transport = e.transport;
          p.kind = e.kind;
        }
        break;
      case "dial_failed":
        s.unreachable = (s.unreachable ?? []).filter((u) => u.peer !== e.peer);
        s.unreachable.push({ peer: e.peer, address: e.address, reason: e.reason, since: now });
        break;
      case "disconnected":
        s.peers = s.peers.filter((p) => p.peer !== e.peer);
        break;
      case "promoted":
        if (!s.roles.includes("host")) s.roles.push("host");
        s.host ??= { requests: 0, replies: 0 };
        break;
      case "host_request":
        s.host ??= { requests: 0, replies: 0 };
        s.host.requests++;
        s.host.last_request = now;
        break;
      case "host_reply":
        s.host ??= { requests: 0, replies: 0 };
        s.host.replies++;
        s.host.last_reply = now;
        break;
      case "error":
        s.last_error = e.message;
        break;
      default:
        return;
    }
    // A peer's own changes are rare and are written before the event goes on, so whoever sees the
    // event can already read it in the file; a busy host's requests are coalesced.
    if (e.event.startsWith("host_") || e.event === "error") this.#schedule();
    else this.write();
  }

  #schedule(): void {
    if (this.#closed || this.#flushTimer !== undefined) return;
    const timer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.write();
    }, FLUSH_DELAY_MS);
    Deno.unrefTimer(timer);
    this.#flushTimer = timer;
  }

  /** Rewrites the file now (atomically: a reader never sees half of it). Never throws. */
  write(): void {
    if (this.#closed || this.#broken) return;
    const s = this.#snap;
    s.updated = new Date(this.#clock()).toISOString();
    if (this.tableSize && s.host) {
      try {
        s.host.table_size = this.tableSize();
      } catch {
        // the table is closing; keep the last size
      }
    }
    if (this.mailBudget) {
      try {
        const paused = this.mailBudget.pausedUntil();
        s.mail = {
          sent_today: this.mailBudget.sent(),
          budget: this.mailBudget.limit,
          ...(paused === undefined ? {} : { paused_until: new Date(paused).toISOString() }),
        };
      } catch {
        // the count is a convenience too
      }
    }
    const tmp = `${this.path}.tmp`;
    try {
      Deno.mkdirSync(this.opts.dir, { recursive: true, mode: SECRET_DIR_MODE });
      Deno.writeTextFileSync(tmp, JSON.stringify(s) + "\n", { mode: SECRET_FILE_MODE });
      Deno.renameSync(tmp, this.path);
    } catch {
      // Status is a convenience: a read-only or missing data folder must not stop the node.
      this.#broken = true;
    }
  }

  [Symbol.dispose](): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    clearInterval(this.#beat);
    for (const p of [this.path, `${this.path}.tmp`]) {
      try {
        Deno.removeSync(p);
      } catch {
        // never written, or already gone
      }
    }
  }
}

export interface FoundStatus {
  snapshot: StatusSnapshot;
  path: string;
  /** False when the heartbeat stopped: the node died without removing its file. */
  alive: boolean;
}

/** Every status file in `dir`, newest first. Unreadable or foreign files are skipped. */
export async function readStatuses(dir: string, now = Date.now()): Promise<FoundStatus[]> {
  const out: FoundStatus[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  for (const e of entries) {
    if (!e.isFile || !/^\d+\.json$/.test(e.name)) continue;
    const path = join(dir, e.name);
    let snapshot: StatusSnapshot;
    try {
      snapshot = JSON.parse(await Deno.readTextFile(path));
    } catch {
      continue; // removed while we listed, or not ours
    }
    if (snapshot?.version !== STATUS_VERSION || typeof snapshot.updated !== "string") continue;
    const age = now - Date.parse(snapshot.updated);
    out.push({ snapshot, path, alive: age <= STALE_MS });
  }
  return out.sort((a, b) => b.snapshot.started.localeCompare(a.snapshot.started));
}

/** The status of this process's node, written under the data folder until disposed. */
export function openNodeStatus(
  command: string,
  info: { address: string; user?: string; roles: string[] },
  env: Record<string, string | undefined> = Deno.env.toObject(),
): NodeStatus {
  return new NodeStatus({ dir: statusDirFor(env), command, ...info }).start();
}
