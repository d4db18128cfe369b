import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import type { PasscodeRecord, Store } from '../store/types.js';

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
/** 24 characters of a 57-letter alphabet: 140 bits of entropy. */
const PASSCODE_LENGTH = 24;

/**
 * A new passcode: random letters and digits without look-alikes (0/O, 1/l/I),
 * so an admin can read one aloud or type it into a device console.
 */
export function generatePasscode(): string {
  let passcode = '';
  for (let i = 0; i < PASSCODE_LENGTH; i++) passcode += ALPHABET.charAt(randomInt(ALPHABET.length));
  return passcode;
}

/**
 * The stored form of a passcode.
 *
 * Why SHA-256 and not scrypt/argon2: est-ra generates every passcode with 140
 * bits of entropy, so a stolen database cannot be brute-forced whatever the
 * hash costs; slow hashes exist to protect low-entropy human passwords. A
 * slow hash would instead cost tens of milliseconds of CPU on every Basic
 * request and cap enrollment throughput (see issue #3's figures), while
 * SHA-256 costs about a microsecond. The digest also serves as the lookup
 * key, so a device need not send a username.
 */
export function hashPasscode(passcode: string): string {
  return `sha256:${createHash('sha256').update(passcode, 'utf8').digest('hex')}`;
}

export interface NewPasscode {
  readonly record: PasscodeRecord;
  /** The secret itself: shown once, never stored. */
  readonly passcode: string;
}

export interface PasscodeOptions {
  readonly username?: string;
  readonly description?: string;
  /** DigiCert's number_of_usage: how many enrollments it may authenticate. */
  readonly maxUses?: number;
  readonly expiresAt?: Date;
  /** Values registered with it: `common_name`, `san.dns_name`, ... (see policy/name-policy.ts). */
  readonly registeredValues?: Readonly<Record<string, readonly string[]>>;
  readonly now: Date;
}

export async function createPasscode(store: Store, policy: string, options: PasscodeOptions): Promise<NewPasscode> {
  const passcode = generatePasscode();
  const record: PasscodeRecord = {
    id: randomUUID(),
    policy,
    username: options.username ?? null,
    hash: hashPasscode(passcode),
    description: options.description ?? null,
    createdAt: options.now.toISOString(),
    enabled: true,
    maxUses: options.maxUses ?? null,
    uses: 0,
    expiresAt: options.expiresAt?.toISOString() ?? null,
    registeredValues: options.registeredValues ?? {},
  };
  await store.addPasscode(record);
  return { record, passcode };
}

/** A new secret for an existing passcode (limits and count kept); undefined when there is no such passcode. */
export async function rotatePasscode(store: Store, id: string): Promise<string | undefined> {
  const passcode = generatePasscode();
  return (await store.rotatePasscode(id, hashPasscode(passcode))) ? passcode : undefined;
}

/** Why an enabled passcode no longer authenticates at `now`, if it does not. */
function limitReached(record: PasscodeRecord, now: Date): 'expired' | 'used up' | undefined {
  if (record.expiresAt !== null && now.toISOString() >= record.expiresAt) return 'expired';
  if (record.maxUses !== null && record.uses >= record.maxUses) return 'used up';
  return undefined;
}

/** How `passcodes list` shows a passcode: enabled, disabled, expired or used up. */
export function passcodeStatus(record: PasscodeRecord, now: Date): string {
  return record.enabled ? (limitReached(record, now) ?? 'enabled') : 'disabled';
}

/** Why a passcode does not authenticate when the store has no enabled one of the policy with that secret. */
export const UNKNOWN_PASSCODE = 'unknown or disabled passcode';

/**
 * The refusal when a passcode can take no further use (disabled, expired or
 * used up by the time the request is recorded): what the device is told, and
 * what `est-ra simulate` shows.
 */
export function passcodeUseRefusal(id: string, record: PasscodeRecord | undefined, now: Date): string {
  const status = record ? passcodeStatus(record, now) : 'gone';
  return `authentication failed: passcode ${id} is ${status === 'enabled' ? 'used up' : status}`;
}

export type PasscodeCheck = { readonly ok: true; readonly record: PasscodeRecord } | { readonly ok: false; readonly reason: string };

/**
 * Checks a presented passcode against an authentication policy's passcodes.
 * The store finds the record by digest; the digests and usernames are then
 * compared in constant time, so timing reveals nothing about near misses.
 * The reason is for est-ra's records; the client only ever sees a 401.
 *
 * Limits (uses, expiry) are not checked here: the enrollment service takes a
 * use atomically with recording a new request, and a device retrying a
 * request it was promised (the same CSR after 202, after a restart, or after
 * a lost answer) must collect it even when that was the passcode's last use.
 */
export async function verifyPasscode(
  store: Store,
  policy: string,
  presented: { username?: string; passcode: string },
  requireUsername: boolean,
): Promise<PasscodeCheck> {
  const digest = hashPasscode(presented.passcode);
  const record = await store.findPasscode(policy, digest);
  if (!record || !constantTimeEqual(record.hash, digest)) return { ok: false, reason: UNKNOWN_PASSCODE };
  if (requireUsername && !constantTimeEqual(record.username ?? '', presented.username ?? ''))
    return { ok: false, reason: 'username does not match the passcode' };
  return { ok: true, record };
}

function constantTimeEqual(a: string, b: string): boolean {
  // Hash both sides so the comparison has equal lengths and leaks no length.
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}
