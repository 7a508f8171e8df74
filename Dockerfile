# Container image of the service: docs/deploy.md says how to build, run and check it.
#   deploy/container/build.sh -t kidney-stone-service      (fills the labels below from the repository)
# Built and run here by `npm run container:test` with podman, on a local Debian base (BASE_IMAGE) and with the
# dependencies installed on the host (DEPS=staged), because our machines cannot pull images or reach the
# registry from inside a container. Real builds use the defaults: the official node image and `npm ci`.
ARG BASE_IMAGE=node:20-bookworm-slim
ARG DEPS=registry

FROM ${BASE_IMAGE} AS base
WORKDIR /app

# Dependencies, from package-lock.json: all/ (with dev: the type check below) and prod/ (what ships).
FROM base AS deps-registry
WORKDIR /deps
COPY package.json package-lock.json .npmrc deploy/container/install-deps.sh ./
RUN sh install-deps.sh /deps && npm cache clean --force

# The same two folders, made by deploy/container/install-deps.sh on the build host and handed over with
# `--build-context staged-deps=DIR`.
FROM base AS deps-staged
COPY --from=staged-deps . /deps/

FROM deps-${DEPS} AS deps

# Build: the code the image runs must type-check (tsconfig.image.json: the server and CLI entry points).
FROM base AS build
COPY --from=deps /deps/all/node_modules node_modules
COPY . .
RUN node node_modules/typescript/bin/tsc -p tsconfig.image.json && rm -rf node_modules

FROM base AS runtime
ARG BASE_IMAGE
# Writable places, the rest of the file system can be mounted read-only: uploads (UPLOAD_RETENTION keeps them
# for a day), the embedded database (DATA_DIR, unused with DATABASE_URL) and the Keras conversion cache live
# under the /data volume; /tmp must be a tmpfs or emptyDir (tsx keeps its compile cache there).
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 \
    UPLOAD_DIR=/data/uploads DATA_DIR=/data/db MODEL_CACHE_DIR=/data/model-cache
COPY --from=deps /deps/prod/node_modules node_modules
COPY --from=build /app ./
# A numeric user, so that Kubernetes' runAsNonRoot can verify it without a passwd entry.
# The service refuses an upload directory that is not 0700 and its own (plugins/app/uploads.ts).
RUN mkdir -p /data/db /data/model-cache && install -d -m 0700 /data/uploads && chown -R 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
# 3000: HTTP. 11112: the DICOM node (C-STORE/C-ECHO), listening only when DICOM_PORT=11112 is set (with DICOM_AE_TITLE,
# DICOM_ALLOWED_AES; docs/operations.md); off by default, like the HTTP-only image it replaces.
EXPOSE 3000 11112
# SIGTERM: in-flight requests finish, new ones get 503 SHUTTING_DOWN, exit 0 within SHUTDOWN_GRACE_MS (10 s).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.PORT + '/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["bin/serve"]

ARG VERSION=unknown MODEL_VERSION=unknown REVISION=unknown SOURCE=unknown CREATED=unknown
LABEL org.opencontainers.image.title="kidney-stone-service" \
      org.opencontainers.image.description="Kidney stone detection on CT slices: Fastify + onnxruntime-node" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.kidney-stone.model.version="${MODEL_VERSION}"
