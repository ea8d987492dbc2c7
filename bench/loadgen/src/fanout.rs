//! The receiving side of the topic tests: `fanout` and `backplane` modes.
//!
//! Both hold subscriber connections (path `/sub/<topic>`) and one control
//! connection (`/ctl`) to the publishing server, read as fast as they can,
//! and check every frame: an unfragmented text frame of exactly `--size`
//! bytes, `TTTT:SSSSSSSSSSSS:` (the connection's topic, then a sequence
//! number that must grow; a jump counts the skipped messages as lost),
//! [`NNNNNNNNNNNNNNNNNNNN:` the publisher's CLOCK_MONOTONIC in ns, backplane
//! mode], then `x` to the end.
//!
//! `fanout`: `--conns` subscribers over `--topics` topics (connection i on
//! topic i mod topics). `go <conns> <topics> <size>` on the control
//! connection; the server publishes as fast as it can. After `--warmup`,
//! frames received in `--seconds` give frames/s, and the server's CPU over
//! the same window. Then `stop`; the server answers how many messages it
//! published per topic, and the rest is read (bounded) to count losses.
//!
//! `backplane`: `--conns` subscribers on topic 0 of the server at `--port`
//! (process B); the control connection goes to `--pub-port` (process A):
//! `go <rate> <size> 0`. Once every subscriber has had a message, after
//! `--warmup`, every frame of the measured window gives a latency: this
//! process's CLOCK_MONOTONIC when the read returned − the stamp A took
//! just before its publish call. Loss: messages A published after a
//! connection's first one that never reached it. CPU of B (`--pid`), A
//! (`--pub-pid`) and Redis (`--redis-pid`) over the window.

use super::*;

const STALL: Duration = Duration::from_secs(5);

/// CLOCK_MONOTONIC in ns: the clock of Node's `process.hrtime` (libuv's
/// uv_hrtime) on Linux, so stamps from another process on this machine
/// compare directly.
fn mono_ns() -> u64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Sub {
    s: TcpStream,
    st: St,
    req: Vec<u8>,
    wpos: usize,
    head: Vec<u8>,
    /// An incomplete frame carried over to the next read.
    pend: Vec<u8>,
    /// Pongs and control messages waiting for the socket.
    out: Vec<u8>,
    topic: u64,
    next_seq: u64,
    first_seq: Option<u64>,
    recv: u64,
    /// Sequence numbers skipped (messages that did not arrive).
    skipped: u64,
    /// Control connection: text messages received.
    texts: VecDeque<String>,
    ctl: bool,
}

impl Sub {
    fn new(s: TcpStream, host: &IpAddr, port: u16, path: &str, topic: u64, ctl: bool) -> Sub {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        Sub {
            s,
            st: St::Handshaking,
            req,
            wpos: 0,
            head: Vec::new(),
            pend: Vec::new(),
            out: Vec::new(),
            topic,
            next_seq: 0,
            first_seq: None,
            recv: 0,
            skipped: 0,
            texts: VecDeque::new(),
            ctl,
        }
    }

