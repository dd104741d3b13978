// Vitest global setup: one PostgreSQL for the whole run, shared by integration and e2e suites.
import type { TestProject } from 'vitest/node'
import { type PostgresServer, startPostgres } from './postgres.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the run's shared PostgreSQL (see shared-postgres.ts). */
    pgAdminUrl: string
  }
}

/**
 * Starts the shared cluster once per run and provides its URL. `TEST_PG_URL` points the run at an
 * existing server instead (its superuser URL); nothing is started then.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env['TEST_PG_URL']
  if (external !== undefined && external !== '') {
    project.provide('pgAdminUrl', external)
    return async () => {}
  }
  const server: PostgresServer = await startPostgres()
  project.provide('pgAdminUrl', server.url)
  return async () => {
    await server.destroy()
  }
}
