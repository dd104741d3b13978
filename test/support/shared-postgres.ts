// Test support: the run-wide PostgreSQL started by global-setup.ts, as seen from a test file.
import { inject } from 'vitest'

/** Superuser URL of the shared cluster. Create a database per test file with createTestDatabase(). */
export function adminUrl(): string {
  return inject('pgAdminUrl')
}
