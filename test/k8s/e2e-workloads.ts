// Workloads of the end-to-end tier, as YAML (node images: the node host runs
// them with the local node binary; busybox-ish: the local shell).
import { SERVER_JS } from "./e2e-fixtures.js";

export const APPS = (ns: string, marker: string) => `
apiVersion: v1
kind: Namespace
metadata: { name: ${ns} }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: server, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: server } }
  template:
    metadata: { labels: { app: server } }
    spec:
      nodeSelector: { kubernetes.io/hostname: node2 }
      terminationGracePeriodSeconds: 1
      containers:
        - name: server
          image: node:20
          command: [node, -e, ${JSON.stringify(SERVER_JS)}]
          env:
            - { name: PORT, value: "8080" }
            - { name: MARKER, value: ${marker} }
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe:
            httpGet: { path: /ready, port: http }
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: ${ns} }
spec:
  selector: { app: server }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: client, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: client } }
  template:
    metadata: { labels: { app: client } }
    spec:
      nodeSelector: { kubernetes.io/hostname: node1 }
      terminationGracePeriodSeconds: 1
      containers:
        - name: client
          image: busybox
          command: [sleep, infinity]
`;

/** An HTTP server answering its version: two Deployments, a Service for each and one for both. */
const ECHO = (ns: string, version: string) => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: echo-${version}, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: echo, version: ${version} } }
  template:
    metadata: { labels: { app: echo, version: ${version} } }
    spec:
      nodeSelector: { kubernetes.io/hostname: node2 }
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: node:20
          command: [node, -e, ${JSON.stringify(SERVER_JS)}]
          env:
            - { name: PORT, value: "8080" }
            - { name: MARKER, value: ${version} }
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
          ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo-${version}, namespace: ${ns} }
spec:
  selector: { app: echo, version: ${version} }
  ports: [{ name: http, port: 80, targetPort: http, appProtocol: http }]
`;

/** The waypoint of the namespace, the two echo versions, and a 90/10 split of Service echo through it. */
export const WAYPOINT_SPLIT = (ns: string) => `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: waypoint, namespace: ${ns} }
spec:
  gatewayClassName: ambit-waypoint
  listeners: [{ name: mesh, port: 15008, protocol: HBONE }]
---
${ECHO(ns, "v1")}
---
${ECHO(ns, "v2")}
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: ${ns}, labels: { ambit.dev/use-waypoint: waypoint } }
spec:
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: http, appProtocol: http }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo-split, namespace: ${ns} }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - backendRefs:
        - { name: echo-v1, port: 80, weight: 90 }
        - { name: echo-v2, port: 80, weight: 10 }
`;

/** L4 DENY of the namespace's own callers to the server (enforced by the server node's ztunnel). */
export const DENY = (ns: string) => `
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny-server, namespace: ${ns} }
spec:
  selector: { matchLabels: { app: server } }
  action: DENY
  rules:
    - from: [{ source: { namespaces: [${ns}] } }]
`;

/** An AuthorizationPolicy the CRD schema refuses (action not in its enum). */
export const INVALID = (ns: string) => `
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: invalid, namespace: ${ns} }
spec:
  action: SOMETIMES
`;
