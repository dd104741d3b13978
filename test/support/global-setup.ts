// Vitest global setup: shared resources for integration and end-to-end suites.
export default async function setup(): Promise<void> {}
