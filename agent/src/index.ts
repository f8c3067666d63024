export { Device, IGNORE_COMMANDS, type BundleInventory, type CommandHandler, type DeviceContext, type DeviceOptions } from './device.js';
export { loadAgentConfig, AgentConfigError, type AgentConfig, DEFAULT_KEEPALIVE_S, DEFAULT_TELEMETRY_S } from './config.js';
export { Outbox, type OutboxEntry } from './outbox.js';
export { Backoff, type BackoffOptions } from './session/backoff.js';
export { MqttSession, type SessionOptions } from './session/session.js';
export { SystemMetrics, type MetricsSource } from './telemetry/system-metrics.js';
export { Clock } from './clock.js';
export { requestText, type HttpAnswer, type RequestOptions } from './http-client.js';
