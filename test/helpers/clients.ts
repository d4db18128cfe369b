import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mustRun, run, sh, type RunResult } from './run.js';
import type { TestEstRa } from './est-ra.js';

/** curl against est-ra, trusting its root CA, returning status, headers and body. */
export async function curl(
  ra: TestEstRa,
  path: string,
  args: readonly string[],
): Promise<{ status: number; headers: string; body: string; result: RunResult }> {
  const headersFile = join(ra.dir, `headers-${process.hrtime.bigint()}.txt`);
  const result = await run('curl', [
    '-sS',
    '--cacert',
    ra.rootCaFile,
    '-D',
    headersFile,
    '-o',
    '-',
    '-w',
    '\n%{http_code}',
    ...args,
    `${ra.url}/.well-known/est${path}`,
  ]);
  const cut = result.stdout.lastIndexOf('\n');
  let headers = '';
  try {
    headers = readFileSync(headersFile, 'utf8');
  } catch {
    // curl wrote no headers: the connection failed; the status says so.
  }
  return { status: Number(result.stdout.slice(cut + 1)), headers, body: result.stdout.slice(0, cut), result };
}

/**
 * strongSwan's `pki` against est-ra, trusting its root CA. pki's --url is the
 * server root: it appends /.well-known/est/<op>, so it reaches the default profile.
 */
export function strongswanPki(ra: TestEstRa, args: readonly string[]): Promise<RunResult> {
  return run('pki', [...args, '--url', `${ra.url}/`, '--cacert', ra.rootCaFile]);
}

/**
 * Decodes a certs-only answer as an admin would:
 * `openssl base64 -d | openssl pkcs7 -inform DER -print_certs`. Without -A:
 * curl sends a User-Agent, so est-ra answers 64-column lines, which -A cannot read.
 */
export async function certsFromP7(dir: string, base64Body: string, name: string): Promise<string> {
  const p7 = join(dir, `${name}.p7`);
  const pem = join(dir, `${name}.pem`);
  writeFileSync(p7, base64Body);
  await sh(`openssl base64 -d -in ${p7} | openssl pkcs7 -inform DER -print_certs -out ${pem}`, dir).then((r) => {
    if (r.code !== 0) throw new Error(`cannot decode ${name}: ${r.stderr}`);
  });
  return pem;
}

/** `openssl verify -CAfile root -untrusted issuing cert`: what a user checks first. */
export async function opensslVerify(ra: TestEstRa, certFile: string): Promise<string> {
  return mustRun('openssl', ['verify', '-CAfile', ra.rootCaFile, '-untrusted', ra.issuingCaFile, certFile]);
}

export async function x509Field(certFile: string, field: '-subject' | '-serial' | '-enddate' | '-startdate' | '-pubkey' | '-text' | '-ext'): Promise<string> {
  return (await mustRun('openssl', ['x509', '-in', certFile, '-noout', field, ...(field === '-ext' ? ['subjectAltName'] : []), '-nameopt', 'RFC2253'])).trim();
}
