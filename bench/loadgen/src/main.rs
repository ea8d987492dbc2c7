//! sack-loadgen: a single-threaded WebSocket load generator for loopback
//! benchmarks.
//!
//! Modes:
//!   echo     N connections, each keeping D messages in flight; every echo is
//!            checked (type, length, bytes, order). Reports msgs/s, latency
//!            percentiles, the generator's and the server's CPU share.
//!   connect  N connections opened at concurrency K, held idle; reports
//!            handshakes/s and the server's RSS growth per idle connection.
//!   fanout   N subscribers over T topics; the server publishes as fast as
//!            it can; reports frames received/s and losses (fanout.rs).
//!   backplane  N subscribers on one process, a paced publisher on another
//!            (Redis between them); reports publish-to-receive latency,
//!            losses, and the CPU of both processes and Redis (fanout.rs).
//!
//! `--tls full|resume` speaks TLS 1.3 (rustls) to the server: full
//! handshakes every time, or sessions resumed by ticket after the first.
//!
//! `--writes batched|per-frame` (echo): every frame due on a connection
//! goes out in one write (the default), or each frame in a write of its own.
//! `--type json` sends ~`--size` bytes of JSON text, different per message;
//! `--deflate 1` offers permessage-deflate, compresses every message with
//! context takeover (as browsers do) and inflates the echoes.
//!
//! One JSON line goes to stdout per run; exit status 0 when the run was
//! clean, 1 when it failed (the JSON then has `"ok":false` and `"error"`),
//! 2 for bad arguments. Only loopback addresses are accepted, and every
//! phase is bounded in time.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod fanout;

// RFC 6455 §1.3's example key; the Accept value for it is fixed.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const HEX: &[u8; 16] = b"0123456789abcdef";

// ---------------------------------------------------------------- args

struct Args {
    mode: String,
    host: IpAddr,
    port: u16,
    path: String,
    pid: Option<u32>,
    conns: usize,
    depth: usize,
    size: usize,
    binary: bool,
    /// Text payloads of generated JSON, different per message (`--type json`).
    json: bool,
    /// One write(2) per frame instead of one per connection and wake-up.
    per_frame: bool,
    /// Offer permessage-deflate and compress every message.
    deflate: bool,
    /// Read the server's RSS before connecting (echo), for RSS per connection.
    rss: bool,
    seconds: f64,
    warmup: f64,
    concurrency: usize,
    hold: f64,
    timeout: f64,
    stall: f64,
    spin: bool,
    /// "" (plain), "full" (TLS, every handshake full) or "resume" (TLS,
    /// sessions resumed by ticket).
    tls: String,
    /// fanout: topics the subscribers are spread over.
    topics: usize,
    /// backplane: messages per second the publisher is asked for.
    rate: u64,
    /// backplane: the publishing process's port and pid, and Redis's pid.
    pub_port: u16,
    pub_pid: Option<u32>,
    redis_pid: Option<u32>,
}

fn usage() -> ! {
    eprintln!(
        "usage:\n  sack-loadgen echo --port P [--host 127.0.0.1] [--pid SERVER_PID] [--conns 64] [--depth 16]\n               [--size 32] [--type text|binary|json] [--seconds 5] [--warmup 1] [--timeout 30] [--stall 5]\n               [--spin 0|1]  (1: poll without sleeping, for latency runs) [--tls full|resume]\n               [--writes batched|per-frame] [--deflate 0|1] [--rss 0|1]\n  sack-loadgen connect --port P [--pid SERVER_PID] [--conns 10000] [--concurrency 100] [--hold 2] [--timeout 120] [--tls full|resume]\n  sack-loadgen fanout --port P [--pid SERVER_PID] [--conns 10000] [--topics 100] [--size 100] [--seconds 5] [--warmup 1] [--concurrency 100]\n  sack-loadgen backplane --port B --pub-port A [--pid B_PID] [--pub-pid A_PID] [--redis-pid PID] [--conns 100] [--rate 50000] [--size 100] [--seconds 5] [--warmup 1]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_else(|| usage());
    if !matches!(mode.as_str(), "echo" | "connect" | "fanout" | "backplane") {
        usage();
    }
    let mut a = Args {
        mode: mode.clone(),
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        path: "/".into(),
        pid: None,
        conns: if mode == "echo" { 64 } else { 10_000 },
        depth: 16,
        size: 32,
        binary: false,
        json: false,
        per_frame: false,
        deflate: false,
        rss: false,
        seconds: 5.0,
        warmup: 1.0,
        concurrency: 100,
        hold: 2.0,
        timeout: if mode == "echo" { 30.0 } else { 120.0 },
        stall: 5.0,
        spin: false,
        tls: String::new(),
        topics: 100,
        rate: 50_000,
        pub_port: 0,
        pub_pid: None,
        redis_pid: None,
    };
    if mode == "fanout" || mode == "backplane" {
        a.size = 100;
        a.conns = if mode == "fanout" { 10_000 } else { 100 };
        a.timeout = 120.0;
    }
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| -> f64 {
            v.parse::<f64>().unwrap_or_else(|_| {
                eprintln!("bad number for {k}: {v}");
                std::process::exit(2)
            })
        };
        match k.as_str() {
            "--host" => a.host = v.parse().unwrap_or_else(|_| usage()),
            "--port" => a.port = num(&v) as u16,
            "--path" => a.path = v,
            "--pid" => a.pid = Some(num(&v) as u32),
            "--conns" => a.conns = num(&v) as usize,
            "--depth" => a.depth = num(&v) as usize,
            "--size" => a.size = num(&v) as usize,
            "--type" => {
                (a.binary, a.json) = match v.as_str() {
                    "text" => (false, false),
                    "binary" => (true, false),
                    "json" => (false, true),
                    _ => usage(),
                }
            }
            "--writes" => {
                a.per_frame = match v.as_str() {
                    "batched" => false,
                    "per-frame" => true,
                    _ => usage(),
                }
            }
            "--deflate" => a.deflate = v == "1" || v == "true",
            "--rss" => a.rss = v == "1" || v == "true",
            "--seconds" => a.seconds = num(&v),
            "--warmup" => a.warmup = num(&v),
            "--concurrency" => a.concurrency = num(&v) as usize,
            "--hold" => a.hold = num(&v),
            "--timeout" => a.timeout = num(&v),
            "--stall" => a.stall = num(&v),
            "--spin" => a.spin = v == "1" || v == "true",
            "--tls" if v == "full" || v == "resume" => a.tls = v,
            "--topics" => a.topics = num(&v) as usize,
            "--rate" => a.rate = num(&v) as u64,
            "--pub-port" => a.pub_port = num(&v) as u16,
            "--pub-pid" => a.pub_pid = Some(num(&v) as u32),
            "--redis-pid" => a.redis_pid = Some(num(&v) as u32),
            _ => usage(),
        }
    }
    if a.port == 0 || a.conns == 0 || a.depth == 0 || a.size == 0 || a.concurrency == 0 || a.rate == 0 || a.topics == 0 {
        eprintln!("port, conns, depth, size, concurrency, rate and topics must be > 0");
        std::process::exit(2)
    }
    // Loopback only: this tool never sends traffic off the machine.
    if !a.host.is_loopback() {
        eprintln!("refusing non-loopback host {}", a.host);
        std::process::exit(2)
    }
    // Bounded in time, always.
    a.seconds = a.seconds.clamp(0.1, 600.0);
    a.warmup = a.warmup.clamp(0.0, 60.0);
    a.hold = a.hold.clamp(0.0, 60.0);
    a.timeout = a.timeout.clamp(1.0, 600.0);
    a.stall = a.stall.clamp(0.5, 60.0);
    a
}

