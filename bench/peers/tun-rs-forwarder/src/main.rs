//! tun-rs-forwarder MODE NETNS_A DEV_A NETNS_B DEV_B
//!
//! Creates TUN device DEV_A inside network namespace NETNS_A and DEV_B inside NETNS_B (paths such
//! as /run/netns/NAME), prints "ready", and forwards every packet read from one to the other, one
//! thread per direction, until it is killed. MODE `offload`: tun-rs with offload on (vnet header,
//! TSO/USO), each read split by recv_multiple and the segments written back through send_multiple's
//! GRO; MODE `plain`: one recv and one send per packet.
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;

use tun_rs::{DeviceBuilder, GROTable, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

/// Room in front of every packet for the virtio-net header send_multiple writes there.
const OFFSET: usize = VIRTIO_NET_HDR_LEN;
/// recv_multiple's segments are at most an MTU; the bench's devices have 1500.
const SEGMENT_ROOM: usize = 4096;

fn enter_netns(path: &str) -> io::Result<()> {
    let ns = File::open(path)?;
    // setns(2) moves only the calling thread; the device is created there and stays there.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn open(netns: &str, name: &str, offload: bool) -> io::Result<SyncDevice> {
    enter_netns(netns)?;
    DeviceBuilder::new().name(name).offload(offload).build_sync()
}

fn fatal(e: &io::Error) -> bool {
    // EBADFD: the device is gone. Anything else (EIO before the link is up, a rejected packet)
    // drops that packet, as a forwarder would.
    e.raw_os_error() == Some(libc::EBADFD)
}

fn pump_offload(from: Arc<SyncDevice>, to: Arc<SyncDevice>) {
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65535];
    // send_multiple's GRO appends segments to the first buffer of a run in place, and only
    // when the buffer can take a whole 64 KiB packet without reallocating.
    let mut bufs: Vec<Vec<u8>> = (0..IDEAL_BATCH_SIZE)
        .map(|_| {
            let mut b = Vec::with_capacity(2 * OFFSET + 65536);
            b.resize(OFFSET + SEGMENT_ROOM, 0);
            b
        })
        .collect();
    let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
    let mut gro = GROTable::default();
    loop {
        let n = match from.recv_multiple(&mut original, &mut bufs, &mut sizes, OFFSET) {
            Ok(n) => n,
            Err(e) if fatal(&e) => return,
            Err(_) => continue,
        };
        for i in 0..n {
            bufs[i].truncate(OFFSET + sizes[i]);
        }
        if let Err(e) = to.send_multiple(&mut gro, &mut bufs[..n], OFFSET) {
            if fatal(&e) {
                return;
            }
        }
        for b in bufs.iter_mut().take(n) {
            b.resize(OFFSET + SEGMENT_ROOM, 0);
        }
    }
}

fn pump_plain(from: Arc<SyncDevice>, to: Arc<SyncDevice>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match from.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if fatal(&e) => return,
            Err(_) => continue,
        };
        if let Err(e) = to.send(&buf[..n]) {
            if fatal(&e) {
                return;
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 || (args[1] != "offload" && args[1] != "plain") {
        eprintln!("usage: tun-rs-forwarder offload|plain NETNS_A DEV_A NETNS_B DEV_B");
        std::process::exit(2);
    }
    let offload = args[1] == "offload";
    let open_or_die = |ns: &str, dev: &str| {
        open(ns, dev, offload).unwrap_or_else(|e| {
            eprintln!("tun-rs-forwarder: create {dev} in {ns}: {e}");
            std::process::exit(1);
        })
    };
    let a = Arc::new(open_or_die(&args[2], &args[3]));
    let b = Arc::new(open_or_die(&args[4], &args[5]));
    if offload && !(a.tcp_gso() && b.tcp_gso()) {
        eprintln!("tun-rs-forwarder: tun-rs did not enable offload on the devices");
        std::process::exit(1);
    }
    let pump = if offload { pump_offload } else { pump_plain };
    let (a2, b2) = (a.clone(), b.clone());
    let t1 = thread::spawn(move || pump(a2, b2));
    let t2 = thread::spawn(move || pump(b, a));
    println!("ready");
    io::stdout().flush().ok();
    t1.join().ok();
    t2.join().ok();
}
