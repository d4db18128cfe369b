/**
 * Micro benchmark of the strict readers on the request path (issue #9 §4):
 * CPU per CSR parse + proof-of-possession check (parseAndVerifyCsr) for
 * P-256, RSA-2048 and Ed25519 requests, and per certificate parse
 * (CertificateView.parse) and per upstream certs-only answer read, on the main thread, one at a time. Prints one
 * JSON object: microseconds per operation (median of 5 rounds).
 *
 *   npm run build && node dist/scripts/bench-der.js
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CertificateView } from '../src/pki/certificate-view.js';
import { parseAndVerifyCsr } from '../src/pki/csr.js';
import { buildCertsOnly, parseCertsOnly } from '../src/pki/certs-only.js';

const dir = mkdtempSync(join(tmpdir(), 'est-ra-bench-der-'));
const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });

function csr(name: string, keyArgs: string[]): Buffer {
  openssl(
    'req',
    '-new',
    ...keyArgs,
    '-nodes',
    '-keyout',
    join(dir, `${name}.key`),
    '-subj',
    `/CN=${name}/O=Plant`,
    '-addext',
    'subjectAltName=DNS:a.example',
    '-outform',
    'DER',
    '-out',
    join(dir, `${name}.der`),
  );
  return readFileSync(join(dir, `${name}.der`));
}

async function perOperation(operation: () => unknown, iterations: number): Promise<number> {
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) await operation();
    rounds.push(((performance.now() - start) * 1000) / iterations);
  }
  return Number(rounds.sort((a, b) => a - b)[2]!.toFixed(1));
}

try {
  const requests = {
    p256: csr('p256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
    rsa2048: csr('rsa', ['-newkey', 'rsa:2048']),
    ed25519: csr('ed', ['-newkey', 'ed25519']),
  };
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    join(dir, 'c.key'),
    '-subj',
    '/CN=device/O=Plant',
    '-addext',
    'subjectAltName=DNS:a.example',
    '-addext',
    'extendedKeyUsage=clientAuth',
    '-outform',
    'DER',
    '-out',
    join(dir, 'c.der'),
  );
  const certificate = readFileSync(join(dir, 'c.der'));
  const result: Record<string, number> = {};
  for (const [name, der] of Object.entries(requests)) result[`csr_parse_verify_${name}_us`] = await perOperation(() => parseAndVerifyCsr(der), 2000);
  result.certificate_parse_us = await perOperation(() => CertificateView.parse(certificate), 20000);
  const certsOnly = buildCertsOnly([certificate]);
  result.certs_only_parse_and_certificate_parse_us = await perOperation(() => parseCertsOnly(certsOnly).map((der) => CertificateView.parse(der)), 20000);
  console.log(JSON.stringify(result));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