// ---------------------------------------------------------------- output

struct Json(String);

impl Json {
    fn new() -> Self {
        Json(String::from("{"))
    }
    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "\"{k}\":");
    }
    fn s(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.0.push('"');
        for c in v.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }
    fn n(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.0, "{}", (v * 1000.0).round() / 1000.0);
        } else {
            self.0.push_str("null");
        }
        self
    }
    fn u(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let _ = write!(self.0, "{v}");
        self
    }
    fn b(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.0.push_str(if v { "true" } else { "false" });
        self
    }
    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

// ---------------------------------------------------------------- CPU, RSS

fn clk_tck() -> f64 {
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime+stime of a process (all its threads, live and dead), in seconds.
fn proc_cpu(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "comm", which may contain spaces, closed by the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clk_tck())
}

fn proc_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

fn self_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Busy CPU-seconds of the whole machine (all cores, /proc/stat "cpu"
/// line: everything but idle and iowait, steal included).
fn machine_busy() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let f: Vec<f64> = line.split_ascii_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if f.len() < 8 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is in user)
    Some((f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / clk_tck())
}

#[derive(Clone, Copy)]
struct Snap {
    wall: Instant,
    me: f64,
    server: Option<f64>,
    busy: Option<f64>,
}

fn snap(pid: Option<u32>) -> Snap {
    Snap { wall: Instant::now(), me: self_cpu(), server: pid.and_then(proc_cpu), busy: machine_busy() }
}

/// CPU shares over [s0, s1]: the generator's, the server's, and the rest of
/// the machine's (other processes, and kernel work no process is charged
/// for), each in cores.
fn cpu_json(j: &mut Json, s0: &Snap, s1: &Snap) {
    let wall = s1.wall.duration_since(s0.wall).as_secs_f64();
    let me = s1.me - s0.me;
    j.n("client_cpu", me / wall);
    let server = match (s0.server, s1.server) {
        (Some(x0), Some(x1)) => {
            j.n("server_cpu", (x1 - x0) / wall).n("server_cpu_s", x1 - x0);
            x1 - x0
        }
        _ => 0.0,
    };
    if let (Some(b0), Some(b1)) = (s0.busy, s1.busy) {
        j.n("machine_cpu", (b1 - b0) / wall).n("other_cpu", ((b1 - b0) - server - me).max(0.0) / wall);
    }
}

fn raise_nofile() {
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn nofile() -> u64 {
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur as u64
    }
}

/// Close with RST instead of FIN, so that thousands of closed connections
/// leave no TIME_WAIT entries behind on the client side.
fn set_linger0(s: &TcpStream) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

// ---------------------------------------------------------------- histogram

/// Log-linear histogram of nanoseconds: 64 sub-buckets per power of two
/// (under 1.6 % error), no allocation after construction.
struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Hist {
    fn new() -> Self {
        Hist { counts: vec![0; 59 * 64], total: 0, max: 0 }
    }
    #[inline]
    fn idx(v: u64) -> usize {
        if v < 64 {
            v as usize
        } else {
            let e = 63 - v.leading_zeros();
            let sub = (v >> (e - 6)) & 63;
            ((e - 5) as usize) * 64 + sub as usize
        }
    }
    fn mid(i: usize) -> u64 {
        if i < 64 {
            i as u64
        } else {
            let e = (i / 64) as u32 + 5;
            let sub = (i % 64) as u64;
            let w = 1u64 << (e - 6);
            ((64 + sub) << (e - 6)) + w / 2
        }
    }
    #[inline]
    fn record(&mut self, v: u64) {
        self.counts[Self::idx(v)] += 1;
        self.total += 1;
        if v > self.max {
            self.max = v;
        }
    }
    fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max = 0;
    }
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let want = ((q * self.total as f64).ceil() as u64).max(1);
        let mut acc = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= want {
                return Self::mid(i).min(self.max);
            }
        }
        self.max
    }
}

// ---------------------------------------------------------------- handshake

fn request(a: &Args) -> Vec<u8> {
    // The offer browsers make (Chrome, Firefox).
    let ext = if a.deflate && a.mode == "echo" {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n",
        a.path, a.host, a.port
    )
    .into_bytes()
}

/// What the server's permessage-deflate response asked of us (RFC 7692).
#[derive(Clone, Debug)]
struct Pmd {
    /// The server resets its compressor per message (our inflater then too).
    server_nct: bool,
    /// We must reset our compressor per message.
    client_nct: bool,
    /// Our compressor's window (client_max_window_bits, 15 if not given).
    client_bits: u8,
    /// The header value, for the report.
    text: String,
}

