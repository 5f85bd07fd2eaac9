/**
 * `deno task bench budget`: mails per member per day from the group simulation (tests/helpers/
 * group_sim.ts), for a typical evening (8 friends, 4 hours) and an all-day group (20 members all
 * day, 10 visits an hour), at the default --mail-budget.
 */
import { DEFAULT_MAIL_BUDGET } from "../../src/mail/budget.ts";
import { allDaySessions, eveningSessions, simulateGroup } from "../../tests/helpers/group_sim.ts";

export async function benchBudget(): Promise<void> {
  const cases = [
    { name: "evening: 8 friends, 4 h", sessions: eveningSessions(), hours: 4 },
    { name: "all day: 20 members + 10 visits/h", sessions: allDaySessions(), hours: 24 },
  ];
  for (const c of cases) {
    const r = await simulateGroup({
      sessions: c.sessions,
      durationMs: c.hours * 3600_000,
      budget: DEFAULT_MAIL_BUDGET,
      comeBack: true,
    });
    const members = [...r.sent].filter(([a]) => a !== "host@sim.test").map(([, n]) => n);
    const own = members.reduce((a, b) => a + b, 0);
    const host = r.sent.get("host@sim.test") ?? 0;
    const people = new Set(c.sessions.map((s) => s.user)).size;
    console.log(`${c.name} (${people} members, ${r.sessions} sessions):`);
    console.log(
      `  each member's account: ${(own / people).toFixed(1)} mails on average, ${
        Math.max(...members)
      } at most`,
    );
    console.log(
      `  the host's account: ${host} mails (budget ${DEFAULT_MAIL_BUDGET}); all mail per member: ${
        ((own + host) / people).toFixed(1)
      }`,
    );
    console.log(
      `  by kind: ${[...r.byKind].map(([k, n]) => `${k} ${n}`).join(", ")}; apart: ${r.apart.length}`,
    );
  }
}

if (import.meta.main) await benchBudget();
