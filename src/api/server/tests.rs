use super::*;

#[test]
fn v6_clients_count_per_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(client_key(a), client_key(b));
    assert_ne!(client_key(a), client_key(c));
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
    assert_eq!(client_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
}

#[test]
fn statuses_of_hyper_answers() {
    let hyper =
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
    assert_eq!(hyper_error_status(hyper), Some(431));
    let ours =
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(hyper_error_status(ours), None);
    assert_eq!(
        hyper_error_status(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        None
    );
    assert_eq!(hyper_error_status(b"HTTP/1.1 4"), None);
    assert_eq!(hyper_error_status(b"garbage"), None);
}

#[test]
fn admission_caps_and_probe_slots() {
    let o = ApiOptions {
        max_connections: 2,
        max_connections_per_client: 1,
        probe_connections: 1,
        ..ApiOptions::default()
    };
    let s = Arc::new(Slots::new(&o));
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "192.0.2.2".parse().unwrap();
    let (s1, m1) = s.admit(a).unwrap();
    assert_eq!(m1, Mode::Normal);
    // Same client again: over its share → the reserved slot.
    let (s2, m2) = s.admit(a).unwrap();
    assert_eq!(m2, Mode::ProbeOnly);
    assert_eq!(s.admit(a).err(), Some(Refusal::PerClient));
    let (_s3, m3) = s.admit(b).unwrap();
    assert_eq!(m3, Mode::Normal);
    let c: IpAddr = "192.0.2.3".parse().unwrap();
    assert_eq!(s.admit(c).err(), Some(Refusal::Capacity));
    drop(s2);
    drop(s1);
    let (_s4, m4) = s.admit(a).unwrap();
    assert_eq!(m4, Mode::Normal);
    assert_eq!(s.inner.lock().unwrap().clients.len(), 2);
}
