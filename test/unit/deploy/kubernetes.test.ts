// Deployment: the Kubernetes manifests agree with the gateway's ports, probes, env contract and shutdown timing.
import { readdirSync } from 'node:fs'
import { join, posix } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  type Doc,
  defaultOf,
  ENV_CONTRACT,
  exists,
  LOADER_NAMES,
  ROOT,
  readText,
  readYaml,
} from './support.js'

const DIR = 'config/kubernetes'
const kustomization = readYaml(`${DIR}/kustomization.yaml`)[0]
const resources: Doc[] = (kustomization.resources as string[]).flatMap((file) => readYaml(`${DIR}/${file}`))

function one(kind: string): Doc {
  const found = resources.filter((r) => r.kind === kind)
  expect(found, kind).toHaveLength(1)
  return found[0]
}

const deployment = one('Deployment')
const pod = deployment.spec.template.spec
const configMap = one('ConfigMap')
const service = one('Service')
const secretExample = readYaml(`${DIR}/secret.example.yaml`)[0]

function container(name: string): Doc {
  const found = pod.containers.find((c: Doc) => c.name === name)
  expect(found, name).toBeDefined()
  return found
}
const gateway = container('gateway')
const postgrest = container('postgrest')

/** The gateway's effective environment: the ConfigMap (envFrom) overridden by explicit env. */
function gatewayEnv(name: string): string | undefined {
  const explicit = gateway.env?.find((e: Doc) => e.name === name)
  if (explicit !== undefined) return explicit.value
  return configMap.data[name]
}

function gatewayNumber(name: string): number {
  const value = gatewayEnv(name)
  return value === undefined ? (defaultOf(name) as number) : Number(value)
}

function postgrestEnv(name: string): Doc {
  return postgrest.env.find((e: Doc) => e.name === name)
}

function portNumber(c: Doc, port: string | number): number {
  if (typeof port === 'number') return port
  const found = c.ports?.find((p: Doc) => p.name === port)
  expect(found, `port ${port} of ${c.name}`).toBeDefined()
  return found.containerPort
}

/** Where a secret value comes from: a secretKeyRef, or a *_FILE path inside a mounted Secret volume. */
function secretSource(c: Doc, name: string): { secret: string; key: string } {
  const direct = c.env?.find((e: Doc) => e.name === name)
  if (direct?.valueFrom?.secretKeyRef !== undefined) {
    return { secret: direct.valueFrom.secretKeyRef.name, key: direct.valueFrom.secretKeyRef.key }
  }
  const file = c.env?.find((e: Doc) => e.name === `${name}_FILE`)
  expect(file, `${name} or ${name}_FILE on ${c.name}`).toBeDefined()
  const path: string = file.value
  const mount = c.volumeMounts.find(
    (m: Doc) => posix.dirname(path) === m.mountPath && m.subPath === undefined,
  )
  expect(mount, `a volume mounted at ${posix.dirname(path)}`).toBeDefined()
  const volume = pod.volumes.find((v: Doc) => v.name === mount.name)
  expect(volume.secret, `volume ${mount.name} is a Secret`).toBeDefined()
  const item = (volume.secret.items ?? []).find((i: Doc) => i.path === posix.basename(path))
  return { secret: volume.secret.secretName, key: item?.key ?? posix.basename(path) }
}

function selects(selector: Doc, labels: Record<string, string>): boolean {
  return Object.entries(selector as Record<string, string>).every(([k, v]) => labels[k] === v)
}

describe('kustomization', () => {
  it('lists every manifest of the folder, and they exist and parse', () => {
    const listed = kustomization.resources as string[]
    for (const file of listed) expect(exists(`${DIR}/${file}`), file).toBe(true)
    const yamlFiles = readdirSync(join(ROOT, DIR)).filter((f) => f.endsWith('.yaml'))
    const unlisted = yamlFiles.filter((f) => !listed.includes(f) && f !== 'kustomization.yaml')
    expect(unlisted).toEqual(['secret.example.yaml'])
    expect(resources.map((r) => r.kind).sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'HorizontalPodAutoscaler',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
      'ServiceMonitor',
    ])
  })

  it('sets the gateway image tag to the package version', () => {
    const pkg = JSON.parse(readText('package.json')) as { version: string }
    expect(kustomization.images).toEqual([{ name: gateway.image, newTag: pkg.version }])
  })
})

