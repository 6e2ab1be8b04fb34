/**
 * The option helpers of the core the CLI uses (defaults, string parsing,
 * validation).
 * @module
 */
export {
  DEFAULTS,
  optionsFromStrings,
  resolveOptions,
  STRING_OPTIONS,
  type StringKind,
} from "@waitress/core";
