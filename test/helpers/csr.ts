import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import forge from 'node-forge';
import { mustRun } from './run.js';

export interface KeyAndCsr {
  readonly keyFile: string;
  readonly csrPemFile: string;
  readonly csrDerFile: string;
  readonly csrPem: string;
  readonly csrDer: Buffer;
}

/** A key and CSR made by the openssl command line, as a device engineer would. */
export async function opensslCsr(dir: string, name: string, options: { subject?: string; keyArgs?: string[]; addext?: string[] } = {}): Promise<KeyAndCsr> {
  const keyFile = join(dir, `${name}.key`);
  const csrPemFile = join(dir, `${name}.csr`);
  const csrDerFile = join(dir, `${name}.der`);
  const keyArgs = options.keyArgs ?? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const addext = (options.addext ?? []).flatMap((e) => ['-addext', e]);
  await mustRun('openssl', ['req', '-new', ...keyArgs, '-nodes', '-keyout', keyFile, '-subj', options.subject ?? `/CN=${name}`, ...addext, '-out', csrPemFile]);
  await mustRun('openssl', ['req', '-in', csrPemFile, '-outform', 'DER', '-out', csrDerFile]);
  return { keyFile, csrPemFile, csrDerFile, csrPem: readFileSync(csrPemFile, 'utf8'), csrDer: readFileSync(csrDerFile) };
}

/** An RSA CSR from node-forge: an implementation independent of est-ra's parser. */
export function forgeRsaCsr(dir: string, name: string, bits = 2048): { csrPem: string; csrPemFile: string } {
  const keys = forge.pki.rsa.generateKeyPair(bits);
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = keys.publicKey;
  csr.setSubject([
    { name: 'commonName', value: name },
    { name: 'organizationName', value: 'Factory' },
  ]);
  csr.sign(keys.privateKey, forge.md.sha256.create());
  const csrPem = forge.pki.certificationRequestToPem(csr);
  const csrPemFile = join(dir, `${name}.csr`);
  writeFileSync(csrPemFile, csrPem);
  return { csrPem, csrPemFile };
}

/** The same CSR with one bit of its signature flipped: parses, but proves nothing. */
export function withBrokenSignature(csrDer: Buffer): Buffer {
  const broken = Buffer.from(csrDer);
  broken[broken.length - 5]! ^= 0x01;
  return broken;
}

/** A self-signed P-256 certificate made by `openssl req -x509`: a CA, or a device certificate nobody issued. */
export async function opensslSelfSigned(
  dir: string,
  name: string,
  options: { subject: string; days?: number; addext?: string[] },
): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const addext = (options.addext ?? []).flatMap((e) => ['-addext', e]);
  await mustRun('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-subj',
    options.subject,
    '-days',
    String(options.days ?? 30),
    ...addext,
  ]);
  return { certFile, keyFile };
}

/**
 * A new P-256 key and certificate signed by `caFile` with `openssl x509 -req`,
 * its extensions given as openssl config lines (e.g. `extendedKeyUsage=clientAuth`),
 * as an admin signs a device, RA or intermediate certificate. With `csr`, the
 * key and subject of an earlier certificate are certified again (a cross-certificate).
 */
export async function opensslIssue(
  dir: string,
  name: string,
  options: { subject?: string; caFile: string; caKeyFile: string; extensions: readonly string[]; days?: number; csr?: KeyAndCsr },
): Promise<KeyAndCsr & { certFile: string }> {
  const csr = options.csr ?? (await opensslCsr(dir, name, { subject: options.subject }));
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, `${options.extensions.join('\n')}\n`);
  const certFile = join(dir, `${name}.crt`);
  const serial = `0x${randomBytes(16).toString('hex').replace(/^./, '4')}`;
  await mustRun('openssl', [
    'x509',
    '-req',
    '-in',
    csr.csrPemFile,
    '-CA',
    options.caFile,
    '-CAkey',
    options.caKeyFile,
    '-set_serial',
    serial,
    '-days',
    String(options.days ?? 3650),
    '-extfile',
    extFile,
    '-out',
    certFile,
  ]);
  return { ...csr, certFile };
}
