import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { pemCertificateBlocks, subtle, x509 } from '../pki/x509.js';
import { buildCaCertificate, generateP256KeyPair, privateKeyToPem, signingAlgorithmFor, webCryptoAlgorithmOf } from '../pki/certificate-builder.js';
import { newSerialNumber } from '../pki/serial.js';
import { viewOf } from '../pki/certificate-view.js';
import { validatePathUncached } from '../pki/path-validation.js';
import { sampleConfig } from '../config/sample.js';
import { openStore } from '../store/open.js';
import { createPasscode } from '../auth/passcode.js';

/** An issuing CA made elsewhere (its root offline), imported instead of creating a root on the RA host. */
export interface ImportedIssuingCa {
  /** PEM certificate of the issuing CA. */
  readonly certificateFile: string;
  /** Its private key (PEM, unencrypted: any of PKCS#8, SEC1, PKCS#1). */
  readonly keyFile: string;
  /** PEM files of the CA certificates above it, up to and including the root (any order, several per file). */
  readonly chainFiles: readonly string[];
}

export interface InitOptions {
  readonly stateDir: string;
  readonly port: number;
  readonly host: string;
  /** Extra names for the TLS server certificate: `DNS:ra.plant.local`, `IP:10.1.2.3`, or bare (an IP address is IP:, else DNS:). */
  readonly serverNames: readonly string[];
  readonly now: Date;
  /** The authentication policy and profile config.yaml defines; `default` unless told. */
  readonly policyName?: string;
  readonly profileName?: string;
  /** Subject CN prefix of the CAs init creates: `<name> root CA`, `<name> issuing CA`. */
  readonly caName?: string;
  readonly issuingCa?: ImportedIssuingCa;
  /** Create one unlimited passcode (for a demo or a test, never for production). */
  readonly demoPasscode?: boolean | { readonly description: string; readonly expiresAt?: Date };
}

export interface InitResult {
  readonly configFile: string;
  /** The trust anchor clients need: the root CA certificate. */
  readonly rootCaFile: string;
  readonly issuingCaFile: string;
  /** Where init wrote the root CA's private key, when it created the root; absent when the issuing CA was imported. */
  readonly offlineRootKeyFile?: string;
  readonly policyName: string;
  readonly profileName: string;
  readonly demoPasscode?: string;
}

const YEAR_MS = 365 * 86_400_000;
export const DEFAULT_NAME = 'default';
export const DEMO_NAME = 'demo';
/** What `est-ra demo` and the tests use: the demo profile and policy, one demo passcode. */
export const DEMO_INIT = { policyName: DEMO_NAME, profileName: DEMO_NAME, demoPasscode: true } as const;

/**
 * Creates a state directory: config.yaml (commented), the SQLite store, a
 * TLS server certificate signed by the issuing CA, and the issuing CA: either
 * imported (its root stays wherever it is) or created with a P-256 root whose
 * private key is written apart, under pki/offline/, for the admin to move
 * off the RA host: est-ra never reads it. Private keys are written 0600.
 */
