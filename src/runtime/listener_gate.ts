/**
 * The accept side every adapter shares: hands accepted sockets out while the
 * server accepts, holds them (up to the backlog) while it does not, and
 * closes them once the listener is closed.
 * @module
 */

import type { Addr, Listener, Socket } from "./types.ts";
import type { BaseSocket } from "./base_socket.ts";
import { DEFAULTS } from "../adjustments.ts";

/**
 * A listener for runtimes that cannot stop accepting (Bun, node:net): it
 * hands accepted sockets to its owner, holding them (paused, in order) while
 * accepting is paused or before `start`. It holds at most `backlog` of them,
 * as the kernel's queue would, and closes the ones beyond: else a flood past
 * `connectionLimit` would still take a descriptor per client. Subclasses
 * bind, `offer` what they accept, and call `closeGate` when closed.
 */
export abstract class GatedListener implements Listener {
  abstract readonly addr: Addr;
  #onConnection: ((socket: Socket) => void) | undefined;
  #onWaiting: (() => void) | undefined;
  #onRefused: ((held: number) => void) | undefined;
  #accepting = true;
  #closed = false;
  #held = new Set<BaseSocket>();
  readonly #holdLimit: number;

  constructor(backlog: number | undefined) {
    // Linux queues one connection even with a backlog of 0.
    this.#holdLimit = Math.max(1, backlog ?? DEFAULTS.backlog);
  }

  /** Starts handing sockets out, first the held ones. */
  start(
    onConnection: (socket: Socket) => void,
    onWaiting?: () => void,
    onRefused?: (held: number) => void,
  ): void {
    if (this.#onConnection) throw new Error("listener already started");
    this.#onConnection = onConnection;
    this.#onWaiting = onWaiting;
    this.#onRefused = onRefused;
    this.#release();
  }

  /** Sockets are held (see `Listener.waiting`). */
  get waiting(): boolean {
    return this.#held.size > 0;
  }

  /** Pauses or resumes handing sockets out. */
  setAccepting(accepting: boolean): void {
    this.#accepting = accepting;
    if (accepting) this.#release();
  }

  abstract close(): Promise<void>;

  /**
   * A newly accepted socket: handed out now, closed if the listener is
   * closed, or held. Returns true when held (the caller pauses its reads).
   */
  protected offer(socket: BaseSocket): boolean {
    if (this.#closed || (!this.#handsOut() && this.#held.size >= this.#holdLimit)) {
      socket.discard();
      if (!this.#closed) this.#onRefused?.(this.#holdLimit);
      return false;
    }
    if (this.#handsOut()) {
      this.#onConnection!(socket);
      return false;
    }
    socket.onGone = (gone) => this.#held.delete(gone);
    this.#held.add(socket);
    // Later: the caller pauses the socket first, and the owner may hand it out.
    const onWaiting = this.#onWaiting;
    if (onWaiting) queueMicrotask(onWaiting);
    return true;
  }

  /** Closes every held socket; later offers are closed at once. */
  protected closeGate(): void {
    if (this.#closed) return;
    this.#closed = true;
    const held = [...this.#held];
    this.#held.clear();
    for (const socket of held) socket.discard();
  }

  #handsOut(): boolean {
    return this.#accepting && this.#onConnection !== undefined;
  }

  #release(): void {
    for (const socket of this.#held) {
      if (!this.#accepting || this.#closed || !this.#onConnection) return;
      this.#held.delete(socket);
      socket.onGone = undefined;
      this.#onConnection(socket);
    }
  }
}