/// Parses a Sec-WebSocket-Extensions response value to our offer of
/// `permessage-deflate; client_max_window_bits`.
fn parse_pmd(value: &str) -> Result<Pmd, String> {
    if value.contains(',') {
        return Err(format!("handshake: more than one extension accepted: {value:?}"));
    }
    let mut parts = value.split(';').map(str::trim);
    if parts.next() != Some("permessage-deflate") {
        return Err(format!("handshake: unexpected extension {value:?}"));
    }
    let mut p = Pmd { server_nct: false, client_nct: false, client_bits: 15, text: value.to_string() };
    for param in parts.filter(|x| !x.is_empty()) {
        let (name, v) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let bits = |v: Option<&str>| -> Result<u8, String> {
            match v.and_then(|v| v.parse::<u8>().ok()) {
                Some(b @ 8..=15) => Ok(b),
                _ => Err(format!("handshake: bad {name} in {value:?}")),
            }
        };
        match name {
            "server_no_context_takeover" => p.server_nct = true,
            "client_no_context_takeover" => p.client_nct = true,
            "server_max_window_bits" => {
                bits(v)?; // we inflate with a 32 KiB window: any size will do
            }
            "client_max_window_bits" => p.client_bits = bits(v)?,
            _ => return Err(format!("handshake: unknown permessage-deflate parameter in {value:?}")),
        }
    }
    Ok(p)
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Checks a complete response head: 101, Upgrade, Connection, the Accept
/// value for our key, and no extension but permessage-deflate when it was
/// offered (returned when the server accepted it).
fn check_response(head: &[u8], offered_deflate: bool) -> Result<Option<Pmd>, String> {
    let text = std::str::from_utf8(head).map_err(|_| "handshake response is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.splitn(3, ' ');
    let (ver, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !ver.starts_with("HTTP/1.") || code != "101" {
        return Err(format!("handshake: expected 101, got {status:?}"));
    }
    let (mut accept, mut upgrade, mut connection, mut pmd) = (None, false, false, None);
    for l in lines {
        let Some((name, value)) = l.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "sec-websocket-accept" => accept = Some(value.to_string()),
            "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
            "connection" => {
                connection = value.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            }
            "sec-websocket-extensions" if !value.is_empty() => {
                if !offered_deflate || pmd.is_some() {
                    return Err(format!("handshake: unexpected extension {value:?}"));
                }
                pmd = Some(parse_pmd(value)?);
            }
            _ => {}
        }
    }
    match accept {
        Some(v) if v == ACCEPT => {}
        Some(v) => return Err(format!("handshake: wrong Sec-WebSocket-Accept {v:?}")),
        None => return Err("handshake: no Sec-WebSocket-Accept".into()),
    }
    if !upgrade {
        return Err("handshake: missing Upgrade: websocket".into());
    }
    if !connection {
        return Err("handshake: missing Connection: Upgrade".into());
    }
    Ok(pmd)
}

/// Whether a non-blocking connect has completed (Ok(true)), is still in
/// progress (Ok(false)) or failed.
fn connect_done(s: &TcpStream) -> io::Result<bool> {
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    match s.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(false),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- TLS

/// A connection's byte stream: the socket, or a rustls client session over
/// it (`--tls`). Reads and writes are non-blocking either way.
struct Wire {
    s: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Wire {
    fn new(s: TcpStream, tls: Option<&Arc<rustls::ClientConfig>>) -> Wire {
        let tls = tls.map(|cfg| {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("a valid name");
            Box::new(rustls::ClientConnection::new(cfg.clone(), name).unwrap_or_else(|e| fail("tls", &e.to_string())))
        });
        Wire { s, tls }
    }

    fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether encrypted bytes wait for the socket.
    fn pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Sends what the session holds, as far as the socket takes it.
    fn flush_tls(&mut self) -> io::Result<()> {
        let Some(t) = self.tls.as_mut() else { return Ok(()) };
        while t.wants_write() {
            match t.write_tls(&mut self.s) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.s.read(buf);
        }
        loop {
            let t = self.tls.as_mut().expect("tls");
            match t.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match t.read_tls(&mut self.s) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    t.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    // Handshake messages and alerts to answer.
                    self.flush_tls()?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Wire {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.s.write(data);
        }
        let n = self.tls.as_mut().expect("tls").writer().write(data)?;
        self.flush_tls()?;
        if n == 0 && !data.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}

/// Accepts any certificate: a loopback benchmark of the server's TLS cost,
/// not of certificate checks (signatures are still verified).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration for `--tls full` (every handshake a full one)
/// or `--tls resume` (sessions resumed by ticket after the first).
fn tls_config(mode: &str) -> Option<Arc<rustls::ClientConfig>> {
    if mode.is_empty() {
        return None;
    }
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    // X25519, as browsers and Node offer first (ring's default is P-384).
    provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let provider = Arc::new(provider);
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap_or_else(|e| fail("tls", &e.to_string()))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    if mode == "full" {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Some(Arc::new(cfg))
}

// ---------------------------------------------------------------- echo

#[derive(PartialEq, Clone, Copy)]
enum St {
    Connecting,
    Handshaking,
    Open,
}

/// A connection's permessage-deflate state: both directions keep their
/// window across messages unless the server asked otherwise.
struct Z {
    comp: Compress,
    decomp: Decompress,
    /// The last compressed message (sent) and inflated echo (received).
    zout: Vec<u8>,
    zin: Vec<u8>,
    pmd: Pmd,
}

impl Z {
    fn new(pmd: Pmd) -> Z {
        // zlib cannot make a raw deflate stream with a 256-byte window; no
        // server here asks for one.
        let bits = pmd.client_bits.max(9);
        Z {
            // Level 6 (zlib's default), as Chromium's deflater uses.
            comp: Compress::new_with_window_bits(Compression::new(6), false, bits),
            decomp: Decompress::new_with_window_bits(false, 15),
            zout: Vec::with_capacity(8192),
            zin: Vec::with_capacity(8192),
            pmd,
        }
    }

    /// Compresses one message into `zout` (RFC 7692 §7.2.1: a sync flush,
    /// its 00 00 ff ff tail removed).
    fn deflate(&mut self, msg: &[u8]) -> Result<(), String> {
        if self.pmd.client_nct {
            self.comp.reset();
        }
        self.zout.clear();
        let mut inp = msg;
        for _ in 0..10_000 {
            if self.zout.capacity() - self.zout.len() < 64 {
                self.zout.reserve(inp.len() / 2 + 256);
            }
            let before = self.comp.total_in();
            let st = self
                .comp
                .compress_vec(inp, &mut self.zout, FlushCompress::Sync)
                .map_err(|e| format!("deflate: {e}"))?;
            inp = &inp[(self.comp.total_in() - before) as usize..];
            if inp.is_empty() && (self.zout.len() < self.zout.capacity() || st == Status::BufError) {
                if !self.zout.ends_with(&[0, 0, 0xff, 0xff]) {
                    return Err("deflate: the sync flush left no 00 00 ff ff tail".into());
                }
                self.zout.truncate(self.zout.len() - 4);
                return Ok(());
            }
        }
        Err("deflate: no progress".into())
    }

    /// Inflates one compressed message (its tail appended to `data`) into
    /// `zin`; at most `limit` bytes.
    fn inflate(&mut self, data: &mut Vec<u8>, limit: usize) -> Result<(), String> {
        data.extend_from_slice(&[0, 0, 0xff, 0xff]);
        self.zin.clear();
        let mut inp = &data[..];
        for _ in 0..100_000 {
            if self.zin.capacity() - self.zin.len() < 1024 {
                self.zin.reserve(inp.len() * 4 + 4096);
            }
            let before = self.decomp.total_in();
            let st = self
                .decomp
                .decompress_vec(inp, &mut self.zin, FlushDecompress::Sync)
                .map_err(|e| format!("inflate: {e}"))?;
            inp = &inp[(self.decomp.total_in() - before) as usize..];
            if self.zin.len() > limit {
                return Err(format!("inflated echo longer than {limit} bytes"));
            }
            if st == Status::StreamEnd {
                // A final block: the next message starts a new stream.
                self.decomp.reset(false);
                return Ok(());
            }
            if inp.is_empty() && (self.zin.len() < self.zin.capacity() || st == Status::BufError) {
                return Ok(());
            }
        }
        Err("inflate: no progress".into())
    }
}

struct Conn {
    s: Wire,
    st: St,
    id: usize,
    rbuf: Vec<u8>,
    rlo: usize,
    rhi: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// End offsets in `wbuf` of the frames queued there (`--writes
    /// per-frame` writes up to the next one per system call).
    ends: VecDeque<usize>,
    /// Messages sent / echoes received; their difference is in flight.
    sent: u64,
    recv: u64,
    /// Send time (ns since start) of message `seq` at `ring[seq % depth]`.
    ring: Vec<u64>,
    /// The whole client frame, already masked with `mask`; per message only
    /// the sequence number is patched in.
    frame: Vec<u8>,
    poff: usize,
    mask: [u8; 4],
    /// The payload the echo must carry, but for its first `hl` bytes (the
    /// sequence number, checked against `hdr`).
    expect: Vec<u8>,
    hdr: [u8; 16],
    in_msg: bool,
    msg_off: usize,
    /// Generic path (`--type json`, `--deflate`): message `seq` as sent, at
    /// `msgs[seq % depth]`; the echo being received and whether it is
    /// compressed (RSV1).
    msgs: Vec<Vec<u8>>,
    rmsg: Vec<u8>,
    rsv1: bool,
    z: Option<Box<Z>>,
    /// Message bytes (uncompressed) and bytes on the wire, each way.
    payload_out: u64,
    payload_in: u64,
    wire_out: u64,
    wire_in: u64,
}

struct Echo {
    depth: usize,
    size: usize,
    binary: bool,
    hl: usize,
    /// Whole messages built, kept and compared per message (JSON or
    /// deflate), instead of the patched template frame.
    generic: bool,
    json: bool,
}

/// Deterministic JSON text of about `size` bytes (exactly, when size allows
/// the envelope) for message `seq` of connection `conn`: an array of user
/// records whose ids, names, times, scores and tags come from a PRNG seeded
/// by both, so that every message differs and compresses as API data does.
fn json_msg(conn: usize, seq: u64, size: usize, out: &mut Vec<u8>) {
    const FIRST: [&str; 16] = [
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Ken", "Dennis", "Margaret", "Linus", "Radia",
        "Frances", "John", "Leslie", "Niklaus", "Tony",
    ];
    const LAST: [&str; 16] = [
        "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Thompson", "Ritchie", "Hamilton",
        "Torvalds", "Perlman", "Allen", "McCarthy", "Lamport", "Wirth", "Hoare",
    ];
    const ROLES: [&str; 5] = ["admin", "editor", "viewer", "owner", "guest"];
    const TAGS: [&str; 12] =
        ["alpha", "beta", "stable", "urgent", "billing", "search", "mobile", "web", "api", "infra", "eu", "us"];
    const ALNUM: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = (conn as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x5851_F42D;
    let mut rnd = move || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut s = String::with_capacity(size + 256);
    let _ = write!(s, "{{\"conn\":{conn},\"seq\":{seq},\"items\":[");
    const TAIL: usize = "],\"pad\":\"\"}".len();
    let mut item = String::with_capacity(256);
    let mut id = 1_000_000 + seq * 40 + conn as u64 * 7_919;
    loop {
        item.clear();
        id += 1 + rnd() % 5;
        let (f, l) = (FIRST[(rnd() % 16) as usize], LAST[(rnd() % 16) as usize]);
        let t = 1_714_521_600 + seq * 13 + rnd() % 86_400; // 2024-05-01 + …
        let (day, rem) = (t / 86_400 - 19_844, t % 86_400);
        let _ = write!(
            item,
            "{}{{\"id\":{id},\"name\":\"{f} {l}\",\"email\":\"{}.{}{}@example.com\",\"role\":\"{}\",\
             \"created\":\"2024-05-{:02}T{:02}:{:02}:{:02}Z\",\"score\":{}.{:02},\"active\":{},\"tags\":[\"{}\",\"{}\"]}}",
            if s.ends_with('[') { "" } else { "," },
            f.to_ascii_lowercase(),
            l.to_ascii_lowercase(),
            rnd() % 100,
            ROLES[(rnd() % 5) as usize],
            1 + day % 28,
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            rnd() % 1000,
            rnd() % 100,
            rnd() % 3 != 0,
            TAGS[(rnd() % 12) as usize],
            TAGS[(rnd() % 12) as usize],
        );
        if s.len() + item.len() + TAIL > size {
            break;
        }
        s.push_str(&item);
    }
    s.push_str("],\"pad\":\"");
    while s.len() + 2 < size {
        s.push(ALNUM[(rnd() % 36) as usize] as char);
    }
    s.push_str("\"}");
    out.clear();
    out.extend_from_slice(s.as_bytes());
}

/// Appends one masked client frame carrying `payload`.
fn push_frame(wbuf: &mut Vec<u8>, ends: &mut VecDeque<usize>, b0: u8, mask: [u8; 4], payload: &[u8]) {
    wbuf.push(b0);
    let n = payload.len();
    if n < 126 {
        wbuf.push(0x80 | n as u8);
    } else if n < 65536 {
        wbuf.push(0x80 | 126);
        wbuf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        wbuf.push(0x80 | 127);
        wbuf.extend_from_slice(&(n as u64).to_be_bytes());
    }
    wbuf.extend_from_slice(&mask);
    wbuf.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    ends.push_back(wbuf.len());
}

impl Echo {
    fn encode_seq(&self, seq: u64, out: &mut [u8; 16]) {
        if self.binary {
            for (i, b) in out.iter_mut().take(self.hl).enumerate() {
                *b = (seq >> (8 * i)) as u8;
            }
        } else {
            for i in 0..self.hl {
                out[i] = HEX[((seq >> (4 * (self.hl - 1 - i))) & 15) as usize];
            }
        }
    }

    fn new_conn(&self, s: Wire, id: usize) -> Conn {
        // Per-connection payload and mask, so that a cross-wired echo is seen.
        let expect: Vec<u8> = (0..self.size)
            .map(|i| {
                if self.binary {
                    (i.wrapping_mul(131) ^ id.wrapping_mul(17) ^ 0x80) as u8
                } else {
                    b'a' + ((i + id * 7) % 26) as u8
                }
            })
            .collect();
        let mut x = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mask = (x as u32).to_le_bytes();
        let mut frame = Vec::with_capacity(self.size + 14);
        frame.push(0x80 | if self.binary { 2 } else { 1 });
        if self.size < 126 {
            frame.push(0x80 | self.size as u8);
        } else if self.size < 65536 {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(self.size as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(self.size as u64).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        let poff = frame.len();
        frame.extend(expect.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        let rcap = (64 * 1024).max(2 * (self.size + 14));
        Conn {
            s,
            st: St::Connecting,
            id,
            rbuf: vec![0; rcap],
            rlo: 0,
            rhi: 0,
            wbuf: Vec::with_capacity((self.size + 14) * self.depth + 1024),
            wpos: 0,
            ends: VecDeque::with_capacity(self.depth + 4),
            sent: 0,
            recv: 0,
            ring: vec![0; self.depth],
            frame,
            poff,
            mask,
            expect,
            hdr: [0; 16],
            in_msg: false,
            msg_off: 0,
            msgs: if self.generic { vec![Vec::new(); self.depth] } else { Vec::new() },
            rmsg: Vec::new(),
            rsv1: false,
            z: None,
            payload_out: 0,
            payload_in: 0,
            wire_out: 0,
            wire_in: 0,
        }
    }

    #[inline]
    fn queue_msg(&self, c: &mut Conn, now_ns: u64) -> Result<(), String> {
        if c.wpos > 0 && c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.ends.clear();
            c.wpos = 0;
        }
        let slot = (c.sent % self.depth as u64) as usize;
        if self.generic {
            let mut msg = std::mem::take(&mut c.msgs[slot]);
            if self.json {
                json_msg(c.id, c.sent, self.size, &mut msg);
            } else {
                msg.clear();
                msg.extend_from_slice(&c.expect);
                let mut h = [0u8; 16];
                self.encode_seq(c.sent, &mut h);
                msg[..self.hl].copy_from_slice(&h[..self.hl]);
            }
            let opcode = if self.binary { 2 } else { 1 };
            match c.z.as_mut() {
                Some(z) => {
                    z.deflate(&msg)?;
                    push_frame(&mut c.wbuf, &mut c.ends, 0x80 | 0x40 | opcode, c.mask, &z.zout);
                }
                None => push_frame(&mut c.wbuf, &mut c.ends, 0x80 | opcode, c.mask, &msg),
            }
            c.payload_out += msg.len() as u64;
            c.msgs[slot] = msg;
        } else {
            let at = c.wbuf.len() + c.poff;
            c.wbuf.extend_from_slice(&c.frame);
            c.ends.push_back(c.wbuf.len());
            let mut h = [0u8; 16];
            self.encode_seq(c.sent, &mut h);
            for (i, b) in h.iter().take(self.hl).enumerate() {
                c.wbuf[at + i] = b ^ c.mask[i & 3];
            }
            c.payload_out += self.size as u64;
        }
        c.ring[slot] = now_ns;
        c.sent += 1;
        Ok(())
    }
}

fn queue_control(c: &mut Conn, opcode: u8, payload: &[u8]) {
    push_frame(&mut c.wbuf, &mut c.ends, 0x80 | opcode, c.mask, payload);
}

/// Writes what `wbuf` holds: all of it per system call, or (`per_frame`)
/// one frame per system call.
fn flush(c: &mut Conn, per_frame: bool) -> io::Result<()> {
    while c.wpos < c.wbuf.len() {
        let stop = if per_frame {
            while c.ends.front().is_some_and(|&e| e <= c.wpos) {
                c.ends.pop_front();
            }
            c.ends.front().copied().unwrap_or(c.wbuf.len())
        } else {
            c.wbuf.len()
        };
        match c.s.write(&c.wbuf[c.wpos..stop]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => {
                c.wpos += n;
                c.wire_out += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Keep the unsent tail at the front for the next append.
                if c.wpos > 0 {
                    let w = c.wpos;
                    c.wbuf.drain(..w);
                    c.ends.retain(|&e| e > w);
                    c.ends.iter_mut().for_each(|e| *e -= w);
                    c.wpos = 0;
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.wbuf.clear();
    c.ends.clear();
    c.wpos = 0;
    Ok(())
}

/// Reads into `rbuf` until the socket is drained (WouldBlock or a short
/// read), calling `on_data` after every read. Err on EOF or a socket error.
fn read_all(
    c: &mut Conn,
    mut on_data: impl FnMut(&mut Conn) -> Result<(), String>,
) -> Result<(), String> {
    loop {
        if c.rhi == c.rbuf.len() {
            if c.rlo > 0 {
                c.rbuf.copy_within(c.rlo..c.rhi, 0);
                c.rhi -= c.rlo;
                c.rlo = 0;
            } else {
                let n = c.rbuf.len() * 2;
                c.rbuf.resize(n, 0);
            }
        }
        let hi = c.rhi;
        let room = c.rbuf.len() - hi;
        match c.s.read(&mut c.rbuf[hi..]) {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(n) => {
                c.rhi += n;
                c.wire_in += n as u64;
                on_data(c)?;
                if c.rlo == c.rhi {
                    c.rlo = 0;
                    c.rhi = 0;
                }
                // A short read emptied the socket's receive queue. Linux's
                // epoll reports every later arrival as a new edge, so the
                // read that would only say WouldBlock is skipped.
                if n < room && !c.s.is_tls() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

struct Counters {
    msgs: u64,
    hist: Hist,
}

/// Parses every complete server frame in `c.rbuf[rlo..rhi]`, checks each
/// echo and queues a replacement message while `sending`.
fn parse_frames(
    e: &Echo,
    c: &mut Conn,
    now_ns: u64,
    sending: bool,
    counting: bool,
    k: &mut Counters,
) -> Result<(), String> {
    loop {
        let buf = &c.rbuf[c.rlo..c.rhi];
        if buf.len() < 2 {
            return Ok(());
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        // RSV1 only on the first frame of a data message, and only with
        // permessage-deflate; RSV2 and RSV3 never.
        if b0 & 0x30 != 0 || (b0 & 0x40 != 0 && (c.z.is_none() || !(opcode == 1 || opcode == 2))) {
            return Err(format!("frame with unexpected RSV bits (0x{b0:02x})"));
        }
        if b1 & 0x80 != 0 {
            return Err("server frame is masked".into());
        }
        let Some((hl, plen)) = frame_header(buf) else {
            return Ok(());
        };
        if plen > (1 << 30) {
            return Err(format!("absurd frame length {plen}"));
        }
        if buf.len() < hl + plen {
            return Ok(()); // wait for the rest (read_all grows rbuf if needed)
        }
        let p0 = c.rlo + hl;
        let p1 = p0 + plen;
        c.rlo = p1;
        match opcode {
            0..=2 => {
                if opcode == 0 {
                    if !c.in_msg {
                        return Err("continuation frame outside a message".into());
                    }
                } else {
                    if c.in_msg {
                        return Err("new data frame inside a fragmented message".into());
                    }
                    let want = if e.binary { 2 } else { 1 };
                    if opcode != want {
                        return Err(format!(
                            "type mismatch: got {}, sent {}",
                            if opcode == 1 { "text" } else { "binary" },
                            if e.binary { "binary" } else { "text" }
                        ));
                    }
                    if c.recv >= c.sent {
                        return Err(format!("unsolicited message (received {} of {} sent)", c.recv + 1, c.sent));
                    }
                    c.in_msg = true;
                    c.msg_off = 0;
                    c.rsv1 = b0 & 0x40 != 0;
                    c.rmsg.clear();
                    let mut h = [0u8; 16];
                    e.encode_seq(c.recv, &mut h);
                    c.hdr = h;
                }
                let slot = (c.recv % e.depth as u64) as usize;
                if e.generic {
                    // Whole messages: collect, inflate if compressed, compare.
                    let limit = 2 * e.size + 65536;
                    if c.rmsg.len() + plen > limit {
                        return Err(format!("echo longer than {limit} bytes on the wire"));
                    }
                    c.rmsg.extend_from_slice(&c.rbuf[p0..p1]);
                    if !fin {
                        continue;
                    }
                    let got: &[u8] = if c.rsv1 {
                        let z = c.z.as_mut().expect("RSV1 checked above");
                        z.inflate(&mut c.rmsg, limit)?;
                        &z.zin
                    } else {
                        &c.rmsg
                    };
                    let want = &c.msgs[slot];
                    if got != &want[..] {
                        return Err(format!(
                            "echo differs from message {} of this connection ({} bytes, sent {}{}): out of order, corrupt or cross-wired",
                            c.recv,
                            got.len(),
                            want.len(),
                            if c.rsv1 { ", compressed" } else { "" }
                        ));
                    }
                    c.payload_in += got.len() as u64;
                } else {
                    // Check this fragment against the expected bytes.
                    let off = c.msg_off;
                    if off + plen > e.size {
                        return Err(format!("echo longer than sent ({} > {} bytes)", off + plen, e.size));
                    }
                    let p = &c.rbuf[p0..p1];
                    let mut i = 0;
                    while i < p.len() && off + i < e.hl {
                        if p[i] != c.hdr[off + i] {
                            return Err(format!(
                                "out of order or corrupt echo: expected sequence {} on this connection",
                                c.recv
                            ));
                        }
                        i += 1;
                    }
                    if p[i..] != c.expect[off + i..off + plen] {
                        return Err("echo payload differs from what was sent".into());
                    }
                    c.msg_off += plen;
                    if !fin {
                        continue;
                    }
                    if c.msg_off != e.size {
                        return Err(format!("echo shorter than sent ({} < {} bytes)", c.msg_off, e.size));
                    }
                    c.payload_in += e.size as u64;
                }
                c.in_msg = false;
                let sent_at = c.ring[slot];
                c.recv += 1;
                if counting {
                    k.msgs += 1;
                    k.hist.record(now_ns.saturating_sub(sent_at));
                }
                if sending {
                    e.queue_msg(c, now_ns)?;
                }
            }
            8 => {
                let code = if plen >= 2 { u16::from_be_bytes([c.rbuf[p0], c.rbuf[p0 + 1]]) } else { 1005 };
                let reason = String::from_utf8_lossy(&c.rbuf[(p0 + 2).min(p1)..p1]).into_owned();
                return Err(format!("server sent close {code} {reason:?}"));
            }
            9 | 10 => {
                if !fin || plen > 125 {
                    return Err("bad control frame".into());
                }
                if opcode == 9 {
                    let payload = c.rbuf[p0..p1].to_vec();
                    queue_control(c, 10, &payload);
                }
            }
            _ => return Err(format!("unknown opcode {opcode}")),
        }
    }
}

fn fail(mode: &str, err: &str) -> ! {
    let mut j = Json::new();
    j.s("mode", mode).b("ok", false).s("error", err);
    println!("{}", j.finish());
    std::process::exit(1)
}

/// Sums over the connections: payload out, payload in, wire out, wire in.
fn byte_counts(conns: &[Conn]) -> [u64; 4] {
    conns.iter().fold([0; 4], |a, c| {
        [a[0] + c.payload_out, a[1] + c.payload_in, a[2] + c.wire_out, a[3] + c.wire_in]
    })
}

fn run_echo(a: &Args) {
    let addr = SocketAddr::new(a.host, a.port);
    let e = Echo {
        depth: a.depth,
        size: a.size,
        binary: a.binary,
        hl: a.size.min(if a.binary { 8 } else { 16 }),
        generic: a.json || a.deflate,
        json: a.json,
    };
    if nofile() < a.conns as u64 + 16 {
        fail("echo", &format!("RLIMIT_NOFILE {} is too low for {} connections", nofile(), a.conns));
    }
    let base = Instant::now();
    let ns = |t: Instant| t.duration_since(base).as_nanos() as u64;
    let mut poll = Poll::new().unwrap_or_else(|e| fail("echo", &format!("epoll: {e}")));
    let mut events = Events::with_capacity(1024);
    let req = request(a);
    let tls = tls_config(&a.tls);
    let pf = a.per_frame;

    // The server's RSS before any connection (as in `connect`: once the
    // freshly started server settled).
    let rss0 = if a.rss {
        std::thread::sleep(Duration::from_millis(300));
        a.pid.and_then(proc_rss_kb)
    } else {
        None
    };

    // Phase 1: connect and handshake every connection.
    let mut conns: Vec<Conn> = Vec::with_capacity(a.conns);
    for id in 0..a.conns {
        let mut s = TcpStream::connect(addr).unwrap_or_else(|e| fail("echo", &format!("connect: {e}")));
        poll.registry()
            .register(&mut s, Token(id), Interest::READABLE | Interest::WRITABLE)
            .unwrap_or_else(|e| fail("echo", &format!("register: {e}")));
        conns.push(e.new_conn(Wire::new(s, tls.as_ref()), id));
    }
    let deadline = base + Duration::from_secs_f64(a.timeout);
    let mut open = 0;
    let mut extension: Option<String> = None;
    while open < a.conns {
        let now = Instant::now();
        if now >= deadline {
            fail("echo", &format!("timeout: {open} of {} connections open after {:.1}s", a.conns, a.timeout));
        }
        poll.poll(&mut events, Some((deadline - now).min(Duration::from_millis(100))))
            .unwrap_or_else(|e| fail("echo", &format!("poll: {e}")));
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.st == St::Connecting {
                match connect_done(&c.s.s) {
                    Ok(false) => continue,
                    Ok(true) => {
                        let _ = c.s.s.set_nodelay(true);
                        c.wbuf.extend_from_slice(&req);
                        c.st = St::Handshaking;
                        if let Err(err) = flush(c, false) {
                            fail("echo", &format!("write request: {err}"));
                        }
                    }
                    Err(err) => fail("echo", &format!("connect: {err}")),
                }
            }
            if c.st == St::Handshaking {
                if ev.is_writable() {
                    if let Err(err) = flush(c, false).and_then(|_| c.s.flush()) {
                        fail("echo", &format!("write request: {err}"));
                    }
                }
                let mut done = false;
                let r = read_all(c, |c| {
                    if done {
                        return Ok(()); // bytes after the head stay in rbuf
                    }
                    if let Some(end) = find_head_end(&c.rbuf[c.rlo..c.rhi]) {
                        if let Some(p) = check_response(&c.rbuf[c.rlo..c.rlo + end], a.deflate)? {
                            c.z = Some(Box::new(Z::new(p)));
                        } else if a.deflate {
                            return Err("handshake: the server did not accept permessage-deflate".into());
                        }
                        c.rlo += end;
                        done = true;
                    } else if c.rhi - c.rlo > 16 * 1024 {
                        return Err("handshake response head too large".into());
                    }
                    Ok(())
                });
                if let Err(err) = r {
                    fail("echo", &err);
                }
                if done {
                    c.st = St::Open;
                    open += 1;
                    if extension.is_none() {
                        extension = c.z.as_ref().map(|z| z.pmd.text.clone());
                    }
                }
            }
        }
    }

    // Phase 2: prime every connection with `depth` messages, then keep the
    // pipeline full until the end of the measured window.
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(a.warmup);
    let end = warm_end + Duration::from_secs_f64(a.seconds);
    let mut k = Counters { msgs: 0, hist: Hist::new() };
    let t0 = ns(start);
    for c in conns.iter_mut() {
        for _ in 0..a.depth {
            if let Err(err) = e.queue_msg(c, t0) {
                fail("echo", &err);
            }
        }
        if let Err(err) = flush(c, pf) {
            fail("echo", &format!("write: {err}"));
        }
    }
    let mut measuring = a.warmup == 0.0;
    let mut s0 = snap(a.pid);
    let mut b0 = byte_counts(&conns);
    let mut last_progress = start;
    let mut last_total: u64 = 0;
    // No echo at all for this long fails the run (at most half the run).
    let stall = Duration::from_secs_f64(a.stall.min(((a.warmup + a.seconds) / 2.0).max(0.5)));
    let s1 = loop {
        let now = Instant::now();
        if !measuring && now >= warm_end {
            measuring = true;
            k.msgs = 0;
            k.hist.clear();
            s0 = snap(a.pid);
            b0 = byte_counts(&conns);
        }
        if now >= end {
            break snap(a.pid);
        }
        let total: u64 = conns.iter().map(|c| c.recv).sum::<u64>();
        if total != last_total {
            last_total = total;
            last_progress = now;
        } else if now - last_progress > stall {
            let inflight: u64 = conns.iter().map(|c| c.sent - c.recv).sum();
            fail(
                "echo",
                &format!(
                    "stalled: no echo for {:.1}s ({inflight} messages in flight, {total} echoed)",
                    stall.as_secs_f64()
                ),
            );
        }
        let next = if measuring { end } else { warm_end };
        let wait = if a.spin { Duration::ZERO } else { (next - now).min(Duration::from_millis(100)) };
        poll.poll(&mut events, Some(wait))
            .unwrap_or_else(|e| fail("echo", &format!("poll: {e}")));
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                let r = read_all(c, |c| {
                    let t = Instant::now();
                    parse_frames(&e, c, ns(t), t < end, measuring, &mut k)
                });
                if let Err(err) = r {
                    fail("echo", &format!("connection {}: {err}", ev.token().0));
                }
            }
            if c.wpos < c.wbuf.len() || c.s.pending() {
                if let Err(err) = flush(c, pf).and_then(|_| c.s.flush()) {
                    fail("echo", &format!("connection {}: write: {err}", ev.token().0));
                }
            }
        }
    };
    let b1 = byte_counts(&conns);
    let rss1 = a.pid.and_then(proc_rss_kb);

    let wall = s1.wall.duration_since(s0.wall).as_secs_f64();
    if k.msgs == 0 {
        fail("echo", "no echo arrived in the measured window");
    }
    let [po, pi, wo, wi] = [b1[0] - b0[0], b1[1] - b0[1], b1[2] - b0[2], b1[3] - b0[3]];
    let mut j = Json::new();
    j.s("mode", "echo")
        .b("ok", true)
        .u("conns", a.conns as u64)
        .u("depth", a.depth as u64)
        .u("size", a.size as u64)
        .s("type", if a.binary { "binary" } else if a.json { "json" } else { "text" })
        .s("writes", if pf { "per-frame" } else { "batched" })
        .s("extension", extension.as_deref().unwrap_or(""))
        .n("seconds", wall)
        .u("msgs", k.msgs)
        .n("msgs_per_s", k.msgs as f64 / wall)
        .n("mb_per_s", k.msgs as f64 * a.size as f64 / wall / 1e6)
        .n("p50_us", k.hist.quantile(0.50) as f64 / 1e3)
        .n("p99_us", k.hist.quantile(0.99) as f64 / 1e3)
        .n("p999_us", k.hist.quantile(0.999) as f64 / 1e3)
        .n("max_us", k.hist.max as f64 / 1e3)
        // Message bytes (uncompressed) and bytes written and read on the
        // sockets (frame headers included; TLS: before encryption) in the
        // measured window, and their ratios.
        .u("payload_out", po)
        .u("payload_in", pi)
        .u("wire_out", wo)
        .u("wire_in", wi)
        .n("wire_ratio_out", po as f64 / wo as f64)
        .n("wire_ratio_in", pi as f64 / wi as f64)
        .n("wire_ratio", (po + pi) as f64 / (wo + wi) as f64);
    cpu_json(&mut j, &s0, &s1);
    if let Some(rss) = rss1 {
        j.u("server_rss_kb", rss);
    }
    if let (Some(r0), Some(r1)) = (rss0, rss1) {
        // While every connection is open and busy.
        j.u("rss_before_kb", r0)
            .u("rss_after_kb", r1)
            .n("bytes_per_conn", (r1 as f64 - r0 as f64) * 1024.0 / a.conns as f64);
    }
    println!("{}", j.finish());
    // Close politely-ish: drop everything (the kernel sends FIN or RST).
    drop(conns);
}

// ---------------------------------------------------------------- connect

struct Hs {
    s: Wire,
    st: St,
    started: u64,
    buf: Vec<u8>,
    wpos: usize,
}

fn hs_write(c: &mut Hs, req: &[u8]) -> io::Result<()> {
    while c.wpos < req.len() {
        match c.s.write(&req[c.wpos..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => c.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An idle connection became readable: Some(reason) when the server closed
/// it (or it failed), None for a spurious wake-up or stray bytes.
fn idle_check(c: &mut Hs, scratch: &mut [u8]) -> Option<String> {
    loop {
        match c.s.read(scratch) {
            Ok(0) => return Some("closed by the server".into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(e.to_string()),
        }
    }
}

fn run_connect(a: &Args) {
    let addr = SocketAddr::new(a.host, a.port);
    if nofile() < a.conns as u64 + 16 {
        fail("connect", &format!("RLIMIT_NOFILE {} is too low for {} connections", nofile(), a.conns));
    }
    let base = Instant::now();
    let ns = |t: Instant| t.duration_since(base).as_nanos() as u64;
    let mut poll = Poll::new().unwrap_or_else(|e| fail("connect", &format!("epoll: {e}")));
    let mut events = Events::with_capacity(4096);
    let req = request(a);
    let tls = tls_config(&a.tls);
    let mut hist = Hist::new();

    // Let the freshly started server settle before the "before" reading.
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = a.pid.and_then(proc_rss_kb);
    let s0 = snap(a.pid);
    let deadline = s0.wall + Duration::from_secs_f64(a.timeout);
    let mut conns: Vec<Hs> = Vec::with_capacity(a.conns);
    let (mut active, mut done, mut dropped) = (0usize, 0usize, 0usize);
    let mut first_drop: Option<String> = None;
    let mut scratch = [0u8; 4096];
    while done < a.conns {
        while active < a.concurrency && conns.len() < a.conns {
            let id = conns.len();
            let mut s = match TcpStream::connect(addr) {
                Ok(s) => s,
                Err(e) => fail("connect", &format!("connect #{id}: {e}")),
            };
            poll.registry()
                .register(&mut s, Token(id), Interest::READABLE | Interest::WRITABLE)
                .unwrap_or_else(|e| fail("connect", &format!("register: {e}")));
            let s = Wire::new(s, tls.as_ref());
            conns.push(Hs { s, st: St::Handshaking, started: ns(Instant::now()), buf: Vec::new(), wpos: 0 });
            active += 1;
            // On loopback the TCP handshake is usually complete already:
            // write the request now (a socket still connecting says EAGAIN
            // and its writable edge comes later).
            if let Err(e) = hs_write(&mut conns[id], &req) {
                fail("connect", &format!("write #{id}: {e}"));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            fail(
                "connect",
                &format!("timeout: {done} of {} handshakes done after {:.0}s ({active} in progress)", a.conns, a.timeout),
            );
        }
        poll.poll(&mut events, Some((deadline - now).min(Duration::from_millis(100))))
            .unwrap_or_else(|e| fail("connect", &format!("poll: {e}")));
        for ev in events.iter() {
            let id = ev.token().0;
            let c = &mut conns[id];
            match c.st {
                St::Handshaking => {
                    if c.wpos < req.len() || c.s.pending() {
                        if let Err(e) = hs_write(c, &req).and_then(|_| c.s.flush()) {
                            fail("connect", &format!("write #{id}: {e}"));
                        }
                        if c.wpos < req.len() {
                            continue;
                        }
                    }
                    loop {
                        match c.s.read(&mut scratch) {
                            Ok(0) => fail("connect", &format!("#{id}: server closed during the handshake")),
                            Ok(n) => {
                                c.buf.extend_from_slice(&scratch[..n]);
                                if c.buf.len() > 16 * 1024 {
                                    fail("connect", "handshake response head too large");
                                }
                                if n < scratch.len() && !c.s.is_tls() {
                                    break; // drained (see read_all)
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => fail("connect", &format!("read #{id}: {e}")),
                        }
                    }
                    if let Some(end) = find_head_end(&c.buf) {
                        if let Err(e) = check_response(&c.buf[..end], false) {
                            fail("connect", &format!("#{id}: {e}"));
                        }
                        if end != c.buf.len() {
                            fail("connect", &format!("#{id}: unexpected bytes after the 101 response"));
                        }
                        hist.record(ns(Instant::now()).saturating_sub(c.started));
                        c.buf = Vec::new();
                        c.st = St::Open;
                        active -= 1;
                        done += 1;
                        // Stays registered: a later readable edge is a close.
                    }
                }
                St::Open => {
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        if let Some(err) = idle_check(c, &mut scratch) {
                            dropped += 1;
                            first_drop.get_or_insert_with(|| format!("#{id}: {err}"));
                            let _ = poll.registry().deregister(&mut c.s.s);
                        }
                    }
                }
                St::Connecting => {}
            }
        }
    }
    let s1 = snap(a.pid);
    let hs_wall = s1.wall.duration_since(s0.wall).as_secs_f64();

    // Hold every connection idle, watching for drops, then read RSS.
    let hold_end = Instant::now() + Duration::from_secs_f64(a.hold);
    loop {
        let now = Instant::now();
        if now >= hold_end {
            break;
        }
        poll.poll(&mut events, Some((hold_end - now).min(Duration::from_millis(100))))
            .unwrap_or_else(|e| fail("connect", &format!("poll: {e}")));
        for ev in events.iter() {
            let id = ev.token().0;
            let c = &mut conns[id];
            if c.st == St::Open && (ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                if let Some(err) = idle_check(c, &mut scratch) {
                    dropped += 1;
                    first_drop.get_or_insert_with(|| format!("#{id}: {err}"));
                    let _ = poll.registry().deregister(&mut c.s.s);
                    c.st = St::Connecting; // counted; ignore from now on
                }
            }
        }
    }
    let rss1 = a.pid.and_then(proc_rss_kb);

    let mut j = Json::new();
    j.s("mode", "connect")
        .b("ok", dropped == 0)
        .u("conns", a.conns as u64)
        .u("concurrency", a.concurrency as u64)
        .n("seconds", hs_wall)
        .n("handshakes_per_s", a.conns as f64 / hs_wall)
        .n("hs_p50_us", hist.quantile(0.50) as f64 / 1e3)
        .n("hs_p99_us", hist.quantile(0.99) as f64 / 1e3);
    cpu_json(&mut j, &s0, &s1);
    if let (Some(r0), Some(r1)) = (rss0, rss1) {
        j.u("rss_before_kb", r0)
            .u("rss_after_kb", r1)
            .n("bytes_per_conn", (r1 as f64 - r0 as f64) * 1024.0 / a.conns as f64);
    }
    j.u("dropped", dropped as u64);
    if let Some(d) = &first_drop {
        j.s("error", &format!("{dropped} idle connections dropped; first: {d}"));
    }
    println!("{}", j.finish());
    for c in &conns {
        set_linger0(&c.s.s);
    }
    drop(conns);
    if dropped > 0 {
        std::process::exit(1);
    }
}

fn main() {
    let a = parse_args();
    raise_nofile();
    match a.mode.as_str() {
        "echo" => run_echo(&a),
        "fanout" => fanout::run_fanout(&a),
        "backplane" => fanout::run_backplane(&a),
        _ => run_connect(&a),
    }
}

/// The header length and payload length of the frame at the start of `b`
/// (RFC 6455 §5.2), or `None` until its whole header is there.
fn frame_header(b: &[u8]) -> Option<(usize, usize)> {
    match *b.get(1)? & 0x7f {
        126 => Some((4, u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize)),
        127 => {
            let l: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            Some((10, u64::from_be_bytes(l) as usize))
        }
        n => Some((2, n as usize)),
    }
}
