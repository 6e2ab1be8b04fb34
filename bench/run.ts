/**
 * The side-by-side benchmark (issue 6): starts each server in turn on
 * loopback, loads it, and prints one Markdown table per scenario with
 * throughput, the server's CPU time per request and ratios against the
 * runtime's native server (and the raw-TCP ceiling for pipelining).
 *
 *   deno task bench                        # everything, ~12 minutes
 *   deno run -A bench/run.ts --only=waitress-deno,deno-serve --scenarios=a,b --duration=3
 *
 * Run `deno run -A bench/run.ts --help` for the flags. The table goes to
 * stdout and to bench/results/<date>.md; progress goes to stderr.
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const HELP = `usage: deno run -A bench/run.ts [flags]
  --only=a,b           servers (default all): ${"waitress-deno,deno-serve,deno-raw,waitress-bun,bun-serve,bun-raw,bun-floor,waitress-node,node-http,waitress-py"}
  --scenarios=a,b,...  scenarios (default a,b,c,d,e,f):
                       a hello keep-alive, b pipelined, c 64 KiB, d 100 MiB down/up,
                       e idle connections RSS, f JSON router app
  --duration=5         seconds per measured wrk run (whole seconds)
  --warmup=3           seconds of wrk warm-up per run, 0 for none (d: one unmeasured transfer)
  --runs=5             measured runs per cell (the median is reported)
  --connections=50     wrk connections for a, b, c, f
  --pipeline=16        requests per write in b
  --idle=10000         connections held open in e
  --transfers=20       100 MiB transfers per measured run in d (one connection each)
  --no-pin             do not pin with taskset
  --python=PATH        a python3 that can import waitress (default: /usr/bin/python3, python3)
  --out=PATH           results file (default bench/results/<date>_<time>.md; --out= for none)`;

// ---------------------------------------------------------------- flags

const flags = new Map<string, string>();
for (const arg of Deno.args) {
  if (arg === "--help" || arg === "-h") {
    console.log(HELP);
    Deno.exit(0);
  }
  const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
  if (!m) {
    console.error(`unknown argument: ${arg}\n${HELP}`);
    Deno.exit(2);
  }
  flags.set(m[1], m[2] ?? "true");
}
const known = [
  "only",
  "scenarios",
  "duration",
  "warmup",
  "runs",
  "connections",
  "pipeline",
  "idle",
  "transfers",
  "no-pin",
  "python",
  "out",
];
for (const key of flags.keys()) {
  if (!known.includes(key)) {
    console.error(`unknown flag: --${key}\n${HELP}`);
    Deno.exit(2);
  }
}
function num(name: string, fallback: number): number {
  const value = Number(flags.get(name) ?? fallback);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`--${name} must be a positive number`);
    Deno.exit(2);
  }
  return value;
}
/** wrk takes whole seconds: a flag for it that is not one is refused, not sent on. */
function seconds(name: string, fallback: number, least: number): number {
  const value = Number(flags.get(name) ?? fallback);
  if (!Number.isInteger(value) || value < least) {
    console.error(`--${name} must be a whole number of seconds, at least ${least}`);
    Deno.exit(2);
  }
  return value;
}
const DURATION = seconds("duration", 5, 1);
const WARMUP = seconds("warmup", 3, 0);
const RUNS = Math.round(num("runs", 5));
const CONNECTIONS = Math.round(num("connections", 50));
const PIPELINE = Math.round(num("pipeline", 16));
let IDLE = Math.round(num("idle", 10000));
const TRANSFERS = Math.round(num("transfers", 20));

// ---------------------------------------------------------------- small helpers

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const log = (line: string) => console.error(line);
const decoder = new TextDecoder();

async function run(cmd: string[], timeoutMs = 30_000): Promise<{ ok: boolean; out: string }> {
  try {
    const result = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    return {
      ok: result.success,
      out: decoder.decode(result.stdout) + decoder.decode(result.stderr),
    };
  } catch (error) {
    return { ok: false, out: String(error) };
  }
}

async function which(name: string): Promise<string | null> {
  const r = await run(["sh", "-c", `command -v "${name}"`]);
  return r.ok ? r.out.trim() : null;
}

function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

// ---------------------------------------------------------------- /proc readings

const CLK_TCK = Number((await run(["getconf", "CLK_TCK"])).out.trim()) || 100;

/** The process's user+system CPU time in seconds (all its threads). */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** VmRSS in KiB. */
function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : NaN;
}

/** Busy and total jiffies of one core, from /proc/stat (how loaded each side's core is). */
function coreJiffies(core: number): { busy: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n").find((l) =>
    l.startsWith(`cpu${core} `)
  );
  if (!line) return { busy: NaN, total: NaN };
  // user nice system idle iowait irq softirq steal ...: busy = user+nice+system+steal.
  // irq/softirq are left out: loopback packet processing lands there and
  // belongs to neither side in particular.
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: v[0] + v[1] + v[2] + (v[7] ?? 0), total };
}

// ---------------------------------------------------------------- environment