    /// Writes what is due: the request while handshaking, then `out`.
    fn flush(&mut self) -> io::Result<()> {
        loop {
            let buf: &[u8] = if self.st == St::Handshaking { &self.req[self.wpos..] } else { &self.out[..] };
            if buf.is_empty() {
                return Ok(());
            }
            match self.s.write(buf) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
                Ok(n) => {
                    if self.st == St::Handshaking {
                        self.wpos += n;
                    } else {
                        self.out.drain(..n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues a masked client frame and tries to send it.
    fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut ends = VecDeque::new();
        push_frame(&mut self.out, &mut ends, 0x80 | opcode, [0x12, 0x34, 0x56, 0x78], payload);
        if self.st == St::Open {
            self.flush()?;
        }
        Ok(())
    }
}

/// Where a run is: the measured window starts at `warm_end` and ends at
/// `end`, checked after every connection served (a poll round can take a
/// while when every connection has much to read).
#[derive(PartialEq, Clone, Copy)]
enum Phase {
    Setup,
    Warmup,
    Measuring,
    Done,
}

/// What the frames must look like, and what to do with them.
struct Check<'a> {
    phase: Phase,
    warm_end: Instant,
    end: Instant,
    pids: &'a [(&'a str, Option<u32>)],
    c0: Option<Cpus>,
    c1: Option<Cpus>,
    size: usize,
    /// Backplane mode: a timestamp after the sequence number.
    stamped: bool,
    /// The expected `x` padding.
    pad: &'a [u8],
    /// Record latencies and count frames (the measured window).
    measuring: bool,
    window_frames: u64,
    hist: &'a mut Hist,
    /// Frames whose stamp is ahead of our clock (must stay 0: the clocks
    /// are the same).
    ahead: u64,
}

impl<'a> Check<'a> {
    fn new(size: usize, stamped: bool, pad: &'a [u8], hist: &'a mut Hist, pids: &'a [(&'a str, Option<u32>)]) -> Self {
        let now = Instant::now();
        Check {
            phase: Phase::Setup,
            warm_end: now,
            end: now,
            pids,
            c0: None,
            c1: None,
            size,
            stamped,
            pad,
            measuring: false,
            window_frames: 0,
            hist,
            ahead: 0,
        }
    }

    /// Starts the warm-up now, then `warmup` s later a window of `seconds`.
    fn start(&mut self, warmup: f64, seconds: f64) {
        self.phase = Phase::Warmup;
        self.warm_end = Instant::now() + Duration::from_secs_f64(warmup);
        self.end = self.warm_end + Duration::from_secs_f64(seconds);
        self.clock();
    }

    /// Opens or closes the measured window when its time has come.
    fn clock(&mut self) {
        match self.phase {
            Phase::Warmup if Instant::now() >= self.warm_end => {
                self.phase = Phase::Measuring;
                self.measuring = true;
                self.window_frames = 0;
                self.hist.clear();
                self.c0 = Some(cpus(self.pids));
            }
            Phase::Measuring if Instant::now() >= self.end => {
                self.phase = Phase::Done;
                self.measuring = false;
                self.c1 = Some(cpus(self.pids));
            }
            _ => {}
        }
    }
}

fn digits(b: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// Total length of the frame at the start of `b`, once its header is there.
fn frame_len(b: &[u8]) -> Result<Option<usize>, String> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[1] & 0x80 != 0 {
        return Err("server frame is masked".into());
    }
    let Some((hl, plen)) = frame_header(b) else {
        return Ok(None);
    };
    if plen > (1 << 24) {
        return Err(format!("absurd frame length {plen}"));
    }
    Ok(Some(hl + plen))
}

