import { parse, stringify } from 'yaml';

export type Json = Record<string, unknown>;

/** Edits config.yaml as data: `editProfile(text, 'demo', (p) => { p.upstream = 'est'; })`. */
export function editProfile(yaml: string, name: string, edit: (profile: Json) => void): string {
  const config = parse(yaml) as { profiles: Record<string, Json> };
  edit(config.profiles[name]!);
  return stringify(config);
}

/** Edits the whole config.yaml as data. */
export function editConfig(yaml: string, edit: (config: Json) => void): string {
  const config = parse(yaml) as Json;
  edit(config);
  return stringify(config);
}

/** The demo profile's rules under another label, forwarding to an upstream (`est:`) instead of issuing from the local CA. */
export function forwardingProfile(demo: Json | undefined, label: string, est: Json, overrides: Json = {}): Json {
  return { ...demo, local_ca: undefined, default: false, labels: [label], upstream: 'est', est, ...overrides };
}
