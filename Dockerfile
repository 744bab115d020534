# syntax=docker/dockerfile:1
# The tunkeeper agent's image (the Helm chart's DaemonSet runs it):
#   docker build -t REGISTRY/tunkeeper:0.1.0 .
# Two stages: a full toolchain compiles the addon and the TypeScript; the runtime gets only what
# `tunkeeper` loads at run time, on the same Debian release (the addon links the same libstdc++).

FROM node:20-bookworm AS build
# node-gyp's toolchain. The image's own Node.js headers (/usr/local/include/node) are what
# scripts/build-native.mjs hands node-gyp, so nothing is downloaded besides the npm packages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# npm ci: the lockfile's exact packages, then `install` (the addon) and `prepare` (tsc into dist/).
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf dist/test dist/bench

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
# The addon finds the package root by its binding.gyp, then loads build/Release/*.node from there.
COPY --from=build /src/binding.gyp ./
COPY --from=build /src/build/Release/*.node ./build/Release/
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/crds ./crds
# Root, not a non-root user: creating TUN devices (TUNSETIFF on /dev/net/tun, owned by root) and
# changing links, addresses and routes need CAP_NET_ADMIN. Kubernetes gives capabilities it adds
# to a non-root user only as bounding/permitted bits, never ambient ones, so a non-root agent
# would have no effective CAP_NET_ADMIN; file capabilities on node would hand NET_ADMIN to every
# script it runs. So: uid 0, and the chart drops every capability but NET_ADMIN, forbids privilege
# escalation, and runs with a read-only root filesystem and the RuntimeDefault seccomp profile.
USER 0:0
ENTRYPOINT ["/app/bin/tunkeeper"]
CMD ["--help"]