/// One complete frame `f` (header included) for connection `c`.
fn on_frame(c: &mut Sub, f: &[u8], now: u64, k: &mut Check) -> Result<(), String> {
    let (b0, b1) = (f[0], f[1]);
    let opcode = b0 & 0x0f;
    if b0 & 0x70 != 0 {
        return Err(format!("frame with RSV bits (0x{b0:02x})"));
    }
    let hl = match b1 & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let p = &f[hl..];
    match opcode {
        1 if c.ctl => {
            if b0 & 0x80 == 0 {
                return Err("fragmented control message".into());
            }
            c.texts.push_back(String::from_utf8_lossy(p).into_owned());
        }
        1 => {
            if b0 & 0x80 == 0 {
                return Err("fragmented message (a publish is one frame)".into());
            }
            if p.len() != k.size {
                return Err(format!("message of {} bytes, expected {}", p.len(), k.size));
            }
            let head = if k.stamped { 39 } else { 18 };
            if p[4] != b':' || p[17] != b':' || (k.stamped && p[38] != b':') || p[head..] != k.pad[..k.size - head] {
                return Err(format!("malformed message {:?}", String::from_utf8_lossy(&p[..head.min(p.len())])));
            }
            let topic = digits(&p[..4]).ok_or("bad topic digits")?;
            if topic != c.topic {
                return Err(format!("message of topic {topic} on a subscriber of topic {}", c.topic));
            }
            let seq = digits(&p[5..17]).ok_or("bad sequence digits")?;
            if c.first_seq.is_none() {
                c.first_seq = Some(seq);
                c.next_seq = seq;
            }
            if seq < c.next_seq {
                return Err(format!("sequence {seq} after {}: duplicate or out of order", c.next_seq - 1));
            }
            c.skipped += seq - c.next_seq;
            c.next_seq = seq + 1;
            c.recv += 1;
            if k.measuring {
                k.window_frames += 1;
                if k.stamped {
                    let ts = digits(&p[18..38]).ok_or("bad timestamp digits")?;
                    if ts > now {
                        k.ahead += 1;
                    } else {
                        k.hist.record(now - ts);
                    }
                }
            }
        }
        2 => return Err("binary frame (expected text)".into()),
        0 => return Err("continuation frame (a publish is one frame)".into()),
        8 => {
            let code = if p.len() >= 2 { u16::from_be_bytes([p[0], p[1]]) } else { 1005 };
            return Err(format!("server sent close {code} {:?}", String::from_utf8_lossy(&p[2.min(p.len())..])));
        }
        9 => {
            let payload = p.to_vec();
            c.send(10, &payload).map_err(|e| format!("pong: {e}"))?;
        }
        10 => {}
        _ => return Err(format!("unknown opcode {opcode}")),
    }
    Ok(())
}

/// Parses the bytes just read, `data`, after what `c.pend` holds.
fn on_bytes(c: &mut Sub, data: &[u8], now: u64, k: &mut Check) -> Result<(), String> {
    let mut off = 0;
    // First complete the frame carried over, taking only its bytes.
    while !c.pend.is_empty() && off < data.len() {
        match frame_len(&c.pend)? {
            None => {
                c.pend.push(data[off]);
                off += 1;
            }
            Some(total) => {
                let take = (total - c.pend.len()).min(data.len() - off);
                c.pend.extend_from_slice(&data[off..off + take]);
                off += take;
                if c.pend.len() == total {
                    let f = std::mem::take(&mut c.pend);
                    on_frame(c, &f, now, k)?;
                    c.pend = f;
                    c.pend.clear();
                }
            }
        }
    }
    // Then every whole frame in place; the tail is carried over.
    loop {
        let rest = &data[off..];
        match frame_len(rest)? {
            Some(total) if total <= rest.len() => {
                on_frame(c, &rest[..total], now, k)?;
                off += total;
            }
            _ => {
                c.pend.extend_from_slice(rest);
                return Ok(());
            }
        }
    }
}

