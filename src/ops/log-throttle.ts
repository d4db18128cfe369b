/**
 * At most one log line per key (an address and a reason) per window, with a
 * count of what was held back: a scanner that opens thousands of broken TLS
 * connections must be visible in the journal without filling it.
 */
export class LogThrottle {
  private readonly lastLogged = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = 4096,
  ) {}

  /** Whether a line for `key` may be written at `now`, and how many were held back since the last one. */
  take(key: string, now: number): { readonly log: boolean; readonly suppressed: number } {
    const entry = this.lastLogged.get(key);
    if (entry && now - entry.at < this.windowMs) {
      entry.suppressed++;
      return { log: false, suppressed: 0 };
    }
    if (!entry && this.lastLogged.size >= this.maxKeys) this.lastLogged.delete(this.lastLogged.keys().next().value!);
    this.lastLogged.set(key, { at: now, suppressed: 0 });
    return { log: true, suppressed: entry?.suppressed ?? 0 };
  }
}
