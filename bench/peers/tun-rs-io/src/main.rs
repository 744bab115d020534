// The tun-rs peer of tun-read-pps / tun-write-pps. Same arguments and line protocol as the C
// reference (bench/ref/tun_loop.c) and the tunkeeper subject, plus the mode:
//
//   tun-rs-io read|write DEV WARMUP_S SECONDS SRC DST PAYLOAD plain|offload
//
// attaches to the existing TUN device DEV through tun-rs's DeviceBuilder, prints "ready", waits
// for a line on stdin, runs WARMUP_S seconds uncounted, then SECONDS counted, and prints one JSON
// line {"packets","seconds","cpuSeconds","firstLen"}.
//
// plain:   one SyncDevice::recv / send per packet, as tun-rs documents its simple path.
// offload: the device opened with .offload(true) (IFF_VNET_HDR + TUNSETOFFLOAD); reads through
//          recv_multiple (a GSO super-packet split into its segments, each counted), writes
//          through send_multiple of 64 packets per call with a GROTable (coalesced where it can).
use std::io::{self, BufRead, Write};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tun_rs::{DeviceBuilder, GROTable, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

const WRITE_BATCH: usize = 64;

fn die(what: &str, e: &io::Error) -> ! {
    eprintln!("tun-rs-io: {}: {}", what, e);
    std::process::exit(1);
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum16(bytes: &[u8]) -> u32 {
    let mut sum = 0u32;
    for pair in bytes.chunks(2) {
        let hi = (pair[0] as u32) << 8;
        sum += if pair.len() == 2 { hi | pair[1] as u32 } else { hi };
    }
    sum
}

/// An IPv4/UDP packet src:4000 -> dst:9 whose payload byte i is i & 0xff (what the bench's
/// checking receiver expects), both checksums right.
fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, payload: usize) -> Vec<u8> {
    let udp_len = 8 + payload;
    let total = 20 + udp_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ip_csum = fold(sum16(&p[..20]));
    p[10..12].copy_from_slice(&ip_csum.to_be_bytes());
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&(udp_len as u16).to_be_bytes());
    for i in 0..payload {
        p[28 + i] = (i & 0xff) as u8;
    }
    let pseudo = sum16(&p[12..20]) + 17 + udp_len as u32;
    let mut udp_csum = fold(pseudo + sum16(&p[20..]));
    if udp_csum == 0 {
        udp_csum = 0xffff;
    }
    p[26..28].copy_from_slice(&udp_csum.to_be_bytes());
    p
}

/// 0 warm-up, 1 counting, 2 done: switched by a timer thread, so the packet loop reads an atomic
/// instead of the clock (as the C loop uses SIGALRM).
fn start_phases(warmup: f64, seconds: f64) -> Arc<AtomicU8> {
    let phase = Arc::new(AtomicU8::new(0));
    let p = phase.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_secs_f64(warmup));
        p.store(1, Ordering::Release);
        thread::sleep(Duration::from_secs_f64(seconds));
        p.store(2, Ordering::Release);
    });
    phase
}

struct Meter {
    seen: u8,
    start_count: u64,
    t0: Instant,
    c0: f64,
}

impl Meter {
    fn new() -> Self {
        Meter { seen: 0, start_count: 0, t0: Instant::now(), c0: 0.0 }
    }
    /// True when counting is over; prints the result then.
    fn tick(&mut self, phase: &AtomicU8, count: u64, first_len: i64) -> bool {
        let now = phase.load(Ordering::Acquire);
        if now == self.seen {
            return false;
        }
        self.seen = now;
        if now == 1 {
            self.t0 = Instant::now();
            self.c0 = cpu_seconds();
            self.start_count = count;
            return false;
        }
        let secs = self.t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.c0;
        println!(
            "{{\"packets\":{},\"seconds\":{:.6},\"cpuSeconds\":{:.6},\"firstLen\":{}}}",
            count - self.start_count,
            secs,
            cpu,
            first_len
        );
        true
    }
}

