import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { openStore } from '../store/open.js';
import { createPasscode } from '../auth/passcode.js';
import type { RunningServer } from '../server.js';
import { DEMO_INIT, DEMO_NAME, initStateDir } from './init.js';

export interface DemoOptions {
  /** Absent: defaultDemoStateDir(). */
  readonly stateDir?: string;
  readonly port: number;
}

export interface RunningDemo {
  readonly server: RunningServer;
  readonly configFile: string;
}

const DEMO_PASSCODE = 'demo passcode made by est-ra';

/**
 * Where the demo keeps its state when not told: $XDG_STATE_HOME/est-ra-demo
 * (~/.local/state/est-ra-demo), outside the clone, so its CA keys and the
 * files the printed commands write never show up in `git status` or get
 * committed by a `git add .`, and a new clone finds the same demo.
 */
export function defaultDemoStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
  return join(base, 'est-ra-demo');
}

/**
 * `est-ra demo`: the embedded default, started with everything a newcomer
 * needs printed. Passcodes are stored only as hashes, so each start makes a
 * fresh demo passcode to print and disables the ones earlier starts made:
 * one demo passcode works at a time, however often the demo is started.
 */
export async function runDemo(options: DemoOptions, print: (text: string) => void): Promise<RunningDemo> {
  const dir = resolve(options.stateDir ?? defaultDemoStateDir());
  const configFile = join(dir, 'config.yaml');
  let passcode: string;
  if (existsSync(configFile)) {
    const store = await openStore({ sqlite: { path: join(dir, 'est-ra.db') } });
    try {
      for (const earlier of await store.listPasscodes(DEMO_NAME)) {
        if (earlier.enabled && earlier.description?.startsWith(DEMO_PASSCODE)) await store.setPasscodeEnabled(earlier.id, false);
      }
      passcode = (await createPasscode(store, DEMO_NAME, { description: `${DEMO_PASSCODE} demo`, now: new Date() })).passcode;
    } finally {
      await store.close();
    }
  } else {
    const init = await initStateDir({ ...DEMO_INIT, stateDir: dir, port: options.port, host: '127.0.0.1', serverNames: [], now: new Date() });
    passcode = init.demoPasscode!;
  }
  // The printed commands write the device's files here, beside the demo's state.
  const clientDir = join(dir, 'client');
  mkdirSync(clientDir, { recursive: true });
  const config = loadConfig(configFile);
  // Loaded when the demo starts, so that main.ts importing this module does not load the HTTP server for every admin command.
  const { startServer } = await import('../server.js');
  const server = await startServer(config, { port: options.port });
  print(enrollmentInstructions(server.url, clientDir, passcode));
  return { server, configFile };
}

/** A path as a shell word: quoted only when it needs to be. */
function shellWord(path: string): string {
  return /^[A-Za-z0-9_./~+-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

/**
 * The exact commands printed by `est-ra demo`, also in the README and run by
 * test/cli/demo.spec.ts. They run in `clientDir` (the demo's state
 * directory/client), so `../pki/` is the demo's PKI.
 */
export function enrollmentInstructions(url: string, clientDir: string, passcode: string): string {
  const ca = '../pki/root-ca.crt';
  const est = `${url}/.well-known/est`;
  return `
est-ra is running on ${url} with the embedded demo profile (local CA, SQLite).
Demo passcode (shown once, stored only as a hash; the next start of the demo replaces it): ${passcode}

In another terminal:

cd ${shellWord(clientDir)}

# 1. Get the CA certificates (TLS trust anchor: the local root CA)
curl -sS --fail-with-body --cacert ${ca} ${est}/cacerts -o cacerts.p7
openssl base64 -d -in cacerts.p7 | openssl pkcs7 -inform DER -print_certs -out cacerts.pem

# 2. Make a key and CSR, enroll with the passcode
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout device.key -subj "/CN=device-001" -out device.csr
curl -sS --fail-with-body --cacert ${ca} --user ":${passcode}" -H "Content-Type: application/pkcs10" --data-binary @device.csr ${est}/simpleenroll -o device.p7
openssl base64 -d -in device.p7 | openssl pkcs7 -inform DER -print_certs -out device.crt
openssl verify -CAfile cacerts.pem device.crt

# 3. Re-enroll, authenticated by the certificate being renewed
openssl req -new -key device.key -subj "/CN=device-001" -out renew.csr
curl -sS --fail-with-body --cacert ${ca} --cert device.crt --key device.key -H "Content-Type: application/pkcs10" --data-binary @renew.csr ${est}/simplereenroll -o renewed.p7
openssl base64 -d -in renewed.p7 | openssl pkcs7 -inform DER -print_certs -out renewed.crt
openssl verify -CAfile cacerts.pem renewed.crt

# 4. The same with strongSwan's pki (it checks the issued certificate against the --cacert files: give the root and the issuing CA)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout sw.key -subj "/CN=device-002" -outform DER -out sw.der
pki --est --url ${url}/ --cacert ../pki/root-ca.crt --cacert ../pki/issuing-ca.crt --in sw.der --userpass ":${passcode}" --outform pem > sw.crt
openssl verify -CAfile cacerts.pem sw.crt

Press Ctrl-C to stop; kill -HUP reloads config.yaml.
`;
}
