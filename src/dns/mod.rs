//! Stage `dns`: DNS wire messages → the facts poolwatch needs (FOUNDATION VERSION; the packet-input
//! issue hardens it — salvage of malformed messages, counters — keeping `parse_message`).

use hickory_proto::op::Message;
use hickory_proto::rr::RData;

use crate::model::{normalize_name, DnsAnswer, Rcode, RrType};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("malformed DNS message: {reason}")]
    Malformed { reason: String },
}

/// The parts of one DNS message that the observations carry.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedMessage {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub rcode: Rcode,
    pub truncated: bool,
    pub recursion_desired: bool,
    /// (normalised name, type) of each question.
    pub questions: Vec<(String, RrType)>,
    pub answers: Vec<DnsAnswer>,
    /// Set when only part of the message could be decoded (the reason).
    pub salvaged: Option<String>,
}

/// Decodes one DNS message (no TCP length prefix).
pub fn parse_message(wire: &[u8]) -> Result<ParsedMessage, DnsError> {
    let msg = Message::from_vec(wire).map_err(|e| DnsError::Malformed {
        reason: e.to_string(),
    })?;
    let questions = msg
        .queries
        .iter()
        .map(|q| {
            (
                normalize_name(&q.name().to_ascii()),
                RrType(u16::from(q.query_type())),
            )
        })
        .collect();
    let answers = msg
        .answers
        .iter()
        .map(|r| {
            let data = match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::CNAME(n) => normalize_name(&n.0.to_ascii()),
                other => other.to_string(),
            };
            DnsAnswer {
                name: normalize_name(&r.name.to_ascii()),
                rtype: RrType(u16::from(r.record_type())),
                ttl: Some(r.ttl),
                data,
            }
        })
        .collect();
    Ok(ParsedMessage {
        id: msg.metadata.id,
        is_response: msg.metadata.message_type == hickory_proto::op::MessageType::Response,
        opcode: u8::from(msg.metadata.op_code),
        rcode: Rcode(u16::from(msg.metadata.response_code)),
        truncated: msg.metadata.truncation,
        recursion_desired: msg.metadata.recursion_desired,
        questions,
        answers,
        salvaged: None,
    })
}