fn read_plain(dev: &SyncDevice, phase: &AtomicU8) {
    let mut buf = vec![0u8; 65536];
    let (mut count, mut first_len, mut meter) = (0u64, -1i64, Meter::new());
    loop {
        match dev.recv(&mut buf) {
            Ok(n) => {
                count += 1;
                if first_len < 0 {
                    first_len = n as i64;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => die("recv", &e),
        }
        if meter.tick(phase, count, first_len) {
            return;
        }
    }
}

fn read_offload(dev: &SyncDevice, phase: &AtomicU8) {
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65535];
    let mut bufs: Vec<Vec<u8>> = (0..IDEAL_BATCH_SIZE).map(|_| vec![0u8; 65535]).collect();
    let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
    let (mut count, mut first_len, mut meter) = (0u64, -1i64, Meter::new());
    loop {
        match dev.recv_multiple(&mut original, &mut bufs, &mut sizes, 0) {
            Ok(n) => {
                count += n as u64;
                if first_len < 0 && n > 0 {
                    first_len = sizes[0] as i64;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => die("recv_multiple", &e),
        }
        if meter.tick(phase, count, first_len) {
            return;
        }
    }
}

fn write_plain(dev: &SyncDevice, phase: &AtomicU8, pkt: &[u8]) {
    let (mut count, mut meter) = (0u64, Meter::new());
    loop {
        // The clock (here: the phase) is looked at once per 64 writes, as in the C loop.
        for _ in 0..WRITE_BATCH {
            match dev.send(pkt) {
                Ok(_) => count += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => die("send", &e),
            }
        }
        if meter.tick(phase, count, -1) {
            return;
        }
    }
}

fn write_offload(dev: &SyncDevice, phase: &AtomicU8, pkt: &[u8]) {
    let mut gro = GROTable::default();
    let fresh = || {
        let mut b = Vec::with_capacity(VIRTIO_NET_HDR_LEN + 65536);
        b.resize(VIRTIO_NET_HDR_LEN, 0);
        b.extend_from_slice(pkt);
        b
    };
    let mut bufs: Vec<Vec<u8>> = (0..WRITE_BATCH).map(|_| fresh()).collect();
    let (mut count, mut meter) = (0u64, Meter::new());
    loop {
        match dev.send_multiple(&mut gro, &mut bufs, VIRTIO_NET_HDR_LEN) {
            Ok(_) => count += WRITE_BATCH as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => die("send_multiple", &e),
        }
        // send_multiple coalesces in place: every buffer is made a plain packet again.
        for b in bufs.iter_mut() {
            b.truncate(VIRTIO_NET_HDR_LEN);
            b[..VIRTIO_NET_HDR_LEN].fill(0);
            b.extend_from_slice(pkt);
        }
        if meter.tick(phase, count, -1) {
            return;
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: tun-rs-io read|write DEV WARMUP_S SECONDS SRC DST PAYLOAD plain|offload");
    std::process::exit(2);
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 9 || (a[1] != "read" && a[1] != "write") || (a[8] != "plain" && a[8] != "offload") {
        usage();
    }
    let (warmup, seconds): (f64, f64) = (a[3].parse().unwrap_or_else(|_| usage()), a[4].parse().unwrap_or_else(|_| usage()));
    let src: Ipv4Addr = a[5].parse().unwrap_or_else(|_| usage());
    let dst: Ipv4Addr = a[6].parse().unwrap_or_else(|_| usage());
    let payload: usize = a[7].parse().unwrap_or_else(|_| usage());
    let offload = a[8] == "offload";
    let dev = DeviceBuilder::new().name(&a[2]).offload(offload).build_sync().unwrap_or_else(|e| die("open", &e));
    let pkt = ipv4_udp(src, dst, payload);

    println!("ready");
    io::stdout().flush().ok();
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
        eprintln!("tun-rs-io: stdin closed before go");
        std::process::exit(1);
    }
    let phase = start_phases(warmup, seconds);
    match (a[1].as_str(), offload) {
        ("read", false) => read_plain(&dev, &phase),
        ("read", true) => read_offload(&dev, &phase),
        ("write", false) => write_plain(&dev, &phase, &pkt),
        _ => write_offload(&dev, &phase, &pkt),
    }
    io::stdout().flush().ok();
}
