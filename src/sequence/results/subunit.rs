//! Subunit v2, the binary stream of testrepository, stestr and OpenStack's tempest: packets of
//! `0xB3`, 16-bit flags, a varint length (the whole packet's), optional fields in a fixed
//! order, and a CRC32. Bytes between packets (a runner's own output) are skipped, as subunit's
//! own tools pass them through.

use std::collections::BTreeMap;

use super::{SubResult, SubStatus};

const SIGNATURE: u8 = 0xB3;
const FLAG_TEST_ID: u16 = 0x0800;
const FLAG_ROUTE_CODE: u16 = 0x0400;
const FLAG_TIMESTAMP: u16 = 0x0200;
const FLAG_TAGS: u16 = 0x0080;
const FLAG_FILE_CONTENT: u16 = 0x0040;
const FLAG_MIME_TYPE: u16 = 0x0020;

/// What a test's packets say, merged.
struct Seen {
    status: Option<u16>,
    started: Option<f64>,
    in_progress: bool,
    ended: Option<f64>,
    order: usize,
}

pub fn parse(bytes: &[u8]) -> Result<Vec<SubResult>, String> {
    let mut tests: BTreeMap<String, Seen> = BTreeMap::new();
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes[pos] != SIGNATURE {
            pos += 1;
            continue;
        }
        let packet = Packet::read(bytes, pos)?;
        pos += packet.length;
        let Some(id) = packet.test_id else {
            continue;
        };
        let order = tests.len();
        let seen = tests.entry(id).or_insert(Seen {
            status: None,
            started: None,
            in_progress: false,
            ended: None,
            order,
        });
        match packet.status {
            0 | 1 => {}
            2 => {
                seen.in_progress = true;
                seen.started = packet.timestamp.or(seen.started);
            }
            s => {
                seen.status = Some(s);
                seen.ended = packet.timestamp.or(seen.ended);
            }
        }
    }
    let mut out: Vec<(usize, SubResult)> = tests
        .into_iter()
        .filter_map(|(name, seen)| {
            let (status, message) = match seen.status {
                Some(3) | Some(7) => (SubStatus::Pass, None),
                Some(5) => (SubStatus::Skip, None),
                Some(4) => (SubStatus::Fail, Some("unexpected success".to_string())),
                Some(6) => (SubStatus::Fail, None),
                // Enumerated but never run: not a result.
                None if !seen.in_progress => return None,
                _ => (
                    SubStatus::Error,
                    Some("started but never finished".to_string()),
                ),
            };
            let duration = match (seen.started, seen.ended) {
                (Some(a), Some(b)) if b >= a => Some(b - a),
                _ => None,
            };
            Some((
                seen.order,
                SubResult {
                    name,
                    status,
                    duration,
                    message,
                },
            ))
        })
        .collect();
    out.sort_by_key(|(order, _)| *order);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

struct Packet {
    length: usize,
    status: u16,
    timestamp: Option<f64>,
    test_id: Option<String>,
}

