import { expect } from 'chai';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { sampleConfig } from '../../src/config/sample.js';
import { configWarnings } from '../../src/config/warnings.js';
import { EstError } from '../../src/errors.js';
import { parseAndVerifyCsr } from '../../src/pki/csr.js';
import { encodeCsrAttrs } from '../../src/pki/csrattrs.js';
import { dottedOid, readTlv } from '../../src/pki/der.js';
import { describeSpki, keyFamily, PQC_KEY_TYPES, type PqcKeyType } from '../../src/pki/key-type.js';
import { editProfile } from '../helpers/config.js';
import { withBrokenSignature } from '../helpers/csr.js';
import { PQC_SETS, pqcCsr, pqcKeyPair, pqcSpki, type PqcKeyPair, type PqcSet } from '../helpers/pqc-csr.js';

const SAMPLE = sampleConfig({ port: 8443, host: '127.0.0.1' });

/** DigiCert's allowed_key_types, as its profile spells them. */
const DIGICERT_KEY_TYPES = [
  'rsa_1024',
  'rsa_2048',
  'rsa_3072',
  'rsa_4096',
  'p_256',
  'p_384',
  'p_521',
  'ed_25519',
  ...['SHA2', 'SHAKE'].flatMap((hash) => ['128', '192', '256'].flatMap((bits) => ['s', 'f'].map((speed) => `SLHDSA-${hash}-${bits}${speed}`))),
];

async function refusal(der: Buffer): Promise<EstError> {
  try {
    await parseAndVerifyCsr(der);
  } catch (err) {
    if (err instanceof EstError) return err;
    throw err;
  }
  throw new Error('accepted');
}

/** A copy of `der` with `from` (found once) replaced by `to`, lengths left alone: for same-length edits. */
function replaced(der: Buffer, from: Buffer, to: Buffer): Buffer {
  const at = der.indexOf(from);
  expect(at, 'the bytes to replace').to.be.greaterThan(-1);
  return Buffer.concat([der.subarray(0, at), to, der.subarray(at + from.length)]);
}

