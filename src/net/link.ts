/**
 * The direct link between two peers: TCP, the Noise IKpsk2 handshake (src/protocol/noise.ts), then
 * the sealed frames of SecureChannel.
 *
 * The dialer knows the listener's link key from the host's reply; the listener learns the dialer's
 * key and user id inside the handshake. Who proves what, and when:
 *  - message 1 (dialer → listener) is encrypted to the published key: only its holder reads it, so
 *    a machine that inherited the listener's IP address cannot answer it;
 *  - message 2 (listener → dialer) mixes in the psk from the network key: the dialer learns that
 *    the listener holds both the published key and the network key;
 *  - the dialer's first transport frame (a fixed key-confirmation) tells the listener the dialer
 *    holds the network key too. Only then does the listener hand the link to the application.
 * A stranger who connects gets at most message 2, which it cannot decrypt, and is dropped when it
 * fails or after HANDSHAKE_TIMEOUT_MS.
 */
import { formatHostPort } from "../protocol/candidate.ts";
import { equalBytes, fromUtf8, utf8 } from "../protocol/bytes.ts";
import {
  deriveLinkPsk,
  HandshakeState,
  type KeyPair,
  LINK_PROLOGUE,
  LinkError,
  MAX_MESSAGE_LEN,
} from "../protocol/noise.ts";
import {
  type ByteStream,
  type DatagramLane,
  encodeFrame,
  FrameReader,
  type ReceiveOptions,
  SecureChannel,
  withTimeout,
  writeAll,
} from "./secure_channel.ts";

/** The whole handshake (and, for the dialer, the TCP connect) must finish within this. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** The JSON each side sends inside the handshake ({user, v, …}) is small; this bounds it. */
export const MAX_HANDSHAKE_PAYLOAD = 4096;
/** Connections still in their handshake at once (each costs a pending read, little else). */
export const MAX_PENDING_HANDSHAKES = 256;
/** …of which one source address may hold this many. */
export const MAX_PENDING_PER_SOURCE = 16;
/** A member's first handshake message follows its connect at once; a silent connection is cut. */
export const FIRST_BYTES_MS = 3_000;

interface Pending {
  from: string;
  source: string;
  /** Bytes arrived: a dialer at work, not a silent hold. */
  talked: boolean;
  stop: AbortController;
}
/** The dialer's first transport frame; its successful decryption proves the dialer holds the psk. */
const KEY_CONFIRMATION = utf8("mailmeet link ready v1");

/** What each side tells the other inside the handshake, e.g. `{ user: "alice", v: 1 }`. */
export type HandshakePayload = Record<string, unknown>;

export interface LinkKeys {
  /** Our link key pair for this run. */
  staticKey: KeyPair;
  /** The group's 32-byte network key (NetworkKey.secret). */
  networkKey: Uint8Array;
  /** Sent to the other side inside the encrypted handshake. */
  localInfo?: HandshakePayload;
}

export interface InitiateOptions extends LinkKeys {
  /** The listener's link public key, as the host published it. */
  remoteStatic: Uint8Array;
  /** For messages: who we dialled, e.g. "203.0.113.5:7400". */
  peer?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface DialOptions extends Omit<InitiateOptions, "peer"> {
  hostname: string;
  port: number;
}

export interface AcceptOptions extends LinkKeys {
  /** For messages: where the connection came from, e.g. "127.0.0.1:53412". */
  peer?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ListenOptions extends LinkKeys {
  hostname?: string;
  port: number;
  /** Receives each authenticated link; the application owns it from then on. */
  onLink: (link: Link) => void | Promise<void>;
  /** Hears about every dropped connection (one sentence each, for the log). */
  onError?: (err: LinkError) => void;
  /** Closes the listener when aborted. */
  signal?: AbortSignal;
  handshakeTimeoutMs?: number;
}

export type LinkRole = "dialer" | "listener";

/** An authenticated, encrypted link to one peer. */
export class Link {
  readonly #channel: SecureChannel;

  constructor(
    channel: SecureChannel,
    /** The other side's link public key: the published one (dialer) or the one it proved (listener). */
    readonly remoteStatic: Uint8Array,
    /** What the other side sent inside the handshake. */
    readonly remotePayload: HandshakePayload,
    /** The Noise handshake hash, equal on both sides: usable for channel binding. */
    readonly handshakeHash: Uint8Array,
    readonly role: LinkRole,
    /** One round trip as the handshake saw it (ms): message 1 → 2 for the dialer, 2 → confirmation for the listener. */
    readonly rttMs: number = 0,
  ) {
    this.#channel = channel;
  }

