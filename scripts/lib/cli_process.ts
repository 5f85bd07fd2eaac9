/**
 * Runs the mailmeet CLI as a separate process and follows its --json events. The tests run the
 * bundle (dist/mailmeet.js); the demo and benchmarks may run main.ts. Disposable:
 * `await using node = spawnCli("bob", [...])`.
 */

import { DENO_PERMISSIONS } from "../../src/cli/permissions.ts";

export const BUNDLE = new URL("../../dist/mailmeet.js", import.meta.url).pathname;
export const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/**
 * The flags an installed user's command runs with (DENO_PERMISSIONS: its permissions and V8 heap
 * settings, never -A), for benchmarks; MAILMEET_BENCH_PROF=DIR adds a V8 CPU profile per process in DIR.
 */
export function installedFlags(): readonly string[] {
  const prof = Deno.env.get("MAILMEET_BENCH_PROF");
  return prof ? [...DENO_PERMISSIONS, "--cpu-prof", `--cpu-prof-dir=${prof}`] : DENO_PERMISSIONS;
}

/** Which entry point the processes run: the bundle (tests) or the source (demo). */
let entry = BUNDLE;
export function useEntry(path: string): void {
  entry = path;
}

/**
 * Processes started here never ask public STUN servers or the machine's real router: tests, the
 * demo and the benchmarks run on one machine (or in the NAT lab, whose tests set their own STUN
 * servers and turn port mapping back on).
 */
export const OFFLINE_ENV: Readonly<Record<string, string>> = {
  MAILMEET_STUN: "none",
  MAILMEET_NO_PORT_MAPPING: "true",
};

export interface CliEvent {
  event: string;
  [k: string]: unknown;
}

export interface CliProcess extends AsyncDisposable {
  readonly name: string;
  /** The process id (to stop and continue it: SIGSTOP / SIGCONT make a stall; benchmarks read its memory from /proc). */
  readonly pid: number;
  readonly events: CliEvent[];
  /** Lines on stdout that were not JSON, and everything on stderr. */
  readonly text: string[];
  readonly stderr: string[];
  /** Resolves with the first event matching, or rejects after timeoutMs (with what was seen). */
  waitFor(pred: (e: CliEvent) => boolean, timeoutMs?: number, what?: string): Promise<CliEvent>;
  /** Resolves when `count` events match. */
  waitForCount(
    pred: (e: CliEvent) => boolean,
    count: number,
    timeoutMs?: number,
    what?: string,
  ): Promise<CliEvent[]>;
  readonly status: Promise<Deno.CommandStatus>;
  kill(signal?: Deno.Signal): void;
  /** Writes to stdin (only with RunOptions.stdin). */
  input(text: string): Promise<void>;
  endInput(): Promise<void>;
}

export async function ensureBundle(): Promise<void> {
  try {
    await Deno.stat(BUNDLE);
  } catch {
    await buildBundle();
  }
}

/** `deno task bundle`: dist/mailmeet.js from the source as it is now. */
export async function buildBundle(): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "bundle"],
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("deno task bundle failed");
}

/** How a CLI process is run: Deno permission flags (default -A; the newcomer test and the demo pass DENO_PERMISSIONS). */
export interface RunOptions {
  permissions?: readonly string[];
  /** Run inside this network namespace (`ip netns exec NS …`, the NAT lab). */
  netns?: string;
  /** Give the process a stdin pipe (chat): write with input(), end it with endInput(). */
  stdin?: boolean;
}

/** The command line for one CLI run: Deno and its flags, inside a namespace when asked. */
function command(args: string[], opts: RunOptions): { cmd: string; args: string[] } {
  const deno = ["run", ...(opts.permissions ?? ["-A", "--unstable-net"]), entry, ...args];
  return opts.netns
    ? { cmd: "ip", args: ["netns", "exec", opts.netns, Deno.execPath(), ...deno] }
    : { cmd: Deno.execPath(), args: deno };
}

export function spawnCli(
  name: string,
  args: string[],
  env: Record<string, string> = {},
  onEvent?: (e: CliEvent) => void,
  opts: RunOptions = {},
): CliProcess {
  const run = command(args, opts);
  const child = new Deno.Command(run.cmd, {
    args: run.args,
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...OFFLINE_ENV, ...env },
  }).spawn();
  const writer = opts.stdin ? child.stdin.getWriter() : undefined;
  const events: CliEvent[] = [];
  const text: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const pump = async (stream: ReadableStream<Uint8Array>, onLine: (l: string) => void) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let i;
      while ((i = rest.indexOf("\n")) >= 0) {
        onLine(rest.slice(0, i));
        rest = rest.slice(i + 1);
      }
    }
    if (rest) onLine(rest);
  };
  const stdoutDone = pump(child.stdout, (line) => {
    try {
      const e = JSON.parse(line);
      if (e && typeof e.event === "string") {
        events.push(e);
        onEvent?.(e);
      } else text.push(line);
    } catch {
      text.push(line);
    }
    notify();
  });
  const stderrDone = pump(child.stderr, (line) => {
    stderr.push(line);
    notify();
  });
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    await Promise.all([stdoutDone, stderrDone]);
    notify();
    return s;
  });

  const waitForCount = (pred: (e: CliEvent) => boolean, count: number, timeoutMs = 20_000, what = "event") =>
    new Promise<CliEvent[]>((resolve, reject) => {
      const check = () => {
        const hits = events.filter(pred);
        if (hits.length >= count) {
          done();
          resolve(hits);
          return true;
        }
        if (exited) {
          done();
          reject(
            new Error(
              `${name} exited before ${what}.\nevents: ${JSON.stringify(events)}\nstderr: ${
                stderr.join("\n")
              }`,
            ),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${name}: no ${what} within ${timeoutMs} ms.\nevents: ${JSON.stringify(events)}\nstderr: ${
              stderr.join("\n")
            }`,
          ),
        );
      }, timeoutMs);
      const w = () => void check();
      const done = () => {
        clearTimeout(timer);
        waiters.delete(w);
      };
      waiters.add(w);
      check();
    });

  return {
    name,
    pid: child.pid,
    events,
    text,
    stderr,
    status,
    waitFor: async (pred, timeoutMs, what) => (await waitForCount(pred, 1, timeoutMs, what))[0],
    waitForCount,
    async input(text: string) {
      if (!writer) throw new Error(`${name} was started without a stdin pipe`);
      await writer.write(new TextEncoder().encode(text));
    },
    async endInput() {
      await writer?.close().catch(() => {});
    },
    kill(signal: Deno.Signal = "SIGTERM") {
      if (exited) return;
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    },
    async [Symbol.asyncDispose]() {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
        const t = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }, 5000);
        await status;
        clearTimeout(t);
      } else {
        await status;
      }
    },
  };
}

/** Runs the CLI to completion. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  opts: RunOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = command(args, opts);
  const out = await new Deno.Command(run.cmd, {
    args: run.args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...OFFLINE_ENV, ...env },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}
