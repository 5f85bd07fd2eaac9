/**
 * A program on a real terminal, for tests about what a person sees and types: tmux runs it in a
 * pseudo-terminal of a fixed size on a private server, the test reads the rendered screen (so a
 * line redrawn with "\r" shows as it would to a person), types keys (Ctrl-C goes through the
 * terminal's line discipline as a real SIGINT), and reads the exit status.
 *
 *   await using t = await terminal(["deno", "run", "-A", BUNDLE, "receive", ...], { env });
 *   await t.waitFor(/Accept\? \[y\/N\]/);
 *   await t.keys("C-c");
 *   assert.equal(await t.exit(), 130);
 */

export interface TerminalOptions {
  env?: Record<string, string>;
  cwd?: string;
  width?: number;
  height?: number;
}

export interface Terminal extends AsyncDisposable {
  /** The screen now: its lines, trailing blanks trimmed, empty lines at the end dropped. */
  screen(): Promise<string>;
  /** Waits until the screen matches `re`; returns that screen (or throws with the screen seen last). */
  waitFor(re: RegExp, timeoutMs?: number, what?: string): Promise<string>;
  /** tmux key names: "C-c", "Enter", "y". */
  keys(...keys: string[]): Promise<void>;
  /** Literal text, typed as is. */
  type(text: string): Promise<void>;
  /** The program's process id (it is exec'd in the pane, so signals reach it directly). */
  pid(): Promise<number>;
  /** Waits for the program to end: its exit code, or 128 + the signal number when a signal ended it. */
  exit(timeoutMs?: number): Promise<number>;
}

const dec = new TextDecoder();

function quote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

async function tmux(socket: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("tmux", {
    args: ["-S", socket, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) throw new Error(`tmux ${args[0]} failed: ${dec.decode(out.stderr).trim()}`);
  return dec.decode(out.stdout);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function terminal(argv: string[], opts: TerminalOptions = {}): Promise<Terminal> {
  try {
    await new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" }).output();
  } catch {
    throw new Error("These tests drive a real terminal with tmux: install it (apt-get install tmux).");
  }
  const dir = await Deno.makeTempDir({ prefix: "mailmeet-tty-" });
  const socket = `${dir}/tmux.sock`;
  const conf = `${dir}/tmux.conf`;
  // The pane stays after the program ends, so its exit status can be read; no status bar.
  await Deno.writeTextFile(conf, "set -g remain-on-exit on\nset -g status off\nset -g history-limit 5000\n");
  const env = { NO_COLOR: "1", ...opts.env };
  const command = [
    ...(opts.cwd ? [`cd ${quote(opts.cwd)} &&`] : []),
    "exec env",
    ...Object.entries(env).map(([k, v]) => quote(`${k}=${v}`)),
    ...argv.map(quote),
  ].join(" ");
  await tmux(
    socket,
    "-f",
    conf,
    "new-session",
    "-d",
    "-s",
    "t",
    "-x",
    String(opts.width ?? 120),
    "-y",
    String(opts.height ?? 40),
    command,
  );
  const screen = async () => {
    const text = await tmux(socket, "capture-pane", "-p", "-t", "t");
    return text.split("\n").map((l) => l.trimEnd()).join("\n").replace(/\n+$/, "");
  };
  /** The status of a program that exited but was not reaped yet: field 52 of /proc/PID/stat (waitpid(2) form). */
  const exitedUnreaped = async (): Promise<number | undefined> => {
    const pid = Number((await tmux(socket, "display", "-p", "-t", "t", "#{pane_pid}")).trim());
    let stat: string;
    try {
      stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    } catch {
      return undefined;
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); field 52 (exit_code) is fields[49].
    if (fields[0] !== "Z" || fields.length < 50) return undefined;
    const status = Number(fields[49]);
    return (status & 0x7f) === 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
  };
  const status = async () => {
    const [dead, code, signal] = (await tmux(
      socket,
      "display",
      "-p",
      "-t",
      "t",
      "#{pane_dead} #{pane_dead_status} #{pane_dead_signal}",
    )).trim().split(" ");
    if (dead === "1" && signal) return 128 + Number(signal);
    if (dead === "1" && code) return Number(code);
    // tmux may see the pane's terminal close before it reaps the program, or not reap it for a
    // while at all (its SIGCHLD held up): a program that exited is a zombie until then.
    return await exitedUnreaped();
  };
  return {
    screen,
    async waitFor(re, timeoutMs = 30_000, what = String(re)) {
      const until = Date.now() + timeoutMs;
      let last = "";
      for (;;) {
        last = await screen();
        if (re.test(last)) return last;
        if (Date.now() > until) {
          throw new Error(`no ${what} on the terminal within ${timeoutMs} ms; it shows:\n${last}`);
        }
        await sleep(100);
      }
    },
    async keys(...keys) {
      await tmux(socket, "send-keys", "-t", "t", ...keys);
    },
    async type(text) {
      await tmux(socket, "send-keys", "-t", "t", "-l", text);
    },
    async pid() {
      return Number((await tmux(socket, "display", "-p", "-t", "t", "#{pane_pid}")).trim());
    },
    async exit(timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const code = await status();
        if (code !== undefined) return code;
        if (Date.now() > until) {
          throw new Error(
            `the program did not end within ${timeoutMs} ms; the terminal shows:\n${await screen()}`,
          );
        }
        await sleep(50);
      }
    },
    async [Symbol.asyncDispose]() {
      try {
        const pid = Number((await tmux(socket, "display", "-p", "-t", "t", "#{pane_pid}")).trim());
        if ((await status()) === undefined && pid > 0) {
          // A stopped program (SIGSTOP in a test) must be woken to die.
          for (const sig of ["SIGCONT", "SIGKILL"] as const) {
            try {
              Deno.kill(pid, sig);
            } catch { /* gone */ }
          }
        }
        await tmux(socket, "kill-server");
      } catch {
        // the server is gone already
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
