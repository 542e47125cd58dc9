//! The one Stratum rule (`capture::payload`, docs/detections.md "Stratum rule"): a table of
//! real first client messages of mining software (positives) and of JSON-RPC software that is
//! not mining, several with a `login` method (negatives). The correlation engine trusts the
//! capture's `app` label and never re-sniffs payload bytes, so a bare JSON-RPC `login` can no
//! longer become a `stratum` incident.

use crate::support::capture as capture_support;

use capture_support::*;
use poolwatch::capture::payload::classify_client;
use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::{AppInfo, FlowState, Observation, Source, Timestamp};

use crate::support::obs;

struct Case {
    name: &'static str,
    first_message: &'static [u8],
    /// The method recognised as mining, or None.
    stratum: Option<&'static str>,
}

const fn case(
    name: &'static str,
    first_message: &'static [u8],
    stratum: Option<&'static str>,
) -> Case {
    Case {
        name,
        first_message,
        stratum,
    }
}

const CASES: &[Case] = &[
    // ---- mining software: first messages as they go on the wire ----
    case(
        "XMRig 6.21 login",
        br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["rx/0","cn/1","cn/2","cn/r","cn/fast","cn/half","cn/xao","cn/rto","cn/rwz","cn/zls","cn/double","cn-lite/1","cn-heavy/0","cn-heavy/tube","cn-heavy/xhv","cn-pico","cn-pico/tlo","cn/ccx","cn/upx2","rx/wow","rx/arq","rx/graft","rx/sfx","rx/keva","argon2/chukwa","argon2/chukwav2","argon2/ninja","astrobwt","ghostrider"]}}
"#,
        Some("login"),
    ),
    case(
        "XMRig with a stripped agent (malware build): algo and pass still give it away",
        br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"x","pass":"x","rigid":"","algo":["rx/0"]}}
