/**
 * Where a bench phase's work goes: CPU seconds of each process (from /proc, Linux) and, on
 * PostgreSQL, row writes and commits of the bench database (pg_stat_user_tables and
 * pg_stat_database), as deltas between two snapshots, printed per 1,000 deliveries.
 */
import { readdir, readFile } from "node:fs/promises";

/** Reads the bench database's statistics; undefined on SQLite. */
export type StatsQuery = (sql: string) => Promise<Record<string, unknown>[]>;

/** A snapshot of the work counters. */
export interface WorkSnapshot {
  cpuSeconds: Map<string, number>;
  rows: { inserts: number; updates: number; deletes: number; commits: number } | undefined;
  /** CPU seconds of each PostgreSQL backend of the bench database, by pid. */
  backendCpu: Map<number, number>;
}

// Linux USER_HZ: /proc/<pid>/stat counts CPU time in these ticks.
const TICKS_PER_SECOND = 100;

async function cpuOf(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime + stime
  } catch {
    return 0; // gone
  }
}

/** The pid of the process whose command line contains `needle`. */
export async function findPid(needle: string): Promise<number | undefined> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmd.replaceAll("\0", " ").includes(needle)) return Number(entry);
  }
  return undefined;
}

/**
 * Takes a snapshot: `processes` (label → pid), the bench client itself, and on PostgreSQL the
 * backends connected to the bench database (summed) and its row and commit counters.
 */
export async function snapshot(
  processes: Readonly<Record<string, number | undefined>>,
  stats: StatsQuery | undefined,
): Promise<WorkSnapshot> {
  const cpuSeconds = new Map<string, number>();
  for (const [label, pid] of Object.entries(processes)) if (pid !== undefined) cpuSeconds.set(label, await cpuOf(pid));
  const own = process.cpuUsage();
  cpuSeconds.set("bench client + receiver", (own.user + own.system) / 1e6);
  let rows: WorkSnapshot["rows"];
  const backendCpu = new Map<number, number>();
  if (stats !== undefined) {
    const backends = await stats(
      "select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
    let pgCpu = 0;
    for (const b of backends) {
      const pid = Number(b["pid"]);
      const cpu = await cpuOf(pid);
      backendCpu.set(pid, cpu);
      pgCpu += cpu;
    }
    cpuSeconds.set("PostgreSQL backends", pgCpu);
    const [t] = await stats(
      "select coalesce(sum(n_tup_ins), 0) as i, coalesce(sum(n_tup_upd), 0) as u, coalesce(sum(n_tup_del), 0) as d from pg_stat_user_tables",
    );
    const [c] = await stats("select xact_commit as c from pg_stat_database where datname = current_database()");
    rows = {
      inserts: Number(t?.["i"]),
      updates: Number(t?.["u"]),
      deletes: Number(t?.["d"]),
      commits: Number(c?.["c"]),
    };
  }
  return { cpuSeconds, rows, backendCpu };
}

/** Rows of the work table between two snapshots, for `deliveries` deliveries. */
export function workRows(
  label: string,
  before: WorkSnapshot,
  cpuAfter: WorkSnapshot,
  rowsAfter: WorkSnapshot,
  deliveries: number,
): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  const per1000 = 1000 / Math.max(deliveries, 1);
  let total = 0;
  const deltas = [...cpuAfter.cpuSeconds.entries()].map(([name, after]) => {
    // Backends come and go with the pools: each one counts from its own earlier reading (a backend
    // that exited during the phase is missed, never counted negative).
    const d =
      name === "PostgreSQL backends"
        ? [...cpuAfter.backendCpu.entries()].reduce(
            (sum, [pid, cpu]) => sum + cpu - (before.backendCpu.get(pid) ?? 0),
            0,
          )
        : after - (before.cpuSeconds.get(name) ?? 0);
    total += d;
    return [name, d] as const;
  });
  for (const [name, d] of deltas.sort((a, b) => b[1] - a[1])) {
    out.push([
      `${label}: CPU s/1k deliveries, ${name}`,
      (d * per1000).toFixed(3),
      `${((100 * d) / Math.max(total, 1e-9)).toFixed(0)} % of the measured CPU`,
    ]);
  }
  out.push([`${label}: CPU s/1k deliveries, all`, (total * per1000).toFixed(3), ""]);
  const a = rowsAfter.rows;
  const b = before.rows;
  if (a !== undefined && b !== undefined) {
    const per = (x: number): string => (x / Math.max(deliveries, 1)).toFixed(2);
    const ins = a.inserts - b.inserts;
    const upd = a.updates - b.updates;
    const del = a.deletes - b.deletes;
    out.push(
      [
        `${label}: PostgreSQL row writes / delivery`,
        per(ins + upd + del),
        `${per(ins)} ins, ${per(upd)} upd, ${per(del)} del`,
      ],
      [`${label}: PostgreSQL commits / delivery`, per(a.commits - b.commits), ""],
    );
  }
  return out;
}