export async function initStateDir(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.stateDir);
  const configFile = join(dir, 'config.yaml');
  if (existsSync(configFile)) throw new Error(`${configFile} already exists: est-ra init does not overwrite a state directory`);
  const policyName = options.policyName ?? DEFAULT_NAME;
  const profileName = options.profileName ?? DEFAULT_NAME;
  for (const [what, name] of [
    ['policy', policyName],
    ['profile', profileName],
  ] as const) {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`--${what}-name ${name}: letters, digits and . _ - only`);
  }
  const serverNames = serverAltNames(options.serverNames);
  // Checked before anything is written: a refused import leaves no half-made directory.
  const imported = options.issuingCa && (await readIssuingCa(options.issuingCa, options.now));
  const pki = join(dir, 'pki');
  mkdirSync(pki, { recursive: true, mode: 0o700 });
  const now = options.now.getTime();

  let issuing: { certificate: x509.X509Certificate; privateKey: CryptoKey; keyPem: string; chain: x509.X509Certificate[] };
  let offlineRootKeyFile: string | undefined;
  if (imported) {
    issuing = imported;
  } else {
    const caName = options.caName ?? 'est-ra local';
    const rootKeys = await generateP256KeyPair();
    const rootCa = await buildCaCertificate({
      subject: `CN=${escapeDnValue(`${caName} root CA`)}`,
      keys: rootKeys,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 20 * YEAR_MS),
      serialNumber: newSerialNumber(),
    });
    const issuingKeys = await generateP256KeyPair();
    const issuingCa = await buildCaCertificate({
      subject: `CN=${escapeDnValue(`${caName} issuing CA`)}`,
      keys: issuingKeys,
      issuer: { certificate: rootCa, privateKey: rootKeys.privateKey },
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 10 * YEAR_MS),
      serialNumber: newSerialNumber(),
      pathLength: 0,
    });
    issuing = { certificate: issuingCa, privateKey: issuingKeys.privateKey, keyPem: await privateKeyToPem(issuingKeys.privateKey), chain: [rootCa] };
    // The root's key signs nothing at run time: written apart so it is obvious what to take off the host.
    mkdirSync(join(pki, 'offline'), { recursive: true, mode: 0o700 });
    offlineRootKeyFile = join(pki, 'offline', 'root-ca.key');
    writePrivate(offlineRootKeyFile, await privateKeyToPem(rootKeys.privateKey));
  }

  const serverKeys = await generateP256KeyPair();
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: newSerialNumber(),
    subject: 'CN=est-ra',
    issuer: issuing.certificate.subjectName,
    notBefore: new Date(Math.max(now - 60_000, issuing.certificate.notBefore.getTime())),
    notAfter: new Date(Math.min(now + 2 * YEAR_MS, issuing.certificate.notAfter.getTime())),
    publicKey: serverKeys.publicKey,
    signingKey: issuing.privateKey,
    signingAlgorithm: signingAlgorithmFor(issuing.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(serverNames),
      await x509.SubjectKeyIdentifierExtension.create(serverKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuing.certificate),
    ],
  });

  // The chain above the issuing CA, root last: pki/root-ca.crt is always the root, the clients' trust anchor.
  const root = issuing.chain.at(-1) ?? issuing.certificate;
  const rootCaFile = join(pki, 'root-ca.crt');
  const issuingCaFile = join(pki, 'issuing-ca.crt');
  const chainFiles = issuing.chain.map((certificate, i) => (i === issuing.chain.length - 1 ? rootCaFile : join(pki, `intermediate-ca-${i + 1}.crt`)));
  issuing.chain.forEach((certificate, i) => writePublic(chainFiles[i]!, certificate.toString('pem')));
  if (issuing.chain.length === 0) writePublic(rootCaFile, root.toString('pem'));
  writePublic(issuingCaFile, issuing.certificate.toString('pem'));
  // The server sends the issuing CA (and any intermediates) after its own certificate, so clients need only the root.
  writePublic(join(pki, 'server.crt'), [server, issuing.certificate, ...issuing.chain.slice(0, -1)].map((c) => c.toString('pem')).join('\n'));
  writePrivate(join(pki, 'issuing-ca.key'), issuing.keyPem);
  writePrivate(join(pki, 'server.key'), await privateKeyToPem(serverKeys.privateKey));
  writePublic(
    configFile,
    sampleConfig({
      port: options.port,
      host: options.host,
      policyName,
      profileName,
      chain: chainFiles.map((file) => relative(dir, file)),
    }),
  );

  const store = await openStore({ sqlite: { path: join(dir, 'est-ra.db') } });
  try {
    const base = { configFile, rootCaFile, issuingCaFile, policyName, profileName, ...(offlineRootKeyFile ? { offlineRootKeyFile } : {}) };
    if (!options.demoPasscode) return base;
    const asked = options.demoPasscode === true ? { description: 'demo passcode made by est-ra init' } : options.demoPasscode;
    const { passcode } = await createPasscode(store, policyName, { ...asked, now: options.now });
    return { ...base, demoPasscode: passcode };
  } finally {
    await store.close();
  }
}

/**
 * Reads and checks an issuing CA to import: the key is the certificate's, the
 * certificate is a CA that may sign certificates (basicConstraints cA,
 * keyUsage keyCertSign: RFC 5280 §4.2.1.9, §4.2.1.3), and it chains to a
 * root among the chain files, validated now by pkijs's RFC 5280 §6 engine
 * (pki/path-validation.ts), never by hand. Returns the chain in path order,
 * root last.
 */
