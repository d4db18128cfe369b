/**
 * A per-address budget of refused requests per minute: past it, the address
 * gets `429` with Retry-After until the minute is over, before any
 * authentication or parsing is spent on it. A device with the wrong passcode
 * or a scanner walking the labels slows down; everyone else is untouched.
 */
export class RefusalLimiter {
  private readonly windows = new Map<string, { start: number; refused: number }>();

  constructor(private readonly perMinute: () => number) {}

  /** Seconds until `address` may be served again, or undefined when it may be now. */
  retryAfter(address: string, now: number): number | undefined {
    const window = this.windows.get(address);
    if (!window || now - window.start >= 60_000 || window.refused < this.perMinute()) return undefined;
    return Math.max(1, Math.ceil((window.start + 60_000 - now) / 1000));
  }

  /** Counts a refusal made to `address`. */
  refused(address: string, now: number): void {
    const window = this.windows.get(address);
    if (window && now - window.start < 60_000) {
      window.refused++;
      return;
    }
    if (this.windows.size >= 10_000) {
      for (const [key, old] of this.windows) if (now - old.start >= 60_000) this.windows.delete(key);
    }
    this.windows.set(address, { start: now, refused: 1 });
  }
}
