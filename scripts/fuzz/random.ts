/** The fuzzer's randomness: one seeded PRNG, so a run (and a finding) can be made again from its seed. */

export { prng } from '../../test/helpers/prng.js';

export type Random = () => number;

export function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

export function int(random: Random, below: number): number {
  return Math.floor(random() * below);
}

export function randomBytes(random: Random, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = int(random, 256);
  return bytes;
}

/** Picks among `[weight, value]` pairs in proportion to the weights. */
export function weighted<T>(random: Random, choices: readonly (readonly [number, T])[]): T {
  const total = choices.reduce((sum, [weight]) => sum + weight, 0);
  let at = random() * total;
  for (const [weight, value] of choices) {
    if (at < weight) return value;
    at -= weight;
  }
  return choices.at(-1)![1];
}

/** One random defect in a byte string: a changed, dropped, inserted or appended byte, a cut, or a SEQUENCE/SET length octet. */
export function mutate(random: Random, input: Buffer): Buffer {
  const bytes = Buffer.from(input);
  const at = int(random, bytes.length);
  switch (int(random, 6)) {
    case 0:
      bytes[at] = int(random, 256);
      return bytes;
    case 1:
      return bytes.subarray(0, at);
    case 2:
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([int(random, 256)]), bytes.subarray(at)]);
    case 3:
      // A length octet: the bytes after a SEQUENCE/SET tag.
      for (let i = at; i < bytes.length - 1; i++)
        if (bytes[i] === 0x30 || bytes[i] === 0x31) {
          bytes[i + 1] = pick(random, [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff]);
          break;
        }
      return bytes;
    case 4:
      return Buffer.concat([bytes, Buffer.alloc(1 + int(random, 8), int(random, 256))]);
    default:
      bytes[at]! ^= 1 << int(random, 8);
      return bytes;
  }
}
