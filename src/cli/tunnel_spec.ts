/**
 * The port arguments of `mailmeet tunnel`: `--expose PORT[/udp]` and `--local PORT[/udp]` or
 * `--local LOCAL:REMOTE[/udp]`, each repeatable or comma-separated (several tunnels at once).
 */
import { UsageError } from "./errors.ts";

export interface ExposeSpec {
  port: number;
  udp: boolean;
}

export interface LocalSpec {
  /** 0: any free port. */
  local: number;
  /** The port on the exposing member; undefined (`--local 0`): whatever one member exposes. */
  remote?: number;
  udp: boolean;
}

function split(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

function proto(spec: string, name: string, udpDefault: boolean): { rest: string; udp: boolean } {
  const m = /^(.*?)(?:\/(tcp|udp))?$/i.exec(spec)!;
  if (m[1].includes("/")) throw new UsageError(`--${name} ${spec}: say /tcp or /udp after the port.`);
  return { rest: m[1], udp: m[2] ? m[2].toLowerCase() === "udp" : udpDefault };
}

function port(text: string, spec: string, name: string, zero: boolean): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535 || (n === 0 && !zero)) {
    throw new UsageError(`--${name} ${spec} is not a port number (${zero ? "0" : "1"}–65535).`);
  }
  return n;
}

export function parseExpose(values: readonly string[], udpDefault: boolean): ExposeSpec[] {
  return split(values).map((spec) => {
    const { rest, udp } = proto(spec, "expose", udpDefault);
    return { port: port(rest, spec, "expose", false), udp };
  });
}

export function parseLocal(values: readonly string[], udpDefault: boolean): LocalSpec[] {
  return split(values).map((spec) => {
    const { rest, udp } = proto(spec, "local", udpDefault);
    const parts = rest.split(":");
    if (parts.length > 2) {
      throw new UsageError(
        `--local ${spec}: say LOCAL:REMOTE, two port numbers (an address goes in --bind).`,
      );
    }
    const local = port(parts[0], spec, "local", true);
    const remote = parts.length === 2
      ? port(parts[1], spec, "local", false)
      : local === 0
      ? undefined
      : local;
    return { local, ...(remote !== undefined ? { remote } : {}), udp };
  });
}

/** `--bind ADDR`: an IPv4 or IPv6 address of this machine (0.0.0.0: every interface). */
export function parseBind(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const v = String(value).replace(/^\[(.*)\]$/, "$1");
  if (!/^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:.]*)$/i.test(v)) {
    throw new UsageError(
      `--bind ${String(value)} is not an IP address (say 0.0.0.0 to offer the port to your LAN).`,
    );
  }
  return v;
}

/** `--broadcast PORT` and `--multicast GROUP:PORT` (IPv4 groups, 224.0.0.0/4). */
export function parseLanChannels(
  broadcast: readonly string[],
  multicast: readonly string[],
): { port: number; group?: string }[] {
  const out: { port: number; group?: string }[] = split(broadcast).map((spec) => ({
    port: port(spec, spec, "broadcast", false),
  }));
  for (const spec of split(multicast)) {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(spec);
    const first = m ? Number(m[1].split(".")[0]) : 0;
    if (!m || first < 224 || first > 239 || m[1].split(".").some((x) => Number(x) > 255)) {
      throw new UsageError(
        `--multicast ${spec}: say GROUP:PORT with an IPv4 multicast group (224.0.0.0–239.255.255.255).`,
      );
    }
    out.push({ group: m[1], port: port(m[2], spec, "multicast", false) });
  }
  return out;
}
