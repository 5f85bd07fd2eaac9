/**
 * A place for end-to-end tests to meet: mail accounts on one transport (maildir spool, or the real
 * Postfix + Dovecot by IMAP or POP3), a shared network key, and CLI processes with the right flags.
 */
import { BUNDLE, type CliProcess, ensureBundle, runCli, spawnCli } from "../../scripts/lib/cli_process.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { deliverToMaildir } from "../../src/mail/maildir.ts";
import { openSender } from "../../src/mail/smtp.ts";
import { type MailStack, mailStack } from "./mailstack.ts";

export type Transport = "maildir" | "imap" | "pop3";

export interface Account {
  address: string;
  smtp: string;
  inbox: string;
  /** Flags every command using this account needs (CA, poll interval). */
  flags: string[];
}

export interface World extends AsyncDisposable {
  readonly transport: Transport;
  readonly key: string;
  readonly dir: string;
  readonly stack?: MailStack;
  /** The environment every process of this world gets: its own XDG config and data folders. */
  readonly env: Record<string, string>;
  account(name: string, domain?: string): Account;
  /** `--address … --smtp … --inbox … --key … --json` for an account. */
  common(a: Account, key?: string): string[];
  host(name: string, a: Account, extra?: string[]): CliProcess;
  /** A peer: join via `via`, listening on 127.0.0.1 (a free port). */
  peer(name: string, a: Account, via: Account[], extra?: string[]): CliProcess;
  run(args: string[]): ReturnType<typeof runCli>;
  /** Raw messages now in an account's mailbox. */
  raw(a: Account): Promise<Uint8Array[]>;
  /**
   * Puts raw bytes into an account's mailbox as a new mail (a replay, personal mail); with
   * `wait: false` on the stack, resolves when Postfix accepted it (for a box a running node empties).
   */
  deliverRaw(to: Account, raw: Uint8Array, opts?: { wait?: boolean }): Promise<void>;
  /** Mails `text` from one account to others, as any mail client would. */
  send(from: Account, to: Account[], subject: string, text: string, date?: Date): Promise<void>;
  /** Waits until an account's mailbox holds at least n messages. */
  waitForMail(a: Account, n: number, timeoutMs?: number): Promise<Uint8Array[]>;
}

export async function world(transport: Transport): Promise<World> {
  await ensureBundle();
  const dir = await Deno.makeTempDir({ prefix: `mailmeet-e2e-${transport}-` });
  const stack = transport === "maildir" ? undefined : await mailStack();
  const key = generateKeyText();
  const procs: CliProcess[] = [];
  const spool = `${dir}/spool`;
  // Processes see only this world: never the developer's own config file or data folder.
  // The tests mail hundreds of times in seconds (crashes under 300 queued requests, a full table):
  // a day's --mail-budget would hold that back, so it is lifted; tests/unit covers the budget.
  const isolated = {
    XDG_CONFIG_HOME: `${dir}/config`,
    XDG_DATA_HOME: `${dir}/data`,
    MAILMEET_MAIL_BUDGET: "1000000",
  };

  const account = (name: string, domain = "isp-a.test"): Account => {
    if (!stack) {
      return {
        address: `${name}@${domain}`,
        smtp: `maildir://${spool}`,
        inbox: `maildir://${spool}`,
        flags: [],
      };
    }
    const address = stack.freshAddress(name, domain);
    return {
      address,
      smtp: stack.url("submission", address),
      inbox: stack.url(transport, address),
      flags: ["--tls-ca", stack.caFile, ...(transport === "pop3" ? ["--poll", "0.25"] : [])],
    };
  };
  const common = (a: Account, k = key) => [
    "--address",
    a.address,
    "--smtp",
    a.smtp,
    "--inbox",
    a.inbox,
    "--key",
    k,
    "--json",
    ...a.flags,
  ];
  const track = (p: CliProcess) => {
    procs.push(p);
    return p;
  };
  const raw = async (a: Account): Promise<Uint8Array[]> => {
    if (stack) return await stack.rawMessages(a.address);
    const out: Uint8Array[] = [];
    for (const sub of ["new", "cur"]) {
      try {
        for await (const f of Deno.readDir(`${spool}/${a.address}/${sub}`)) {
          out.push(await Deno.readFile(`${spool}/${a.address}/${sub}/${f.name}`));
        }
      } catch { /* no folder yet */ }
    }
    return out;
  };

  return {
    transport,
    key,
    dir,
    stack,
    env: isolated,
    account,
    common,
    host: (name, a, extra = []) =>
      track(spawnCli(name, ["host", ...common(a), "--db", `${dir}/${name}.db`, ...extra], isolated)),
    peer: (name, a, via, extra = []) =>
      track(
        spawnCli(name, [
          "join",
          ...common(a),
          "--user",
          name,
          ...via.flatMap((v) => ["--via", v.address]),
          "--listen",
          "127.0.0.1:0",
          "--timeout",
          "60",
          ...extra,
        ], isolated),
      ),
    run: (args) => runCli(args, isolated),
    raw,
    async deliverRaw(to, raw, opts) {
      if (stack) await stack.deliverRaw(to.address, new TextDecoder().decode(raw), opts);
      else await deliverToMaildir(spool, [to.address], raw);
    },
    async send(from, to, subject, text, date) {
      await using sender = openSender(from.smtp, { caCerts: stack ? [stack.caPem] : undefined });
      await sender.send({ from: from.address, to: to.map((t) => t.address), subject, text, date });
    },
    async waitForMail(a, n, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const got = await raw(a);
        if (got.length >= n) return got;
        if (Date.now() > until) {
          throw new Error(`${a.address} holds ${got.length} of ${n} mails after ${timeoutMs} ms`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async [Symbol.asyncDispose]() {
      for (const p of procs) p.kill("SIGTERM");
      await Promise.allSettled(procs.map((p) => p[Symbol.asyncDispose]()));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

export { BUNDLE };

/** `mailmeet ARGS` as a member named `name` (its own account) meeting through `host`. */
export function memberApp(w: World, name: string, host: Account, args: string[]): CliProcess {
  return spawnCli(name, [
    args[0],
    ...w.common(w.account(name)),
    "--user",
    name,
    "--via",
    host.address,
    "--listen",
    "127.0.0.1:0",
    "--timeout",
    "60",
    ...args.slice(1),
  ], w.env);
}
