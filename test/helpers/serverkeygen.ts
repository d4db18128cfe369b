import 'reflect-metadata';
import { readFileSync, writeFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { mustRun } from './run.js';
import { certsFromP7 } from './clients.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** The two parts of a /serverkeygen answer (RFC 7030 §4.4.2), decoded as an admin would: `openssl base64 -d`, `openssl pkcs7 -print_certs`. */
export interface ServerKeygenParts {
  readonly keyContentType: string;
  readonly keyBase64: string;
  /** The key part's DER: PKCS#8, or the CMS EnvelopedData of the encrypted form. */
  readonly keyDer: Buffer;
  readonly certContentType: string;
  readonly certBase64: string;
  /** The certificate, PEM, from the certs-only part. */
  readonly certFile: string;
}

/**
 * Splits a multipart/mixed answer at its boundary (RFC 2046 §5.1.1), checks
 * each part says `Content-Transfer-Encoding: base64`, and decodes them with
 * the openssl command line.
 */
export async function serverKeygenParts(dir: string, name: string, answer: { headers: string; body: string }): Promise<ServerKeygenParts> {
  const contentType = /^content-type: (.+?)\r?$/im.exec(answer.headers)![1]!;
  const boundary = /^multipart\/mixed; boundary=("?)([^";]+)\1$/.exec(contentType)?.[2];
  expect(boundary, contentType).to.be.a('string');
  const sections = answer.body.split(`--${boundary!}`);
  expect(sections[0], 'no preamble').to.equal('');
  expect(sections.at(-1), 'the close delimiter ends the body').to.equal('--\r\n');
  const parts = sections.slice(1, -1).map((section) => {
    const [head, body] = [section.slice(0, section.indexOf('\r\n\r\n')), section.slice(section.indexOf('\r\n\r\n') + 4)];
    const headers = head.trim().split('\r\n');
    expect(headers).to.include('Content-Transfer-Encoding: base64');
    return { contentType: headers.find((h) => h.startsWith('Content-Type: '))!.slice('Content-Type: '.length), body };
  });
  expect(parts).to.have.length(2);
  const [key, cert] = parts as [(typeof parts)[0], (typeof parts)[0]];
  const keyBase64File = join(dir, `${name}.keypart.b64`);
  const keyDerFile = join(dir, `${name}.keypart.der`);
  writeFileSync(keyBase64File, key.body);
  await mustRun('openssl', ['base64', '-d', '-in', keyBase64File, '-out', keyDerFile]);
  return {
    keyContentType: key.contentType,
    keyBase64: key.body,
    keyDer: readFileSync(keyDerFile),
    certContentType: cert.contentType,
    certBase64: cert.body,
    certFile: await certsFromP7(dir, cert.body, `${name}-cert`),
  };
}

/** A P-256 CSR carrying one attribute whose single value is an OCTET STRING (DecryptKeyIdentifier, AsymmetricDecryptKeyIdentifier). */
export async function csrWithAttribute(dir: string, name: string, oid: string, value: Buffer): Promise<string> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: algorithm,
    attributes: [new x509.Attribute(oid, [new asn1js.OctetString({ valueHex: value }).toBER()])],
  });
  const file = join(dir, `${name}.csr`);
  writeFileSync(file, csr.toString('pem'));
  return file;
}

/**
 * Opens the encrypted key part as RFC 7030 §4.4.2 nests it, with the
 * openssl command line: `openssl cms -decrypt` (EnvelopedData → the
 * SignedData), `openssl cms -verify` (its signature; the content is the
 * AsymmetricKeyPackage), and returns the one OneAsymmetricKey in it (DER
 * PKCS#8).
 */
export async function keyPackageOf(dir: string, name: string, envelopedDer: Buffer, recipient: { certFile: string; keyFile: string }): Promise<Buffer> {
  const enveloped = join(dir, `${name}.env.der`);
  const signed = join(dir, `${name}.signed.der`);
  const signedContentInfo = join(dir, `${name}.signed-ci.der`);
  const keyPackage = join(dir, `${name}.package.der`);
  writeFileSync(enveloped, envelopedDer);
  await mustRun('openssl', [
    'cms',
    '-decrypt',
    '-inform',
    'DER',
    '-in',
    enveloped,
    '-recip',
    recipient.certFile,
    '-inkey',
    recipient.keyFile,
    '-binary',
    '-out',
    signed,
  ]);
  const signedData = readFileSync(signed);
  // The decrypted content is the SignedData itself (RFC 5652 §6.1); openssl cms reads a ContentInfo around it.
  const contentInfo = new asn1js.Sequence({
    value: [
      new asn1js.ObjectIdentifier({ value: '1.2.840.113549.1.7.2' }),
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [asn1js.fromBER(signedData).result] }),
    ],
  });
  writeFileSync(signedContentInfo, Buffer.from(contentInfo.toBER()));
  await mustRun('openssl', ['cms', '-verify', '-inform', 'DER', '-in', signedContentInfo, '-noverify', '-binary', '-out', keyPackage]);
  const parsed = asn1js.fromBER(readFileSync(keyPackage));
  const keys = (parsed.result as asn1js.Sequence).valueBlock.value;
  expect(keys).to.have.length(1);
  return Buffer.from(keys[0]!.toBER());
}
