import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { dirname } from 'node:path';
import forge from 'node-forge';
import { pemCertificateBlocks } from '../pki/x509.js';

/**
 * est-ra's RA identity towards an upstream: the certificate (then its chain)
 * and the key, as TLS needs them, with the leaf parsed for its dates.
 */
export interface RaIdentity {
  /** For TLS: PEM cert + chain and key, or the PKCS#12 file as it is. */
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | { readonly pfx: Buffer; readonly passphrase: string };
  /** The RA's own certificate (the first one). */
  readonly certificate: X509Certificate;
  /** Its private key (renewal with new_key false signs the CSR with it). */
  readonly key: KeyObject;
  /** The CA certificates that followed it in the file, PEM. */
  readonly chainPem: string;
}

/** Where a PEM identity lives, so a renewal can replace it. */
export interface RaIdentityFiles {
  readonly certificate: string;
  readonly key: string;
}

/**
 * Reads a PEM identity. A renewal that stopped between its two renames
 * (ra-renewal.ts writes `<file>.next` first) left one new and one old file:
 * the pair that matches is completed here, so the next start uses the new
 * certificate rather than failing on a key mismatch.
 */
export function loadPemIdentity(files: RaIdentityFiles): RaIdentity {
  const read = (certificate: string, key: string): RaIdentity => {
    const cert = readFileSync(certificate);
    const keyPem = readFileSync(key);
    const certificates = pemCertificateBlocks(cert.toString('utf8')).map((block) => `${block}\n`);
    if (certificates.length === 0) throw new Error(`${certificate}: no PEM certificate`);
    return {
      tls: { cert, key: keyPem },
      certificate: new X509Certificate(certificates[0]!),
      key: createPrivateKey(keyPem),
      chainPem: certificates.slice(1).join(''),
    };
  };
  const current = read(files.certificate, files.key);
  if (current.certificate.checkPrivateKey(current.key)) return current;
  for (const [certificate, key] of [
    [`${files.certificate}.next`, files.key],
    [files.certificate, `${files.key}.next`],
  ] as const) {
    if (!existsSync(certificate) || !existsSync(key)) continue;
    const candidate = read(certificate, key);
    if (!candidate.certificate.checkPrivateKey(candidate.key)) continue;
    if (certificate !== files.certificate) replaceFile(certificate, files.certificate);
    if (key !== files.key) replaceFile(key, files.key);
    return candidate;
  }
  throw new Error(`${files.key} is not the key of ${files.certificate}`);
}

// PKCS#12 bag types (RFC 7292 §4.2).
const KEY_BAG = '1.2.840.113549.1.12.10.1.1';
const SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2';
const CERT_BAG = '1.2.840.113549.1.12.10.1.3';

/** Reads a PKCS#12 identity (node-forge: it reads OpenSSL 3's PBES2/AES files and keeps EC bags as ASN.1). */
export function loadPkcs12Identity(pfx: Buffer, passphrase: string): RaIdentity {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(pfx.toString('binary')), passphrase);
  } catch (err) {
    throw new Error(`not a PKCS#12 file, or the wrong passphrase (${err instanceof Error ? err.message : String(err)})`);
  }
  const bagDer = (bag: forge.pkcs12.Bag, toAsn1: () => forge.asn1.Asn1): Buffer =>
    Buffer.from(forge.asn1.toDer((bag.asn1 as forge.asn1.Asn1 | undefined) ?? toAsn1()).getBytes(), 'binary');
  const bags = (type: string): forge.pkcs12.Bag[] => p12.getBags({ bagType: type })[type] ?? [];
  const certificates: X509Certificate[] = bags(CERT_BAG).map((bag) => new X509Certificate(bagDer(bag, () => forge.pki.certificateToAsn1(bag.cert!))));
  const keyBag = [...bags(SHROUDED_KEY_BAG), ...bags(KEY_BAG)][0];
  if (!keyBag) throw new Error('the PKCS#12 file holds no private key');
  const key = createPrivateKey({
    key: bagDer(keyBag, () => forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(keyBag.key!))),
    format: 'der',
    type: 'pkcs8',
  });
  // The RA's certificate is the one whose key is in the file; the others are its chain.
  const own = certificates.find((certificate) => certificate.checkPrivateKey(key));
  if (!own) throw new Error('the PKCS#12 file holds no certificate for its key');
  return {
    tls: { pfx, passphrase },
    certificate: own,
    key,
    chainPem: certificates
      .filter((certificate) => certificate !== own)
      .map((certificate) => certificate.toString())
      .join(''),
  };
}

/**
 * Writes a renewed PEM identity so that no crash leaves est-ra without a
 * usable pair: both files are written and synced as `<file>.next`, then the
 * key and the certificate are renamed over the old ones; loadPemIdentity
 * completes a switch that stopped between the two renames.
 */
export function writePemIdentity(files: RaIdentityFiles, certificatePem: string, keyPem: string | undefined): void {
  writeSynced(`${files.certificate}.next`, certificatePem, 0o644);
  if (keyPem !== undefined) {
    writeSynced(`${files.key}.next`, keyPem, 0o600);
    replaceFile(`${files.key}.next`, files.key);
  }
  replaceFile(`${files.certificate}.next`, files.certificate);
}

/** The SubjectPublicKeyInfo of a key, DER. */
export function spkiOf(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}

function writeSynced(path: string, text: string, mode: number): void {
  const fd = openSync(path, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** rename(2), then an fsync of the directory so the new name survives a power cut. */
function replaceFile(from: string, to: string): void {
  renameSync(from, to);
  const directory = openSync(dirname(to), 'r');
  try {
    fsyncSync(directory);
  } finally {
    closeSync(directory);
  }
}
