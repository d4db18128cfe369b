import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mustRun } from './run.js';

export interface CaChain {
  readonly rootFile: string;
  readonly intermediateFile: string;
  readonly issuingFile: string;
  readonly issuingKeyFile: string;
  /** intermediate + issuing, PEM: `openssl verify -untrusted`. */
  readonly untrustedFile: string;
}

/**
 * root → intermediate → issuing, P-256, made by the openssl command line.
 * `sans` DNS names in each certificate make the chain as large as a test
 * needs: about 31 bytes per name, so 180 names give a /cacerts of ~17 KiB DER.
 */
export async function makeCaChain(dir: string, options: { sans?: number } = {}): Promise<CaChain> {
  const sans = Array.from({ length: options.sans ?? 0 }, (_, i) => `DNS:host-${String(i).padStart(4, '0')}.line-3.plant.example`).join(',');
  const config = join(dir, 'chain.cnf');
  const ext = (pathlen: string): string =>
    [
      `basicConstraints = critical, CA:TRUE${pathlen}`,
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      ...(sans ? [`subjectAltName = ${sans}`] : []),
    ].join('\n');
  writeFileSync(
    config,
    `[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n[root]\n${ext('')}\n[intermediate]\n${ext(', pathlen:1')}\n[issuing]\n${ext(', pathlen:0')}\n`,
  );
  const file = (name: string, kind: string): string => join(dir, `chain-${name}.${kind}`);
  const p256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await mustRun('openssl', [
    'req',
    '-x509',
    ...p256,
    '-config',
    config,
    '-extensions',
    'root',
    '-subj',
    '/O=est-ra tests/CN=chain root CA',
    '-days',
    '3650',
    '-keyout',
    file('root', 'key'),
    '-out',
    file('root', 'crt'),
  ]);
  let signer = 'root';
  for (const name of ['intermediate', 'issuing']) {
    await mustRun('openssl', [
      'req',
      '-new',
      ...p256,
      '-config',
      config,
      '-subj',
      `/O=est-ra tests/CN=chain ${name} CA`,
      '-keyout',
      file(name, 'key'),
      '-out',
      file(name, 'csr'),
    ]);
    await mustRun('openssl', [
      'x509',
      '-req',
      '-in',
      file(name, 'csr'),
      '-CA',
      file(signer, 'crt'),
      '-CAkey',
      file(signer, 'key'),
      '-set_serial',
      name === 'intermediate' ? '0x4a01' : '0x4a02',
      '-days',
      '3000',
      '-extfile',
      config,
      '-extensions',
      name,
      '-out',
      file(name, 'crt'),
    ]);
    signer = name;
  }
  const untrustedFile = join(dir, 'chain-untrusted.pem');
  await mustRun('bash', ['-c', `cat "${file('intermediate', 'crt')}" "${file('issuing', 'crt')}" > "${untrustedFile}"`]);
  return {
    rootFile: file('root', 'crt'),
    intermediateFile: file('intermediate', 'crt'),
    issuingFile: file('issuing', 'crt'),
    issuingKeyFile: file('issuing', 'key'),
    untrustedFile,
  };
}