const wrk = await which("wrk");
const taskset = await which("taskset");
const cores = Number((await run(["nproc"])).out.trim()) || navigator.hardwareConcurrency;
const pin = !flags.has("no-pin") && taskset !== null && cores >= 2;
const SERVER_CORE = 0;
const CLIENT_CORE = 1;
const onServerCore = (cmd: string[]) => pin ? ["taskset", "-c", String(SERVER_CORE), ...cmd] : cmd;
const onClientCore = (cmd: string[]) => pin ? ["taskset", "-c", String(CLIENT_CORE), ...cmd] : cmd;

const denoBin = Deno.execPath();
const bunBin = (() => {
  try {
    Deno.statSync(`${ROOT}/node_modules/.bin/bun`);
    return `${ROOT}/node_modules/.bin/bun`;
  } catch {
    return null;
  }
})() ?? await which("bun");
const nodeBin = await which("node");

/**
 * Node cannot load TypeScript (Node 20), so this server runs there as one
 * file bundled by Bun; null (and the row says why) when that is not possible.
 */
async function bundleForNode(): Promise<{ file: string | null; why: string }> {
  if (!nodeBin) return { file: null, why: "node not found" };
  if (!bunBin) return { file: null, why: "bun not found (npm ci installs it), needed to bundle" };
  const file = `${await Deno.makeTempDir({ prefix: "waitress-bench-" })}/waitress.mjs`;
  const built = await run([
    bunBin,
    "build",
    "bench/servers/waitress.ts",
    "--target=node",
    `--outfile=${file}`,
  ]);
  return built.ok
    ? { file, why: "" }
    : { file: null, why: `bun build failed: ${built.out.trim()}` };
}
const nodeBundle = await bundleForNode();

async function findPython(): Promise<string | null> {
  const candidates = flags.has("python") ? [flags.get("python")!] : ["/usr/bin/python3", "python3"];
  for (const python of candidates) {
    if ((await run([python, "-c", "import waitress"])).ok) return python;
  }
  return null;
}
const python = await findPython();

async function version(cmd: string[]): Promise<string> {
  const r = await run(cmd);
  // `wrk -v` prints its version and exits 1, so take the first line either way.
  return r.out.trim().split("\n")[0] || "n/a";
}
const hardNoFile = Number((await run(["sh", "-c", "ulimit -Hn"])).out.trim()) || 1024;

// ---------------------------------------------------------------- servers

type ScenarioId = "a" | "b" | "c" | "d" | "e" | "f";
interface ServerSpec {
  name: string;
  label: string;
  runtime: string;
  /** The native server of the same runtime, for the ratio columns. */
  native: string;
  /** The raw-TCP ceiling of the same runtime (pipelined ratio). */
  raw?: string;
  scenarios: ScenarioId[];
  /** Runs of (e) when fewer than --runs (the figure is stable and a run is slow). */
  idleRuns?: number;
  /** Why it cannot run here, if it cannot. */
  missing?: string;
  command(port: number, scenario: ScenarioId): string[];
}

const ALL: ScenarioId[] = ["a", "b", "c", "d", "e", "f"];
// The raw ceilings answer every head with the fixed hello response.
const RAW: ScenarioId[] = ["a", "b", "e"];
const connectionLimit = () => IDLE + 100;

/** What the servers of one runtime share. */
interface Family {
  runtime: string;
  native: string;
  raw?: string;
  missing?: string;
  /** The command line that runs `script`. */
  run(script: string): string[];
}

const DENO: Family = {
  runtime: "Deno",
  native: "deno-serve",
  raw: "deno-raw",
  run: (script) => [denoBin, "run", "-A", script],
};
const BUN: Family = {
  runtime: "Bun",
  native: "bun-serve",
  raw: "bun-raw",
  missing: bunBin ? undefined : "bun not found (npm ci installs it)",
  run: (script) => [bunBin!, script],
};
const NODE: Family = {
  runtime: "Node",
  native: "node-http",
  missing: nodeBin ? undefined : "node not found",
  run: (script) => [nodeBin!, script],
};

/** A server of `family` that runs `script`. */
function server(
  family: Family,
  name: string,
  label: string,
  scenarios: ScenarioId[],
  script: string,
  extra: string[] = [],
): ServerSpec {
  return {
    ...family,
    name,
    label,
    scenarios,
    command: (port) => [...family.run(script), `--port=${port}`, ...extra],
  };
}

/** This server on `family`; waitress's connection_limit defaults to 100, and (e) needs more. */
function waitressOn(family: Family, script: () => string, missing = family.missing): ServerSpec {
  return {
    ...family,
    name: `waitress-${family.runtime.toLowerCase()}`,
    label: `waitress (this) on ${family.runtime}`,
    scenarios: ALL,
    missing,
    command: (port, s) => [
      ...family.run(script()),
      `--port=${port}`,
      ...(s === "e" ? [`--options={"connectionLimit":${connectionLimit()}}`] : []),
    ],
  };
}