impl Packet {
    fn read(bytes: &[u8], start: usize) -> Result<Packet, String> {
        let at = |what: &str| format!("packet at byte {start}: {what}");
        let mut r = Cursor {
            bytes,
            pos: start + 1,
        };
        let flags = r.u16().ok_or_else(|| at("truncated flags"))?;
        if flags >> 12 != 2 {
            return Err(at(&format!("version {} is not subunit v2", flags >> 12)));
        }
        let length = r.varint().ok_or_else(|| at("truncated length"))? as usize;
        let end = start
            .checked_add(length)
            .filter(|&e| e <= bytes.len() && length >= 8)
            .ok_or_else(|| at(&format!("length {length} runs past the end of the stream")))?;
        let stored = u32::from_be_bytes(
            bytes[end - 4..end]
                .try_into()
                .map_err(|_| at("truncated checksum"))?,
        );
        if crc32fast::hash(&bytes[start..end - 4]) != stored {
            return Err(at("bad checksum"));
        }
        let mut body = Cursor {
            bytes: &bytes[..end - 4],
            pos: r.pos,
        };
        let truncated = || at("a field runs past the end of the packet");
        let timestamp = if flags & FLAG_TIMESTAMP != 0 {
            let seconds = body.u32().ok_or_else(truncated)?;
            let nanos = body.varint().ok_or_else(truncated)?;
            Some(seconds as f64 + nanos as f64 / 1e9)
        } else {
            None
        };
        let test_id = if flags & FLAG_TEST_ID != 0 {
            Some(body.string().ok_or_else(truncated)?)
        } else {
            None
        };
        if flags & FLAG_TAGS != 0 {
            let count = body.varint().ok_or_else(truncated)?;
            for _ in 0..count {
                body.string().ok_or_else(truncated)?;
            }
        }
        if flags & FLAG_MIME_TYPE != 0 {
            body.string().ok_or_else(truncated)?;
        }
        if flags & FLAG_FILE_CONTENT != 0 {
            body.string().ok_or_else(truncated)?;
            let n = body.varint().ok_or_else(truncated)? as usize;
            body.take(n).ok_or_else(truncated)?;
        }
        if flags & FLAG_ROUTE_CODE != 0 {
            body.string().ok_or_else(truncated)?;
        }
        Ok(Packet {
            length,
            status: flags & 0x0007,
            timestamp,
            test_id,
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// 1 to 4 bytes, big-endian; the first byte's top two bits say how many follow.
    fn varint(&mut self) -> Option<u32> {
        let first = *self.take(1)?.first()?;
        let extra = (first >> 6) as usize;
        let mut value = (first & 0x3f) as u32;
        for &b in self.take(extra)? {
            value = (value << 8) | b as u32;
        }
        Some(value)
    }

    fn string(&mut self) -> Option<String> {
        let n = self.varint()? as usize;
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Writes a packet as subunit's own StreamResultToBytes does.
    pub fn packet(status: u16, id: &str, timestamp: Option<u32>) -> Vec<u8> {
        let mut body = Vec::new();
        let mut flags = 0x2000 | status | FLAG_TEST_ID;
        if let Some(t) = timestamp {
            flags |= FLAG_TIMESTAMP;
            body.extend(t.to_be_bytes());
            body.push(0);
        }
        body.push(id.len() as u8);
        body.extend(id.as_bytes());
        // signature + flags + 1-byte length + body + crc
        let length = 1 + 2 + 1 + body.len() + 4;
        let mut p = vec![SIGNATURE];
        p.extend(flags.to_be_bytes());
        p.push(length as u8);
        p.extend(body);
        let crc = crc32fast::hash(&p);
        p.extend(crc.to_be_bytes());
        p
    }

    pub fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(packet(2, "t.a", Some(100)));
        s.extend(packet(3, "t.a", Some(102)));
        s.extend(b"runner noise\n");
        s.extend(packet(6, "t.b", None));
        s.extend(packet(5, "t.c", None));
        s.extend(packet(2, "t.d", None));
        s.extend(packet(1, "t.e", None));
        s
    }

    #[test]
    fn statuses_durations_and_unfinished_tests() {
        let r = parse(&sample()).unwrap();
        let got: Vec<(&str, SubStatus)> = r.iter().map(|s| (s.name.as_str(), s.status)).collect();
        assert_eq!(
            got,
            [
                ("t.a", SubStatus::Pass),
                ("t.b", SubStatus::Fail),
                ("t.c", SubStatus::Skip),
                ("t.d", SubStatus::Error),
            ]
        );
        assert_eq!(r[0].duration, Some(2.0));
    }

    #[test]
    fn a_bad_checksum_or_a_short_packet_is_an_error() {
        let mut p = packet(3, "t.a", None);
        let last = p.len() - 1;
        p[last] ^= 1;
        assert!(parse(&p).unwrap_err().contains("checksum"));
        let p = packet(3, "t.a", None);
        assert!(parse(&p[..p.len() - 2])
            .unwrap_err()
            .contains("past the end"));
    }
}
