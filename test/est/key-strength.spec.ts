import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { bitString, contextTag, objectIdentifier, sequence, set, smallInteger, tlv, unsignedInteger } from '../../src/pki/der.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const NULL = Buffer.from([0x05, 0x00]);

/**
 * A CSR for an RSA key with public exponent 1, "signed" without any private
 * key: with e = 1, s^e mod n is s itself, so the signature is just the
 * PKCS#1 v1.5 encoding of the digest (RFC 8017 §9.2). OpenSSL verifies it.
 */
function exponentOneCsr(commonName: string): Buffer {
  const modulus = randomBytes(256);
  modulus[0]! |= 0xc0;
  modulus[255]! |= 0x01;
  const name = sequence(set(sequence(objectIdentifier('2.5.4.3'), tlv(0x0c, Buffer.from(commonName)))));
  const spki = sequence(sequence(objectIdentifier('1.2.840.113549.1.1.1'), NULL), bitString(sequence(unsignedInteger(modulus), smallInteger(1))));
  const info = sequence(smallInteger(0), name, spki, contextTag(0));
  const digestInfo = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), createHash('sha256').update(info).digest()]);
  const encoded = Buffer.concat([Buffer.from([0x00, 0x01]), Buffer.alloc(256 - 3 - digestInfo.length, 0xff), Buffer.from([0x00]), digestInfo]);
  return sequence(info, sequence(objectIdentifier('1.2.840.113549.1.1.11'), NULL), bitString(encoded));
}

/** Issue #10 §5: keys that prove possession. */
describe('keys that prove possession: RSA public exponents', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa();
  });
  after(async () => ra.close());

  const post = (file: string) => curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${file}`]);

  it('#10 - fail an RSA key with public exponent 1 (a signature without a private key) is refused', async () => {
    const file = join(ra.dir, 'e1.der');
    writeFileSync(file, exponentOneCsr('e-one'));
    const answer = await post(file);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal('403 RSA public exponent 1 not allowed by profile (odd, at least 65537)\n');
  });

  it('fail an RSA key with public exponent 3 is refused by default; ok with 65537', async () => {
    const small = await opensslCsr(ra.dir, 'e3', { keyArgs: ['-newkey', 'rsa:2048', '-pkeyopt', 'rsa_keygen_pubexp:3'] });
    const refused = await post(small.csrPemFile);
    expect(refused.status).to.equal(403);
    expect(refused.body).to.equal('403 RSA public exponent 3 not allowed by profile (odd, at least 65537)\n');
    const usual = await opensslCsr(ra.dir, 'e65537', { keyArgs: ['-newkey', 'rsa:2048'] });
    expect((await post(usual.csrPemFile)).status).to.equal(200);
  });
});