const SERVERS: ServerSpec[] = [
  waitressOn(DENO, () => "bench/servers/waitress.ts"),
  server(DENO, "deno-serve", "Deno.serve", ALL, "bench/servers/deno_serve.ts"),
  server(DENO, "deno-raw", "raw Deno.listen", RAW, "bench/servers/deno_raw.ts"),
  waitressOn(BUN, () => "bench/servers/waitress.ts"),
  server(BUN, "bun-serve", "Bun.serve", ALL, "bench/servers/bun_serve.ts"),
  server(BUN, "bun-raw", "raw Bun.listen", RAW, "bench/servers/bun_raw.ts"),
  // Where Bun's pipelined (b) is bounded for any server built on the fetch API.
  server(BUN, "bun-floor", "fetch-API floor on Bun.listen", ["b"], "bench/servers/bun_raw.ts", [
    "--fetch-floor",
  ]),
  // Node 20 cannot load TypeScript: it runs a bundle of bench/servers/waitress.ts.
  waitressOn(NODE, () => nodeBundle.file!, nodeBundle.file ? undefined : nodeBundle.why),
  server(NODE, "node-http", "node:http", ALL, "bench/servers/node_http.mjs"),
  {
    name: "waitress-py",
    label: "Python waitress (4 threads)",
    runtime: "Python",
    native: "waitress-py",
    scenarios: ALL,
    missing: python
      ? undefined
      : "python3-waitress not installed: apt-get install python3-waitress",
    // Its poll() loop over 10,000 sockets makes opening them take ~80 s per
    // run; the figure varies by < 2% between runs, so one run is enough.
    idleRuns: 1,
    // Defaults (4 threads, connection_limit 100, select()); (e) needs more
    // connections than select() can watch, hence poll and a higher limit.
    command: (port, s) => [
      python!,
      "bench/servers/waitress_app.py",
      `--port=${port}`,
      ...(s === "e" ? [`--connection-limit=${connectionLimit()}`, "--poll"] : []),
    ],
  },
];

const only = flags.get("only")?.split(",").map((s) => s.trim()).filter(Boolean);
for (const name of only ?? []) {
  if (!SERVERS.some((s) => s.name === name)) {
    console.error(`unknown server in --only: ${name}\n${HELP}`);
    Deno.exit(2);
  }
}
const servers = SERVERS.filter((s) => !only || only.includes(s.name));
const scenarios = (flags.get("scenarios") ?? "a,b,c,d,e,f").split(",").map((s) =>
  s.trim()
) as ScenarioId[];
for (const s of scenarios) {
  if (!ALL.includes(s)) {
    console.error(`unknown scenario: ${s}\n${HELP}`);
    Deno.exit(2);
  }
}

const notes: string[] = [];
if (!wrk && scenarios.some((s) => "abcf".includes(s))) {
  console.error(
    "wrk is not installed. Install it with `sudo apt-get install wrk` (Debian/Ubuntu),\n" +
      "`brew install wrk` (macOS), or build it from https://github.com/wg/wrk.\n" +
      "(Scenarios d and e do not need it: --scenarios=d,e)",
  );
  Deno.exit(1);
}
if (!pin) {
  notes.push(
    flags.has("no-pin")
      ? "Not pinned (--no-pin): server and load generator share the cores."
      : cores < 2
      ? "Only one core: server and load generator share it, so figures are lower than on 2 cores."
      : "taskset not found (util-linux): server and load generator are not pinned.",
  );
}
if (scenarios.includes("e") && hardNoFile < IDLE + 200) {
  const was = IDLE;
  IDLE = Math.max(100, hardNoFile - 200);
  notes.push(
    `The open-file limit (ulimit -Hn = ${hardNoFile}) is below ${was} connections: (e) used ${IDLE}.`,
  );
}
for (const s of servers) if (s.missing) notes.push(`${s.name} skipped: ${s.missing}.`);

// ---------------------------------------------------------------- one server process

interface Running {
  pid: number;
  port: number;
  child: Deno.ChildProcess;
  exited: boolean;
  logPath: string;
}

const tmp = Deno.makeTempDirSync({ prefix: "waitress-bench-" });

// The server runs as `sh -c 'ulimit -n …; exec taskset … cmd'`: each exec keeps
// the pid, so the pid we get is the server's own for /proc readings.
async function startServer(spec: ServerSpec, scenario: ScenarioId): Promise<Running> {
  try {
    return await startServerOnce(spec, scenario);
  } catch (error) {
    // One retry: a start can fail for a passing reason (the port picked was
    // taken meanwhile, node_modules being reinstalled by someone else).
    log(`  ${spec.name}: ${error instanceof Error ? error.message : error}; retrying once`);
    await sleep(2000);
    return await startServerOnce(spec, scenario);
  }
}

