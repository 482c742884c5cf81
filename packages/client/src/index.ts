export * from './types.js';
export * from './state.js';
export * from './reducer.js';
export * from './client.js';
