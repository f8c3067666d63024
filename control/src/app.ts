import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import { schemaErrorText } from '@kernex/shared';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { authPlugin, type DeviceTokenVerifier } from './auth/auth.plugin.js';
import type { ApiKeysService } from './services/api-keys.service.js';
import type { SessionsService } from './services/sessions.service.js';
import type { LiveEventBus } from './events/event-bus.js';
import { consoleRoutes } from './routes/console.routes.js';
import { eventsRoutes } from './routes/events.routes.js';
import { fleetRoutes } from './routes/fleet.routes.js';
import { sessionRoutes } from './routes/session.routes.js';
import type { FleetService } from './services/fleet.service.js';
import { Errors } from './errors.js';
import { auditPlugin } from './http/audit.plugin.js';
import { expectedTypes, inputGuardPlugin } from './http/input-guard.plugin.js';
import { registerDocsUi, registerOpenApi } from './http/openapi.js';
import { rateLimitPlugin } from './http/rate-limit.plugin.js';
import { routeTablePlugin } from './http/route-table.plugin.js';
import { REQUEST_ID_HEADER, requestId } from './http/request-id.js';
import type { ServerMetrics } from './metrics.js';
import { bundlesRoutes } from './routes/bundles.routes.js';
import { deploymentsRoutes } from './routes/deployments.routes.js';
import type { BundlesService } from './services/bundles.service.js';
import type { DeltaService } from './services/delta.service.js';
import type { DeploymentsService } from './services/deployments.service.js';
import { apiKeysRoutes } from './routes/api-keys.routes.js';
import { auditRoutes } from './routes/audit.routes.js';
import { devicesRoutes } from './routes/devices.routes.js';
import { enrollmentTokensRoutes } from './routes/enrollment-tokens.routes.js';
import { healthRoutes, type HealthChecks } from './routes/health.routes.js';
import { nodesRoutes } from './routes/nodes.routes.js';
import { registrationRoutes } from './routes/registration.routes.js';
import { telemetryRoutes } from './routes/telemetry.routes.js';
import type { AuditService } from './services/audit.service.js';
import type { DevicesService } from './services/devices.service.js';
import type { EnrollmentTokensService } from './services/enrollment-tokens.service.js';
import type { NodesService } from './services/nodes.service.js';
import type { RegistrationService } from './services/registration.service.js';
import type { TelemetryService } from './services/telemetry.service.js';

/** Everything the HTTP app needs from the running server. */
export interface AppDeps {
  log: Logger;
  metrics: ServerMetrics;
  checks: HealthChecks;
  apiKeys: ApiKeysService;
  audit: AuditService;
  verifyDeviceToken?: DeviceTokenVerifier;
  bundles?: { service: BundlesService; maxBundleBytes: number; deltas?: DeltaService };
  deployments?: DeploymentsService;
  /** Limits and CORS of the admin API (config.ts); defaults when absent. */
  http?: Partial<HttpOptions>;
  devices: DevicesService;
  registration: RegistrationService;
  enrollmentTokens: EnrollmentTokensService;
  telemetry: TelemetryService;
  /** The web console (DESIGN §9): sessions, the live event bus, the fleet aggregates. */
  console?: { sessions: SessionsService; bus: LiveEventBus; fleet: FleetService };
  /** Serve HTTPS with this certificate and key (KERNEX_HTTPS). */
  https?: { cert: string; key: string };
  /** `GET /api/v1/nodes` (DESIGN §8). */
  nodes?: NodesService;
  /** A cluster's Redis (an ioredis client): rate limits are then counted across every node. */
  rateLimitRedis?: unknown;
}

/** The HTTP edge's limits (see the README's configuration table). */
export interface HttpOptions {
  rateLimitPerMin: number;
  registerRateLimitPerMin: number;
  bodyLimitBytes: number;
  corsOrigins: string[];
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  idleTimeoutMs: number;
}

const HTTP_DEFAULTS: HttpOptions = {
  rateLimitPerMin: 600,
  registerRateLimitPerMin: 10,
  bodyLimitBytes: 1024 * 1024,
  corsOrigins: [],
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
};