  /** Datagrams beside the link's frames, where the transport has them (QUIC). */
  get datagrams(): DatagramLane | undefined {
    return this.#channel.datagrams;
  }

  /** Who is on the other side, as "address:port". */
  get remoteAddr(): string {
    return this.#channel.peer;
  }

  get closed(): boolean {
    return this.#channel.closed;
  }

  /** Resolves when the socket took every byte; data over 1 MiB goes as several frames. */
  send(data: Uint8Array): Promise<void> {
    return this.#channel.send(data);
  }

  /** Sends the concatenation of `parts` (≤ MAX_FRAME_PLAINTEXT bytes) as one sealed frame, without joining them first. */
  sendv(parts: readonly Uint8Array[]): Promise<void> {
    return this.#channel.sendv(parts);
  }

  /** The next chunk, or null after the other side's authenticated close. */
  receive(opts?: ReceiveOptions): Promise<Uint8Array | null> {
    return this.#channel.receive(opts);
  }

  /** See SecureChannel.recycle: the buffer under a received chunk that nothing refers to any more. */
  recycle(buffer: ArrayBuffer): void {
    this.#channel.recycle(buffer);
  }

  close(): Promise<void> {
    return this.#channel.close();
  }

  /** Cuts the connection without a close frame. */
  abort(): void {
    this.#channel.abort();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

// ─── Handshake payloads ──────────────────────────────────────────────────────────────────────

function encodeInfo(info: HandshakePayload | undefined): Uint8Array {
  const bytes = utf8(JSON.stringify(info ?? {}));
  if (bytes.length > MAX_HANDSHAKE_PAYLOAD) {
    throw new RangeError(
      `The handshake payload is ${bytes.length} bytes; at most ${MAX_HANDSHAKE_PAYLOAD} fit the handshake.`,
    );
  }
  return bytes;
}

function decodeInfo(bytes: Uint8Array): HandshakePayload | undefined {
  if (bytes.length > MAX_HANDSHAKE_PAYLOAD) return undefined;
  try {
    const value: unknown = JSON.parse(fromUtf8(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as HandshakePayload
      : undefined;
  } catch {
    return undefined;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** "host:port", with brackets for IPv6. */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
  const host = addr.hostname.startsWith("::ffff:") ? addr.hostname.slice(7) : addr.hostname;
  return formatHostPort(host, addr.port);
}

/**
 * Runs `handshake` under the deadline and signal; on any failure closes `conn`, so a stalled read
 * ends, and rethrows (a LinkError, the signal's reason, or a programming error as it was).
 */
async function guarded(
  conn: ByteStream,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  onTimeout: () => LinkError,
  handshake: () => Promise<Link>,
): Promise<Link> {
  const running = handshake();
  try {
    return await withTimeout(running, timeoutMs, onTimeout, signal);
  } catch (err) {
    running.then((link) => link.abort(), () => {});
    try {
      conn.close();
    } catch {
      // already closed
    }
    throw err;
  }
}

// ─── Dialer ──────────────────────────────────────────────────────────────────────────────────

/** Runs the dialer's side of the handshake on an open connection. Closes `conn` on failure. */
export function initiateLink(conn: ByteStream, opts: InitiateOptions): Promise<Link> {
  const peer = opts.peer ?? "the peer";
  const timeoutMs = opts.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  return guarded(
    conn,
    timeoutMs,
    opts.signal,
    () => new LinkError(`${peer} did not finish the link handshake within ${timeoutMs / 1000} s.`, "timeout"),
    async () => {
      const hs = HandshakeState.initiator({
        s: opts.staticKey,
        rs: opts.remoteStatic,
        psk: deriveLinkPsk(opts.networkKey),
        prologue: LINK_PROLOGUE,
      });
      const reader = new FrameReader(conn);
      await writeAll(conn, encodeFrame(hs.writeMessage(encodeInfo(opts.localInfo))));
      const sentAt = performance.now();

      let reply: Uint8Array | null;
      try {
        reply = await reader.readFrame(MAX_MESSAGE_LEN);
      } catch (err) {
        if (err instanceof LinkError && err.code === "too_large") {
          throw new LinkError(`${peer} does not speak the mailmeet link protocol.`, "handshake", {
            cause: err,
          });
        }
        reply = null; // reset or cut: same meaning as a plain close below
      }
      if (reply === null) {
        // The holder of the published key would have read message 1 and answered; anyone else
        // cannot decrypt it and hangs up.
        throw new LinkError(
          `${peer} closed the connection during the handshake: it is busy, or not the peer we looked for (its key is not the one published).`,
          "wrong_peer",
        );
      }
      let payload: Uint8Array;
      try {
        payload = hs.readMessage(reply);
      } catch (err) {
        throw new LinkError(
          `${peer} does not hold the network key (or is not the peer the host published): its handshake reply did not authenticate.`,
          "network_key",
          { cause: err },
        );
      }
      const info = decodeInfo(payload);
      if (info === undefined) {
        throw new LinkError(`${peer} sent a handshake payload that is not a JSON object.`, "handshake");
      }
      const rttMs = performance.now() - sentAt;
      const { sendKey, receiveKey, handshakeHash } = hs.splitKeys();
      const channel = new SecureChannel(conn, { sendKey, receiveKey, reader, peer });
      await channel.send(KEY_CONFIRMATION);
      return new Link(channel, new Uint8Array(opts.remoteStatic), info, handshakeHash, "dialer", rttMs);
    },
  );
}

/** Connects over TCP and runs the handshake; the whole thing within `timeoutMs`. */
export async function dialLink(opts: DialOptions): Promise<Link> {
  const where = opts.hostname.includes(":")
    ? `[${opts.hostname}]:${opts.port}`
    : `${opts.hostname}:${opts.port}`;
  const timeoutMs = opts.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const started = Date.now();
  const abort = new AbortController();
  const onAbort = () => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  let conn: Deno.TcpConn;
  const connecting = Deno.connect({
    hostname: opts.hostname,
    port: opts.port,
    transport: "tcp",
    signal: abort.signal,
  });
  try {
    conn = await withTimeout(
      connecting,
      timeoutMs,
      () => new LinkError(`Cannot connect to ${where}: no answer within ${timeoutMs / 1000} s.`, "timeout"),
    );
  } catch (err) {
    abort.abort();
    connecting.then((late) => late.close(), () => {}); // a connection that won the race too late
    if (err instanceof LinkError) throw err;
    if (err instanceof Deno.errors.ConnectionRefused) {
      throw new LinkError(`Cannot connect to ${where}: the connection was refused.`, "connect", {
        cause: err,
      });
    }
    throw new LinkError(`Cannot connect to ${where}: ${describe(err)}.`, "connect", { cause: err });
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
  conn.setNoDelay(true);
  try {
    return await initiateLink(conn, {
      ...opts,
      peer: where,
      timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)),
    });
  } catch (err) {
    if (err instanceof LinkError && err.code === "timeout") {
      // Name the budget the caller set, not what was left of it after connecting.
      throw new LinkError(
        `${where} did not finish the link handshake within ${timeoutMs / 1000} s.`,
        "timeout",
        {
          cause: err,
        },
      );
    }
    throw err;
  }
}

// ─── Listener ────────────────────────────────────────────────────────────────────────────────

/** Runs the listener's side of the handshake on an accepted connection. Closes `conn` on failure. */
export function acceptLink(conn: ByteStream, opts: AcceptOptions): Promise<Link> {
  const from = opts.peer ?? "a peer";
  const timeoutMs = opts.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const dropped = (why: string, code: LinkError["code"], cause?: unknown) =>
    new LinkError(`Dropped a connection from ${from}: ${why}.`, code, { cause });
  return guarded(
    conn,
    timeoutMs,
    opts.signal,
    () => dropped(`it did not finish the handshake within ${timeoutMs / 1000} s`, "timeout"),
    async () => {
      const hs = HandshakeState.responder({
        s: opts.staticKey,
        psk: deriveLinkPsk(opts.networkKey),
        prologue: LINK_PROLOGUE,
      });
      const reader = new FrameReader(conn);
      let hello: Uint8Array | null;
      try {
        hello = await reader.readFrame(MAX_MESSAGE_LEN);
      } catch (err) {
        throw dropped("it does not speak the mailmeet link protocol", "handshake", err);
      }
      if (hello === null) throw dropped("it hung up before the handshake", "handshake");
      let payload: Uint8Array;
      try {
        payload = hs.readMessage(hello);
      } catch (err) {
        throw dropped(
          "its handshake is not addressed to our link key (a stranger, or a peer holding an old key of ours)",
          "handshake",
          err,
        );
      }
      const info = decodeInfo(payload);
      if (info === undefined) throw dropped("its handshake payload is not a JSON object", "handshake");
      await writeAll(conn, encodeFrame(hs.writeMessage(encodeInfo(opts.localInfo))));
      const sentAt = performance.now();

      const remoteStatic = hs.remoteStatic!;
      const { sendKey, receiveKey, handshakeHash } = hs.splitKeys();
      const channel = new SecureChannel(conn, { sendKey, receiveKey, reader, peer: from });
      let confirmation: Uint8Array | null;
      try {
        confirmation = await channel.receive();
      } catch (err) {
        // Hung up after our reply (a dialer whose network key failed to open it), or sent a
        // frame that does not open under the psk: either way it lacks the network key.
        if (err instanceof LinkError) throw dropped("it does not hold the network key", "network_key", err);
        throw err;
      }
      if (confirmation === null || !equalBytes(confirmation, KEY_CONFIRMATION)) {
        channel.abort();
        throw dropped("it did not confirm the handshake", "protocol");
      }
      return new Link(channel, remoteStatic, info, handshakeHash, "listener", performance.now() - sentAt);
    },
  );
}

export interface LinkListener {
  /** Where we listen (port 0 in the options picks a free one). */
  readonly addr: Deno.NetAddr;
  /** Stops accepting, drops connections still in their handshake; established links stay open. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Accepts TCP connections and hands each authenticated link to `onLink`. */
export function listenLinks(opts: ListenOptions): LinkListener {
  const listener = Deno.listen({ hostname: opts.hostname ?? "0.0.0.0", port: opts.port, transport: "tcp" });
  const stop = new AbortController();
  const handshakes = new Set<Promise<void>>();
  const report = (err: LinkError) => {
    try {
      opts.onError?.(err);
    } catch {
      // a logger's failure must not stop the listener
    }
  };

  // Connections still in their handshake. A stranger can open many and say nothing; a member's
  // first message comes at once. So a new connection always gets a place — the oldest silent one
  // of the same source, or else of anyone, makes room — and silence is cut after FIRST_BYTES_MS.
  const pending = new Set<Pending>();
  const evict = (p: Pending, why: string) => {
    pending.delete(p);
    p.stop.abort(new LinkError(`Dropped a connection from ${p.from}: ${why}.`, "handshake"));
  };
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // closed
      }
      const from = formatAddr(conn.remoteAddr);
      const source = conn.remoteAddr.transport === "tcp" ? conn.remoteAddr.hostname : from;
      const same = [...pending].filter((p) => p.source === source);
      if (same.length >= MAX_PENDING_PER_SOURCE) {
        evict(same.find((p) => !p.talked) ?? same[0], "too many silent connections from one address");
      } else if (pending.size >= MAX_PENDING_HANDSHAKES) {
        const silent = [...pending].find((p) => !p.talked);
        if (!silent) {
          conn.close();
          report(
            new LinkError(`Dropped a connection from ${from}: too many handshakes in progress.`, "handshake"),
          );
          continue;
        }
        evict(silent, "a newer connection needed its place");
      }
      conn.setNoDelay(true);
      const entry: Pending = { from, source, talked: false, stop: new AbortController() };
      const watched: ByteStream = {
        read: async (b) => {
          const n = await conn.read(b);
          if (n !== null && n > 0) entry.talked = true;
          return n;
        },
        write: (b) => conn.write(b),
        close: () => conn.close(),
        closeWrite: () => conn.closeWrite(),
      };
      pending.add(entry);
      const quiet = setTimeout(() => {
        if (!entry.talked && pending.has(entry)) {
          evict(entry, `it said nothing for ${FIRST_BYTES_MS / 1000} s`);
        }
      }, FIRST_BYTES_MS);
      const task = acceptLink(watched, {
        ...opts,
        peer: from,
        timeoutMs: opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
        signal: AbortSignal.any([stop.signal, entry.stop.signal]),
      }).then(
        (link) => {
          if (stop.signal.aborted) {
            link.abort();
            return;
          }
          Promise.resolve()
            .then(() => opts.onLink(link))
            .catch((err) => {
              link.abort();
              report(
                new LinkError(`The handler for the link from ${from} failed: ${describe(err)}`, "closed", {
                  cause: err,
                }),
              );
            });
        },
        (err) => {
          if (!stop.signal.aborted) {
            report(err instanceof LinkError ? err : new LinkError(describe(err), "handshake"));
          }
        },
      );
      handshakes.add(task);
      task.finally(() => {
        clearTimeout(quiet);
        pending.delete(entry);
        handshakes.delete(task);
      });
    }
  })();

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      stop.abort(new LinkError("The listener was closed.", "closed"));
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
      await Promise.allSettled([...handshakes]);
      opts.signal?.removeEventListener("abort", onAbort);
    })();
    return closing;
  };
  const onAbort = () => void close();
  if (opts.signal?.aborted) void close();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  return {
    addr: listener.addr as Deno.NetAddr,
    close,
    [Symbol.asyncDispose]: close,
  };
}
