import { loadConfig, type LoadedConfig } from '../config/load.js';
import { storeLocationOf } from '../config/store-location.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/types.js';
import { machineTimeZone } from './local-time.js';

/** What an admin command works with: the configuration, its store, and the time zone its dates are read in. */
export interface AdminContext {
  readonly config: LoadedConfig;
  readonly store: Store;
  readonly timeZone: string;
  readonly now: Date;
}

/** Opens the store a configuration names, runs `work`, closes it. */
export async function withStore<T>(configFile: string, work: (context: AdminContext) => Promise<T>): Promise<T> {
  const config = loadConfig(configFile);
  const store = await openStore(storeLocationOf(config));
  try {
    return await work({ config, store, timeZone: config.time_zone ?? machineTimeZone(), now: new Date() });
  } finally {
    await store.close();
  }
}