/** The contract's error body (DESIGN §6). */
export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Maps any thrown error to the contract's body; 5xx details stay in the log. */
export function toErrorBody(err: FastifyError): ErrorBody {
  const statusCode = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
  if (err.validation) {
    const first = err.validation[0];
    const where = err.validationContext === 'querystring' ? 'query' : (err.validationContext ?? 'body');
    const field = first?.instancePath ? `${where}${first.instancePath.replace(/\//g, '.')}` : where;
    const params = first?.params as { missingProperty?: string; additionalProperty?: string; allowedValues?: unknown[] } | undefined;
    // A `pattern` or `format` failure says what was expected, never the expression (schemaErrorText).
    let message = `${field} ${first ? schemaErrorText(first) : 'is invalid'}`;
    if (params?.missingProperty) message = `${field}.${params.missingProperty} is required`;
    else if (params?.additionalProperty) message = `${field}.${params.additionalProperty} is not allowed`;
    else if (params?.allowedValues) message = `${field} must be one of ${params.allowedValues.join(', ')}`;
    return { statusCode: 400, code: 'KX_VALIDATION', error: STATUS_TEXT[400]!, message };
  }
  if (statusCode >= 500) {
    return { statusCode, code: statusCode === 503 ? 'KX_UNAVAILABLE' : 'KX_INTERNAL', error: STATUS_TEXT[statusCode] ?? 'Error', message: statusCode === 503 ? err.message : 'internal server error' };
  }
  const code = err.code?.startsWith('KX_') ? err.code : fastifyCode(err.code, statusCode);
  return { statusCode, code, error: STATUS_TEXT[statusCode] ?? 'Error', message: err.message };
}

/** Fastify's own client errors (bad JSON, body too large, ...) keep a stable KX_ code. */
function fastifyCode(code: string | undefined, status: number): string {
  if (status === 413) return 'KX_PAYLOAD_TOO_LARGE';
  if (status === 429) return 'KX_RATE_LIMITED';
  if (status === 401) return 'KX_UNAUTHORIZED';
  if (status === 403) return 'KX_FORBIDDEN';
  if (status === 404) return 'KX_NOT_FOUND';
  if (status === 415) return 'KX_UNSUPPORTED_MEDIA_TYPE';
  return code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'KX_UNSUPPORTED_MEDIA_TYPE' : 'KX_VALIDATION';
}

