'use strict';
const { check } = require('./check.js');

test('serves HTTP and WebSocket (first file)', () => check('first'));
