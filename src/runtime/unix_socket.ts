/**
 * The file of a unix socket listener. Every runtime unlinks the path it bound
 * when the listener closes, whoever's socket is there by then: when a new
 * server has taken the path over (a rolling restart), the old one closing
 * would cut the new one off. So the socket is bound under a temporary name
 * next to the path, given its mode, and renamed into place, which also
 * replaces an old socket file atomically (clients never find the path
 * missing, nor the socket with the umask's mode). On close the path is
 * removed only if it still names this socket.
 * @module
 */

type Fs = typeof import("node:fs");

/**
 * node:fs, loaded when a unix socket is first bound: on Deno it adds some
 * 1.5 MB to the live heap, which a TCP server has no use for.
 */
let fs: Fs | undefined;

/** A `UnixSocketFile` for `path`. */
export async function unixSocketFile(path: string): Promise<UnixSocketFile> {
  fs ??= await import("node:fs");
  return new UnixSocketFile(path, fs);
}

/** One listener's socket file; bind `bindPath`, then `install`. */
export class UnixSocketFile {
  /** Where the runtime binds: a fresh name in the same directory (so the rename stays on one file system). */
  readonly bindPath: string;
  /** The directory, with its trailing "/" ("" for the current one). */
  #dir: string;
  #installed = "";

  constructor(readonly path: string, private readonly fs: Fs) {
    this.#dir = path.slice(0, path.lastIndexOf("/") + 1);
    this.bindPath = `${this.#dir}.w${Math.random().toString(36).slice(2, 8)}`;
  }

  /**
   * Applies `perms`, then moves the bound socket to `path`, replacing a
   * socket file there (a crashed server's, or the one this replaces), but
   * nothing else.
   */
  install(perms: number | undefined): void {
    if (perms !== undefined) this.fs.chmodSync(this.bindPath, perms);
    let inTheWay = false;
    try {
      inTheWay = !this.fs.lstatSync(this.path).isSocket();
    } catch { /* nothing there */ }
    if (inTheWay) throw new Error("a file that is not a socket is in the way");
    this.#installed = this.#identity(this.bindPath);
    this.fs.renameSync(this.bindPath, this.path);
  }

  /**
   * The reason a bind failed: Node reports a directory that does not exist
   * as EACCES, so there the failed look at the directory is the reason.
   */
  bindFailure(error: unknown): unknown {
    if ((error as { code?: unknown } | undefined)?.code !== "EACCES") return error;
    try {
      this.fs.statSync(this.#dir || ".");
    } catch (missing) {
      return missing;
    }
    return error;
  }

  /** After the listener closed: removes `path` if it still names this socket, and a bound name never installed. */
  remove(): void {
    try {
      if (this.#installed === "") this.fs.unlinkSync(this.bindPath);
      else if (this.#identity(this.path) === this.#installed) this.fs.unlinkSync(this.path);
    } catch { /* gone already */ }
  }

  /** Device and inode of the file at `path`, or "" when there is none. */
  #identity(path: string): string {
    try {
      const stat = this.fs.lstatSync(path);
      return `${stat.dev}:${stat.ino}`;
    } catch {
      return "";
    }
  }
}