/** Builds the Fastify app without listening (tests use `inject` or `listen` themselves). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const http: HttpOptions = { ...HTTP_DEFAULTS, ...deps.http };
  // Slow clients are cut off (DESIGN §6): headers within headersTimeoutMs (Node checks
  // every connectionsCheckingInterval, so check often enough for the bound to mean something),
  // and a socket silent for idleTimeoutMs. No total request cap: an honest slow bundle upload
  // keeps sending; JSON bodies get their own deadline in http/input-guard.plugin.ts.
  const serverTimeouts = {
    headersTimeout: http.headersTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(5000, Math.floor(http.headersTimeoutMs / 4))),
  };
  const app = Fastify({
    loggerInstance: deps.log.child({ mod: 'http' }) as FastifyBaseLogger,
    bodyLimit: http.bodyLimitBytes,
    trustProxy: false,
    // Every log line of a request carries it as reqId (Fastify's per-request pino child); echoed below.
    genReqId: requestId,
    connectionTimeout: http.idleTimeoutMs,
    keepAliveTimeout: Math.min(5000, http.idleTimeoutMs),
    requestTimeout: 0,
    // Unknown fields are refused, not silently dropped (DESIGN §6): ajv must not strip them.
    ajv: { customOptions: { removeAdditional: false } },
    // The router's own refusals (a path that does not decode) get the contract's body and codes too.
    frameworkErrors: (err, _req, reply) => {
      void (reply as FastifyReply).code(400).send(toErrorBody(err as FastifyError));
    },
    ...(deps.https ? { https: { cert: deps.https.cert, key: deps.https.key, ...serverTimeouts } } : { http: serverTimeouts }),
  }) as unknown as FastifyInstance;
  // Only JSON bodies (and the routes' own upload types): a text/plain body is a 415, not a string that reaches a schema.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (req, reply) => {
    void reply.header(REQUEST_ID_HEADER, req.id);
  });

  app.addHook('onResponse', async (req, reply) => {
    deps.metrics.httpDuration
      .labels(req.method, req.routeOptions.url ?? 'unknown', String(reply.statusCode))
      .observe(reply.elapsedTime / 1000);
  });

  app.setErrorHandler((thrown: FastifyError, req, reply) => {
    const err =
      thrown.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? (new Errors.UNSUPPORTED_MEDIA_TYPE(req.headers['content-type'] ?? '(none)', expectedTypes(req), { cause: thrown }) as FastifyError)
        : thrown;
    const body = toErrorBody(err);
    if (body.statusCode >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ code: body.code, msg: body.message }, 'request refused');
    const { headers } = err as FastifyError & { headers?: Record<string, string> };
    if (headers) void reply.headers(headers);
    return reply.code(body.statusCode).send(body);
  });

  app.setNotFoundHandler((req, reply) => {
    const err = new Errors.ROUTE_NOT_FOUND(req.method, req.url.split('?')[0]);
    return reply.code(404).send(toErrorBody(err));
  });

  // Order matters: plugins that add routes (CORS preflight) come before the
  // route checks; the OpenAPI collector and the route table before any route;
  // the rate limit before authentication, so a burst costs no database lookup.
  // No upgrade-insecure-requests: a server on plain HTTP in a LAN must still serve /docs' assets.
  // Strict-Transport-Security only over HTTPS: on plain HTTP it is meaningless (RFC 6797 §7.2), and
  // behind a TLS proxy the proxy owns that promise.
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
    strictTransportSecurity: deps.https ? undefined : false,
  });
  if (http.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: http.corsOrigins.includes('*') ? '*' : http.corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type'],
      exposedHeaders: ['retry-after'],
      maxAge: 600,
    });
  }
  await registerOpenApi(app);
  await app.register(routeTablePlugin);
  await app.register(rateLimitPlugin, {
    perMin: http.rateLimitPerMin,
    registerPerMin: http.registerRateLimitPerMin,
    refused: deps.metrics.httpRateLimited,
    redis: deps.rateLimitRedis,
  });
  await app.register(inputGuardPlugin, { bodyTimeoutMs: http.bodyTimeoutMs, slowClients: deps.metrics.httpSlowClients });
  await app.register(authPlugin, { apiKeys: deps.apiKeys, verifyDeviceToken: deps.verifyDeviceToken, sessions: deps.console?.sessions });
  await app.register(auditPlugin, { audit: deps.audit });
  await registerDocsUi(app);

  await app.register(healthRoutes, {
    checks: deps.checks,
    metricsText: () => deps.metrics.registry.metrics(),
    contentType: deps.metrics.registry.contentType,
  });
  await app.register(apiKeysRoutes, { apiKeys: deps.apiKeys });
  await app.register(auditRoutes, { audit: deps.audit });
  await app.register(registrationRoutes, { registration: deps.registration });
  await app.register(devicesRoutes, { devices: deps.devices });
  await app.register(enrollmentTokensRoutes, { tokens: deps.enrollmentTokens });
  await app.register(telemetryRoutes, { telemetry: deps.telemetry });
  if (deps.nodes) await app.register(nodesRoutes, { nodes: deps.nodes });

  if (deps.bundles) {
    await app.register(bundlesRoutes, { bundles: deps.bundles.service, maxBundleBytes: deps.bundles.maxBundleBytes, bytesServed: deps.metrics.bundleBytesServed, deltas: deps.bundles.deltas });
  }
  if (deps.deployments) await app.register(deploymentsRoutes, { deployments: deps.deployments });
  if (deps.console) {
    const { sessions, bus, fleet } = deps.console;
    await app.register(sessionRoutes, { sessions, secure: Boolean(deps.https) });
    // A heartbeat well inside the idle timeout, so the stream is never cut as a silent socket.
    await app.register(eventsRoutes, { bus, apiKeys: deps.apiKeys, sessions, heartbeatMs: Math.max(100, Math.min(15_000, Math.floor(http.idleTimeoutMs / 2))) });
    await app.register(fleetRoutes, { fleet });
    await app.register(consoleRoutes);
  }

  return app;
}
