//! Distinguished names: RFC 4514 strings read into something comparable,
//! and a certificate's name written as one.

use super::X509Error;
use x509_parser::asn1_rs::{Any, Class};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// Longest distinguished name string read, bytes.
pub const MAX_DN_LENGTH: usize = 8192;

/// Attribute types known by name: (OID, the RFC 4514 name written for it,
/// every name read for it, lowercase).
const ATTRIBUTE_TYPES: &[(&str, &str, &[&str])] = &[
    ("2.5.4.3", "CN", &["cn", "commonname"]),
    ("2.5.4.4", "SN", &["sn", "surname"]),
    ("2.5.4.5", "serialNumber", &["serialnumber"]),
    ("2.5.4.6", "C", &["c", "countryname"]),
    ("2.5.4.7", "L", &["l", "localityname"]),
    ("2.5.4.8", "ST", &["st", "stateorprovincename"]),
    ("2.5.4.9", "STREET", &["street", "streetaddress"]),
    ("2.5.4.10", "O", &["o", "organizationname"]),
    ("2.5.4.11", "OU", &["ou", "organizationalunitname"]),
    ("2.5.4.12", "title", &["title"]),
    ("2.5.4.42", "GN", &["gn", "givenname"]),
    ("0.9.2342.19200300.100.1.1", "UID", &["uid", "userid"]),
    (
        "0.9.2342.19200300.100.1.25",
        "DC",
        &["dc", "domaincomponent"],
    ),
    (
        "1.2.840.113549.1.9.1",
        "emailAddress",
        &["emailaddress", "email", "e"],
    ),
];

/// A distinguished name as compared: RDNs in order, each a sorted list of
/// (attribute type, value); types as dotted OIDs (or a lowercase descriptor
/// not known here), text values prepared for `caseIgnoreMatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName(Vec<Vec<(String, AttributeValue)>>);

/// An attribute value as compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum AttributeValue {
    /// A string: leading and trailing white space removed, inner runs of
    /// white space one space, lowercase (RFC 4517 `caseIgnoreMatch`, with
    /// RFC 4518's insignificant-space handling).
    Text(String),
    /// A value that is not a string (`#` and its BER encoding), exactly.
    Ber(Vec<u8>),
}

impl DistinguishedName {
    /// Reads an RFC 4514 string. White space around `,`, `+` and attribute
    /// types is tolerated; `;` as a separator is not.
    pub fn parse(text: &str) -> Result<DistinguishedName, X509Error> {
        if text.len() > MAX_DN_LENGTH {
            return Err(X509Error::DnTooLong);
        }
        let mut reader = DnReader {
            text: text.as_bytes(),
            at: 0,
        };
        let mut rdns = Vec::new();
        if text.trim().is_empty() {
            return Ok(DistinguishedName(rdns));
        }
        let mut rdn = Vec::new();
        loop {
            let attribute = reader.attribute_type()?;
            let value = reader.value()?;
            rdn.push((attribute, value));
            let separator = reader.next();
            if separator == Some(b'+') {
                continue;
            }
            rdn.sort();
            rdns.push(std::mem::take(&mut rdn));
            match separator {
                Some(b',') => {}
                None => return Ok(DistinguishedName(rdns)),
                Some(_) => return Err(reader.error()),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct DnReader<'a> {
    text: &'a [u8],
    at: usize,
}

impl DnReader<'_> {
    fn error(&self) -> X509Error {
        X509Error::MalformedDn { at: self.at }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// `descr` or `numericoid` (RFC 4512 §1.4), then `=`.
    fn attribute_type(&mut self) -> Result<String, X509Error> {
        self.skip_spaces();
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            self.at += 1;
        }
        let name = std::str::from_utf8(&self.text[start..self.at]).map_err(|_| self.error())?;
        self.skip_spaces();
        if self.next() != Some(b'=') {
            return Err(self.error());
        }
        let lowercase = name.to_ascii_lowercase();
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            let numeric = name.split('.').all(|arc| {
                !arc.is_empty()
                    && arc.bytes().all(|b| b.is_ascii_digit())
                    && (arc == "0" || !arc.starts_with('0'))
            });
            return match numeric && name.contains('.') {
                true => Ok(lowercase),
                false => Err(X509Error::MalformedDn { at: start }),
            };
        }
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) || name.contains('.') {
            return Err(X509Error::MalformedDn { at: start });
        }
        Ok(ATTRIBUTE_TYPES
            .iter()
            .find(|(_, _, names)| names.contains(&lowercase.as_str()))
            .map_or(lowercase, |(oid, _, _)| (*oid).to_owned()))
    }

