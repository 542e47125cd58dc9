//! A TLS ClientHello and `Conn`, a TCP session written packet by packet.

use std::net::IpAddr;

#[allow(unused_imports)]
use super::*;

/// A minimal TLS 1.2 ClientHello record carrying `sni`.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]); // cipher suites
    body.extend_from_slice(&[1, 0]); // compression
    let mut exts = Vec::new();
    // supported_groups first, so SNI is not the first extension
    exts.extend_from_slice(&[0x00, 0x0a, 0, 4, 0, 2, 0, 0x1d]);
    let host = sni.as_bytes();
    let mut sn = Vec::new();
    sn.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    sn.push(0);
    sn.extend_from_slice(&(host.len() as u16).to_be_bytes());
    sn.extend_from_slice(host);
    exts.extend_from_slice(&[0, 0]);
    exts.extend_from_slice(&(sn.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sn);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// A TCP connection's frames, tracking sequence numbers.
pub struct Conn {
    pub c: IpAddr,
    pub cp: u16,
    pub s: IpAddr,
    pub sp: u16,
    pub cseq: u32,
    pub sseq: u32,
}

impl Conn {
    pub fn new(c: IpAddr, cp: u16, s: IpAddr, sp: u16) -> Self {
        Conn {
            c,
            cp,
            s,
            sp,
            cseq: 1000,
            sseq: 5000,
        }
    }
    /// A client → server segment with the current sequence numbers.
    fn up(&self, flags: u8, data: &[u8]) -> Vec<u8> {
        tcp_frame(
            self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, flags, data,
        )
    }
    /// A server → client segment with the current sequence numbers (`seq_add` shifts the
    /// server's sequence number, for out-of-order delivery).
    fn down(&self, seq_add: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        tcp_frame(
            self.s,
            self.sp,
            self.c,
            self.cp,
            self.sseq.wrapping_add(seq_add),
            self.cseq,
            flags,
            data,
        )
    }
    pub fn handshake(&mut self, p: &mut Pcap, t: u64) {
        p.push(
            t,
            &tcp_frame(self.c, self.cp, self.s, self.sp, self.cseq, 0, SYN, &[]),
        );
        self.cseq += 1;
        // The SYN-ACK acknowledges the SYN.
        p.push(t + 100, &self.down(0, SYN | ACK, &[]));
        self.sseq += 1;
        p.push(t + 200, &self.up(ACK, &[]));
    }
    pub fn client(&mut self, p: &mut Pcap, t: u64, data: &[u8]) {
        p.push(t, &self.up(PSH | ACK, data));
        self.cseq += data.len() as u32;
    }
    pub fn server(&mut self, p: &mut Pcap, t: u64, data: &[u8]) {
        p.push(t, &self.down(0, PSH | ACK, data));
        self.sseq += data.len() as u32;
    }
    /// Server bytes at an explicit sequence offset (for out-of-order delivery).
    pub fn server_at(&self, p: &mut Pcap, t: u64, offset: u32, data: &[u8]) {
        p.push(t, &self.down(offset, PSH | ACK, data));
    }
    pub fn close(&mut self, p: &mut Pcap, t: u64) {
        p.push(t, &self.up(FIN | ACK, &[]));
        self.cseq += 1;
        p.push(t + 100, &self.down(0, FIN | ACK, &[]));
        self.sseq += 1;
        p.push(t + 200, &self.up(ACK, &[]));
    }
}
