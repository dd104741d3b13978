# syntax=docker/dockerfile:1
# postgrest-gateway container: build with dev dependencies, run with production dependencies only.
#
#   docker build -t postgrest-gateway .
#   docker run --rm -p 8080:8080 -p 8081:8081 \
#     -e GATEWAY_UPSTREAM_URL=http://postgrest:3000 -e GATEWAY_UPSTREAM_JWT_SECRET=... postgrest-gateway
#
# The Node major is pinned (24 LTS); pin a digest (node:24-bookworm-slim@sha256:...) in your registry
# mirror for reproducible builds.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: compile TypeScript (needs devDependencies) ----------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: nothing in the build needs an install script; it also keeps embedded-postgres
# (a test-only devDependency, allowed to run its script by package.json "allowScripts") from fetching
# PostgreSQL binaries into the build.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
# Everything tsconfig.build.json compiles (src, test/support, scripts, bench); .dockerignore keeps the
# host's node_modules, dist and results out. Only dist/src reaches the runtime stage.
COPY . .
RUN npm run build

# ---- deps: production dependencies only --------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no TypeScript, Vitest or embedded-postgres in the image; every runtime dependency is pure
# JavaScript, so no install script is needed either.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime -------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="postgrest-gateway" \
      org.opencontainers.image.description="Reverse proxy for PostgREST: verifies JWTs, reads fresh claims from PostgreSQL, maps roles, mints tokens PostgREST trusts" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
ENV NODE_ENV=production
WORKDIR /app
# The same layout as the npm package ("files": dist/src, sql): code finds sql/ beside it.
# Files stay owned by root and read-only for the process user.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY package.json ./
COPY sql ./sql
# The image's `node` user, numeric so that Kubernetes runAsNonRoot can verify it.
USER 1000:1000
# 8080: proxy (GATEWAY_PORT); 8081: admin /live, /ready, /metrics (GATEWAY_ADMIN_PORT).
EXPOSE 8080 8081
# No curl in the slim image: node itself asks the admin listener.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.GATEWAY_ADMIN_PORT||8081)+'/live',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM / SIGINT (graceful drain) itself; as PID 1 it gets
# no default signal handling from the kernel, which is why the gateway installs its own handlers.
# It starts no child processes, so there are no zombies to reap: `docker run --init` (tini) is not
# needed, and harmless if your platform adds it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--max-semi-space-size=16", "--no-allocation-site-pretenuring", "--expose-gc", "dist/src/main.js"]
