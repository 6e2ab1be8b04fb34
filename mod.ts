/**
 * A production HTTP/1.1 server for fetch-handler apps.
 * @module
 */
/** The package version. */
export const VERSION = "0.1.0";
