# Container image of the service. Not built on the development machines (they have no Docker engine);
# it uses only what `npm ci` installs from the registry and the files of this repository.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 UPLOAD_DIR=/data/uploads
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force
COPY . .
# The service refuses an upload directory that is not 0700 and its own (plugins/app/uploads.ts).
RUN install -d -o node -g node /data && install -d -m 0700 -o node -g node /data/uploads
USER node
EXPOSE 3000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD node -e "fetch('http://127.0.0.1:3000/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["bin/serve"]
