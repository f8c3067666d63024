export * from './topics.js';
export * from './identity.js';
export * from './jwt.js';
export * from './protocol.js';
export * from './schemas/index.js';
export * from './archive.js';
export * from './storable.js';
export * from './shutdown.js';
