import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustRun, run, type RunResult } from './run.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * The admin CLI as a subprocess against a configuration: what the tests read
 * est-ra's state through (requests, certificates, passcodes, the audit
 * trail), as an admin or a script would, never SQL.
 */
export function adminCli(configFile: string): {
  run(...args: string[]): Promise<RunResult>;
  text(...args: string[]): Promise<string>;
  json<T = Record<string, unknown>>(...args: string[]): Promise<T[]>;
} {
  const argv = (args: string[]): string[] => [CLI, ...args, '--config', configFile];
  return {
    run: (...args) => run(process.execPath, argv(args)),
    text: (...args) => mustRun(process.execPath, argv(args)),
    async json<T>(...args: string[]): Promise<T[]> {
      const out = await mustRun(process.execPath, argv([...args, '--json']));
      return out
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as T);
    },
  };
}

/** A request as `est-ra requests list --json` gives it (docs/admin.md). */
export interface RequestJson {
  id: string;
  received_at: string;
  completed_at: string | null;
  profile: string;
  operation: string;
  peer_address: string;
  principal: Record<string, unknown> & { kind: string };
  outcome: string;
  csr_sha256: string | null;
  status: number | null;
  reason: string | null;
  attempts: number;
  serial: string | null;
  subject: string | null;
  not_after: string | null;
  possibly_issued_twice_upstream: boolean;
  /** `requests show` only: PEM. */
  csr?: string | null;
  client_certificate?: string | null;
}

/** A counted refusal before authentication, as `store stats --refusals N --json` and `audit export` give it. */
export interface RefusalJson {
  hour: string;
  peer_address: string;
  profile: string;
  operation: string;
  code: string;
  status: number;
  count: number;
  last_reason: string;
}

/** `est-ra store stats --json` (docs/admin.md), with the latest counted refusals asked for. */
export interface StoreStatsJson {
  requests: number;
  refused: number;
  waiting: number;
  certificates: number;
  refusal_rows: number;
  refusals_counted: number;
  passcodes: number;
  bytes: number;
  refusals: RefusalJson[];
}

/** A certificate as `est-ra certificates list|show --json` gives it. */
export interface CertificateJson {
  serial: string;
  subject: string;
  sans: string[];
  not_before: string;
  not_after: string;
  issuer: string;
  profile: string;
  request_id: string;
}

/** A passcode as `est-ra passcodes list --json` gives it. */
export interface PasscodeJson {
  id: string;
  policy: string;
  uses_count: number;
  max_uses: number | null;
  status: string;
}

/** More than any spec records: `requests list` and `certificates list` have a default limit. */
export const ALL = ['--limit', '1000000'];

const configOf = (ra: { readonly dir: string }): string => join(ra.dir, 'config.yaml');

/** `est-ra store stats --json [--refusals N]`: the counts, and the latest N counted refusals. */
export async function storeStats(ra: { readonly dir: string }, refusals = 1): Promise<StoreStatsJson> {
  return (await adminCli(configOf(ra)).json<StoreStatsJson>('store', 'stats', '--refusals', String(refusals)))[0]!;
}

/** The latest counted refusal before authentication (`store stats --refusals 1 --json`). */
export async function latestRefusal(ra: { readonly dir: string }): Promise<RefusalJson | undefined> {
  return (await storeStats(ra)).refusals[0];
}

/** The latest request est-ra recorded, read as an admin does: `est-ra requests list --json --limit 1` (with `show`: everything). */
export async function latestRequest(ra: { readonly dir: string }, options: { show?: boolean } = {}): Promise<RequestJson | undefined> {
  const cli = adminCli(configOf(ra));
  const [latest] = await cli.json<RequestJson>('requests', 'list', '--limit', '1');
  if (!latest || !options.show) return latest;
  return (await cli.json<RequestJson>('requests', 'show', latest.id))[0];
}