describe('the gateway container', () => {
  it('uses only environment names from the public contract that the loader accepts', () => {
    const names = [...Object.keys(configMap.data), ...gateway.env.map((e: Doc) => e.name)]
    expect(names.filter((n) => !ENV_CONTRACT.has(n))).toEqual([])
    expect(names.filter((n) => !LOADER_NAMES.has(n))).toEqual([])
    expect(gateway.envFrom).toEqual([{ configMapRef: { name: configMap.metadata.name } }])
  })

  it('declares the proxy and admin ports the configuration listens on', () => {
    expect(gateway.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'admin', containerPort: 8081, protocol: 'TCP' },
    ])
    expect(gatewayNumber('GATEWAY_PORT')).toBe(8080)
    expect(gatewayNumber('GATEWAY_ADMIN_PORT')).toBe(8081)
    expect(gatewayEnv('GATEWAY_HOST')).toBe('0.0.0.0')
    expect(gatewayEnv('GATEWAY_ADMIN_HOST')).toBe('0.0.0.0')
  })

  it('probes /live (startup, liveness) and /ready (readiness) on the admin port', () => {
    const probes = ['startupProbe', 'livenessProbe', 'readinessProbe'].map((probe) => [
      probe,
      gateway[probe].httpGet.path,
      portNumber(gateway, gateway[probe].httpGet.port),
    ])
    expect(probes).toEqual([
      ['startupProbe', '/live', 8081],
      ['livenessProbe', '/live', 8081],
      ['readinessProbe', '/ready', 8081],
    ])
  })

  it('reads every secret from a file of the mounted Secret, never from a literal', () => {
    for (const e of gateway.env) {
      if (/SECRET|DB_URL/.test(e.name)) expect(e.name, 'secrets come as *_FILE').toMatch(/_FILE$/)
    }
    for (const key of Object.keys(configMap.data)) expect(key).not.toMatch(/SECRET|DB_URL/)
    const keys = Object.keys(secretExample.stringData)
    for (const name of ['GATEWAY_UPSTREAM_JWT_SECRET', 'GATEWAY_JWT_SECRET', 'GATEWAY_DB_URL']) {
      const source = secretSource(gateway, name)
      expect(source.secret).toBe(secretExample.metadata.name)
      expect(keys).toContain(source.key)
    }
  })

  it('has requests and limits', () => {
    for (const c of pod.containers) {
      expect(Object.keys(c.resources.requests).sort(), c.name).toEqual(['cpu', 'memory'])
      expect(Object.keys(c.resources.limits).sort(), c.name).toEqual(['cpu', 'memory'])
    }
  })
})

describe('PostgREST beside the gateway', () => {
  it('listens on the loopback interface only, where the gateway forwards to', () => {
    expect(postgrestEnv('PGRST_SERVER_HOST').value).toBe('127.0.0.1')
    expect(postgrestEnv('PGRST_ADMIN_SERVER_HOST').value).toBe('127.0.0.1')
    expect(postgrest.ports).toBeUndefined()
    const upstream = new URL(gatewayEnv('GATEWAY_UPSTREAM_URL')!)
    expect(upstream.hostname).toBe('127.0.0.1')
    expect(upstream.port).toBe(postgrestEnv('PGRST_SERVER_PORT').value)
    expect(postgrestEnv('PGRST_ADMIN_SERVER_PORT').value).not.toBe(postgrestEnv('PGRST_SERVER_PORT').value)
  })

  it('verifies with the same Secret key the gateway mints with', () => {
    const minting = secretSource(gateway, 'GATEWAY_UPSTREAM_JWT_SECRET')
    expect(secretSource(postgrest, 'PGRST_JWT_SECRET')).toEqual(minting)
    expect(secretSource(postgrest, 'PGRST_DB_URI').secret).toBe(minting.secret)
    expect(Object.keys(secretExample.stringData)).toContain(secretSource(postgrest, 'PGRST_DB_URI').key)
  })

  it('is a pinned PostgREST v14 with an anonymous role and a JWT cache', () => {
    expect(postgrest.image).toMatch(/^postgrest\/postgrest:v14\.\d+$/)
    expect(postgrestEnv('PGRST_DB_ANON_ROLE').value).toBe('anon')
    expect(Number(postgrestEnv('PGRST_JWT_CACHE_MAX_ENTRIES').value)).toBeGreaterThan(0)
  })

  it('is probed from inside its container, since its admin server is on 127.0.0.1', () => {
    expect(postgrest.readinessProbe.exec.command).toEqual(['postgrest', '--ready'])
    expect(postgrest.readinessProbe.httpGet).toBeUndefined()
  })
})

describe('shutdown timing', () => {
  const delay = gatewayNumber('GATEWAY_SHUTDOWN_DELAY_MS')
  const deadline = gatewayNumber('GATEWAY_SHUTDOWN_DEADLINE_MS')

  it('gives the gateway more than its delay plus its drain deadline', () => {
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan((delay + deadline) / 1000)
    expect(gateway.lifecycle?.preStop).toBeUndefined()
  })

  it('keeps PostgREST up until the gateway has drained, and inside the grace period', () => {
    const sleep = postgrest.lifecycle.preStop.sleep.seconds
    expect(sleep).toBeGreaterThanOrEqual((delay + deadline) / 1000)
    expect(sleep).toBeLessThan(pod.terminationGracePeriodSeconds)
  })
})

