/** Where a host keeps its peer table, and opening it with the table options (--db, --capacity, --ttl, --reply-limit). */
import { join } from "node:path";
import { PeerTable } from "../table/table.ts";
import { dataDir, num, str } from "./context.ts";
import type { Resolved } from "./options.ts";

export function tablePath(r: Resolved, address: string): string {
  return str(r, "db") ?? join(dataDir(), `table-${address.replace(/[^A-Za-z0-9@._-]/g, "_")}.db`);
}

export function openTable(r: Resolved, address: string): PeerTable {
  const path = tablePath(r, address);
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  return new PeerTable(path, {
    capacity: num(r, "capacity"),
    ttlMs: num(r, "ttl"),
    replyLimit: num(r, "reply-limit"),
  });
}