"#,
        Some("login"),
    ),
    case(
        "xmr-stak 2.10 login",
        br#"{"method":"login","params":{"login":"44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A","pass":"x","rigid":"","agent":"xmr-stak/2.10.8/6d6e1c7/master/lin/nvidia-amd-cpu/aeon-cryptonight-monero/0"},"id":1}
"#,
        Some("login"),
    ),
    case(
        "cpuminer 2.5 (pooler) subscribe",
        b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer/2.5.1\"]}\n",
        Some("mining.subscribe"),
    ),
    case(
        "cpuminer-multi CryptoNight login",
        br#"{"method": "login", "params": {"login": "4A", "pass": "x", "agent": "cpuminer-multi/1.3.7"}, "id": 1}
"#,
        Some("login"),
    ),
    case(
        "cgminer 4.12 subscribe",
        b"{\"id\": 0, \"method\": \"mining.subscribe\", \"params\": [\"cgminer/4.12.1\"]}\n",
        Some("mining.subscribe"),
    ),
    case(
        "bmminer (Antminer) subscribe",
        b"{\"id\": 0, \"method\": \"mining.subscribe\", \"params\": [\"bmminer/2.0.0\"]}\n",
        Some("mining.subscribe"),
    ),
    case(
        "Antminer with version rolling: mining.configure first (BIP 310)",
        br#"{"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]}
"#,
        Some("mining.configure"),
    ),
    case(
        "authorize before subscribe",
        b"{\"params\": [\"bc1qworker.rig1\", \"x\"], \"id\": 2, \"method\": \"mining.authorize\"}\n",
        Some("mining.authorize"),
    ),
    case(
        "ethminer in ethproxy mode (eth_submitLogin)",
        br#"{"id":1,"jsonrpc":"2.0","method":"eth_submitLogin","params":["0x2a5a8f2e4b3c1d0e9f8a7b6c5d4e3f2a1b0c9d8e","x"],"worker":"rig1"}
"#,
        Some("eth_submitLogin"),
    ),
    case(
        "ethminer EthereumStratum/1.0.0 subscribe",
        br#"{"id":1,"method":"mining.subscribe","params":["ethminer 0.19.0","EthereumStratum/1.0.0"],"jsonrpc":"2.0"}
"#,
        Some("mining.subscribe"),
    ),
    case(
        "Claymore ethproxy eth_login",
        br#"{"worker": "", "jsonrpc": "2.0", "params": ["0x2a5a8f2e4b3c1d0e9f8a7b6c5d4e3f2a1b0c9d8e", "x"], "id": 2, "method": "eth_login"}
"#,
        Some("eth_login"),
    ),
    case(
        "NiceHash EthereumStratum subscribe",
        b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"NiceHash/1.0.0\", \"EthereumStratum/1.0.0\"]}\n",
        Some("mining.subscribe"),
    ),
    case(
        "NiceHash extranonce subscription",
        b"{\"id\": 2, \"method\": \"mining.extranonce.subscribe\", \"params\": []}\n",
        Some("mining.extranonce.subscribe"),
    ),
    case(
        "SRBMiner-MULTI RandomX login",
        br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4A","pass":"x","agent":"SRBMiner-MULTI/2.4.4","algo":["randomx"]}}
"#,
        Some("login"),
    ),
    case(
        "SRBMiner-MULTI kawpow subscribe",
        b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"SRBMiner-MULTI/2.4.4\",\"EthereumStratum/1.0.0\"]}\n",
        Some("mining.subscribe"),
    ),
    case(
        "T-Rex kawpow subscribe",
        b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"T-Rex/0.26.8\"]}\n",
        Some("mining.subscribe"),
    ),
    case(
        "lolMiner subscribe",
        b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"mining.subscribe\",\"params\":[\"lolMiner 1.76\",\"EthereumStratum/1.0.0\"]}\n",
        Some("mining.subscribe"),
    ),
    case(
        "XMRig share submit (a session picked up mid-stream)",
        br#"{"id":5,"jsonrpc":"2.0","method":"submit","params":{"id":"1","job_id":"2","nonce":"d0030040","result":"e1364b8782719d7683e2ccd3d8f724bc59dfa780a9e960e7c0e0046acdb40100"}}
"#,
        Some("submit"),
    ),
    case(
        "XMRig keepalive",
        b"{\"id\":3,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"1\"}}\n",
        Some("keepalived"),
    ),
    // ---- JSON-RPC that is not mining ----
    case(
        "Electrum client handshake",
        b"{\"jsonrpc\": \"2.0\", \"method\": \"server.version\", \"params\": [\"electrum/4.5.5\", \"1.4\"], \"id\": 0}\n",
        None,
    ),
    case(
        "Electrum address subscription",
        b"{\"jsonrpc\": \"2.0\", \"method\": \"blockchain.scripthash.subscribe\", \"params\": [\"8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161\"], \"id\": 3}\n",
        None,
    ),
    case(
        "Ethereum node RPC",
        br#"{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}"#,
        None,
    ),
    case(
        "Ethereum node account unlock (a login of sorts)",
        br#"{"jsonrpc":"2.0","method":"personal_unlockAccount","params":["0x2a5a8f2e4b3c1d0e9f8a7b6c5d4e3f2a1b0c9d8e","passphrase",300],"id":67}"#,
        None,
    ),
    case(
        "aria2 RPC over HTTP",
        b"POST /jsonrpc HTTP/1.1\r\nHost: localhost:6800\r\nContent-Type: application/json\r\nContent-Length: 104\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":\"qwer\",\"method\":\"aria2.addUri\",\"params\":[\"token:secret\",[\"http://example.org/f\"]]}",
        None,
    ),
    case(
        "aria2 raw JSON-RPC",
        br#"{"jsonrpc":"2.0","id":"1","method":"aria2.getVersion","params":["token:secret"]}"#,
        None,
    ),
    case(
        "Kodi JSON-RPC ping (TCP 9090)",
        br#"{"jsonrpc":"2.0","method":"JSONRPC.Ping","id":1}"#,
        None,
    ),
    case(
        "Kodi player query",
        br#"{"jsonrpc": "2.0", "method": "Player.GetActivePlayers", "id": 1}"#,
        None,
    ),
    case(
        "bare JSON-RPC login of a web app",
        br#"{"jsonrpc":"2.0","id":1,"method":"login","params":{"user":"admin","password":"hunter2"}}"#,
        None,
    ),
    case(
        "login with a login key but no pass",
        br#"{"jsonrpc":"2.0","method":"login","params":{"login":"admin","password":"pw"},"id":1}"#,
        None,
    ),
    case(
        "login with login and pass but nothing of a miner",
        br#"{"method":"login","params":{"login":"alice","pass":"secret"},"id":1}"#,
        None,
    ),
    case(
        "login of an app that sends a user agent",
        br#"{"method":"login","params":{"username":"bob","agent":"Mozilla/5.0"},"id":1}"#,
        None,
    ),
    case(
        "Deluge web login",
        br#"{"method": "auth.login", "params": ["deluge"], "id": 1}"#,
        None,
    ),
    case(
        "a form submit",
        br#"{"jsonrpc":"2.0","method":"submit","params":{"form":"contact","email":"a@example.org"},"id":7}"#,
        None,
    ),
    case(
        "Bitcoin Core wallet RPC over HTTP",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8332\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n{\"jsonrpc\":\"1.0\",\"id\":\"curltest\",\"method\":\"getbalance\",\"params\":[]}",
        None,
    ),
];

