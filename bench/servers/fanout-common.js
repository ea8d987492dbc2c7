'use strict';
// The publishing side of the fan-out servers (bench/run.js's fanout-10k
// test), the same for every implementation (run by Node and by Bun):
//
// - a client connecting to /sub/<n> is subscribed, in its open handler, to
//   topic `t<n>`; a client connecting to /ctl is the control connection;
// - control `go <subscribers> <topics> <size>`: wait (at most 10 s) until
//   <subscribers> clients are subscribed, answer `started`, then publish
//   <size>-byte text messages to t0 … t<topics-1>, round-robin;
// - control `stop`: stop publishing and answer
//   `done <published> <dropped> <count t0> <count t1> …`.
//
// Publishing: bursts of one message per topic (× FANOUT_ROUNDS), one burst
// per event-loop turn (setImmediate), so that I/O and timers run between
// bursts. Before each burst the buffered amount of one subscriber (the
// first subscriber of each topic in turn) is checked: above FANOUT_LIMIT
// bytes (default 16 KiB) the burst waits 1 ms (setTimeout) instead, so
// that nothing queues without bound while the client reads.
//
// A message: `TTTT:SSSSSSSSSSSS:` (topic and its per-topic sequence number,
// zero-padded decimal) then `x` up to <size> bytes.

const LIMIT = Number(process.env.FANOUT_LIMIT || 16 * 1024);
const ROUNDS = Math.max(1, Number(process.env.FANOUT_ROUNDS || 1));
// Stops by itself after this long, whatever the control connection says.
const MAX_SECONDS = Number(process.env.FANOUT_MAX_SECONDS || 300);

// `impl`: { publish(topicIndex, topicName, msg) → dropped count (0 if the
// server does not say), buffered(conn) → bytes queued, send(conn, text) }.
function fanout(impl) {
  let subscribed = 0;
  const samples = []; // first subscriber of each topic (for the pacing check)
  let topics = [];
  let prefixes = [];
  let seqs = [];
  let pad = '';
  let running = false;
  let published = 0;
  let dropped = 0;
  let turn = 0;
  let waits = 0; // bursts put off because the sampled subscriber was over LIMIT
  let deadline = 0;

  function topicOf(url) {
    const m = /^\/sub\/(\d+)$/.exec(url);
    return m ? Number(m[1]) : -1;
  }

  function burst() {
    if (!running) return;
    if (Date.now() > deadline) {
      running = false;
      return;
    }
    const n = topics.length;
    const sample = samples[turn++ % n];
    if (sample !== undefined && impl.buffered(sample) > LIMIT) {
      waits++;
      setTimeout(burst, 1);
      return;
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (let t = 0; t < n; t++) {
        const msg = prefixes[t] + String(seqs[t]++).padStart(12, '0') + pad;
        dropped += impl.publish(t, topics[t], msg);
      }
    }
    published += n * ROUNDS;
    setImmediate(burst);
  }

  function start(nTopics, size) {
    topics = [];
    prefixes = [];
    seqs = [];
    for (let t = 0; t < nTopics; t++) {
      topics.push(`t${t}`);
      prefixes.push(`${String(t).padStart(4, '0')}:`);
      seqs.push(0);
    }
    pad = ':' + 'x'.repeat(Math.max(0, size - 18));
    running = true;
    deadline = Date.now() + MAX_SECONDS * 1000;
    burst();
  }

  return {
    // The topic a new connection is to join ('' for the control
    // connection, null for anything else).
    topicFor(url) {
      if (url === '/ctl') return '';
      const t = topicOf(url);
      return t >= 0 ? `t${t}` : null;
    },
    subscribed(conn, url) {
      subscribed++;
      const t = topicOf(url);
      if (samples[t] === undefined) samples[t] = conn;
    },
    unsubscribed(conn, url) {
      subscribed--;
      const t = topicOf(url);
      if (samples[t] === conn) samples[t] = undefined;
    },
    control(conn, text) {
      const w = String(text).trim().split(/\s+/);
      if (w[0] === 'go' && !running) {
        const want = Number(w[1]);
        const nTopics = Number(w[2]);
        const size = Number(w[3]);
        if (!(nTopics >= 1 && nTopics <= 9999 && size >= 18 && size <= 65535)) {
          impl.send(conn, 'error bad go');
          return;
        }
        const until = Date.now() + 10000;
        const wait = () => {
          if (subscribed >= want) {
            impl.send(conn, 'started');
            start(nTopics, size);
          } else if (Date.now() > until) {
            impl.send(conn, `error only ${subscribed} of ${want} subscribed after 10 s`);
          } else setTimeout(wait, 10);
        };
        wait();
      } else if (w[0] === 'stop') {
        running = false; // a pending burst sees it and ends
        if (process.env.FANOUT_DEBUG === '1') console.error(`published ${published} in ${turn} bursts, ${waits} put off`);
        impl.send(conn, `done ${published} ${dropped} ${seqs.join(' ')}`);
      }
    },
  };
}

// Started by bench/run.js, which holds our stdin open: exit when it goes.
function stdinGuard() {
  if (process.env.BENCH_STDIN_GUARD === '1') {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }
}

module.exports = { fanout, stdinGuard };
