/** Where a store's schema stands: versions applied in it, and versions this est-ra knows. */
export interface MigrationStatus {
  readonly applied: number;
  readonly known: number;
}