#[test]
fn stratum_rule_table_of_real_first_messages() {
    let mut failures = Vec::new();
    for c in CASES {
        let mut app = AppInfo::default();
        classify_client(c.first_message, &mut app);
        if app.stratum_method.as_deref() != c.stratum {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.stratum, app.stratum_method
            ));
        }
        // Split anywhere, the prefix grows and is re-classified: the verdict must not depend
        // on segmentation once the whole message is there.
        let mut app = AppInfo::default();
        let mid = c.first_message.len() / 2;
        classify_client(&c.first_message[..mid], &mut app);
        classify_client(c.first_message, &mut app);
        if app.stratum_method.as_deref() != c.stratum {
            failures.push(format!(
                "{} (in two segments): got {:?}",
                c.name, app.stratum_method
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (pos, neg) = CASES.iter().partition::<Vec<_>, _>(|c| c.stratum.is_some());
    assert!(pos.len() >= 15 && neg.len() >= 10);
}

/// A flow observation with `payload_out` as its first client bytes and `app` as given.
fn flow_obs(payload: &[u8], app: AppInfo, dst: &str) -> Observation {
    let t = |s: &str| Timestamp::parse(s).expect("a time stamp");
    obs::flow(t("2026-11-26T12:00:01Z"), "192.0.2.60", dst, 8080)
        .last(t("2026-11-26T12:00:02Z"))
        .src_port(50_000)
        .state(FlowState::Established)
        .bytes(payload.len() as u64, 100)
        .payload_out(payload)
        .app(app)
        .source(Source::new("test"))
        .build()
}

#[test]
fn jsonrpc_login_of_non_miner_is_not_stratum() {
    // End to end: a web app's JSON-RPC login on a non-pool address, captured and scanned.
    let tmp = tempfile::tempdir().unwrap();
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let mut conn = Conn::new(v4("192.0.2.60"), 50_000, v4("203.0.113.80"), 8080);
    conn.handshake(&mut p, 0);
    conn.client(
        &mut p,
        1_000,
        br#"{"jsonrpc":"2.0","id":1,"method":"login","params":{"user":"admin","password":"hunter2"}}"#,
    );
    conn.server(
        &mut p,
        2_000,
        br#"{"jsonrpc":"2.0","id":1,"result":{"token":"abc"}}"#,
    );
    conn.close(&mut p, 3_000);
    let path = tmp.path().join("webapp.pcap");
    std::fs::write(&path, &p.bytes).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(["scan", "--output", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "no detection: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // The engine takes the capture's word: payload bytes without an app label are no incident
    // (it used to re-sniff a bare `login`), and a labelled flow is one.
    let lists = matcher::shared(Blocklists::builtin().unwrap());
    let mut e = Engine::new(EngineConfig::default(), lists);
    let bare = br#"{"jsonrpc":"2.0","id":1,"method":"login","params":{"user":"admin"}}"#;
    let mut dets = e
        .observe(&flow_obs(bare, AppInfo::default(), "203.0.113.80"))
        .detections;
    let stratum_looking = br#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}"#;
    dets.extend(
        e.observe(&flow_obs(
            stratum_looking,
            AppInfo::default(),
            "203.0.113.81",
        ))
        .detections,
    );
    dets.extend(e.drain().detections);
    assert!(dets.is_empty(), "unlabelled payloads are not re-sniffed");
    let labelled = AppInfo {
        stratum_method: Some("mining.subscribe".into()),
        ..AppInfo::default()
    };
    let mut dets = e
        .observe(&flow_obs(stratum_looking, labelled, "203.0.113.82"))
        .detections;
    dets.extend(e.drain().detections);
    assert!(
        dets.iter().any(|c| c.detection.stage.as_str() == "stratum"),
        "a labelled flow is stratum"
    );
}
