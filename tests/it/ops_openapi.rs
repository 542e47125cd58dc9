//! The served OpenAPI document against the running service: `servers` names the address the
//! demo actually listens on, and real responses (detections with their evidence, a host's
//! bindings and timeline, pool IPs, checks, the summary) validate against the documented response
//! schemas, which forbid undocumented fields (`additionalProperties: false` on the typed
//! objects). A field added to the wire without its schema, or a schema that drifts from the
//! wire, fails here.

use serde_json::Value;

use crate::support::service as service_support;

use service_support::*;

/// Validates `v` against an OpenAPI 3.0 schema (the subset the document uses); collects errors
/// with their JSON path.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "dangling $ref {r}");
        return validate(doc, target, v, at, errors);
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            validate(doc, s, v, at, errors);
        }
    }
    if v.is_null() {
        if schema["nullable"] != true && schema.get("type").is_some() {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            errors.push(format!("{at}: {v} not in {options:?}"));
        }
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("array") => v.is_array(),
        Some("object") => v.is_object(),
        Some(other) => panic!("schema type {other} at {at}"),
    };
    if !ok {
        errors.push(format!("{at}: {v} is not {}", schema["type"]));
        return;
    }
    if schema["format"] == "date-time" {
        if let Some(s) = v.as_str() {
            if chrono::DateTime::parse_from_rfc3339(s).is_err() {
                errors.push(format!("{at}: {s} is not RFC 3339"));
            }
        }
    }
    if let Some(n) = v.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m)
            || schema["maximum"].as_f64().is_some_and(|m| n > m)
        {
            errors.push(format!("{at}: {n} out of range"));
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            let k = req.as_str().unwrap();
            if !obj.contains_key(k) {
                errors.push(format!("{at}: required `{k}` missing"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, x, &format!("{at}.{k}"), errors),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => {
                        errors.push(format!("{at}: undocumented field `{k}`"));
                    }
                    s @ Value::Object(_) => validate(doc, s, x, &format!("{at}.{k}"), errors),
                    _ => {}
                },
            }
        }
    }
}

#[test]
fn served_openapi_names_the_listen_address_and_its_schemas_fit_the_wire() {
    let s = Svc::start(&["demo", "--listen", "127.0.0.1:0"], None);
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    let dets = wait_for(&c, &s, None, "the sample verdicts", |d| {
        served_stages(d) == want
    });
    let doc: Value = c
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["servers"][0]["url"], s.base, "{}", doc["servers"]);

    let schemas = &doc["components"]["schemas"];
    for typed in ["Evidence", "Binding", "ListHit"] {
        assert_eq!(
            schemas[typed]["type"], "object",
            "{typed} is a typed schema"
        );
    }
    assert_eq!(
        schemas["HostTimeline"]["properties"]["timeline"]["items"]["$ref"],
        "#/components/schemas/Evidence"
    );
    assert_eq!(
        schemas["Detection"]["properties"]["evidence"]["items"]["$ref"],
        "#/components/schemas/Evidence"
    );

    let id = dets[0]["id"].as_str().unwrap().to_string();
    let mut cases: Vec<(&str, String)> = vec![
        ("/api/v1/detections", "/api/v1/detections?limit=1000".into()),
        (
            "/api/v1/detections/{id}",
            format!("/api/v1/detections/{id}"),
        ),
        ("/api/v1/pools", "/api/v1/pools".into()),
        (
            "/api/v1/export/pool-ips",
            "/api/v1/export/pool-ips?format=json&at=latest".into(),
        ),
        (
            "/api/v1/check",
            "/api/v1/check?name=pool.supportxmr.com".into(),
        ),
        ("/api/v1/check", "/api/v1/check?name=binance.com".into()),
        ("/api/v1/check", "/api/v1/check?name=example.org".into()),
        ("/api/v1/summary", "/api/v1/summary".into()),
    ];
    for d in &dets {
        cases.push((
            "/api/v1/hosts/{ip}",
            format!("/api/v1/hosts/{}", d["client_ip"].as_str().unwrap()),
        ));
    }
    let mut errors = Vec::new();
    let mut evidence_seen = 0;
    let mut bindings_seen = 0;
    for (template, url) in &cases {
        let schema = &doc["paths"][template]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        assert!(schema.is_object(), "no JSON schema for {template}");
        let v: Value = c.get(s.url(url)).send().unwrap().json().unwrap();
        evidence_seen += v["timeline"].as_array().map_or(0, Vec::len);
        bindings_seen += v["bindings"].as_array().map_or(0, Vec::len);
        validate(&doc, schema, &v, url, &mut errors);
    }
    assert!(
        evidence_seen > 0 && bindings_seen > 0,
        "the cases exercise the typed schemas"
    );
    assert!(
        errors.is_empty(),
        "responses do not fit the schemas:\n{}",
        errors.join("\n")
    );
}
