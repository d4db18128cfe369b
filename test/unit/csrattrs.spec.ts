import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { sampleConfig } from '../../src/config/sample.js';
import { encodeCsrAttrs, TEMPLATE_OID } from '../../src/pki/csrattrs.js';
import { csrWishesOf } from '../../src/policy/csr-wishes.js';
import { editProfile } from '../helpers/config.js';

const SAMPLE = sampleConfig({ port: 8443, host: '127.0.0.1' });
type Json = Record<string, unknown>;

/** The demo profile with `edit` applied, as config load reads it. */
function profileWith(edit: (profile: Json) => void) {
  return parseConfig(editProfile(SAMPLE, 'demo', edit), '/etc/est-ra/config.yaml').profiles.demo!;
}

function problemsWith(edit: (profile: Json) => void): readonly string[] {
  try {
    profileWith(edit);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

/** OpenSSL's reading of the DER, one element a line: the tests assert what a second implementation sees. */
function asn1parse(der: Buffer): string {
  return execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: der }).toString();
}

const csrattrsOf = (edit: (profile: Json) => void, form: 'plain' | 'template' = 'plain'): Buffer => {
  const profile = profileWith(edit);
  return encodeCsrAttrs(csrWishesOf(profile), form)!;
};

describe('csrattrs derived from the profile (RFC 7030 §4.5.2, RFC 9908)', () => {
  it('ok the demo profile: every allowed key type, commonName, the match_issuer signatures', () => {
    const text = asn1parse(csrattrsOf(() => {}));
    // One Attribute per key type (RFC 9908 §3.2): curve OID or RSA size as the value.
    for (const curve of ['prime256v1', 'secp384r1', 'secp521r1']) expect(text).to.match(new RegExp(`OBJECT +:id-ecPublicKey\\n.*SET.*\\n.*OBJECT +:${curve}`));
    for (const bits of ['0800', '0C00', '1000']) expect(text).to.match(new RegExp(`OBJECT +:rsaEncryption\\n.*SET.*\\n.*INTEGER +:${bits}\\n`));
    expect(text).to.include(':ED25519');
    expect(text).to.include(':commonName');
    for (const signature of ['sha256WithRSAEncryption', 'ecdsa-with-SHA256', 'ecdsa-with-SHA384', 'ecdsa-with-SHA512'])
      expect(text).to.include(`:${signature}`);
    expect(text).not.to.include('challengePassword');
    expect(text).not.to.include('Subject Alternative Name');
  });

  it('ok channel binding asks for a challengePassword; a required SAN and the signature list follow the profile', () => {
    const text = asn1parse(
      csrattrsOf((p) => {
        p.channel_binding = true;
        p.allowed_key_types = ['p_384'];
        p.signature_algorithm = ['sha384WithECDSA', 'sha256WithRSA'];
        (p.san as Json).dns_name = { include: 'required', sources: ['csr'] };
      }),
    );
    expect(text).to.include(':challengePassword');
    expect(text).to.include(':secp384r1');
    expect(text).not.to.include('rsaEncryption');
    expect(text).to.include(':ecdsa-with-SHA384');
    // sha256WithRSA is listed, but no RSA key type is allowed: not asked for.
    expect(text).not.to.include('sha256WithRSAEncryption');
    expect(text).to.include(':X509v3 Subject Alternative Name');
  });

  it('ok fixed SAN values go in an extensionRequest attribute with the subjectAltName extension', () => {
    const der = csrattrsOf((p) => {
      (p.san as Json).dns_name = { include: 'required', sources: ['fixed_value'], value: 'gw.plant.local' };
    });
    const text = asn1parse(der);
    expect(text).to.match(
      /OBJECT +:Extension Request\n.*SET.*\n.*SEQUENCE.*\n.*SEQUENCE.*\n.*OBJECT +:X509v3 Subject Alternative Name\n.*OCTET STRING +\[HEX DUMP\]:3010820E67772E706C616E742E6C6F63616C/,
    );
  });

  it('ok csrattrs.key_type narrows to one allowed type; csrattrs.oids are added', () => {
    const text = asn1parse(csrattrsOf((p) => (p.csrattrs = { key_type: 'p_256', oids: ['2.5.4.5'] })));
    expect(text).to.include(':prime256v1');
    expect(text).not.to.include('rsaEncryption');
    expect(text).not.to.include('secp384r1');
    expect(text).to.include(':serialNumber');
  });

  it('ok template form: the plain list, then id-aa-certificationRequestInfoTemplate with the fixed values filled in', () => {
    const der = csrattrsOf((p) => {
      p.allowed_key_types = ['p_256', 'rsa_2048'];
      const subject = p.subject as Json;
      subject.organization_name = { sources: ['fixed_value'], value: 'ACME Plant 7' };
      subject.organization_unit = { sources: ['fixed_value'], value: ['line-3', 'robots'] };
      (p.san as Json).dns_name = { include: 'required', sources: ['csr'] };
    }, 'template');
    const text = asn1parse(der);
    const template = text.slice(text.indexOf(`:${TEMPLATE_OID.certificationRequestInfoTemplate}`));
    expect(template, 'the template attribute is last').to.have.length.greaterThan(0);
    const lines = template.split('\n').map((line) => line.replace(/^ *\d+:d= ?\d+ +hl= ?\d+ l= *\d+ /, '').trim());
    expect(lines.slice(1)).to.deep.equal([
      'cons: SET',
      'cons: SEQUENCE', // CertificationRequestInfoTemplate
      'prim: INTEGER           :00', // version v1
      'cons: SEQUENCE', // subject NameTemplate
      'cons: SET',
      'cons: SEQUENCE',
      'prim: OBJECT            :organizationName',
      'prim: PRINTABLESTRING   :ACME Plant 7',
      'cons: SET',
      'cons: SEQUENCE',
      'prim: OBJECT            :organizationalUnitName',
      'prim: PRINTABLESTRING   :line-3',
      'cons: SET',
      'cons: SEQUENCE',
      'prim: OBJECT            :organizationalUnitName',
      'prim: PRINTABLESTRING   :robots',
      'cons: SET',
      'cons: SEQUENCE',
      'prim: OBJECT            :commonName', // no value: the device fills it in
      'cons: cont [ 0 ]', // subjectPKInfo: the preferred (first) key type
      'cons: SEQUENCE',
      'prim: OBJECT            :id-ecPublicKey',
      'prim: OBJECT            :prime256v1',
      'cons: cont [ 1 ]', // attributes
      'cons: SEQUENCE',
      `prim: OBJECT            :${TEMPLATE_OID.extensionReqTemplate}`,
      'cons: SET',
      'cons: SEQUENCE',
      'cons: SEQUENCE',
      'prim: OBJECT            :X509v3 Subject Alternative Name',
      'prim: OCTET STRING      [HEX DUMP]:30028200', // GeneralNames { dNSName "" } to fill in
      '',
    ]);
    // The plain items come first, for clients that do not know the template (RFC 9908 §4).
    expect(text.indexOf(':prime256v1')).to.be.lessThan(text.indexOf(`:${TEMPLATE_OID.certificationRequestInfoTemplate}`));
  });

  it('ok template form for RSA: a placeholder key of the RSA size (RFC 9908 §3.4)', () => {
    const der = csrattrsOf((p) => (p.allowed_key_types = ['rsa_3072']), 'template');
    const text = asn1parse(der);
    const template = text.slice(text.indexOf(`:${TEMPLATE_OID.certificationRequestInfoTemplate}`));
    expect(template).to.match(/cont \[ 0 \] *\n.*SEQUENCE.*\n.*OBJECT +:rsaEncryption\n.*NULL.*\n.*BIT STRING/);
    const bitString = /(\d+):d=\d+ +hl=(\d) l= *(\d+) prim: BIT STRING/.exec(template)!;
    const placeholder = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-strparse', bitString[1]!], { input: der }).toString();
    expect(placeholder).to.match(/INTEGER +:80{767}\n/); // a 3072-bit modulus
    expect(placeholder).to.match(/INTEGER +:010001\n/);
  });

  describe('a csrattrs: section that contradicts the profile is refused at load', () => {
    const cases: [string, (p: Json) => void, string][] = [
      [
        'a key type the profile does not allow',
        (p) => {
          p.allowed_key_types = ['rsa_2048'];
          p.csrattrs = { key_type: 'p_256' };
        },
        'profiles.demo.csrattrs.key_type: p_256 is not in allowed_key_types (rsa_2048); /csrattrs would ask for a key the profile refuses',
      ],
      [
        'a key algorithm OID the profile does not allow',
        (p) => {
          p.allowed_key_types = ['p_256'];
          p.csrattrs = { oids: ['1.2.840.113549.1.1.1'] };
        },
        'profiles.demo.csrattrs.oids.0: 1.2.840.113549.1.1.1 asks for a key type the profile does not allow (rsa_1024, rsa_2048, rsa_3072, rsa_4096 not in allowed_key_types)',
      ],
      [
        'a signature for keys the profile refuses',
        (p) => {
          p.allowed_key_types = ['rsa_2048'];
          p.csrattrs = { oids: ['1.2.840.10045.4.3.2'] };
        },
        'profiles.demo.csrattrs.oids.0: 1.2.840.10045.4.3.2 is a signature for p_256, p_384, p_521 keys, none of which allowed_key_types allows',
      ],
      [
        'a disabled subject attribute',
        (p) => (p.csrattrs = { oids: ['2.5.4.6'] }),
        'profiles.demo.csrattrs.oids.0: 2.5.4.6 asks for subject.country, which the profile disables (subject.country.enabled: false)',
      ],
      [
        'a SAN when the profile allows none',
        (p) => {
          for (const rule of Object.values(p.san as Record<string, Json>)) rule.include = 'no';
          p.csrattrs = { oids: ['2.5.29.17'] };
        },
        'profiles.demo.csrattrs.oids.0: 2.5.29.17 asks for a subjectAltName, and every san.* type of the profile is include: no',
      ],
    ];
    for (const [name, edit, problem] of cases) {
      it(`fail ${name}`, () => expect(problemsWith(edit)).to.deep.equal([problem]));
    }

    it('ok an OID the profile has no rule for is added (csrattrs may add)', () => {
      expect(problemsWith((p) => (p.csrattrs = { key_type: 'p_384', oids: ['1.3.6.1.1.1.1.22', '2.5.4.5'] }))).to.deep.equal([]);
    });

    it('fail fullcmc: passthrough on a local-ca profile', () => {
      expect(problemsWith((p) => (p.fullcmc = 'passthrough'))).to.deep.equal(['profiles.demo.fullcmc: passthrough needs upstream: est']);
    });
  });
});
