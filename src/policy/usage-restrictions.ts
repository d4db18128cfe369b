import { EstError } from '../errors.js';
import type { CsrRule } from './rules.js';

export const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** DigiCert's usage restrictions: operational dates and per-weekday hours in one IANA time zone. */
export interface UsageRestrictions {
  readonly time_zone: string;
  /** Windows such as "06:00-22:00" per weekday; a weekday not listed is closed. Absent: any hour. */
  readonly operational_hours?: Partial<Record<Weekday, readonly string[]>>;
  /** ISO dates (inclusive) or times. */
  readonly operational_dates?: { readonly valid_from?: string; readonly valid_to?: string };
}

interface Window {
  readonly from: number;
  readonly to: number;
  readonly text: string;
}

/** "06:00-22:00" as minutes of the day; "22:00-06:00" is not allowed (split it over two days). */
export function parseWindow(text: string): Window | undefined {
  const match = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$/.exec(text);
  if (!match) return undefined;
  const from = Number(match[1]) * 60 + Number(match[2]);
  const to = Number(match[3]) * 60 + Number(match[4]);
  return from < to && to <= 1440 ? { from, to, text } : undefined;
}

/** Weekday and minute of the day at `now` in `timeZone`, and the local date for messages. */
function localTime(now: Date, timeZone: string): { weekday: number; minute: number; date: string } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      weekday: 'long',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(now)
      .map((p) => [p.type, p.value]),
  );
  return {
    weekday: WEEKDAYS.indexOf(parts.weekday!.toLowerCase() as Weekday),
    minute: Number(parts.hour) * 60 + Number(parts.minute),
    date: `${parts.year!}-${parts.month!}-${parts.day!}`,
  };
}

/**
 * Enrollment only inside the profile's operational dates and hours (in its
 * time zone); outside them a 403 says when it opens.
 */
export function withinUsageRestrictions(restrictions: UsageRestrictions): CsrRule {
  const hours = restrictions.operational_hours && WEEKDAYS.map((weekday) => (restrictions.operational_hours?.[weekday] ?? []).map((w) => parseWindow(w)!));
  const zone = restrictions.time_zone;
  return {
    name: 'withinUsageRestrictions',
    check({ now }) {
      const dates = restrictions.operational_dates;
      if (dates?.valid_from && now < startOf(dates.valid_from))
        throw new EstError('EST_OUTSIDE_HOURS', { reason: `profile not in operation yet: opens ${dates.valid_from}` });
      if (dates?.valid_to && now > endOf(dates.valid_to))
        throw new EstError('EST_OUTSIDE_HOURS', { reason: `profile out of operation since ${dates.valid_to}` });
      if (!hours) return;
      const local = localTime(now, zone);
      if (hours[local.weekday]!.some((w) => local.minute >= w.from && local.minute < w.to)) return;
      throw new EstError('EST_OUTSIDE_HOURS', { reason: `outside operational hours (${zone}): ${nextOpening(hours, local)}` });
    },
  };
}

/** "opens monday 06:00", looking up to a week ahead. */
function nextOpening(hours: readonly (readonly Window[])[], local: { weekday: number; minute: number }): string {
  for (let ahead = 0; ahead <= 7; ahead++) {
    const weekday = (local.weekday + ahead) % 7;
    const window = [...hours[weekday]!].sort((a, b) => a.from - b.from).find((w) => ahead > 0 || w.from > local.minute);
    if (window) return `opens ${ahead === 0 ? 'today' : WEEKDAYS[weekday]} ${window.text.slice(0, 5)}`;
  }
  return 'no operational hours are configured';
}

/** A date-only bound covers its whole day (UTC); a full time is taken as written. */
function startOf(text: string): Date {
  return new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
}

function endOf(text: string): Date {
  return new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T23:59:59.999Z` : text);
}
