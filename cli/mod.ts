/**
 * The waitress command line.
 * @module
 */
import { VERSION } from "@waitress/core";
if (import.meta.main) console.log(VERSION);
/** The CLI version. */
export const CLI_VERSION: string = VERSION;
