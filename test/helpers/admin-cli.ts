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

/** The latest request est-ra recorded, read as an admin does: `est-ra requests list --json --limit 1` (with `show`: everything). */
export async function latestRequest(ra: { readonly dir: string }, options: { show?: boolean } = {}): Promise<RequestJson | undefined> {
  const cli = adminCli(join(ra.dir, 'config.yaml'));
  const [latest] = await cli.json<RequestJson>('requests', 'list', '--limit', '1');
  if (!latest || !options.show) return latest;
  return (await cli.json<RequestJson>('requests', 'show', latest.id))[0];
}