async function startServerOnce(spec: ServerSpec, scenario: ScenarioId): Promise<Running> {
  const port = freePort();
  const logPath = `${tmp}/${spec.name}-${scenario}.log`;
  const script = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@" >"$LOG" 2>&1';
  const child = new Deno.Command("sh", {
    args: ["-c", script, "sh", ...onServerCore(spec.command(port, scenario))],
    cwd: ROOT,
    env: { LOG: logPath, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const running: Running = { pid: child.pid, port, child, exited: false, logPath };
  child.status.then(() => (running.exited = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (running.exited) break;
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return running;
    } catch {
      await sleep(50);
    }
  }
  const tail = logTail(running);
  await stopServer(running);
  throw new Error(
    running.exited ? `exited before listening: ${tail}` : `not listening after 30 s: ${tail}`,
  );
}

function logTail(running: Running): string {
  try {
    const text = Deno.readTextFileSync(running.logPath).trim();
    return text.slice(-600).replace(/\s+/g, " ") || "(no output)";
  } catch {
    return "(no output)";
  }
}

async function stopServer(running: Running): Promise<void> {
  if (!running.exited) {
    try {
      running.child.kill("SIGTERM");
    } catch {
      // already gone
    }
    const gone = await Promise.race([running.child.status.then(() => true), sleep(5000)]);
    if (!gone) {
      try {
        running.child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await running.child.status;
    }
  }
  try {
    Deno.removeSync(running.logPath);
  } catch {
    // never written
  }
}

// ---------------------------------------------------------------- measurements

/** One measured run. `value` is req/s, MB/s or KiB per connection. */
interface Run {
  value: number;
  /** Server CPU µs per request (a b c f), ms per 100 MiB (d); NaN for e. */
  cpu: number;
  /** Server CPU time over wall time, in % of one core. */
  cpuPct: number;
  /** How busy the client core was, in % (NaN when not pinned). */
  clientPct: number;
  /**
   * Time other processes took on the server's core, in % of the window
   * (NaN when not pinned): a busy machine shows up here, not as a slow server.
   */
  foreignPct: number;
  p99ms: number;
  errors: number;
  detail: string;
}

interface Cell {
  scenario: string;
  server: string;
  runs: Run[];
  error?: string;
}

function parseDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2]]!;
  return Number(m[1]) * scale;
}

async function wrkOnce(
  port: number,
  path: string,
  seconds: number,
  pipeline: number,
): Promise<Omit<Run, "cpu" | "cpuPct" | "clientPct" | "foreignPct"> & { requests: number }> {
  const cmd = [
    "wrk",
    "-t1",
    `-c${CONNECTIONS}`,
    `-d${seconds}s`,
    "--latency",
    ...(pipeline > 1 ? ["-s", "bench/wrk/pipeline.lua"] : []),
    `http://127.0.0.1:${port}${path}`,
    ...(pipeline > 1 ? ["--", String(pipeline)] : []),
  ];
  const r = await run(onClientCore(cmd), (seconds + 30) * 1000);
  const requests = Number(/(\d+) requests in/.exec(r.out)?.[1]);
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.out)?.[1]);
  if (!r.ok || !Number.isFinite(requests) || !Number.isFinite(rate)) {
    throw new Error(`wrk failed: ${r.out.trim().slice(-400)}`);
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.out)?.[1] ?? 0);
  const errors = non2xx + (socket ? socket.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0);
  const p99 = /^\s+99%\s+(\S+)/m.exec(r.out);
  return {
    value: rate,
    requests,
    p99ms: p99 ? parseDuration(p99[1]) : NaN,
    errors,
    detail: `${requests} req${socket ? `, socket errors ${socket.slice(1).join("/")}` : ""}${
      non2xx ? `, ${non2xx} non-2xx` : ""
    }`,
  };
}

/** Runs `work` while reading the server's CPU time and the client core's load around it. */
async function measured<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; cpuS: number; wallS: number; clientPct: number; foreignPct: number }> {
  const cpu0 = cpuSeconds(pid);
  const client0 = coreJiffies(CLIENT_CORE);
  const server0 = coreJiffies(SERVER_CORE);
  const t0 = performance.now();
  const result = await work();
  const wallS = (performance.now() - t0) / 1000;
  const cpuS = cpuSeconds(pid) - cpu0;
  const client1 = coreJiffies(CLIENT_CORE);
  const server1 = coreJiffies(SERVER_CORE);
  const share = (a: { busy: number; total: number }, b: { busy: number; total: number }) =>
    (b.busy - a.busy) / (b.total - a.total);
  const clientPct = pin ? 100 * share(client0, client1) : NaN;
  // Busy time on the server's core that the server did not account for.
  const serverTicks = cpuS * CLK_TCK;
  const foreignPct = pin
    ? Math.max(
      0,
      100 * (server1.busy - server0.busy - serverTicks) / (server1.total - server0.total),
    )
    : NaN;
  return { result, cpuS, wallS, clientPct, foreignPct };
}

const WRK_PATHS: Partial<Record<ScenarioId, [string, number]>> = {
  a: ["/", 1],
  b: ["/", PIPELINE],
  c: ["/64k", 1],
  f: ["/json", 1],
};

/**
 * One measured wrk run on a fresh, warmed-up server, added to `cell`. The
 * servers of a scenario take turns run by run (see the main loop), so that a
 * slow minute on the machine weighs on all of them, not on one.
 */
