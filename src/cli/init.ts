import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { x509 } from '../pki/x509.js';
import { buildCaCertificate, generateP256KeyPair, privateKeyToPem, signingAlgorithmFor } from '../pki/certificate-builder.js';
import { newSerialNumber } from '../pki/serial.js';
import { sampleConfig } from '../config/sample.js';
import { SqliteStore } from '../store/sqlite.js';
import { createPasscode } from '../auth/passcode.js';

export interface InitOptions {
  readonly stateDir: string;
  readonly port: number;
  readonly host: string;
  /** Extra names for the TLS server certificate, e.g. `DNS:ra.plant.local`, `IP:10.1.2.3`. */
  readonly serverNames: readonly string[];
  readonly now: Date;
}

export interface InitResult {
  readonly configFile: string;
  readonly rootCaFile: string;
  readonly demoPasscode: string;
}

const YEAR_MS = 365 * 86_400_000;
export const DEMO_POLICY = 'demo';

/**
 * Creates the embedded default in a state directory: a P-256 root CA and an
 * issuing CA under it, a TLS server certificate for localhost and 127.0.0.1
 * signed by the issuing CA, a commented config with a demo profile, the
 * SQLite store and one demo passcode (returned, stored only as a hash).
 * Private keys are written 0600.
 */
export async function initStateDir(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.stateDir);
  const configFile = join(dir, 'config.yaml');
  if (existsSync(configFile)) throw new Error(`${configFile} already exists: est-ra init does not overwrite a state directory`);
  const pki = join(dir, 'pki');
  mkdirSync(pki, { recursive: true, mode: 0o700 });
  const now = options.now.getTime();

  const rootKeys = await generateP256KeyPair();
  const rootCa = await buildCaCertificate({
    subject: 'CN=est-ra local root CA, O=est-ra',
    keys: rootKeys,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 20 * YEAR_MS),
    serialNumber: newSerialNumber(),
  });
  const issuingKeys = await generateP256KeyPair();
  const issuingCa = await buildCaCertificate({
    subject: 'CN=est-ra local issuing CA, O=est-ra',
    keys: issuingKeys,
    issuer: { certificate: rootCa, privateKey: rootKeys.privateKey },
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * YEAR_MS),
    serialNumber: newSerialNumber(),
    pathLength: 0,
  });
  const serverKeys = await generateP256KeyPair();
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: newSerialNumber(),
    subject: 'CN=est-ra',
    issuer: issuingCa.subjectName,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 2 * YEAR_MS),
    publicKey: serverKeys.publicKey,
    signingKey: issuingKeys.privateKey,
    signingAlgorithm: signingAlgorithmFor(issuingKeys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(serverAltNames(options.serverNames)),
      await x509.SubjectKeyIdentifierExtension.create(serverKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuingCa),
    ],
  });

  writePublic(join(pki, 'root-ca.crt'), rootCa.toString('pem'));
  writePublic(join(pki, 'issuing-ca.crt'), issuingCa.toString('pem'));
  // The server sends its chain so clients need only the root as trust anchor.
  writePublic(join(pki, 'server.crt'), `${server.toString('pem')}\n${issuingCa.toString('pem')}\n`);
  writePrivate(join(pki, 'root-ca.key'), await privateKeyToPem(rootKeys.privateKey));
  writePrivate(join(pki, 'issuing-ca.key'), await privateKeyToPem(issuingKeys.privateKey));
  writePrivate(join(pki, 'server.key'), await privateKeyToPem(serverKeys.privateKey));
  writePublic(configFile, sampleConfig({ port: options.port, host: options.host }));

  const store = new SqliteStore(join(dir, 'est-ra.db'));
  try {
    const { passcode } = await createPasscode(store, DEMO_POLICY, { description: 'demo passcode made by est-ra init', now: options.now });
    return { configFile, rootCaFile: join(pki, 'root-ca.crt'), demoPasscode: passcode };
  } finally {
    await store.close();
  }
}

function serverAltNames(extra: readonly string[]): x509.JsonGeneralNames {
  const names: x509.JsonGeneralNames = [
    { type: 'dns', value: 'localhost' },
    { type: 'ip', value: '127.0.0.1' },
    { type: 'ip', value: '::1' },
  ];
  for (const name of extra) {
    const typed = /^(DNS|IP):(.+)$/i.exec(name);
    names.push(typed ? { type: typed[1]!.toLowerCase() === 'ip' ? 'ip' : 'dns', value: typed[2]! } : { type: 'dns', value: name });
  }
  return names;
}

function writePublic(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o644 });
}

function writePrivate(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}
