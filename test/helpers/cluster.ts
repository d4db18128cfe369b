import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCli } from './admin-cli.js';
import { editConfig, type Json } from './config.js';
import { initDemoState, serveEstRa, type EstRaProcess } from './est-ra-process.js';
import { startPostgres, type TestPostgres } from './postgres.js';
import type { TestEstRa } from './est-ra.js';

/**
 * Several `est-ra serve` processes on one PostgreSQL the test starts, as
 * plant servers behind a load balancer: one `est-ra init` state (the same
 * local CA files, as an admin copies /etc/est-ra to each host), one
 * configuration per node that differs only in `cluster.node_name`, each
 * node on its own port.
 */
export interface TestCluster {
  readonly dir: string;
  readonly postgres: TestPostgres;
  /** An unlimited passcode of the demo policy, made in the shared store with the admin CLI. */
  readonly passcode: string;
  /** node-a's configuration; the admin CLI runs against it (any node's would do). */
  readonly configFile: string;
  readonly cli: ReturnType<typeof adminCli>;
  /** Starts node `name` (its own config file, changed by `edit`) and returns it; `client(name)` then reaches it with curl. */
  start(name: string, edit?: (config: Json) => void): Promise<EstRaProcess>;
  node(name: string): EstRaProcess;
  /** Node `name`'s own configuration file (what `start` wrote), for a test that edits it and sends SIGHUP. */
  configFileOf(name: string): string;
  /** What the curl and openssl helpers need of a node: its URL, the demo PKI, a scratch directory. */
  client(name: string): TestEstRa;
  close(): Promise<void>;
}

export async function startCluster(options: { readonly edit?: (config: Json) => void } = {}): Promise<TestCluster> {
  const postgres = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'est-ra-cluster-'));
  // init's own demo passcode went into its SQLite file, which no node uses.
  const { configFile: initConfig } = await initDemoState(dir, { host: '127.0.0.1' });
  const database = await postgres.createDatabase('est_ra');
  const base = editConfig(readFileSync(initConfig, 'utf8'), (config) => {
    config.store = {
      postgres: { host: postgres.host, port: postgres.port, database, user: postgres.user, password: { file: postgres.passwordFile } },
      retention_days: 90,
    };
    options.edit?.(config);
  });
  const configOf = (name: string, edit?: (config: Json) => void): string => {
    const file = join(dir, `config-${name}.yaml`);
    writeFileSync(
      file,
      editConfig(base, (config) => {
        config.cluster = { ...(config.cluster ?? {}), node_name: name };
        edit?.(config);
      }),
    );
    return file;
  };
  const configFile = configOf('node-a');
  const cli = adminCli(configFile);
  const [created] = await cli.json<{ passcode: string }>('passcodes', 'create', '--policy', 'demo', '--description', 'cluster test devices');
  const passcode = created!.passcode;
  const nodes = new Map<string, EstRaProcess>();
  return {
    dir,
    postgres,
    passcode,
    configFile,
    cli,
    async start(name, edit) {
      const node = await serveEstRa(configOf(name, edit));
      nodes.set(name, node);
      return node;
    },
    node: (name) => nodes.get(name)!,
    configFileOf: (name) => join(dir, `config-${name}.yaml`),
    client: (name) =>
      ({ url: nodes.get(name)!.url, dir, rootCaFile: join(dir, 'pki', 'root-ca.crt'), issuingCaFile: join(dir, 'pki', 'issuing-ca.crt') }) as TestEstRa,
    async close() {
      await Promise.all([...nodes.values()].map((node) => node.stop('SIGTERM')));
      await postgres.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
