/**
 * A budget of refused requests per minute for each key (an address, a
 * passcode): past it, that key gets `429` with Retry-After until the minute
 * is over, before more work is spent on it. A device with the wrong passcode,
 * a scanner walking the labels or a used-up passcode tried again and again
 * slows down; everyone else is untouched.
 */
export class RefusalLimiter {
  private readonly windows = new Map<string, { start: number; refused: number }>();

  constructor(private readonly perMinute: () => number) {}

  /** Seconds until `key` may be served again, or undefined when it may be now. */
  retryAfter(key: string, now: number): number | undefined {
    const window = this.windows.get(key);
    if (!window || now - window.start >= 60_000 || window.refused < this.perMinute()) return undefined;
    return Math.max(1, Math.ceil((window.start + 60_000 - now) / 1000));
  }

  /** Counts a refusal made to `key`. */
  refused(key: string, now: number): void {
    const window = this.windows.get(key);
    if (window && now - window.start < 60_000) {
      window.refused++;
      return;
    }
    if (this.windows.size >= 10_000) {
      for (const [key, old] of this.windows) if (now - old.start >= 60_000) this.windows.delete(key);
    }
    this.windows.set(key, { start: now, refused: 1 });
  }
}
