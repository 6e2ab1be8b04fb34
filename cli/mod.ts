/**
 * `@waitress/cli`: the command line of `@waitress/core`, the `waitress-serve`
 * of JavaScript. Serves the fetch handler a module exports:
 *
 * ```sh
 * deno run -A jsr:@waitress/cli --port=8080 app.ts
 * bun run cli/mod.ts --listen=127.0.0.1:8080 app.ts:handler
 * ```
 *
 * Every `waitress-serve` flag works with the same spelling and meaning;
 * `--help` lists them with their defaults.
 * @module
 */
import { CliError, flagify, helpText, parseArgs, type ParsedArgs } from "./args.ts";
import { resolveOptions } from "./options.ts";
import { args, cwd, err, exit, out } from "./platform.ts";
import { serveHere } from "./serve.ts";
import { runWorkers } from "./workers.ts";

/** The CLI version. */
export const CLI_VERSION: string = "0.1.0";

const silent = { info() {}, warn() {}, error() {} };

/**
 * Runs the command line with `argv` (the arguments after the script) and
 * resolves with the exit code once the server has stopped (or at once for
 * `--help`, `--version` and errors).
 */
export async function main(argv: string[]): Promise<number> {
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    err(`Error: ${error.message} (see --help)`);
    return 1;
  }
  if (parsed.help) {
    out(helpText());
    return 0;
  }
  if (parsed.version) {
    out(CLI_VERSION);
    return 0;
  }
  if (parsed.app === undefined) {
    err("Error: Specify an application: waitress [OPTIONS] MODULE[:NAME] (see --help)");
    return 1;
  }
  // Validate everything before loading the app, so a typo fails fast.
  let listen: Array<{ transport: string }>;
  try {
    listen = resolveOptions({ ...parsed.options, logger: silent }).listen;
  } catch (error) {
    err(`Error: ${flagify((error as Error).message)}`);
    return 1;
  }
  const dir = cwd();
  if (parsed.threads > 1) {
    return await runWorkers(
      parsed.threads,
      parsed.app,
      parsed.call,
      parsed.options,
      listen,
      dir,
      parsed,
    );
  }
  return await serveHere(parsed.app, parsed.call, parsed.options, dir, parsed.gracefulTimeout);
}

// A failure of the CLI itself exits 1 here, explicitly: the handlers that
// log the app's stray errors (logStrayErrors) would otherwise take it.
if (import.meta.main) {
  main(args()).then(exit, (error) => {
    err(`Error: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    exit(1);
  });
}
