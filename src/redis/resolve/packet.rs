//! DNS messages: the query this resolver sends and the parser of the replies (RFC 1035 §4), bounds-checked
//! throughout so that no packet can panic or hang it.

use std::net::IpAddr;

use super::MAX_LABEL_LEN;

pub(super) const MAX_CNAME_HOPS: usize = 16;
/// Compression pointers followed while decoding one name; a loop of pointers ends here.
pub(super) const MAX_POINTER_JUMPS: usize = 64;
pub(super) const TYPE_A: u16 = 1;
pub(super) const TYPE_CNAME: u16 = 5;
pub(super) const TYPE_AAAA: u16 = 28;
pub(super) const CLASS_IN: u16 = 1;
pub(super) const RCODE_NOERROR: u16 = 0;
pub(super) const RCODE_NXDOMAIN: u16 = 3;

/// A reply that answers our question.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// NOERROR: the addresses of the requested type at the end of any CNAME chain (none: no data).
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN.
    NoName,
    /// Any other rcode, a CNAME loop, or a truncated reply without addresses: ask another server.
    Failure(String),
}

/// A standard query (recursion desired) for `name`, or `None` if a label is empty or too long.
pub(super) fn build_query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut query = Vec::with_capacity(18 + name.len());
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return None;
        }
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    query.extend_from_slice(&qtype.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    Some(query)
}

pub(super) fn read_u16(packet: &[u8], at: usize) -> Option<u16> {
    let bytes = packet.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// The name at `start` (lowercase, dotted) and the offset just after it, following compression pointers.
/// `None` for anything malformed: out of bounds, a reserved label type, a `.` inside a label, more than 255
/// characters, or more than [`MAX_POINTER_JUMPS`] pointers (which is how a pointer loop ends).
pub(super) fn read_name(packet: &[u8], start: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut pos = start;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = usize::from(*packet.get(pos)?);
        match len & 0xc0 {
            0x00 if len == 0 => return Some((name, end.unwrap_or(pos + 1))),
            0x00 => {
                let label = packet.get(pos + 1..pos + 1 + len)?;
                if label.contains(&b'.') {
                    return None;
                }
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
                if name.len() > 255 {
                    return None;
                }
                pos += 1 + len;
            }
            0xc0 => {
                let low = usize::from(*packet.get(pos + 1)?);
                end.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > MAX_POINTER_JUMPS {
                    return None;
                }
                pos = ((len & 0x3f) << 8) | low;
            }
            _ => return None,
        }
    }
}

/// One resource record of the answer section: its owner name, type, class and where its data is.
pub(super) struct Record {
    name: String,
    rtype: u16,
    class: u16,
    data: std::ops::Range<usize>,
}

/// The reply to query `id` about `qname`/`qtype`, or `None` if the packet is not one (another id, not a response,
/// another question) or is malformed.
pub(super) fn parse_response(packet: &[u8], id: u16, qname: &str, qtype: u16) -> Option<Reply> {
    if read_u16(packet, 0)? != id {
        return None;
    }
    let flags = read_u16(packet, 2)?;
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let truncated = flags & 0x0200 != 0;
    let rcode = flags & 0xf;
    if !is_response || opcode != 0 || read_u16(packet, 4)? != 1 {
        return None;
    }
    let answers = read_u16(packet, 6)?;
    let (question, after) = read_name(packet, 12)?;
    if !question.eq_ignore_ascii_case(qname.strip_suffix('.').unwrap_or(qname))
        || read_u16(packet, after)? != qtype
        || read_u16(packet, after + 2)? != CLASS_IN
    {
        return None;
    }
    match rcode {
        RCODE_NOERROR => {}
        RCODE_NXDOMAIN => return Some(Reply::NoName),
        other => return Some(Reply::Failure(format!("the server answered with rcode {other}"))),
    }

    let mut records = Vec::new();
    let mut pos = after + 4;
    for _ in 0..answers {
        let record = (|| {
            let (name, fixed) = read_name(packet, pos)?;
            let rtype = read_u16(packet, fixed)?;
            let class = read_u16(packet, fixed + 2)?;
            let len = usize::from(read_u16(packet, fixed + 8)?);
            let data = fixed + 10..fixed + 10 + len;
            packet.get(data.clone())?;
            Some(Record { name, rtype, class, data })
        })();
        match record {
            Some(record) => {
                pos = record.data.end;
                records.push(record);
            }
            // A truncated reply may end mid-record; the complete records before it are still good.
            None if truncated => break,
            None => return None,
        }
    }

    let mut target = question;
    let mut hops = 0;
    while let Some(cname) = records.iter().find(|r| r.rtype == TYPE_CNAME && r.class == CLASS_IN && r.name == target) {
        hops += 1;
        if hops > MAX_CNAME_HOPS {
            return Some(Reply::Failure(format!("CNAME chain from {qname} longer than {MAX_CNAME_HOPS}")));
        }
        target = read_name(packet, cname.data.start)?.0;
    }
    let mut addrs = Vec::new();
    for record in records.iter().filter(|r| r.rtype == qtype && r.class == CLASS_IN && r.name == target) {
        let data = packet.get(record.data.clone())?;
        let ip = match (qtype, data.len()) {
            (TYPE_A, 4) => IpAddr::from(<[u8; 4]>::try_from(data).ok()?),
            (TYPE_AAAA, 16) => IpAddr::from(<[u8; 16]>::try_from(data).ok()?),
            _ => continue,
        };
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    if truncated && addrs.is_empty() {
        return Some(Reply::Failure("truncated reply without addresses (TCP fallback is not supported)".to_owned()));
    }
    Some(Reply::Addrs(addrs))
}