async function wrkRound(spec: ServerSpec, cell: Cell, round: number): Promise<void> {
  const scenario = cell.scenario as ScenarioId;
  const [path, pipeline] = WRK_PATHS[scenario]!;
  let server: Running;
  try {
    server = await startServer(spec, scenario);
  } catch (error) {
    cell.error = error instanceof Error ? error.message : String(error);
    log(`  ${spec.name} ${scenario}: ${cell.error}`);
    return;
  }
  try {
    if (WARMUP > 0) await wrkOnce(server.port, path, WARMUP, pipeline);
    const m = await measured(server.pid, () => wrkOnce(server.port, path, DURATION, pipeline));
    cell.runs.push({
      ...m.result,
      cpu: (m.cpuS * 1e6) / m.result.requests,
      cpuPct: (100 * m.cpuS) / m.wallS,
      clientPct: m.clientPct,
      foreignPct: m.foreignPct,
    });
    log(
      `  ${spec.name} ${scenario} run ${round + 1}: ${Math.round(m.result.value)} req/s, ` +
        `${cell.runs.at(-1)!.cpu.toFixed(2)} µs/req, ${m.result.detail}`,
    );
  } catch (error) {
    cell.error = `${error instanceof Error ? error.message : error} — server log: ${
      logTail(server)
    }`;
  } finally {
    await stopServer(server);
  }
}

const MIB100 = 100 * 1024 * 1024;

async function transferOnce(port: number, mode: string, repeat: number): Promise<number> {
  const r = await run(
    onClientCore([
      denoBin,
      "run",
      "-A",
      "bench/clients/transfer.ts",
      `--mode=${mode}`,
      `--port=${port}`,
      `--repeat=${repeat}`,
    ]),
    60_000 * repeat,
  );
  const line = r.out.trim().split("\n").find((l) => l.startsWith("{"));
  const parsed = line ? JSON.parse(line) : { error: r.out.slice(-300) };
  if (parsed.error || !r.ok) throw new Error(`${mode}: ${parsed.error ?? r.out.slice(-300)}`);
  return parsed.ms;
}

async function transferCells(spec: ServerSpec): Promise<Cell[]> {
  const cells: Cell[] = [];
  const server = await startServer(spec, "d");
  try {
    for (const mode of ["download", "upload"]) {
      const cell: Cell = {
        scenario: mode === "download" ? "d↓" : "d↑",
        server: spec.name,
        runs: [],
      };
      cells.push(cell);
      try {
        await transferOnce(server.port, mode, 1);
        for (let i = 0; i < RUNS; i++) {
          const m = await measured(
            server.pid,
            () => transferOnce(server.port, mode, TRANSFERS),
          );
          const ms = m.result;
          cell.runs.push({
            value: (TRANSFERS * MIB100) / (ms / 1000) / 1e6,
            cpu: (m.cpuS * 1000) / TRANSFERS,
            // The client's own time (connect to last byte): the process start is idle time.
            cpuPct: (100 * m.cpuS) / (ms / 1000),
            clientPct: m.clientPct,
            foreignPct: m.foreignPct,
            p99ms: NaN,
            errors: 0,
            detail: `${TRANSFERS} × 100 MiB in ${ms.toFixed(0)} ms`,
          });
          log(`  ${spec.name} ${mode} run ${i + 1}: ${cell.runs.at(-1)!.value.toFixed(0)} MB/s`);
        }
      } catch (error) {
        cell.error = `${error instanceof Error ? error.message : error} — server log: ${
          logTail(server)
        }`;
      }
    }
  } finally {
    await stopServer(server);
  }
  return cells;
}

/** Reads lines from a child's stdout. */
function lineReader(stream: ReadableStream<Uint8Array>): () => Promise<string | null> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return async () => {
    for (;;) {
      const nl = buffer.indexOf("\n");
      if (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        return line;
      }
      const { done, value } = await reader.read();
      if (done) return null;
      buffer += value;
    }
  };
}

