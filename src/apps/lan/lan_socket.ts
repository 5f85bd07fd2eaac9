/**
 * The UDP sockets of LAN discovery: a listener that hears a port's broadcasts and a multicast
 * group's datagrams, and a sender that replays them on this machine (loopback) or on the LAN.
 *
 * Loopback needs care: a group's datagrams sent through lo reach only sockets of groups joined on
 * lo, so every socket here joins on lo as well as on the default interface; with Linux's
 * IP_MULTICAST_ALL (on by default) a game that joined on the default interface then hears them too.
 * node:dgram, as in src/apps/tunnel.ts: stable in Deno without --unstable-net.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Buffer } from "node:buffer";

const LOOPBACK = "127.0.0.1";
/** lo's broadcast address: a broadcast that stays on this machine. */
const LOOPBACK_BROADCAST = "127.255.255.255";

/** Where a replay goes: this machine only, or the local network too. */
export type Scope = "loopback" | "lan";

export function scopeOf(bind: string | undefined): Scope {
  return bind === undefined || bind.startsWith("127.") || bind === "::1" ? "loopback" : "lan";
}

function bound(socket: Socket, port: number, address?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, address, () => {
      socket.off("error", reject);
      socket.on("error", () => {}); // ICMP errors and the like: discovery is best effort
      resolve();
    });
  });
}

function join(socket: Socket, group: string): void {
  for (const iface of [LOOPBACK, undefined]) {
    try {
      socket.addMembership(group, iface);
    } catch {
      // no such route (no multicast on the LAN side): loopback still works
    }
  }
}

/** Hears `port`'s broadcasts and, with `group`, that group's datagrams (other programs keep theirs). */
export async function listenLan(
  port: number,
  group: string | undefined,
  onMessage: (data: Uint8Array, from: RemoteInfo) => void,
): Promise<Socket> {
  const socket = createSocket({ type: "udp4", reuseAddr: true });
  await bound(socket, port);
  socket.setBroadcast(true);
  if (group) join(socket, group);
  socket.on(
    "message",
    (msg: Buffer, from: RemoteInfo) =>
      onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), from),
  );
  return socket;
}

/** Sends replays: to a group (multicast) or a port's broadcast address, in `scope`. */
export class LanSender {
  private constructor(readonly socket: Socket, readonly scope: Scope) {}

  static async open(scope: Scope, groups: readonly string[] = []): Promise<LanSender> {
    const socket = createSocket({ type: "udp4", reuseAddr: true });
    await bound(socket, 0);
    socket.setBroadcast(true);
    socket.setMulticastLoopback(true);
    // One hop: the LAN, never beyond a router (on lo it goes nowhere else anyway).
    socket.setMulticastTTL(1);
    if (scope === "loopback") socket.setMulticastInterface(LOOPBACK);
    for (const g of groups) join(socket, g);
    return new LanSender(socket, scope);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** To `group`:port, or (no group) to the port's broadcast address. */
  send(data: Uint8Array, port: number, group?: string): void {
    const to = group ?? (this.scope === "loopback" ? LOOPBACK_BROADCAST : "255.255.255.255");
    this.socket.send(data, port, to);
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // closed already
    }
  }
}