    /// `string` or `hexstring` (RFC 4514 §3), up to an unescaped `,`, `+` or
    /// the end.
    fn value(&mut self) -> Result<AttributeValue, X509Error> {
        self.skip_spaces();
        if self.peek() == Some(b'#') {
            self.at += 1;
            let start = self.at;
            while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                self.at += 1;
            }
            let hex = &self.text[start..self.at];
            self.skip_spaces();
            if hex.is_empty()
                || hex.len() % 2 == 1
                || !matches!(self.peek(), None | Some(b',' | b'+'))
            {
                return Err(self.error());
            }
            let ber: Vec<u8> = hex
                .chunks(2)
                .map(|pair| hex_byte(pair[0], pair[1]))
                .collect();
            return Ok(match ber_string(&ber) {
                Some(text) => AttributeValue::Text(prepare(&text)),
                None => AttributeValue::Ber(ber),
            });
        }
        let mut bytes = Vec::new();
        while let Some(byte) = self.peek() {
            match byte {
                b',' | b'+' => break,
                b'"' | b';' | b'<' | b'>' | 0 => return Err(self.error()),
                b'\\' => {
                    self.at += 1;
                    match (self.next(), self.peek()) {
                        (Some(high), Some(low))
                            if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() =>
                        {
                            self.at += 1;
                            bytes.push(hex_byte(high, low));
                        }
                        (
                            Some(
                                special @ (b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'='
                                | b'>' | b'\\'),
                            ),
                            _,
                        ) => bytes.push(special),
                        _ => return Err(self.error()),
                    }
                }
                other => {
                    self.at += 1;
                    bytes.push(other);
                }
            }
        }
        String::from_utf8(bytes)
            .map(|text| AttributeValue::Text(prepare(&text)))
            .map_err(|_| self.error())
    }
}

fn hex_byte(high: u8, low: u8) -> u8 {
    let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
    digit(high) << 4 | digit(low)
}

/// `caseIgnoreMatch` preparation.
fn prepare(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The text of a DER string value (universal, primitive, definite length
/// covering the input), or `None` for anything else.
fn ber_string(ber: &[u8]) -> Option<String> {
    let (&tag, rest) = ber.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, content) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let (length, content) = rest.split_at_checked(usize::from(first & 0x7f))?;
            (
                length.iter().fold(0, |n, &b| n << 8 | usize::from(b)),
                content,
            )
        }
        _ => return None,
    };
    if length != content.len() {
        return None;
    }
    decode_string(u32::from(tag), content)
}

/// Text of a universal string type's contents: UTF8String, NumericString,
/// PrintableString, TeletexString (read as Latin-1), IA5String,
/// VisibleString, UniversalString (UTF-32BE), BMPString (UTF-16BE).
fn decode_string(tag: u32, content: &[u8]) -> Option<String> {
    match tag {
        12 | 18 | 19 | 22 | 26 => String::from_utf8(content.to_vec()).ok(),
        20 => Some(content.iter().map(|&b| char::from(b)).collect()),
        28 => content
            .chunks(4)
            .map(|c| {
                <[u8; 4]>::try_from(c)
                    .ok()
                    .and_then(|c| char::from_u32(u32::from_be_bytes(c)))
            })
            .collect(),
        30 => {
            let units: Option<Vec<u16>> = content
                .chunks(2)
                .map(|c| <[u8; 2]>::try_from(c).ok().map(u16::from_be_bytes))
                .collect();
            String::from_utf16(&units?).ok()
        }
        _ => None,
    }
}

/// The RFC 4514 string of a certificate name: RDNs last to first, values of
/// a multi-valued RDN joined by `+`, known types by name, others as dotted
/// OIDs; string values escaped (§2.4), others as `#` and their DER (§2.3).
pub(super) fn rfc4514_string(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(attribute_string)
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute_string(attribute: &AttributeTypeAndValue<'_>) -> String {
    let oid = attribute.attr_type().to_id_string();
    let name = ATTRIBUTE_TYPES
        .iter()
        .find(|(known, _, _)| *known == oid)
        .map_or(oid.as_str(), |(_, name, _)| name);
    let value = attribute.attr_value();
    let text = (value.header.class() == Class::Universal && !value.header.is_constructed())
        .then(|| decode_string(value.header.tag().0, value.data))
        .flatten();
    match text {
        Some(text) => format!("{name}={}", escape_value(&text)),
        None => format!("{name}=#{}", hex(&der_of(value))),
    }
}

fn escape_value(text: &str) -> String {
    let last = text.chars().count().saturating_sub(1);
    let mut escaped = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => escaped.push('\\'),
            ' ' | '#' if i == 0 => escaped.push('\\'),
            ' ' if i == last => escaped.push('\\'),
            c if c.is_control() => {
                let mut buffer = [0; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    escaped.push_str(&format!("\\{byte:02X}"));
                }
                continue;
            }
            _ => {}
        }
        escaped.push(c);
    }
    escaped
}

/// The DER of a parsed value: identifier, length, contents.
fn der_of(value: &Any<'_>) -> Vec<u8> {
    let header = &value.header;
    let mut der = Vec::with_capacity(value.data.len() + 8);
    let identifier = (header.class() as u8) << 6 | u8::from(header.is_constructed()) << 5;
    let tag = header.tag().0;
    if tag < 31 {
        der.push(identifier | tag as u8);
    } else {
        der.push(identifier | 0x1f);
        let groups = (0..5).rev().map(|i| (tag >> (7 * i)) & 0x7f);
        let mut started = false;
        for (i, group) in groups.enumerate() {
            started |= group != 0 || i == 4;
            if started {
                der.push(group as u8 | if i == 4 { 0 } else { 0x80 });
            }
        }
    }
    let length = value.data.len();
    if length < 0x80 {
        der.push(length as u8);
    } else {
        let bytes: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(value.data);
    der
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
