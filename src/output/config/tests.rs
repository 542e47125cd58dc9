use super::*;

#[test]
fn flags_parse_with_commas_in_targets() {
    let c = parse_flag("file:/var/log/a,b.json,format=ecs").unwrap();
    assert_eq!(c.path, Some(PathBuf::from("/var/log/a,b.json")));
    assert_eq!(c.format.as_deref(), Some("ecs"));
    let c = parse_flag("syslog:tcp://127.0.0.1:514,format=cef,min_stage=connection").unwrap();
    assert_eq!(c.address.as_deref(), Some("tcp://127.0.0.1:514"));
    assert_eq!(c.min_stage.as_deref(), Some("connection"));
    let c = parse_flag("webhook:https://h.example/x?a=1,2,on=new+update").unwrap();
    assert_eq!(c.url.unwrap().expose(), "https://h.example/x?a=1,2");
    assert_eq!(c.on, Some(vec!["new".to_string(), "update".to_string()]));
    assert!(parse_flag("kafka:x").is_err());
    assert!(parse_flag("nothing").is_err());
}

#[test]
fn validation_names_and_defaults() {
    let a = parse_flag("file:out.json").unwrap();
    let b = parse_flag("file:out2.json,format=eve").unwrap();
    let v = validate_all(&[a.clone(), b]).unwrap();
    assert_eq!(v[0].name, "file");
    assert_eq!(v[1].name, "file-2");
    assert_eq!(v[1].format, Format::Eve);
    assert_eq!(v[0].policy, Policy::default());
    let mut dup = a.clone();
    dup.name = Some("file".into());
    assert!(validate_all(&[dup.clone(), dup]).is_err());
    for bad in [
        "file:x,format=cef",
        "syslog:tcp://127.0.0.1:514,format=ecs",
        "syslog:http://x:1",
        "syslog:tcp://127.0.0.1:0",
        "syslog:tcp://127.0.0.1:514,facility=mars",
        "webhook:ftp://x",
        "webhook:https://x,secret=short",
        "file:x,min_stage=huge",
        "file:x,on=everything",
        "file:x,max_backlog=0",
        "file:/nonexistent-dir/x.json",
        "file:x,name=Bad/Name",
    ] {
        let c = parse_flag(bad).unwrap();
        assert!(validate_all(&[c]).is_err(), "{bad}");
    }
    let c = parse_flag("syslog:tls://[::1]:6514,facility=auth").unwrap();
    let v = validate_all(&[c]).unwrap();
    match &v[0].target {
        Target::Syslog(t) => {
            assert_eq!((t.host.as_str(), t.port, t.facility), ("::1", 6514, 4));
            assert_eq!(t.transport, SyslogTransport::Tls);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v[0].format_name(), "json");
}

#[test]
fn secrets_are_redacted_when_printed() {
    let mut c = parse_flag("webhook:https://hooks.example/services/T000/B000/XXXXSECRET").unwrap();
    c.secret = Some(Secret::new("0123456789abcdef-shared"));
    c.headers = Some([("Authorization".to_string(), Secret::new("Splunk abc-token"))].into());
    let v = validate_all(&[c]).unwrap();
    let json = serde_json::to_string(&v).unwrap();
    assert!(
        !json.contains("XXXXSECRET") && !json.contains("abc-token") && !json.contains("shared"),
        "{json}"
    );
}
