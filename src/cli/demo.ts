import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { SqliteStore } from '../store/sqlite.js';
import { createPasscode } from '../auth/passcode.js';
import { startServer, type RunningServer } from '../server.js';
import { DEMO_POLICY, initStateDir } from './init.js';

export interface DemoOptions {
  readonly stateDir: string;
  readonly port: number;
}

/**
 * `est-ra demo`: the embedded default, started with everything a newcomer
 * needs printed. Passcodes are stored only as hashes, so a demo that finds
 * an existing state directory makes a fresh demo passcode to print.
 */
export async function runDemo(options: DemoOptions, print: (text: string) => void): Promise<RunningServer> {
  const dir = resolve(options.stateDir);
  const configFile = join(dir, 'config.yaml');
  let passcode: string;
  if (existsSync(configFile)) {
    const store = new SqliteStore(join(dir, 'est-ra.db'));
    try {
      passcode = (await createPasscode(store, DEMO_POLICY, { description: 'demo passcode made by est-ra demo', now: new Date() })).passcode;
    } finally {
      await store.close();
    }
  } else {
    passcode = (await initStateDir({ stateDir: dir, port: options.port, host: '127.0.0.1', serverNames: [], now: new Date() })).demoPasscode;
  }
  const config = loadConfig(configFile);
  const server = await startServer(config, { port: options.port });
  print(enrollmentInstructions(server.url, join(dir, 'pki', 'root-ca.crt'), passcode));
  return server;
}

/** The exact commands printed by `est-ra demo`, also used by the README and tests. */
export function enrollmentInstructions(url: string, rootCaFile: string, passcode: string): string {
  const shown = relative(process.cwd(), rootCaFile);
  const ca = shown.startsWith('..') ? rootCaFile : shown;
  const est = `${url}/.well-known/est`;
  return `
est-ra is running on ${url} with the embedded demo profile (local CA, SQLite).
Demo passcode (shown once, stored only as a hash): ${passcode}

In another terminal, in this directory:

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

Press Ctrl-C to stop.
`;
}
