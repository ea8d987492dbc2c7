// ESM entry: the same objects as the CommonJS one.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const sack = require('./index.js');

export const Websocket = sack.Websocket;
export const WebSocket = sack.WebSocket;
export default sack;