async function readIssuingCa(
  files: ImportedIssuingCa,
  now: Date,
): Promise<{ certificate: x509.X509Certificate; privateKey: CryptoKey; keyPem: string; chain: x509.X509Certificate[] }> {
  const certificate = readCertificates(files.certificateFile)[0]!;
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(files.keyFile));
  } catch (err) {
    throw new Error(`--issuing-ca-key ${files.keyFile}: not a readable unencrypted private key (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!new X509Certificate(Buffer.from(certificate.rawData)).checkPrivateKey(key))
    throw new Error(`--issuing-ca-key ${files.keyFile} is not the key of --issuing-ca ${files.certificateFile}`);
  if (certificate.getExtension(x509.BasicConstraintsExtension)?.ca !== true)
    throw new Error(`--issuing-ca ${files.certificateFile} is not a CA certificate (basicConstraints cA is not set)`);
  const usages = certificate.getExtension(x509.KeyUsagesExtension)?.usages;
  if (usages !== undefined && (usages & x509.KeyUsageFlags.keyCertSign) === 0)
    throw new Error(`--issuing-ca ${files.certificateFile} may not sign certificates (its keyUsage lacks keyCertSign)`);

  const given = files.chainFiles.flatMap(readCertificates);
  const selfSigned = async (c: x509.X509Certificate): Promise<boolean> => c.subject === c.issuer && (await c.isSelfSigned());
  const roots = (await Promise.all(given.map(async (c) => ((await selfSigned(c)) ? c : undefined)))).filter((c) => c !== undefined);
  if (roots.length === 0 && !(await selfSigned(certificate)))
    throw new Error(`--ca-chain: give the CA certificates above ${certificate.subject} up to and including its root`);
  let chain: x509.X509Certificate[] = [];
  if (roots.length > 0) {
    const result = await validatePathUncached({
      certificate: viewOf(certificate),
      anchors: roots.map(viewOf),
      intermediates: given.filter((c) => !roots.includes(c)).map((c) => Buffer.from(c.rawData)),
      now,
    });
    if (!result.ok) throw new Error(`--issuing-ca ${files.certificateFile} does not chain to a root of --ca-chain: ${result.reason}`);
    chain = result.path.slice(1).map((view) => view.full ?? new x509.X509Certificate(new Uint8Array(view.der)));
  } else if (now < certificate.notBefore || now > certificate.notAfter) {
    throw new Error(`--issuing-ca ${files.certificateFile} is not valid now (${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()})`);
  }

  const der = key.export({ type: 'pkcs8', format: 'der' });
  // The local CA signs with RSA or ECDSA (pki/certificate-signer.ts): an Ed25519 issuing key is refused here.
  const algorithm = key.asymmetricKeyType === 'ed25519' ? undefined : webCryptoAlgorithmOf(key);
  if (!algorithm) throw new Error(`--issuing-ca-key: a ${key.asymmetricKeyType ?? 'unknown'} key is not supported (RSA or EC P-256/384/521)`);
  const privateKey = await subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
  return { certificate, privateKey, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string, chain };
}

function readCertificates(file: string): x509.X509Certificate[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`cannot read ${file}`);
  }
  const blocks = pemCertificateBlocks(text);
  if (blocks.length === 0) throw new Error(`${file} holds no PEM certificate`);
  return blocks.map((pem) => {
    try {
      return new x509.X509Certificate(pem);
    } catch (err) {
      throw new Error(`${file}: a certificate cannot be read (${err instanceof Error ? err.message : String(err)})`);
    }
  });
}

/** RFC 4514 §2.4: a CN given on the command line may hold a comma or a plus. */
function escapeDnValue(value: string): string {
  return value.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`).replace(/^[ #]|[ ]$/g, (c) => `\\${c}`);
}

/** localhost and the loopback addresses, then the names given: a bare IP address is an IP SAN (TLS clients connecting by address check that). */
export function serverAltNames(extra: readonly string[]): x509.JsonGeneralNames {
  const names: x509.JsonGeneralNames = [
    { type: 'dns', value: 'localhost' },
    { type: 'ip', value: '127.0.0.1' },
    { type: 'ip', value: '::1' },
  ];
  for (const name of extra) {
    const typed = /^(DNS|IP):(.+)$/i.exec(name);
    const value = typed ? typed[2]! : name;
    const ip = typed ? typed[1]!.toLowerCase() === 'ip' : isIP(name) !== 0;
    if (ip && isIP(value) === 0) throw new Error(`--server-name ${name}: not an IP address`);
    if (!ip && !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(value))
      throw new Error(`--server-name ${name}: not a DNS name or IP address`);
    names.push({ type: ip ? 'ip' : 'dns', value });
  }
  return names;
}

/** PEM text ends with a newline, so `cat a.crt b.crt` makes a bundle. */
function finalNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

function writePublic(file: string, text: string): void {
  writeFileSync(file, finalNewline(text), { mode: 0o644 });
}

function writePrivate(file: string, text: string): void {
  writeFileSync(file, finalNewline(text), { mode: 0o600 });
  chmodSync(file, 0o600);
}
