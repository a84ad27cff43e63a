/** The bounded queue publishes wait in while the client is disconnected. */

import { HeraldError } from './errors.js';

export class OfflineQueue<T extends { reject(error: Error): void }> {
  private items: T[] = [];

  constructor(readonly capacity: number) {
    if (!(capacity >= 0)) throw new RangeError(`queue capacity must be >= 0 (got ${capacity})`);
  }

  get length(): number {
    return this.items.length;
  }

  /** Adds `item`, or rejects it with `queue-full` when the queue is at its capacity. */
  push(item: T): void {
    if (this.items.length >= this.capacity) {
      item.reject(
        new HeraldError('queue-full', `offline queue full (${this.capacity} publishes waiting)`),
      );
      return;
    }
    this.items.push(item);
  }

  /** Everything queued, oldest first, leaving the queue empty. */
  drain(): T[] {
    const items = this.items;
    this.items = [];
    return items;
  }

  /** Rejects everything queued with `error`. */
  rejectAll(error: Error): void {
    for (const item of this.drain()) item.reject(error);
  }
}