describe('pod security', () => {
  it('runs every container as a non-root user without privileges on a read-only root', () => {
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    })
    for (const c of pod.containers) {
      expect(c.securityContext, c.name).toEqual({
        runAsNonRoot: true,
        runAsUser: 1000,
        runAsGroup: 1000,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      })
    }
    expect(pod.automountServiceAccountToken).toBe(false)
    // Service links would inject GATEWAY_PORT=tcp://... for a Service named "gateway".
    expect(pod.enableServiceLinks).toBe(false)
  })

  it('mounts Secrets as a directory (subPath mounts never see a rotation)', () => {
    for (const m of gateway.volumeMounts) expect(m.subPath, m.name).toBeUndefined()
  })
})

describe('Service, scraping and scaling', () => {
  const podLabels = deployment.spec.template.metadata.labels

  it('selects the pods and targets the named gateway ports', () => {
    expect(selects(service.spec.selector, podLabels)).toBe(true)
    expect(service.spec.ports).toEqual([
      { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
      { name: 'metrics', port: 8081, targetPort: 'admin', protocol: 'TCP' },
    ])
    for (const p of service.spec.ports) expect([8080, 8081]).toContain(portNumber(gateway, p.targetPort))
  })

  it('matches the Deployment selector to its pod template', () => {
    expect(selects(deployment.spec.selector.matchLabels, podLabels)).toBe(true)
  })

  it('annotates the pods for scraping /metrics on the admin port', () => {
    const annotations = deployment.spec.template.metadata.annotations
    expect(annotations['prometheus.io/scrape']).toBe('true')
    expect(Number(annotations['prometheus.io/port'])).toBe(portNumber(gateway, 'admin'))
    expect(annotations['prometheus.io/path']).toBe('/metrics')
  })

  it('has a ServiceMonitor on the Service metrics port and /metrics', () => {
    const monitor = one('ServiceMonitor')
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1')
    expect(selects(monitor.spec.selector.matchLabels, service.metadata.labels)).toBe(true)
    expect(monitor.spec.endpoints.map((e: Doc) => [e.port, e.path])).toEqual([['metrics', '/metrics']])
    const port = service.spec.ports.find((p: Doc) => p.name === 'metrics')
    expect(portNumber(gateway, port.targetPort)).toBe(gatewayNumber('GATEWAY_ADMIN_PORT'))
  })

  it('has a disruption budget over the same pods', () => {
    const pdb = one('PodDisruptionBudget')
    expect(pdb.apiVersion).toBe('policy/v1')
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels)
    expect(pdb.spec.maxUnavailable ?? pdb.spec.minAvailable).toBe(1)
  })

  it('autoscales the Deployment on CPU utilisation, never below two replicas', () => {
    const hpa = one('HorizontalPodAutoscaler')
    expect(hpa.apiVersion).toBe('autoscaling/v2')
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: deployment.metadata.name,
    })
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2)
    expect(hpa.spec.metrics).toEqual([
      {
        type: 'Resource',
        resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } },
      },
    ])
    // Utilisation is relative to requests: every container needs a CPU request.
    for (const c of pod.containers) expect(c.resources.requests.cpu, c.name).toBeDefined()
  })

  it('admits traffic to the gateway ports only', () => {
    const policy = one('NetworkPolicy')
    expect(selects(policy.spec.podSelector.matchLabels, podLabels)).toBe(true)
    const ports = policy.spec.ingress.flatMap((rule: Doc) => rule.ports.map((p: Doc) => p.port))
    expect(ports.map((p: string | number) => portNumber(gateway, p))).toEqual([8080, 8081])
  })
})

describe('secret.example.yaml', () => {
  it('is clearly an example and holds exactly the keys the pod reads', () => {
    expect(readText(`${DIR}/secret.example.yaml`)).toMatch(/^# EXAMPLE VALUES ONLY/)
    for (const value of Object.values(secretExample.stringData)) expect(value).toContain('EXAMPLE-ONLY')
    const used = new Set<string>()
    for (const v of pod.volumes) for (const item of v.secret?.items ?? []) used.add(item.key)
    for (const c of pod.containers) {
      for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) used.add(e.valueFrom.secretKeyRef.key)
    }
    expect([...used].sort()).toEqual(Object.keys(secretExample.stringData).sort())
  })

  it('holds an upstream HS256 example long enough for PostgREST (32 characters)', () => {
    expect(secretExample.stringData['upstream-jwt-secret'].length).toBeGreaterThanOrEqual(32)
  })
})
