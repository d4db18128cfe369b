import { expect } from 'chai';
import { AllowlistEntryError, compileAllowlist, toCidrBlocks } from '../../src/auth/allowlist.js';

describe('address allowlist notations', () => {
  const blocks: [string, string[]][] = [
    ['10.1.2.3', ['10.1.2.3/32']],
    ['fd00::7', ['fd00:0000:0000:0000:0000:0000:0000:0007/128']],
    ['10.1.0.0/16', ['10.1.0.0/16']],
    ['fd00::/64', ['fd00::/64']],
    ['10.0.0.5-10.0.0.50', ['10.0.0.5/32', '10.0.0.6/31', '10.0.0.8/29', '10.0.0.16/28', '10.0.0.32/28', '10.0.0.48/31', '10.0.0.50/32']],
    ['10.1.*.*', ['10.1.0.0/16']],
    ['10.*.*.*', ['10.0.0.0/8']],
    ['143.11.129.0/255', ['143.11.129.0/24']],
    ['143.11.129.10/40', ['143.11.129.10/31', '143.11.129.12/30', '143.11.129.16/28', '143.11.129.32/29', '143.11.129.40/32']],
    ['*', ['0.0.0.0/0', '::/0']],
  ];
  for (const [entry, expected] of blocks) {
    it(`ok ${entry}`, () => expect(toCidrBlocks(entry)).to.deep.equal(expected));
  }

  const refused: [string, string][] = [
    ['10.0.0.5/20', 'host bits set: did you mean 10.0.0.0/20 or the range 10.0.0.5-10.0.0.20?'],
    ['10.*.1.*', 'a wildcard replaces whole trailing octets, as in 10.1.*.*'],
    ['10.0.0.50-10.0.0.5', 'the range ends before it starts'],
    ['10.0.0.1-fd00::1', 'a range needs two addresses of the same family'],
    ['10.0.0.256', 'not an IP address, CIDR block, range (a-b), wildcard (10.1.*.*) or a.b.c.d/e range'],
    ['plant-7', 'not an IP address, CIDR block, range (a-b), wildcard (10.1.*.*) or a.b.c.d/e range'],
  ];
  for (const [entry, reason] of refused) {
    it(`fail ${entry}`, () => {
      expect(() => toCidrBlocks(entry))
        .to.throw(AllowlistEntryError)
        .with.property('reason', reason);
    });
  }

  it('ok matching at the edges of a range, IPv4-mapped peers, IPv6', () => {
    const list = compileAllowlist(['10.0.0.5-10.0.0.50', '143.11.129.0/255', 'fd00::/64']);
    expect(['10.0.0.5', '10.0.0.50', '::ffff:10.0.0.20', '143.11.129.255', 'fd00::1'].map((a) => list.allows(a))).to.deep.equal([true, true, true, true, true]);
    expect(['10.0.0.4', '10.0.0.51', '143.11.130.0', 'fd00:0:0:1::1', 'not-an-address'].map((a) => list.allows(a))).to.deep.equal([
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  it('ok an empty list allows any address', () => {
    expect(compileAllowlist([]).allows('203.0.113.9')).to.equal(true);
  });
});
