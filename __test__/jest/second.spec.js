'use strict';
const { check } = require('./check.js');

test('serves HTTP and WebSocket (second file)', () => check('second'));
