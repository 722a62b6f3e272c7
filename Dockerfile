# The one image of every ambit component: `ambit controller`, `ambit ztunnel`,
# `ambit waypoint` (the manifests pick the command in args).
#   docker build -t ambit .
# Build stage: everything (dev dependencies included) to generate the protobuf
# code and compile TypeScript. Runtime stage: production dependencies and dist/.

FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` (a full build) needs the
# sources, which are copied below; dependencies need no install scripts
# (koffi ships prebuilt binaries).
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build

FROM node:20-slim
# iptables (nf_tables backend) and iproute2: ztunnel's in-pod redirection,
# applied inside each enrolled pod's network namespace.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ambit
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
# Non-root by default (the controller and waypoints); the ztunnel DaemonSet
# runs as root with only NET_ADMIN and SYS_ADMIN.
USER 1337:1337
ENTRYPOINT ["node", "--enable-source-maps", "/opt/ambit/dist/cli/main.js"]
