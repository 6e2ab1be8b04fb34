/**
 * The option helpers of the core the CLI uses (defaults, string parsing,
 * validation).
 * @module
 */
// Not exported by the core's mod.ts yet. Once they are, import them from
// "@waitress/core" here: the published cli package cannot reach ../src.
export {
  DEFAULTS,
  optionsFromStrings,
  resolveOptions,
  STRING_OPTIONS,
  type StringKind,
} from "../src/adjustments.ts";
