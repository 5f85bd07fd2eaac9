/**
 * Source-engine server queries (A2S_INFO), the discovery of Counter-Strike, Team Fortress 2,
 * Garry's Mod and every other Source / GoldSrc game. Source: Valve Developer Community, "Server
 * queries" (developer.valvesoftware.com/wiki/Server_queries). The game's LAN tab broadcasts an
 * A2S_INFO query to ports 27015–27020; a server answers on its game port.
 *
 * Query:     FF FF FF FF 'T' "Source Engine Query\0" [challenge: int32 LE, after an S2C_CHALLENGE]
 * Challenge: FF FF FF FF 'A' challenge (int32 LE) — the client repeats its query with it
 * Answer:    FF FF FF FF 'I' protocol, name\0, map\0, folder\0, game\0, id (u16 LE), players, max,
 *            bots, type, environment, visibility, vac, [The Ship (id 2400): mode, witnesses,
 *            duration], version\0, EDF, [EDF & 0x80: game port (u16 LE)], … (more EDF fields)
 *
 * A member's tunnel carries the answer of its server to the others, whose tunnel answers the LAN
 * browser's query at once with it, the game port rewritten to the tunnel's local port.
 */
const HEADER = [0xff, 0xff, 0xff, 0xff];
const QUERY_TEXT = "Source Engine Query\0";
export const A2S_INFO = 0x54;
export const S2C_CHALLENGE = 0x41;
export const S2A_INFO = 0x49;
/** Ports the Source LAN browser asks. */
export const A2S_LAN_PORTS = [27015, 27016, 27017, 27018, 27019, 27020] as const;
const THE_SHIP = 2400;
const EDF_PORT = 0x80;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface A2sInfo {
  protocol: number;
  name: string;
  map: string;
  folder: string;
  game: string;
  id: number;
  players: number;
  maxPlayers: number;
  bots: number;
  version: string;
  /** The game port the server names (EDF 0x80), when it names one. */
  port?: number;
}

function isHeader(b: Uint8Array): boolean {
  return b.length >= 5 && HEADER.every((x, i) => b[i] === x);
}

/** An A2S_INFO query (with or without a challenge). */
export function isInfoQuery(b: Uint8Array): boolean {
  if (!isHeader(b) || b[4] !== A2S_INFO) return false;
  const text = decoder.decode(b.subarray(5, 5 + QUERY_TEXT.length));
  return text === QUERY_TEXT && (b.length === 5 + QUERY_TEXT.length || b.length === 9 + QUERY_TEXT.length);
}

export function infoQuery(challenge?: number): Uint8Array {
  const text = encoder.encode(QUERY_TEXT);
  const out = new Uint8Array(5 + text.length + (challenge === undefined ? 0 : 4));
  out.set(HEADER);
  out[4] = A2S_INFO;
  out.set(text, 5);
  if (challenge !== undefined) new DataView(out.buffer).setInt32(5 + text.length, challenge, true);
  return out;
}

/** The challenge of an S2C_CHALLENGE answer, else undefined. */
export function challengeOf(b: Uint8Array): number | undefined {
  if (!isHeader(b) || b[4] !== S2C_CHALLENGE || b.length < 9) return undefined;
  return new DataView(b.buffer, b.byteOffset).getInt32(5, true);
}

class Reader {
  off = 5;
  constructor(readonly b: Uint8Array) {}
  byte(): number {
    if (this.off >= this.b.length) throw new RangeError("short A2S_INFO answer");
    return this.b[this.off++];
  }
  u16(): number {
    const lo = this.byte();
    return lo | (this.byte() << 8);
  }
  str(): string {
    const end = this.b.indexOf(0, this.off);
    if (end < 0) throw new RangeError("unterminated string in A2S_INFO answer");
    const s = decoder.decode(this.b.subarray(this.off, end));
    this.off = end + 1;
    return s;
  }
}

/** Reads an S2A_INFO answer; `portAt` is where its game port sits (for rewriting), if any. */
function read(b: Uint8Array): { info: A2sInfo; portAt?: number } | undefined {
  if (!isHeader(b) || b[4] !== S2A_INFO) return undefined;
  try {
    const r = new Reader(b);
    const protocol = r.byte();
    const name = r.str();
    const map = r.str();
    const folder = r.str();
    const game = r.str();
    const id = r.u16();
    const players = r.byte();
    const maxPlayers = r.byte();
    const bots = r.byte();
    r.off += 4; // server type, environment, visibility, VAC
    if (id === THE_SHIP) r.off += 3;
    const version = r.str();
    const info: A2sInfo = { protocol, name, map, folder, game, id, players, maxPlayers, bots, version };
    if (r.off >= b.length) return { info };
    const edf = r.byte();
    if (!(edf & EDF_PORT)) return { info };
    const portAt = r.off;
    info.port = r.u16();
    return { info, portAt };
  } catch {
    return undefined;
  }
}

export function parseInfo(b: Uint8Array): A2sInfo | undefined {
  return read(b)?.info;
}

/** The same answer naming `port` as the game port (unchanged when it names none). */
export function withGamePort(b: Uint8Array, port: number): Uint8Array {
  const r = read(b);
  if (r?.portAt === undefined) return b;
  const out = b.slice();
  out[r.portAt] = port & 0xff;
  out[r.portAt + 1] = port >> 8;
  return out;
}
