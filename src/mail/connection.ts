/**
 * A TCP or TLS connection for a line-based mail protocol: timeouts on every wait, STARTTLS upgrade,
 * a private CA when asked. IMAP and POP3 sit on this; SMTP goes through nodemailer.
 */
import { abortable, deadline, DeadlineError, deadlineSignal, type Timers } from "../util/deadline.ts";
import { connectError, MailError } from "./errors.ts";
import { LineReader } from "./line_reader.ts";

export const CONNECT_TIMEOUT_MS = 15_000;
export const COMMAND_TIMEOUT_MS = 30_000;

export interface ConnectOptions {
  host: string;
  port: number;
  /** TLS from the first byte (imaps, pop3s) or clear until startTls(). */
  implicitTls: boolean;
  /** PEM certificates to trust in addition to the system roots (--tls-ca). */
  caCerts?: string[];
  connectTimeoutMs?: number;
  maxLine?: number;
  /** Opens the TCP or TLS connection (tests pass one that answers late); Deno's by default. */
  dial?: (
    to: { host: string; port: number; tls: boolean; caCerts?: string[]; signal: AbortSignal },
  ) => Promise<
    Deno.Conn
  >;
  timers?: Timers;
}

function denoDial(
  to: { host: string; port: number; tls: boolean; caCerts?: string[]; signal: AbortSignal },
): Promise<Deno.Conn> {
  // Deno.connectTls takes no signal: the deadline below gives up on it and closes it if it comes late.
  return to.tls
    ? Deno.connectTls({ hostname: to.host, port: to.port, caCerts: to.caCerts })
    : Deno.connect({ hostname: to.host, port: to.port, signal: to.signal });
}

export class TextConnection {
  #conn: Deno.Conn;
  #closed = false;
  readonly reader: LineReader;
  #secure: boolean;

  private constructor(conn: Deno.Conn, secure: boolean, readonly opts: ConnectOptions) {
    this.#conn = conn;
    this.#secure = secure;
    this.reader = new LineReader(this.#source(), opts.maxLine);
  }

  static async open(opts: ConnectOptions): Promise<TextConnection> {
    const where = `${opts.host}:${opts.port}`;
    const timeout = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    const dial = opts.dial ?? denoDial;
    let conn: Deno.Conn | undefined;
    try {
      {
        using limit = deadlineSignal(timeout, { timers: opts.timers });
        conn = await abortable(
          dial({
            host: opts.host,
            port: opts.port,
            tls: opts.implicitTls,
            caCerts: opts.caCerts,
            signal: limit.signal,
          }),
          limit.signal,
          // A connection that comes after we gave up would stay open for good: close it.
          { onLate: (late) => closeQuietly(late) },
        ).catch((err) => {
          throw timedOut(err, `Cannot connect to ${where}: no answer within ${timeout / 1000} s.`);
        });
      }
      if (opts.implicitTls) {
        await deadline((conn as Deno.TlsConn).handshake(), timeout, { timers: opts.timers }).catch((err) => {
          throw timedOut(err, `TLS handshake with ${where} timed out.`);
        });
      }
    } catch (err) {
      if (conn) closeQuietly(conn);
      throw connectError(where, err);
    }
    return new TextConnection(conn, opts.implicitTls, opts);
  }

  get secure(): boolean {
    return this.#secure;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get where(): string {
    return `${this.opts.host}:${this.opts.port}`;
  }

  /** Upgrade to TLS after the server agreed (STARTTLS / STLS). */
  async startTls(): Promise<void> {
    if (this.reader.buffered > 0) {
      // RFC 3207 §4 / RFC 2595 §3.1: anything sent before the handshake could be an injection.
      throw new MailError(`${this.where} sent data before the TLS handshake; refusing to continue.`, "tls");
    }
    try {
      const tls = await Deno.startTls(this.#conn as Deno.TcpConn, {
        hostname: this.opts.host,
        caCerts: this.opts.caCerts,
      });
      this.#conn = tls;
      await withTimeout(tls.handshake(), CONNECT_TIMEOUT_MS, `TLS handshake with ${this.where} timed out.`, {
        timers: this.opts.timers,
      });
    } catch (err) {
      this.close();
      throw connectError(this.where, err);
    }
    this.#secure = true;
    this.reader.setSource(this.#source());
  }

  async readLine(timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    const line = await this.#timed(this.reader.readLine(), timeoutMs);
    if (line === null) throw new MailError(`${this.where} closed the connection.`, "closed");
    return line;
  }

  async readLineBytes(timeoutMs = COMMAND_TIMEOUT_MS): Promise<Uint8Array> {
    const line = await this.#timed(this.reader.readLineBytes(), timeoutMs);
    if (line === null) throw new MailError(`${this.where} closed the connection.`, "closed");
    return line;
  }

  readN(n: number, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Uint8Array> {
    return this.#timed(this.reader.readN(n), timeoutMs);
  }

  async write(data: string | Uint8Array): Promise<void> {
    if (this.#closed) throw new MailError(`The connection to ${this.where} is closed.`, "closed");
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    try {
      let off = 0;
      while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
    } catch (err) {
      this.close();
      throw new MailError(`Lost the connection to ${this.where} while sending.`, "closed", { cause: err });
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer
    }
  }

  #source() {
    const conn = this.#conn;
    return {
      read: async (p: Uint8Array) => {
        try {
          return await conn.read(p);
        } catch (err) {
          if (this.#closed) return null;
          throw new MailError(`Lost the connection to ${this.where}.`, "closed", { cause: err });
        }
      },
    };
  }

  async #timed<T>(p: Promise<T>, ms: number): Promise<T> {
    try {
      return await withTimeout(p, ms, `${this.where} did not answer within ${Math.round(ms / 1000)} s.`, {
        timers: this.opts.timers,
      });
    } catch (err) {
      // After a timeout the stream position is unknown: the connection cannot be reused.
      if (err instanceof MailError && err.code === "timeout") this.close();
      throw err;
    }
  }
}

/** `p`, or a MailError "timeout" with `message` when it takes longer than `ms`. */
export async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  message: string,
  opts: { timers?: Timers } = {},
): Promise<T> {
  try {
    return await deadline(p, ms, opts);
  } catch (err) {
    throw timedOut(err, message);
  }
}

/** A DeadlineError as the mail layer's own "timeout"; anything else unchanged. */
function timedOut(err: unknown, message: string): unknown {
  return err instanceof DeadlineError ? new MailError(message, "timeout", { cause: err }) : err;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
