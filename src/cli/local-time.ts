/**
 * Dates and durations as an admin types them on the command line, read in
 * the configured time zone (config `time_zone`, else the machine's): a bare
 * date or a time without an offset means that wall-clock time there.
 */

/** The machine's IANA time zone, as Intl resolves it (TZ, else /etc/localtime). */
export function machineTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** How far `timeZone`'s wall clock is ahead of UTC at `instant`, in ms. */
function offsetAt(instant: number, timeZone: string): number {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
      .formatToParts(new Date(instant))
      .map((p) => [p.type, Number(p.value)]),
  ) as Record<string, number>;
  const wall = Date.UTC(parts.year!, parts.month! - 1, parts.day, parts.hour, parts.minute, parts.second);
  return wall - (instant - (((instant % 1000) + 1000) % 1000));
}

/**
 * The instant a wall-clock time in `timeZone` names. Two passes, so a time
 * after a daylight-saving change takes that side's offset; a time that a
 * change skips (02:30 on a spring-forward night) lands an hour later.
 */
export function wallTimeToInstant(wall: { year: number; month: number; day: number; hour?: number; minute?: number; second?: number }, timeZone: string): Date {
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour ?? 0, wall.minute ?? 0, wall.second ?? 0);
  const first = asUtc - offsetAt(asUtc, timeZone);
  return new Date(asUtc - offsetAt(first, timeZone));
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/;
const WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

function validDate(year: number, month: number, day: number): boolean {
  const d = new Date(Date.UTC(year, month - 1, day));
  return d.getUTCFullYear() === year && d.getUTCMonth() === month - 1 && d.getUTCDate() === day;
}

/**
 * A date or time typed by an admin: `2027-03-31` is that day, `2027-03-31T12:00`
 * a wall-clock time in `timeZone`, `2027-03-31T12:00:00Z` or `...+01:00` exact.
 * `endOfDay`: a bare date means the end of that day (the start of the next
 * one there), as an expiry date does; else its start, as a `--since` does.
 */
export function parseAdminTime(value: string, timeZone: string, endOfDay: boolean): Date | undefined {
  const date = DATE.exec(value);
  if (date) {
    const [year, month, day] = [Number(date[1]), Number(date[2]), Number(date[3])];
    if (!validDate(year, month, day)) return undefined;
    return wallTimeToInstant({ year, month, day: day + (endOfDay ? 1 : 0) }, timeZone);
  }
  const local = LOCAL_TIME.exec(value);
  if (local) {
    // Seconds are optional: an unmatched group is undefined at run time, whatever the array's type says.
    const [year, month, day, hour, minute, second] = Array.from({ length: 6 }, (_, i) => Number(local[i + 1] ?? 0)) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    if (!validDate(year, month, day) || hour > 23 || minute > 59 || second > 59) return undefined;
    return wallTimeToInstant({ year, month, day, hour, minute, second }, timeZone);
  }
  if (WITH_OFFSET.test(value)) {
    const parsed = new Date(value);
    return Number.isNaN(parsed.getTime()) ? undefined : parsed;
  }
  return undefined;
}

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** `30d`, `12h`, `90m`, `2w` in ms; undefined for anything else. */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d+)([mhdw])$/.exec(value);
  return match ? Number(match[1]) * UNIT_MS[match[2]!]! : undefined;
}
