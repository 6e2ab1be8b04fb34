/**
 * The option helpers of the core the CLI uses (defaults, string parsing,
 * validation, suggestions for mistyped names).
 * @module
 */
export {
  closest,
  DEFAULTS,
  optionsFromStrings,
  resolveOptions,
  STRING_OPTIONS,
  type StringKind,
} from "@waitress/core";
