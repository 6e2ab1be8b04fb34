/**
 * The server's open connections. A `Set` costs ~130 bytes per entry on Bun,
 * as much as the rest of an idle connection's own state; this list costs 16
 * (an array slot and the index the item keeps of it).
 * @module
 */

/** An item that records where it sits in its list. */
export interface Listed {
  /** Index in the list, or -1 when not in one. */
  slot: number;
}

/** A list with O(1) add and remove (the order is not kept). */
export class SlotList<T extends Listed> {
  #items: T[] = [];

  /** Items in the list. */
  get size(): number {
    return this.#items.length;
  }

  /** Adds `item` (which is in no list). */
  add(item: T): void {
    item.slot = this.#items.length;
    this.#items.push(item);
  }

  /** Removes `item` if it is in this list. */
  delete(item: T): void {
    const items = this.#items;
    const i = item.slot;
    if (i < 0 || items[i] !== item) return;
    const last = items.pop()!;
    if (last !== item) {
      items[i] = last;
      last.slot = i;
    }
    item.slot = -1;
  }

  /**
   * Calls `fn` on every item, last first. `fn` may remove items: none is
   * skipped, though one moved by a removal may be visited twice.
   */
  forEach(fn: (item: T) => void): void {
    const items = this.#items;
    for (let i = items.length - 1; i >= 0; i--) {
      if (i < items.length) fn(items[i]);
    }
  }
}
