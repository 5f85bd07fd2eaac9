import assert from "node:assert/strict";
import { isAbsolute, join, relative } from "node:path";
import fc from "fast-check";
import { prepareTarget, safeComponents, UnsafePathError } from "../../src/apps/file_paths.ts";
import { receiveFiles } from "../../src/apps/file_receive.ts";
import { FILE_PROTOCOL, M_ANSWER, M_OFFER, MessageReader, writeJson } from "../../src/apps/file_proto.ts";
import { Mux, type MuxStream } from "../../src/net/mux.ts";
import { ends } from "../helpers/mem_pipe.ts";

Deno.test("names that leave the folder, are absolute, or are malformed are refused", () => {
  for (
    const bad of [
      "",
      "..",
      "../x",
      "a/../../b",
      "a/..",
      "/etc/passwd",
      "//server/share",
      "C:/Windows/x",
      "c:x",
      "a\\..\\b",
      "a//b",
      "./a",
      "a/.",
      "a/",
      "x\u0000y",
      "x\ny",
      "\x1b[2Jx",
      ".a.mailmeet-part",
      "a".repeat(256),
    ]
  ) {
    assert.throws(() => safeComponents(bad), UnsafePathError, JSON.stringify(bad));
  }
  assert.throws(() => safeComponents(42), UnsafePathError);
  assert.deepEqual(safeComponents("photos/2024/a b.jpg"), ["photos", "2024", "a b.jpg"]);
  assert.deepEqual(safeComponents("ünïcødé/..hidden/...dots"), ["ünïcødé", "..hidden", "...dots"]);
});

Deno.test("any name that is accepted stays inside the target folder", () => {
  const root = "/srv/in";
  fc.assert(
    fc.property(
      fc.tuple(
        fc.array(
          fc.oneof(fc.constantFrom("..", ".", "", "a", "/", "\\", "C:", "b.txt", "..x"), fc.string()),
          {
            maxLength: 6,
          },
        ),
        fc.constantFrom("/", "\\", ""),
      ).map(([parts, sep]) => parts.join(sep)),
      (name) => {
        let parts: string[];
        try {
          parts = safeComponents(name);
        } catch (err) {
          assert.ok(err instanceof UnsafePathError);
          return;
        }
        const rel = relative(root, join(root, ...parts));
        assert.ok(
          rel !== "" && rel !== ".." && !rel.startsWith("../") && !isAbsolute(rel),
          `${name} → ${rel}`,
        );
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("a symbolic link on the way to a target is refused, not followed", async () => {
  const root = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.symlink(outside, join(root, "sub"));
    await assert.rejects(
      prepareTarget(root, ["sub", "x.txt"], { createDirs: true }),
      (e: unknown) => e instanceof UnsafePathError && /symbolic link/.test(e.message),
    );
    const ok = await prepareTarget(root, ["new", "deeper", "x.txt"], { createDirs: true });
    assert.equal(ok.path, join(root, "new", "deeper", "x.txt"));
    assert.equal(ok.part, join(root, "new", "deeper", ".x.txt.mailmeet-part"));
    assert.ok((await Deno.stat(join(root, "new", "deeper"))).isDirectory);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

/** A hostile sender offers `entries` to receiveFiles over an in-memory link; returns its answer and the receiver's error. */
async function offerTo(root: string, entries: unknown[], force = false) {
  const [x, y] = ends();
  const got = Promise.withResolvers<MuxStream>();
  const sender = new Mux(x, {});
  const receiver = new Mux(y, { onStream: (s) => got.resolve(s) });
  const s = sender.open(FILE_PROTOCOL);
  await writeJson(s, M_OFFER, { entries, total: 0 });
  let asked = false;
  const receiving = receiveFiles(await got.promise, "mallory", {
    root,
    force,
    decide: () => {
      asked = true;
      return Promise.resolve(true);
    },
    emit: () => {},
    onProgress: () => {},
  }).then(() => null, (e: Error) => e);
  const reader = new MessageReader(s);
  const m = await reader.next();
  assert.equal(m?.kind, M_ANSWER);
  const answer = await reader.json<{ accept: boolean; reason?: string }>(m!.len);
  s.closeWrite();
  const error = await receiving;
  await sender.close();
  await receiver.close();
  return { answer, error, asked };
}

Deno.test("the receiver refuses a hostile offer before asking: traversal, absolute, link on the way, existing file", async () => {
  const root = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.symlink(outside, join(root, "linked"));
    await Deno.writeTextFile(join(root, "there.txt"), "mine");
    for (
      const [entries, why] of [
        [[{ path: "ok.txt", size: 1 }, { path: "../escape.txt", size: 1 }], /leave the target folder/],
        [[{ path: "/etc/cron.d/x", size: 1 }], /absolute path/],
        [[{ path: "linked/x.txt", size: 1 }], /symbolic link/],
        [[{ path: "there.txt", size: 4 }], /already exists \(--force overwrites it\)/],
        [[{ path: "a", size: 1 }, { path: "a", size: 1 }], /offered twice/],
        [[{ path: "n", size: -1 }], /not a byte count/],
      ] as const
    ) {
      const { answer, error, asked } = await offerTo(root, [...entries]);
      assert.equal(answer.accept, false);
      assert.match(answer.reason ?? "", why);
      assert.match(error?.message ?? "", why);
      assert.equal(asked, false, "the user is not asked about a refused offer");
    }
    assert.deepEqual([...Deno.readDirSync(outside)], [], "nothing was written outside");
    assert.equal(await Deno.readTextFile(join(root, "there.txt")), "mine");
    // With --force an existing file may be replaced: the offer passes to the user.
    const forced = await offerTo(root, [{ path: "there.txt", size: 0 }], true);
    assert.equal(forced.answer.accept, true);
    assert.equal(forced.asked, true);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
