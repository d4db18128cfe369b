import { expect } from 'chai';
import { NamePolicy, patternToRegExp, type NamePolicyConfig, type SanRule, type SubjectAttributeRule } from '../../src/policy/name-policy.js';
import { SAN_TYPES, SUBJECT_ATTRIBUTE_NAMES, type Names } from '../../src/pki/names.js';
import { EstError } from '../../src/errors.js';

const off: SubjectAttributeRule = { enabled: false, optional: true, sources: ['csr'], value: [], patterns: [] };
const no: SanRule = { include: 'no', sources: ['csr'], value: [], patterns: [] };

function policy(subject: Partial<NamePolicyConfig['subject']>, san: Partial<NamePolicyConfig['san']> = {}): NamePolicy {
  return new NamePolicy({
    subject: { ...Object.fromEntries(SUBJECT_ATTRIBUTE_NAMES.map((n) => [n, off])), ...subject } as NamePolicyConfig['subject'],
    san: { ...Object.fromEntries(SAN_TYPES.map((t) => [t, no])), ...san } as NamePolicyConfig['san'],
  });
}
const names = (subject: [string, string][], san: [string, string][] = []): Names => ({
  subject: subject.map(([kind, value]) => ({ kind: kind as Names['subject'][number]['kind'], value })),
  san: san.map(([kind, value]) => ({ kind: kind as Names['san'][number]['kind'], value })),
});
const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(EstError);
    expect((err as EstError).code).to.equal('EST_NAME_NOT_ALLOWED');
    return (err as EstError).reason;
  }
  throw new Error('expected a refusal');
};

describe('NamePolicy: each rule accepting and refusing', () => {
  const cn = (rule: Partial<SubjectAttributeRule>): NamePolicy => policy({ common_name: { ...off, enabled: true, optional: false, ...rule } });

  it('csr source with patterns: globs match one label, regular expressions are anchored', () => {
    const device = cn({ patterns: ['device-*', '/SN[0-9]{8}/'] });
    expect(device.decide(names([['common_name', 'device-7']])).subject).to.deep.equal([{ kind: 'common_name', value: 'device-7' }]);
    expect(device.decide(names([['common_name', 'SN12345678']])).asRequested).to.equal(true);
    expect(refusal(() => device.decide(names([['common_name', 'device-7.evil']])))).to.contain('does not match');
    expect(refusal(() => device.decide(names([['common_name', 'xSN12345678']])))).to.contain('does not match');
  });

  it('fixed_value: another value is refused, none gets the fixed one', () => {
    const acme = policy({ common_name: { ...off, enabled: true }, organization_name: { ...off, enabled: true, sources: ['fixed_value'], value: ['ACME'] } });
    expect(refusal(() => acme.decide(names([['organization_name', 'Evil Corp']])))).to.equal(
      'subject.organization_name is fixed to ACME; the CSR asks for Evil Corp',
    );
    const issued = acme.decide(names([['common_name', 'a']]));
    expect(issued.subject).to.deep.include({ kind: 'organization_name', value: 'ACME' });
    expect(issued.asRequested).to.equal(false);
  });

  it('user_supplied before csr: the registered value decides; without one the CSR is checked', () => {
    const rule = cn({ sources: ['user_supplied', 'csr'], patterns: ['dev-*'] });
    expect(refusal(() => rule.decide(names([['common_name', 'dev-2']]), { common_name: ['dev-1'] }))).to.contain('registered as dev-1');
    expect(rule.decide(names([]), { common_name: ['dev-1'] }).subject).to.deep.equal([{ kind: 'common_name', value: 'dev-1' }]);
    expect(rule.decide(names([['common_name', 'dev-3']])).asRequested).to.equal(true);
  });

  it('required and optional, enabled and disabled', () => {
    expect(refusal(() => cn({}).decide(names([])))).to.equal('subject.common_name is required; the CSR has none');
    expect(refusal(() => cn({ sources: ['user_supplied'] }).decide(names([])))).to.contain('no value is registered for this credential');
    expect(
      refusal(() =>
        cn({}).decide(
          names([
            ['common_name', 'a'],
            ['locality', 'Berlin'],
          ]),
        ),
      ),
    ).to.equal('subject.locality is not allowed by profile; the CSR asks for Berlin');
    expect(
      refusal(() =>
        cn({}).decide(
          names([
            ['common_name', 'a'],
            ['other:2.5.4.12', 'Boss'],
          ]),
        ),
      ),
    ).to.contain('2.5.4.12');
  });

  it('SANs: include, IP blocks in allowlist notation, case-insensitive DNS, auto_include_cn', () => {
    const san = policy(
      { common_name: { ...off, enabled: true } },
      {
        dns_name: { include: 'optional', sources: ['csr'], value: [], patterns: ['*.line3.local'], autoIncludeCn: true },
        ip_address: { include: 'required', sources: ['csr'], value: [], patterns: ['10.1.0.0/16', '143.11.129.0/255'] },
      },
    );
    const issued = san.decide(
      names(
        [['common_name', 'cam']],
        [
          ['dns_name', 'CAM.LINE3.local'],
          ['ip_address', '143.11.129.7'],
        ],
      ),
    );
    expect(issued.san.map((e) => e.value)).to.deep.equal(['cam', 'CAM.LINE3.local', '143.11.129.7']);
    expect(refusal(() => san.decide(names([['common_name', 'cam']])))).to.equal('san.ip_address is required; the CSR has none');
    expect(refusal(() => san.decide(names([], [['ip_address', '10.2.0.1']])))).to.contain('san.ip_address 10.2.0.1 does not match');
    expect(
      refusal(() =>
        san.decide(
          names(
            [],
            [
              ['ip_address', '10.1.0.1'],
              ['email', 'a@b'],
            ],
          ),
        ),
      ),
    ).to.contain('san.email is not allowed');
    expect(
      refusal(() =>
        san.decide(
          names(
            [],
            [
              ['ip_address', '10.1.0.1'],
              ['dns_name', '*.line3.local'],
            ],
          ),
        ),
      ),
    ).to.contain('does not match');
  });

  it('patterns: an invalid regular expression throws, so the config check can name it', () => {
    expect(() => patternToRegExp('/[/', false)).to.throw();
    expect(patternToRegExp('*.a.local', true).test('X.A.LOCAL')).to.equal(true);
  });
});
