import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { DEMO_INIT, initStateDir } from '../../src/cli/init.js';
import { parseConfig } from '../../src/config/load.js';
import { startServer, type RunningServer } from '../../src/server.js';

export interface TestEstRa {
  readonly url: string;
  readonly port: number;
  /** The state directory, also a scratch directory for client files. */
  readonly dir: string;
  readonly rootCaFile: string;
  readonly issuingCaFile: string;
  readonly passcode: string;
  readonly server: RunningServer;
  /** Every log line est-ra wrote, as JSON text. */
  readonly logs: string[];
  close(): Promise<void>;
}

export interface StartOptions {
  /** Edits the config.yaml that init wrote before it is loaded. */
  readonly editConfig?: (yaml: string) => string;
  readonly now?: () => Date;
}

/**
 * Starts a real est-ra on 127.0.0.1 with a random port and a fresh embedded
 * default (local CA, demo profile, SQLite) in a temp directory: the same
 * `init` a newcomer runs, so each test run makes its own PKI.
 */
export async function startEstRa(options: StartOptions = {}): Promise<TestEstRa> {
  const dir = mkdtempSync(join(tmpdir(), 'est-ra-test-'));
  const init = await initStateDir({ ...DEMO_INIT, stateDir: dir, port: 0, host: '127.0.0.1', serverNames: [], now: new Date() });
  // Most specs refuse one demo passcode dozens of times a minute on purpose (error tables, vectors, name rules):
  // lift its per-passcode budget here; the spec of the budget sets its own.
  const text = readFileSync(init.configFile, 'utf8').replace(/refusals_per_minute_per_passcode: \d+/, 'refusals_per_minute_per_passcode: 1000000');
  const config = parseConfig(options.editConfig ? options.editConfig(text) : text, init.configFile);
  const logs: string[] = [];
  const logger = winston.createLogger({
    level: 'debug',
    format: winston.format.json(),
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _encoding, callback) {
            logs.push(chunk.toString('utf8').trim());
            callback();
          },
        }),
      }),
    ],
  });
  const server = await startServer(config, { port: 0, logger, now: options.now });
  return {
    url: server.url,
    port: server.port,
    dir,
    rootCaFile: init.rootCaFile,
    issuingCaFile: join(dir, 'pki', 'issuing-ca.crt'),
    passcode: init.demoPasscode!,
    server,
    logs,
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