/// Reads until the socket is drained, parsing as it goes.
fn read_sub(c: &mut Sub, scratch: &mut [u8], k: &mut Check) -> Result<(), String> {
    loop {
        match c.s.read(scratch) {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(n) => {
                on_bytes(c, &scratch[..n], mono_ns(), k)?;
                if n < scratch.len() {
                    return Ok(()); // drained (see read_all)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// The handshake's reply: Ok(true) once the head is complete and checked
/// (bytes after it are parsed as frames).
fn read_head(c: &mut Sub, scratch: &mut [u8], k: &mut Check) -> Result<bool, String> {
    loop {
        match c.s.read(scratch) {
            Ok(0) => return Err("server closed during the handshake".into()),
            Ok(n) => {
                c.head.extend_from_slice(&scratch[..n]);
                if let Some(end) = find_head_end(&c.head) {
                    check_response(&c.head[..end], false)?;
                    let rest = c.head.split_off(end);
                    c.head = Vec::new();
                    c.st = St::Open;
                    on_bytes(c, &rest, mono_ns(), k)?;
                    c.flush().map_err(|e| format!("write: {e}"))?;
                    return Ok(true);
                }
                if c.head.len() > 16 * 1024 {
                    return Err("handshake response head too large".into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// The connections, their poll and the scratch buffer; `conns[ctl]` is the
/// control connection.
struct Net {
    poll: Poll,
    events: Events,
    conns: Vec<Sub>,
    scratch: Vec<u8>,
    ctl: usize,
}

impl Net {
    /// Opens `subs` subscriber connections (to `port`, topic of each from
    /// `topic_of`) then the control connection (to `ctl_port`), `conc`
    /// handshakes at a time, within `deadline`.
    fn open(
        mode: &str,
        a: &Args,
        subs: usize,
        topic_of: impl Fn(usize) -> u64,
        ctl_port: u16,
        deadline: Instant,
        k: &mut Check,
    ) -> Net {
        let mut net = Net {
            poll: Poll::new().unwrap_or_else(|e| fail(mode, &format!("epoll: {e}"))),
            events: Events::with_capacity(4096),
            conns: Vec::with_capacity(subs + 1),
            scratch: vec![0; 256 * 1024],
            ctl: subs,
        };
        let (mut active, mut done) = (0usize, 0usize);
        while done < subs + 1 {
            while active < a.concurrency && net.conns.len() < subs + 1 {
                let id = net.conns.len();
                let ctl = id == subs;
                let port = if ctl { ctl_port } else { a.port };
                let mut s = TcpStream::connect(SocketAddr::new(a.host, port))
                    .unwrap_or_else(|e| fail(mode, &format!("connect #{id}: {e}")));
                net.poll
                    .registry()
                    .register(&mut s, Token(id), Interest::READABLE | Interest::WRITABLE)
                    .unwrap_or_else(|e| fail(mode, &format!("register: {e}")));
                let topic = if ctl { 0 } else { topic_of(id) };
                let path = if ctl { "/ctl".to_string() } else { format!("/sub/{topic}") };
                let mut c = Sub::new(s, &a.host, port, &path, topic, ctl);
                if let Err(e) = c.flush() {
                    fail(mode, &format!("write #{id}: {e}"));
                }
                net.conns.push(c);
                active += 1;
            }
            let now = Instant::now();
            if now >= deadline {
                fail(mode, &format!("timeout: {done} of {} connections open", subs + 1));
            }
            net.poll
                .poll(&mut net.events, Some((deadline - now).min(Duration::from_millis(100))))
                .unwrap_or_else(|e| fail(mode, &format!("poll: {e}")));
            for ev in net.events.iter() {
                let id = ev.token().0;
                let c = &mut net.conns[id];
                if c.st == St::Handshaking {
                    if c.wpos < c.req.len() {
                        if let Err(e) = c.flush() {
                            fail(mode, &format!("write #{id}: {e}"));
                        }
                        if c.wpos < c.req.len() {
                            continue;
                        }
                    }
                    match read_head(c, &mut net.scratch, k) {
                        Ok(true) => {
                            let _ = c.s.set_nodelay(true);
                            active -= 1;
                            done += 1;
                        }
                        Ok(false) => {}
                        Err(e) => fail(mode, &format!("#{id}: {e}")),
                    }
                } else if let Err(e) = net_service(c, ev, &mut net.scratch, k) {
                    fail(mode, &format!("#{id}: {e}"));
                }
            }
        }
        net
    }

    /// One poll round (at most `wait`): reads every readable connection.
    fn round(&mut self, mode: &str, wait: Duration, k: &mut Check) {
        self.poll
            .poll(&mut self.events, Some(wait))
            .unwrap_or_else(|e| fail(mode, &format!("poll: {e}")));
        for ev in self.events.iter() {
            let id = ev.token().0;
            if let Err(e) = net_service(&mut self.conns[id], ev, &mut self.scratch, k) {
                fail(mode, &format!("connection {id}: {e}"));
            }
            k.clock();
        }
        k.clock();
    }

    fn send_ctl(&mut self, mode: &str, text: &str) {
        let c = &mut self.conns[self.ctl];
        c.send(1, text.as_bytes()).unwrap_or_else(|e| fail(mode, &format!("control: write: {e}")));
    }

    /// Waits (bounded) for a control message; polls the others meanwhile.
    fn ctl_reply(&mut self, mode: &str, within: Duration, k: &mut Check) -> String {
        let until = Instant::now() + within;
        loop {
            if let Some(t) = self.conns[self.ctl].texts.pop_front() {
                if let Some(e) = t.strip_prefix("error") {
                    fail(mode, &format!("the server says:{e}"));
                }
                return t;
            }
            let now = Instant::now();
            if now >= until {
                fail(mode, &format!("no answer on the control connection within {:.0}s", within.as_secs_f64()));
            }
            self.round(mode, (until - now).min(Duration::from_millis(50)), k);
        }
    }

    fn subs(&self) -> &[Sub] {
        &self.conns[..self.ctl]
    }

    /// Reads on until `expected` messages have come, for at most 10 s and
    /// while something still arrives every 2 s.
    fn drain(&mut self, mode: &str, expected: u64, k: &mut Check) {
        let end = Instant::now() + Duration::from_secs(10);
        let mut last = (self.received(), Instant::now());
        while self.received() < expected {
            let now = Instant::now();
            if now >= end || now - last.1 > Duration::from_secs(2) {
                break;
            }
            self.round(mode, Duration::from_millis(20), k);
            if self.received() != last.0 {
                last = (self.received(), Instant::now());
            }
        }
    }

    fn received(&self) -> u64 {
        self.subs().iter().map(|c| c.recv).sum()
    }
}

fn net_service(c: &mut Sub, ev: &mio::event::Event, scratch: &mut [u8], k: &mut Check) -> Result<(), String> {
    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
        read_sub(c, scratch, k)?;
    }
    if !c.out.is_empty() {
        c.flush().map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

/// CPU over [s0, s1] of the extra processes (name, pid, before, after), and
/// the rest of the machine with them taken out as well.
struct Cpus {
    wall: Instant,
    me: f64,
    busy: Option<f64>,
    procs: Vec<Option<f64>>,
}

fn cpus(pids: &[(&str, Option<u32>)]) -> Cpus {
    Cpus {
        wall: Instant::now(),
        me: self_cpu(),
        busy: machine_busy(),
        procs: pids.iter().map(|(_, p)| p.and_then(proc_cpu)).collect(),
    }
}

/// Adds `client_cpu`, `<name>` (CPU ÷ wall of each process, in cores),
/// `<name>_s` (CPU-seconds) and `other_cpu` (the rest of the machine).
fn cpus_json(j: &mut Json, pids: &[(&str, Option<u32>)], c0: &Cpus, c1: &Cpus) -> f64 {
    let wall = c1.wall.duration_since(c0.wall).as_secs_f64();
    let me = c1.me - c0.me;
    j.n("client_cpu", me / wall);
    let mut known = me;
    for (i, (name, _)) in pids.iter().enumerate() {
        if let (Some(a), Some(b)) = (c0.procs[i], c1.procs[i]) {
            j.n(name, (b - a) / wall).n(&format!("{name}_s"), b - a);
            known += b - a;
        }
    }
    if let (Some(b0), Some(b1)) = (c0.busy, c1.busy) {
        j.n("machine_cpu", (b1 - b0) / wall).n("other_cpu", ((b1 - b0) - known).max(0.0) / wall);
    }
    wall
}

fn check_nofile(mode: &str, n: usize) {
    if nofile() < n as u64 + 16 {
        fail(mode, &format!("RLIMIT_NOFILE {} is too low for {n} connections", nofile()));
    }
}

/// Warm-up, then the measured window (`k.clock` opens and closes it);
/// fails when no message arrives for `STALL`.
fn measure(mode: &str, a: &Args, net: &mut Net, k: &mut Check) {
    k.start(a.warmup, a.seconds);
    let (mut last_total, mut last_progress) = (net.received(), Instant::now());
    while k.phase != Phase::Done {
        let now = Instant::now();
        let total = net.received();
        if total != last_total {
            (last_total, last_progress) = (total, now);
        } else if now - last_progress > STALL {
            fail(mode, &format!("stalled: no message for {}s ({total} received)", STALL.as_secs()));
        }
        let next = if k.phase == Phase::Warmup { k.warm_end } else { k.end };
        net.round(mode, next.saturating_duration_since(now).min(Duration::from_millis(100)), k);
    }
}

pub fn run_fanout(a: &Args) {
    const MODE: &str = "fanout";
    let topics = a.topics.max(1);
    check_nofile(MODE, a.conns + 1);
    let pad = vec![b'x'; a.size];
    let mut hist = Hist::new();
    let pids = [("server_cpu", a.pid)];
    let mut k = Check::new(a.size, false, &pad, &mut hist, &pids);
    if a.size < 18 {
        fail(MODE, "--size must be at least 18");
    }
    let t_open = Instant::now();
    let deadline = t_open + Duration::from_secs_f64(a.timeout);
    let mut net = Net::open(MODE, a, a.conns, |i| (i % topics) as u64, a.port, deadline, &mut k);
    let open_s = t_open.elapsed().as_secs_f64();
    net.send_ctl(MODE, &format!("go {} {topics} {}", a.conns, a.size));
    let r = net.ctl_reply(MODE, Duration::from_secs(15), &mut k);
    if r != "started" {
        fail(MODE, &format!("unexpected control answer {r:?}"));
    }
    measure(MODE, a, &mut net, &mut k);
    let window = k.window_frames;

    // Stop, learn what was published, read the rest (bounded) and count.
    net.send_ctl(MODE, "stop");
    let done = net.ctl_reply(MODE, Duration::from_secs(10), &mut k);
    let w: Vec<u64> = done.split_ascii_whitespace().skip(1).map(|x| x.parse().unwrap_or(u64::MAX)).collect();
    if !done.starts_with("done ") || w.len() != 2 + topics || w.contains(&u64::MAX) {
        fail(MODE, &format!("unexpected control answer {:?}", &done[..done.len().min(200)]));
    }
    let (published, server_dropped, per_topic) = (w[0], w[1], &w[2..]);
    let expected: u64 = net.subs().iter().map(|c| per_topic[c.topic as usize]).sum();
    net.drain(MODE, expected, &mut k);
    let received = net.received();
    if received > expected {
        fail(MODE, &format!("received {received} messages, more than the {expected} published to these subscribers"));
    }
    let skipped: u64 = net.subs().iter().map(|c| c.skipped).sum();

    let mut j = Json::new();
    j.s("mode", MODE)
        .b("ok", true)
        .u("conns", a.conns as u64)
        .u("topics", topics as u64)
        .u("size", a.size as u64)
        .n("open_s", open_s);
    let wall = cpus_json(&mut j, &pids, k.c0.as_ref().expect("window"), k.c1.as_ref().expect("window"));
    j.n("seconds", wall)
        .u("frames", window)
        .n("frames_per_s", window as f64 / wall)
        .n("mb_per_s", window as f64 * a.size as f64 / wall / 1e6)
        .u("published", published)
        .u("expected", expected)
        .u("received", received)
        .u("lost", expected - received)
        .u("skipped", skipped)
        .u("server_dropped", server_dropped)
        .n("lost_pct", (expected - received) as f64 * 100.0 / expected.max(1) as f64);
    println!("{}", j.finish());
    for c in net.conns.iter() {
        set_linger0(&c.s);
    }
}

pub fn run_backplane(a: &Args) {
    const MODE: &str = "backplane";
    check_nofile(MODE, a.conns + 1);
    if a.pub_port == 0 {
        fail(MODE, "--pub-port (the publishing process) is required");
    }
    if a.size < 39 {
        fail(MODE, "--size must be at least 39");
    }
    let pad = vec![b'x'; a.size];
    let mut hist = Hist::new();
    let pids = [("server_cpu", a.pid), ("pub_cpu", a.pub_pid), ("redis_cpu", a.redis_pid)];
    let mut k = Check::new(a.size, true, &pad, &mut hist, &pids);
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let mut net = Net::open(MODE, a, a.conns, |_| 0, a.pub_port, deadline, &mut k);
    net.send_ctl(MODE, &format!("go {} {} 0", a.rate, a.size));
    let r = net.ctl_reply(MODE, Duration::from_secs(15), &mut k);
    if r != "started" {
        fail(MODE, &format!("unexpected control answer {r:?}"));
    }

    // Every subscriber has had a message: B's subscription reached Redis.
    let first_by = Instant::now() + Duration::from_secs(10);
    while net.subs().iter().any(|c| c.first_seq.is_none()) {
        let now = Instant::now();
        if now >= first_by {
            let n = net.subs().iter().filter(|c| c.first_seq.is_none()).count();
            fail(MODE, &format!("{n} of {} subscribers had no message 10 s after go", a.conns));
        }
        net.round(MODE, Duration::from_millis(20), &mut k);
    }
    measure(MODE, a, &mut net, &mut k);
    let window = k.window_frames;

    net.send_ctl(MODE, "stop");
    let done = net.ctl_reply(MODE, Duration::from_secs(10), &mut k);
    let published: u64 = match done.strip_prefix("done ").and_then(|x| x.trim().parse().ok()) {
        Some(p) => p,
        None => fail(MODE, &format!("unexpected control answer {done:?}")),
    };
    // Each subscriber is owed every message from its first one on.
    let owed = |net: &Net| -> u64 { net.subs().iter().map(|c| published - c.first_seq.unwrap_or(published)).sum() };
    let expected = owed(&net);
    net.drain(MODE, expected, &mut k);
    let received = net.received();
    if received > expected {
        fail(MODE, &format!("received {received} messages, more than the {expected} published since each subscriber's first"));
    }
    if k.ahead > 0 {
        fail(MODE, &format!("{} stamps ahead of this process's clock: the publisher's clock is not CLOCK_MONOTONIC", k.ahead));
    }

    let mut j = Json::new();
    j.s("mode", MODE).b("ok", true).u("conns", a.conns as u64).u("size", a.size as u64).u("rate", a.rate);
    let wall = cpus_json(&mut j, &pids, k.c0.as_ref().expect("window"), k.c1.as_ref().expect("window"));
    j.n("seconds", wall)
        .u("frames", window)
        .n("frames_per_s", window as f64 / wall)
        // Messages per second reaching each subscriber (the publisher's pace
        // if nothing fell behind).
        .n("msgs_per_s", window as f64 / wall / a.conns as f64)
        .n("p50_us", k.hist.quantile(0.50) as f64 / 1e3)
        .n("p99_us", k.hist.quantile(0.99) as f64 / 1e3)
        .n("p999_us", k.hist.quantile(0.999) as f64 / 1e3)
        .n("max_us", k.hist.max as f64 / 1e3)
        .u("published", published)
        .u("expected", expected)
        .u("received", received)
        .u("lost", expected - received)
        .n("lost_pct", (expected - received) as f64 * 100.0 / expected.max(1) as f64);
    println!("{}", j.finish());
    for c in net.conns.iter() {
        set_linger0(&c.s);
    }
}