async function idleOnce(server: Running): Promise<Run> {
  const script = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';
  const client = new Deno.Command("sh", {
    args: [
      "-c",
      script,
      "sh",
      ...onClientCore([
        denoBin,
        "run",
        "-A",
        "bench/clients/idle.ts",
        `--port=${server.port}`,
        `--count=${IDLE}`,
      ]),
    ],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = client.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let errText = "";
  (async () => {
    for (;;) {
      const { done, value } = await stderr.read();
      if (done) break;
      errText = (errText + value).slice(-600);
    }
  })();
  const readLine = lineReader(client.stdout);
  const writer = client.stdin.getWriter();
  const send = (line: string) => writer.write(new TextEncoder().encode(line + "\n"));
  const killer = setTimeout(() => client.kill("SIGKILL"), 300_000);
  try {
    const expect = async (prefix: string) => {
      const line = await readLine();
      if (line === null || !line.startsWith(prefix)) {
        throw new Error(`idle client: expected "${prefix}", got ${line}; ${errText.trim()}`);
      }
      return line;
    };
    await expect("warm");
    await sleep(1000);
    const before = rssKiB(server.pid);
    await send("open");
    const [, opened, failed] = (await expect("ready")).split(" ").map(Number);
    // Let the server settle (deferred allocations, GC) before reading.
    await sleep(2000);
    const after = rssKiB(server.pid);
    await send("status");
    const [, stillOpen, , closed] = (await expect("open")).split(" ");
    const problems = Number(failed) + Number(closed);
    return {
      value: (after - before) / opened,
      cpu: NaN,
      cpuPct: NaN,
      clientPct: NaN,
      foreignPct: NaN,
      p99ms: NaN,
      errors: problems,
      detail: `RSS ${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB, ` +
        `${opened} opened, ${failed} failed, ${stillOpen} still open at the end`,
    };
  } finally {
    clearTimeout(killer);
    try {
      await writer.close();
    } catch {
      // the client is gone
    }
    await client.status;
  }
}

async function idleCell(spec: ServerSpec): Promise<Cell[]> {
  const cell: Cell = { scenario: "e", server: spec.name, runs: [] };
  // A fresh server for each run: memory left over from one run would blur the next.
  const runs = Math.min(RUNS, spec.idleRuns ?? RUNS);
  for (let i = 0; i < runs && !cell.error; i++) {
    let server: Running | null = null;
    try {
      server = await startServer(spec, "e");
      cell.runs.push(await idleOnce(server));
      log(
        `  ${spec.name} e run ${i + 1}: ${cell.runs.at(-1)!.value.toFixed(2)} KiB/conn, ${
          cell.runs.at(-1)!.detail
        }`,
      );
    } catch (error) {
      cell.error = `${error instanceof Error ? error.message : error}${
        server ? ` — server log: ${logTail(server)}` : ""
      }`;
    } finally {
      if (server) await stopServer(server);
    }
  }
  return [cell];
}

// ---------------------------------------------------------------- the run

const started = new Date();
const loadAtStart = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
const cells: Cell[] = [];
for (const scenario of scenarios) {
  log(`scenario ${scenario}`);
  const taking = servers.filter((spec) => !spec.missing && spec.scenarios.includes(scenario));
  if (scenario !== "d" && scenario !== "e") {
    const turns = taking.map((spec) => ({
      spec,
      cell: { scenario, server: spec.name, runs: [] } as Cell,
    }));
    for (let round = 0; round < RUNS; round++) {
      for (const { spec, cell } of turns) if (!cell.error) await wrkRound(spec, cell, round);
    }
    cells.push(...turns.map((turn) => turn.cell));
    continue;
  }
  for (const spec of taking) {
    try {
      if (scenario === "d") cells.push(...await transferCells(spec));
      else cells.push(...await idleCell(spec));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log(`  ${spec.name} ${scenario}: ${message}`);
      const ids = scenario === "d" ? ["d↓", "d↑"] : [scenario];
      for (const id of ids) {
        cells.push({ scenario: id, server: spec.name, runs: [], error: message });
      }
    }
  }
}
Deno.removeSync(tmp, { recursive: true });
const minutes = (Date.now() - started.getTime()) / 60000;

// ---------------------------------------------------------------- report

/** A cell's medians (its errors summed). */
type Summary = Omit<Run, "detail">;
function summary(scenario: string, server: string): Summary | null {
  const cell = cells.find((c) => c.scenario === scenario && c.server === server);
  if (!cell || cell.runs.length === 0) return null;
  const pick = (f: (r: Run) => number) => median(cell.runs.map(f));
  return {
    value: pick((r) => r.value),
    cpu: pick((r) => r.cpu),
    cpuPct: pick((r) => r.cpuPct),
    clientPct: pick((r) => r.clientPct),
    foreignPct: pick((r) => r.foreignPct),
    p99ms: pick((r) => r.p99ms),
    errors: cell.runs.reduce((a, r) => a + r.errors, 0),
  };
}

const fmtInt = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—";
const fmt = (n: number, digits = 2) => Number.isFinite(n) ? n.toFixed(digits) : "—";
const fmtPct = (n: number) => Number.isFinite(n) ? `${Math.round(n)}%` : "—";
const ratio = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b !== 0
    ? `${(a / b).toFixed(2)}×`
    : "—";

const TITLES: Record<string, string> = {
  a: `(a) hello world (12-byte body), keep-alive, ${CONNECTIONS} connections`,
  b: `(b) hello world, ${PIPELINE} requests pipelined per write, ${CONNECTIONS} connections`,
  c: `(c) 64 KiB response, keep-alive, ${CONNECTIONS} connections`,
  "d↓": `(d) 100 MiB streamed download (64 KiB chunks); ${TRANSFERS} per run, one connection each`,
  "d↑": `(d) 100 MiB upload (Content-Length); ${TRANSFERS} per run, one connection each`,
  e: `(e) ${IDLE.toLocaleString("en-US")} idle keep-alive connections (each made one request)`,
  f: `(f) JSON through a router-style \`{ fetch }\` app, keep-alive, ${CONNECTIONS} connections`,
};

/** Above this share of the server core used by others, a row says the figure is disturbed. */
const FOREIGN_LIMIT = 5;

function table(scenario: string): string[] {
  const rows = cells.filter((c) => c.scenario === scenario);
  if (rows.length === 0) return [];
  const out = [`### ${TITLES[scenario]}`, ""];
  const specOf = (name: string) => SERVERS.find((s) => s.name === name)!;
  if (scenario === "e") {
    out.push(
      "| server | KiB per connection | × native | RSS before → after | runs | problems |",
      "|---|---:|---:|---|---:|---|",
    );
    for (const cell of rows) {
      const spec = specOf(cell.server);
      const s = summary(scenario, cell.server);
      const native = summary(scenario, spec.native);
      const mid = cell.runs.length
        ? cell.runs.slice().sort((a, b) => a.value - b.value)[cell.runs.length >> 1]
        : null;
      out.push(
        `| ${spec.label} | ${s ? fmt(s.value, 1) : "—"} | ${
          spec.native === spec.name ? "—" : ratio(s?.value, native?.value)
        } | ${mid ? mid.detail.replace(/^RSS /, "").split(",")[0] : "—"} | ${cell.runs.length} | ${
          cell.error
            ? `**failed**: ${cell.error}`
            : s && s.errors > 0
            ? `${s.errors} connections failed or were closed by the server`
            : ""
        } |`,
      );
    }
    return [...out, ""];
  }
  const transfer = scenario.startsWith("d");
  const pipelined = scenario === "b";
  out.push(
    `| server | ${transfer ? "MB/s" : "req/s"} | server CPU ${
      transfer ? "ms per 100 MiB" : "µs/req"
    } | server core | client core |${transfer ? "" : " p99 ms |"} ${
      transfer ? "MB/s" : "req/s"
    } × native | CPU × native |${pipelined ? " req/s × raw |" : ""} notes |`,
    `|---|---:|---:|---:|---:|${transfer ? "" : "---:|"}---:|---:|${pipelined ? "---:|" : ""}---|`,
  );
  for (const cell of rows) {
    const spec = specOf(cell.server);
    const s = summary(scenario, cell.server);
    const native = spec.native === spec.name ? undefined : summary(scenario, spec.native);
    const raw = spec.raw && spec.raw !== spec.name ? summary(scenario, spec.raw) : null;
    const note = [
      cell.error ? `**failed**: ${cell.error.replace(/\|/g, "/")}` : "",
      s && s.errors > 0 ? `${s.errors} errors over ${cell.runs.length} runs` : "",
      s && s.foreignPct > FOREIGN_LIMIT
        ? `other processes took ${Math.round(s.foreignPct)}% of the server core`
        : "",
    ].filter(Boolean).join("; ");
    out.push(
      `| ${spec.label} | ${transfer ? fmtInt(s?.value ?? NaN) : fmtInt(s?.value ?? NaN)} | ${
        fmt(s?.cpu ?? NaN)
      } | ${fmtPct(s?.cpuPct ?? NaN)} | ${fmtPct(s?.clientPct ?? NaN)} |${
        // wrk times a pipelined batch from its first request, so b's latency means little.
        transfer ? "" : ` ${pipelined ? "—" : fmt(s?.p99ms ?? NaN)} |`} ${
        ratio(s?.value, native?.value)
      } | ${ratio(s?.cpu, native?.cpu)} |${
        pipelined ? ` ${ratio(s?.value, raw?.value)} |` : ""
      } ${note} |`,
    );
  }
  return [...out, ""];
}

/** The issue's targets, checked against this run's medians. */
function targets(): string[] {
  const lines: string[] = [];
  const check = (
    what: string,
    value: number,
    limit: number,
    atMost: boolean,
    cells: [string, string][],
  ) => {
    if (!Number.isFinite(value)) return;
    const ok = atMost ? value <= limit : value >= limit;
    // A throughput figure taken while other processes ran on the server core says little.
    const disturbed = cells.some(([scenario, server]) =>
      (summary(scenario, server)?.foreignPct ?? 0) > FOREIGN_LIMIT
    );
    lines.push(
      `| ${what} | ${value.toFixed(2)} | ${atMost ? "≤" : "≥"} ${limit} | ${
        ok ? "met" : "**missed**"
      }${disturbed ? " (disturbed run)" : ""} |`,
    );
  };
  const v = (scenario: string, server: string, f: (s: Summary) => number) => {
    const s = summary(scenario, server);
    return s ? f(s) : NaN;
  };
  for (
    const [ours, native, raw, rt] of [
      ["waitress-deno", "deno-serve", "deno-raw", "Deno"],
      ["waitress-bun", "bun-serve", "bun-raw", "Bun"],
    ]
  ) {
    const value = (s: Summary) => s.value;
    const r = (scenario: string, other: string, f: (s: Summary) => number) =>
      v(scenario, ours, f) / v(scenario, other, f);
    /** Our requests/s or MB/s in `scenario` over `other`'s, checked against a floor. */
    const faster = (what: string, scenario: string, other: string, limit: number) =>
      check(`${rt} ${what}`, r(scenario, other, value), limit, false, [
        [scenario, ours],
        [scenario, other],
      ]);
    check(`${rt} (a) CPU/req vs native`, r("a", native, (s) => s.cpu), 1.3, true, []);
    faster("(a) req/s vs native", "a", native, 0.9);
    faster("(b) req/s vs native", "b", native, 3);
    faster("(b) req/s vs raw ceiling", "b", raw, 0.4);
    faster("(c) req/s vs native", "c", native, 0.8);
    faster("(d) download MB/s vs native", "d↓", native, 0.8);
    faster("(d) upload MB/s vs native", "d↑", native, 0.8);
    check(`${rt} (d) download GB/s`, v("d↓", ours, value) / 1000, 1, false, [["d↓", ours]]);
    check(`${rt} (d) upload GB/s`, v("d↑", ours, value) / 1000, 1, false, [["d↑", ours]]);
    check(`${rt} (e) memory/connection vs native`, r("e", native, value), 1.5, true, []);
    faster("(a) req/s vs Python waitress", "a", "waitress-py", 6);
  }
  if (lines.length === 0) return [];
  return [
    "### Targets (issue 6)",
    "",
    "| target | this run | goal | |",
    "|---|---:|---:|---|",
    ...lines,
    "",
    "CPU per request and memory per connection hold up on a busy machine; req/s and MB/s" +
    " ratios do not, so a row marked (disturbed run) should be checked again on a quiet one.",
    "",
  ];
}

function details(): string[] {
  const out = ["<details><summary>Every measured run</summary>", ""];
  for (const cell of cells) {
    const unit = cell.scenario === "e"
      ? "KiB/conn"
      : cell.scenario.startsWith("d")
      ? "MB/s"
      : "req/s";
    const runs = cell.runs.map((r) =>
      `${fmt(r.value, cell.scenario === "e" ? 2 : 0)} ${unit} (${r.detail}${
        Number.isFinite(r.cpu) ? `, cpu ${fmt(r.cpu)}` : ""
      })`
    );
    out.push(`- ${cell.scenario} ${cell.server}: ${runs.join("; ") || cell.error}`);
  }
  return [...out, "", "</details>", ""];
}

const cpuModel = /model name\s*:\s*(.*)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ??
  "unknown CPU";
const memGiB = Number(/MemTotal:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1]) /
  1024 / 1024;
const commit = (await run(["git", "rev-parse", "--short", "HEAD"])).out.trim();
const dirty = (await run(["git", "status", "--porcelain", "--", "src", "mod.ts"])).out.trim()
  ? " (with uncommitted changes in src/ or mod.ts)"
  : "";
const versions = [
  `Deno ${Deno.version.deno}`,
  bunBin ? `Bun ${await version([bunBin, "--version"])}` : null,
  nodeBin ? `Node ${await version([nodeBin, "--version"])}` : null,
  python
    ? `Python waitress ${await version([
      python,
      "-c",
      "import importlib.metadata as m, sys; print(m.version('waitress'), 'on Python', sys.version.split()[0])",
    ])}`
    : null,
  wrk ? (await version(["wrk", "-v"])).split(" [")[0] : null,
].filter(Boolean).join(", ");

const report = [
  `## Benchmark run ${started.toISOString().slice(0, 16).replace("T", " ")} UTC`,
  "",
  `- Machine: ${cpuModel}, ${cores} cores, ${
    memGiB.toFixed(0)
  } GiB RAM, Linux ${(await version(["uname", "-r"]))}`,
  `- Versions: ${versions}`,
  `- Code: commit ${commit}${dirty}`,
  `- Load average before the run: ${loadAtStart} (other work on the machine disturbs the figures;` +
  ` rows say so when others took > ${FOREIGN_LIMIT}% of the server core)`,
  `- Command: \`deno run -A bench/run.ts ${Deno.args.join(" ")}\`` +
  ` (${minutes.toFixed(1)} minutes)`,
  `- Method: ${
    pin
      ? `server pinned to CPU ${SERVER_CORE}, load generator to CPU ${CLIENT_CORE} (taskset)`
      : "not pinned"
  }; wrk -t1 -c${CONNECTIONS}, ${RUNS} runs of ${DURATION} s, each on a fresh server after a ${WARMUP} s` +
  " warm-up, the servers of a scenario taking turns run by run; medians shown." +
  " Server CPU = user+sys time of the server process (all threads, /proc/<pid>/stat) over the" +
  ' measured window, divided by the requests wrk completed; "server core" / "client core" =' +
  " how busy each side was (100% = one core saturated). (d) uses a raw-socket Deno client" +
  " (bench/clients/transfer.ts), (e) reads VmRSS before and after bench/clients/idle.ts opens" +
  " the connections (fresh server each run).",
  ...notes.map((n) => `- Note: ${n}`),
  "",
  ...["a", "b", "c", "d↓", "d↑", "e", "f"].flatMap(table),
  ...targets(),
  ...details(),
].join("\n");

console.log(report);
const outFlag = flags.get("out");
if (outFlag !== "") {
  const stamp = started.toISOString().slice(0, 16).replace("T", "_").replace(":", "");
  const path = outFlag && outFlag !== "true" ? outFlag : `${ROOT}/bench/results/${stamp}.md`;
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")) || ".", { recursive: true });
  Deno.writeTextFileSync(path, report + "\n");
  log(`written to ${path}`);
}
