//! The differential check of the zero-copy reader (`wire`) and the whole-message build
//! (`whole`) against hickory (`parse_message`): the property the fuzz target `dns_fastpath` and
//! `dns::tests` assert on arbitrary and real messages. Test and fuzz support only; nothing on
//! a decoding path calls it.

use super::wire::{
    parse, AnswerNotes, WireError, WireMessage, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_PTR,
};

/// The differential check of the fuzz target and the tests: where hickory (`parse_message`)
/// reads a message whole, the wire reader must read it too, with the same first question (name as
/// `name_str` renders it, type) and the same answers (owner names, types, TTLs, A/AAAA
/// addresses, CNAME/NS/PTR targets). Where hickory only salvages, the first questions must
/// still agree when both read them. `Err` says what differs.
#[doc(hidden)]
pub fn differential(msg: &[u8]) -> Result<(), String> {
    let Ok(h) = super::parse_message(msg) else {
        if parse(msg).is_ok_and(|w| w.decodes_whole()) {
            return Err("the fast path would skip a message hickory cannot read".into());
        }
        return Ok(());
    };
    let whole = h.salvaged.is_none();
    if !whole && parse(msg).is_ok_and(|w| w.decodes_whole()) {
        return Err(format!(
            "the fast path would skip a message hickory only salvages: {:?}",
            h.salvaged
        ));
    }
    let w = match parse(msg) {
        Ok(w) => w,
        // Beyond this reader's own pointer bound it falls back to hickory: allowed.
        Err(WireError::TooManyPointers) => return Ok(()),
        Err(e) if whole => return Err(format!("hickory read the message, the fast path: {e:?}")),
        Err(_) => return Ok(()),
    };
    notes_agree(&w)?;
    match (h.questions.first(), w.question) {
        (Some((name, qtype)), Some(q)) => {
            let mine = q.name.to_normalised();
            if *name != mine || qtype.0 != q.qtype {
                return Err(format!("question {name}/{} vs {mine}/{}", qtype.0, q.qtype));
            }
            // The packet path compares a response's question with its query's name in place.
            if !q.name.renders_as(mine.as_bytes())
                || (mine != "x.invalid" && q.name.renders_as(b"x.invalid"))
            {
                return Err(format!("renders_as disagrees with the rendering {mine}"));
            }
            // The packet path hands this rendering to hickory (`parse_message_named`, issue
            // #11): the message must decode exactly as without it, salvaged or whole.
            match super::parse_message_named(msg, &mine) {
                Ok(named) if named == h => {}
                Ok(_) => return Err("the decode given the fast path's name differs".into()),
                Err(e) => return Err(format!("the decode given the fast path's name fails: {e}")),
            }
            // Where the fast path builds the message itself (`dns::whole`, issue #11), it is
            // hickory's, field by field.
            if w.decodes_whole() {
                if let Some(mine) = super::whole::parsed(&w, &mine) {
                    if mine != h {
                        return Err(format!("dns::whole {mine:?} vs hickory {h:?}"));
                    }
                }
            }
        }
        (None, None) => {}
        (a, b) => return Err(format!("question {a:?} vs {:?}", b.map(|q| q.qtype))),
    }
    if !whole || h.opcode == 5 || usize::from(w.ancount) > super::MAX_ANSWERS {
        return Ok(());
    }
    let mut mine = Vec::new();
    for r in w.answers() {
        let r = match r {
            Ok(r) => r,
            Err(WireError::TooManyPointers) => return Ok(()),
            Err(e) => return Err(format!("hickory read the answers, the fast path: {e:?}")),
        };
        if !r.rdata.is_empty() {
            mine.push(r);
        }
    }
    if mine.len() != h.answers.len() {
        return Err(format!("{} answers vs {}", h.answers.len(), mine.len()));
    }
    for (a, r) in h.answers.iter().zip(&mine) {
        let name = r.name.to_normalised();
        if a.name != name || a.rtype.0 != r.rtype || a.ttl != Some(r.ttl) {
            return Err(format!(
                "answer {} {} {:?} vs {name} {} {}",
                a.name, a.rtype.0, a.ttl, r.rtype, r.ttl
            ));
        }
        let data = match (r.ip(), r.target()) {
            (Some(ip), _) => Some(ip.to_string()),
            (None, Some(t)) => Some(t.to_normalised()),
            (None, None) => None,
        };
        if let Some(d) = data {
            if d != a.data {
                return Err(format!("answer data {} vs {d}", a.data));
            }
        } else if matches!(
            r.rtype,
            TYPE_A | TYPE_AAAA | TYPE_CNAME | TYPE_NS | TYPE_PTR
        ) {
            return Err(format!("answer {} of type {}: no data read", name, r.rtype));
        }
    }
    Ok(())
}

/// What the whole-message check notes of the answers (`decodes_whole_noting`, the fast path's
/// one walk) is what [`WireMessage::answers`] reads: the same verdict as `decodes_whole`, and
/// when it holds, the A/AAAA addresses and the CNAME targets of the answers in order.
fn notes_agree(w: &WireMessage<'_>) -> Result<(), String> {
    let mut notes = AnswerNotes::default();
    let whole = w.decodes_whole_noting(&mut notes);
    if whole != w.decodes_whole() {
        return Err("decodes_whole_noting and decodes_whole disagree".into());
    }
    if !whole {
        return Ok(());
    }
    let (mut ips, mut cnames) = (Vec::new(), Vec::new());
    for r in w.answers() {
        let r = r.map_err(|e| format!("a whole message's answer does not read: {e:?}"))?;
        if let Some(ip) = r.ip() {
            ips.push(ip);
        } else if r.rtype == TYPE_CNAME {
            let t = r
                .target()
                .ok_or("a whole message's CNAME target does not read")?;
            cnames.push(t.to_normalised());
        }
    }
    let noted: Vec<String> = notes
        .cnames
        .iter()
        .map(|&at| w.name_at(at).to_normalised())
        .collect();
    if notes.ips != ips || noted != cnames {
        return Err(format!(
            "noted {:?} {noted:?}, answers {ips:?} {cnames:?}",
            notes.ips
        ));
    }
    Ok(())
}