/** Issue #12 part 3: post-quantum keys (FIPS 204 ML-DSA, FIPS 205 SLH-DSA). */
describe('#12 - post-quantum key types', function () {
  this.timeout(60_000);
  const keys = new Map<PqcSet, PqcKeyPair>();
  const key = (set: PqcSet): PqcKeyPair => {
    if (!keys.has(set)) keys.set(set, pqcKeyPair(set));
    return keys.get(set)!;
  };

  it('ok the OIDs and key sizes of est-ra agree with the RFC transcription of the tests and with noble', () => {
    expect(Object.keys(PQC_KEY_TYPES)).to.deep.equal(Object.keys(PQC_SETS));
    for (const [name, { oid, publicKeySize, signatureSize }] of Object.entries(PQC_KEY_TYPES)) {
      const set = PQC_SETS[name as PqcSet];
      expect(oid, name).to.equal(set.oid);
      expect(publicKeySize, name).to.equal(set.noble.lengths.publicKey);
      expect(signatureSize, name).to.equal(set.noble.lengths.signature);
    }
  });

  it("ok allowed_key_types accepts every name of DigiCert's list as spelled there, ML-DSA, and FIPS spellings as aliases", () => {
    const yaml = editProfile(SAMPLE, 'demo', (p) => {
      p.allowed_key_types = [...DIGICERT_KEY_TYPES, 'MLDSA-44', 'ML-DSA-65', 'MLDSA-87', 'SLH-DSA-SHAKE-256f'];
    });
    const allowed = parseConfig(yaml, '/etc/est-ra/config.yaml').profiles.demo!.allowed_key_types;
    expect(allowed).to.deep.equal([...DIGICERT_KEY_TYPES, 'MLDSA-44', 'MLDSA-65', 'MLDSA-87', 'SLHDSA-SHAKE-256f']);
  });

  it('ok rsa_1024 only where named: not in the default, and check-config warns about it', () => {
    const withoutList = editProfile(SAMPLE, 'demo', (p) => {
      delete p.allowed_key_types;
    });
    const defaults = parseConfig(withoutList, '/etc/est-ra/config.yaml');
    expect(defaults.profiles.demo!.allowed_key_types).not.to.include('rsa_1024');
    expect(configWarnings(defaults)).to.deep.equal([]);
    expect(configWarnings(parseConfig(SAMPLE, '/etc/est-ra/config.yaml'))).to.deep.equal([]);
    const named = parseConfig(
      editProfile(SAMPLE, 'demo', (p) => {
        p.allowed_key_types = ['rsa_1024', 'p_256'];
      }),
      '/etc/est-ra/config.yaml',
    );
    expect(configWarnings(named)).to.deep.equal([
      'profiles.demo.allowed_key_types: rsa_1024 is allowed; 1024-bit RSA keys are too weak (NIST SP 800-131A disallows them since 2013)',
    ]);
    expect((parse(SAMPLE) as { profiles: { demo: { allowed_key_types: string[] } } }).profiles.demo.allowed_key_types).not.to.include('rsa_1024');
  });

  it("ok check-config warns when a key type's CSRs cannot fit limits.max_body_bytes in base64 (SLH-DSA-*-256f: 49 856-octet signatures)", () => {
    const config = parseConfig(
      editProfile(SAMPLE, 'demo', (p) => {
        p.allowed_key_types = ['p_256', 'SLHDSA-SHA2-192f', 'SLHDSA-SHAKE-256f'];
      }),
      '/etc/est-ra/config.yaml',
    );
    expect(configWarnings(config)).to.deep.equal([
      'profiles.demo.allowed_key_types: a SLHDSA-SHAKE-256f CSR in base64 is at least 66636 bytes, over limits.max_body_bytes (65536): such requests get 413',
    ]);
    // The estimate is a lower bound: a real CSR (the smallest subject) is larger.
    const csr = pqcCsr(pqcKeyPair('SLHDSA-SHAKE-256f'), { subject: 'CN=a' });
    expect(csr.toString('base64').length).to.be.within(66636, 66636 + 64);
  });

  for (const set of ['MLDSA-44', 'MLDSA-65', 'MLDSA-87', 'SLHDSA-SHA2-128s', 'SLHDSA-SHAKE-128f'] as const) {
    it(`ok a ${set} CSR's proof of possession verifies; its key type is ${set}`, async () => {
      const csr = await parseAndVerifyCsr(pqcCsr(key(set), { subject: `CN=${set}` }));
      expect(csr.keyType).to.equal(set);
      expect(csr.subject).to.equal(`CN=${set}`);
      expect(csr.subjectPublicKeyInfo.equals(pqcSpki(set, key(set).publicKey))).to.equal(true);
      expect(keyFamily(csr.keyType)).to.equal('pqc');
    });
  }

  it('fail a CSR signed by another ML-DSA-65 key (forged proof of possession) is refused 400', async () => {
    const err = await refusal(pqcCsr(key('MLDSA-65'), { signer: pqcKeyPair('MLDSA-65') }));
    expect([err.status, err.code, err.reason]).to.deep.equal([
      400,
      'EST_CSR_SIGNATURE',
      'CSR signature does not verify with its MLDSA-65 key (no proof of possession)',
    ]);
  });

  for (const set of ['MLDSA-44', 'SLHDSA-SHAKE-128f'] as const) {
    it(`fail a ${set} CSR with one bit of its signature flipped is refused 400`, async () => {
      const err = await refusal(withBrokenSignature(pqcCsr(key(set))));
      expect([err.status, err.code]).to.deep.equal([400, 'EST_CSR_SIGNATURE']);
    });
  }

  it('fail a CSR with a bit of its signed part flipped is refused 400', async () => {
    const der = pqcCsr(key('MLDSA-44'), { subject: 'CN=abc' });
    const err = await refusal(replaced(der, Buffer.from('abc'), Buffer.from('abd')));
    expect([err.status, err.code]).to.deep.equal([400, 'EST_CSR_SIGNATURE']);
  });

  it("fail a CSR signed with another set's algorithm identifier than its key's is refused 400", async () => {
    const der = pqcCsr(key('MLDSA-44'));
    const signatureAlgorithm = Buffer.from('300b0609608648016503040311', 'hex'); // SEQUENCE { id-ml-dsa-44 }, the last one is the signature's
    const at = der.lastIndexOf(signatureAlgorithm);
    const other = Buffer.concat([der.subarray(0, at), Buffer.from('300b0609608648016503040312', 'hex'), der.subarray(at + signatureAlgorithm.length)]);
    const err = await refusal(other);
    expect([err.status, err.code, err.reason]).to.deep.equal([
      400,
      'EST_CSR_SIGNATURE',
      'CSR signature algorithm is not MLDSA-44 (2.16.840.1.101.3.4.3.17, no parameters), the algorithm of its key',
    ]);
  });

  it('fail an SPKI with parameters or a key of the wrong size is refused 400 as malformed', async () => {
    // A 32-octet SLH-DSA-SHA2-128s key claimed as SLHDSA-SHA2-192s (48 octets): same lengths, other OID.
    const wrongSize = replaced(pqcCsr(key('SLHDSA-SHA2-128s')), Buffer.from('0609608648016503040314', 'hex'), Buffer.from('0609608648016503040316', 'hex'));
    const err = await refusal(wrongSize);
    expect([err.status, err.code, err.reason]).to.deep.equal([
      400,
      'EST_CSR_MALFORMED',
      'malformed PKCS#10 request: SLHDSA-SHA2-192s public key must be 48 octets',
    ]);
    const withNull = pqcCsr(key('MLDSA-44'), { spki: pqcSpki('MLDSA-44', key('MLDSA-44').publicKey, Buffer.from([0x05, 0x00])) });
    const parameters = await refusal(withNull);
    expect([parameters.status, parameters.reason]).to.deep.equal([400, 'malformed PKCS#10 request: MLDSA-44 AlgorithmIdentifier must not have parameters']);
    expect(describeSpki(pqcSpki('MLDSA-87', key('MLDSA-87').publicKey))).to.equal('MLDSA-87');
  });

  it('ok /csrattrs can ask for a PQC key type: the attribute is its OID', () => {
    for (const [name, { oid }] of Object.entries(PQC_KEY_TYPES)) {
      const der = encodeCsrAttrs({ keyTypes: [name as PqcKeyType], signatureAlgorithms: [], challengePassword: false, subject: [], extraOids: [] })!;
      const root = readTlv(der, 0);
      expect(dottedOid(der, readTlv(der, root.start)), name).to.equal(oid);
    }
  });
});
