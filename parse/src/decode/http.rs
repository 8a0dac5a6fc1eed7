//! HTTP/1.x: the request line and headers of the first request of a flow, and the first
//! bytes of its body, parsed with `httparse`.
//!
//! Takes the in-order client bytes of a TCP stream, buffered up to `http_header_bytes`;
//! yields an [`HttpRequest`] once the head is complete, then keeps up to
//! `http_body_bytes` of body. A head that does not fit the buffer is recorded as
//! oversized (and counted), not parsed.

/// Request methods that mark the start of an HTTP/1.x request (RFC 9110 9, RFC 4918):
/// the XDP program selects flows by the same list.
const METHODS: [&[u8]; 15] = nightjar_common::HTTP_METHODS;
/// Most headers parsed in one request.
pub const MAX_HEADERS: usize = 64;

/// Whether bytes begin an HTTP request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// A method and its space.
    Yes,
    /// A proper prefix of a method (more bytes decide).
    Maybe,
    /// Not a request.
    No,
}

/// Decides whether `b` begins a request line by its method.
pub fn request_prefix(b: &[u8]) -> Prefix {
    if METHODS.iter().any(|m| b.starts_with(m)) {
        Prefix::Yes
    } else if !b.is_empty() && METHODS.iter().any(|m| m.len() > b.len() && m.starts_with(b)) {
        Prefix::Maybe
    } else {
        Prefix::No
    }
}

/// The first request of a flow.
#[derive(Clone, Debug, Default)]
pub struct HttpRequest {
    /// Method token.
    pub method: String,
    /// Request target as sent.
    pub uri: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Host header.
    pub host: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// Content-Type header.
    pub content_type: Option<String>,
    /// Content-Length header, parsed.
    pub content_length: Option<u64>,
    /// Referer header.
    pub referer: Option<String>,
    /// Cookie header present.
    pub has_cookie: bool,
    /// Number of headers.
    pub header_count: u32,
    /// Length of the request head (line + headers + blank line), bytes.
    pub head_len: u32,
    /// First bytes of the body (bounded).
    pub body_prefix: Vec<u8>,
    /// The head did not fit (over `http_header_bytes`, or more than [`MAX_HEADERS`]
    /// headers): the request line and the headers that fit were kept.
    pub head_truncated: bool,
}

/// Parser state for the client side of one flow.
#[derive(Debug)]
pub struct HttpStream {
    buf: Vec<u8>,
    head_cap: usize,
    body_cap: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body,
    Done,
}

/// Outcome of feeding bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpStatus {
    /// More bytes are needed.
    Partial,
    /// The request head was parsed.
    Parsed,
    /// The bytes are not an HTTP request.
    Invalid,
    /// The head exceeded the buffer; the request line and the complete headers in it
    /// were kept.
    Oversized,
    /// More than [`MAX_HEADERS`] headers; the request line and the first ones were kept.
    TooManyHeaders,
}

impl HttpStream {
    /// A parser that buffers at most `head_cap` bytes of head and keeps `body_cap` of body.
    pub fn new(head_cap: usize, body_cap: usize) -> Self {
        Self { buf: Vec::new(), head_cap, body_cap, state: State::Head }
    }

    /// Feeds in-order client bytes. Returns `Parsed` exactly once, when the head completes.
    pub fn feed(&mut self, data: &[u8], out: &mut Option<Box<HttpRequest>>) -> HttpStatus {
        match self.state {
            State::Done => HttpStatus::Partial,
            State::Body => {
                if let Some(req) = out.as_mut() {
                    let want = self.body_cap.saturating_sub(req.body_prefix.len());
                    let limit = req.content_length.map_or(want, |cl| want.min(cl as usize));
                    let n = limit.min(data.len());
                    req.body_prefix.extend_from_slice(&data[..n]);
                    if req.body_prefix.len() >= self.body_cap {
                        self.state = State::Done;
                    }
                }
                HttpStatus::Partial
            }
            State::Head => {
                let room = self.head_cap.saturating_sub(self.buf.len());
                self.buf.extend_from_slice(&data[..room.min(data.len())]);
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf) {
                    Ok(httparse::Status::Complete(head_len)) => {
                        let parsed = build_request(&req, head_len);
                        let mut parsed = parsed;
                        let body = &self.buf[head_len..];
                        let limit = parsed.content_length.map_or(self.body_cap, |cl| self.body_cap.min(cl as usize));
                        parsed.body_prefix.extend_from_slice(&body[..limit.min(body.len())]);
                        // Bytes past the buffer in this chunk belong to the body too.
                        if room < data.len() && parsed.body_prefix.len() < limit {
                            let extra = &data[room..];
                            let n = (limit - parsed.body_prefix.len()).min(extra.len());
                            parsed.body_prefix.extend_from_slice(&extra[..n]);
                        }
                        self.state = if parsed.body_prefix.len() >= limit { State::Done } else { State::Body };
                        *out = Some(Box::new(parsed));
                        self.buf = Vec::new();
                        HttpStatus::Parsed
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() >= self.head_cap {
                            self.state = State::Done;
                            *out = salvage(&self.buf).map(Box::new);
                            self.buf = Vec::new();
                            HttpStatus::Oversized
                        } else {
                            HttpStatus::Partial
                        }
                    }
                    Err(httparse::Error::TooManyHeaders) => {
                        self.state = State::Done;
                        *out = salvage(&self.buf).map(Box::new);
                        self.buf = Vec::new();
                        HttpStatus::TooManyHeaders
                    }
                    Err(_) => {
                        self.state = State::Done;
                        self.buf = Vec::new();
                        HttpStatus::Invalid
                    }
                }
            }
        }
    }
}

fn build_request(req: &httparse::Request<'_, '_>, head_len: usize) -> HttpRequest {
    let mut r = HttpRequest {
        method: req.method.unwrap_or_default().to_owned(),
        uri: req.path.unwrap_or_default().to_owned(),
        version_minor: req.version.unwrap_or(1),
        header_count: req.headers.len() as u32,
        head_len: head_len as u32,
        ..HttpRequest::default()
    };
    for h in req.headers.iter() {
        r.header(h.name.as_bytes(), h.value);
    }
    r
}

impl HttpRequest {
    /// Takes the fields features use from one header.
    fn header(&mut self, n: &[u8], value: &[u8]) {
        let text = |v: &[u8]| String::from_utf8_lossy(v).trim().to_owned();
        if n.eq_ignore_ascii_case(b"host") {
            self.host = Some(text(value));
        } else if n.eq_ignore_ascii_case(b"user-agent") {
            self.user_agent = Some(text(value));
        } else if n.eq_ignore_ascii_case(b"content-type") {
            self.content_type = Some(text(value));
        } else if n.eq_ignore_ascii_case(b"content-length") {
            self.content_length = std::str::from_utf8(value).ok().and_then(|s| s.trim().parse().ok());
        } else if n.eq_ignore_ascii_case(b"referer") {
            self.referer = Some(text(value));
        } else if n.eq_ignore_ascii_case(b"cookie") {
            self.has_cookie = true;
        }
    }
}

/// Keeps what a head that did not fit still tells: the request line and every complete
/// header line in `buf` (all of them counted, the first of each kind kept), or `None`
/// when the request line itself is incomplete or malformed. An attacker who pads a
/// request with headers does not hide its method, target, Host or User-Agent.
fn salvage(buf: &[u8]) -> Option<HttpRequest> {
    let mut lines = buf.split(|&c| c == b'\n');
    let line = lines.next().filter(|_| buf.contains(&b'\n'))?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&c| c == b' ').filter(|p| !p.is_empty());
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let minor = match version {
        b"HTTP/1.0" => 0,
        b"HTTP/1.1" => 1,
        _ => return None,
    };
    if parts.next().is_some() || !method.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let mut r = HttpRequest {
        method: String::from_utf8_lossy(method).into_owned(),
        uri: String::from_utf8_lossy(target).into_owned(),
        version_minor: minor,
        head_truncated: true,
        ..HttpRequest::default()
    };
    let mut used = line.len() + 1;
    let mut lines = lines.peekable();
    while let Some(raw) = lines.next() {
        if lines.peek().is_none() {
            break; // no LF after it: an incomplete line, not a header
        }
        let l = raw.strip_suffix(b"\r").unwrap_or(raw);
        used += raw.len() + 1;
        if l.is_empty() {
            break;
        }
        let Some(colon) = l.iter().position(|&c| c == b':') else { continue };
        r.header_count += 1;
        let (name, value) = (&l[..colon], &l[colon + 1..]);
        let repeated = (name.eq_ignore_ascii_case(b"host") && r.host.is_some())
            || (name.eq_ignore_ascii_case(b"user-agent") && r.user_agent.is_some())
            || (name.eq_ignore_ascii_case(b"content-type") && r.content_type.is_some())
            || (name.eq_ignore_ascii_case(b"referer") && r.referer.is_some());
        if !repeated {
            r.header(name, value);
        }
    }
    r.head_len = used.min(buf.len()) as u32;
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"POST /login.php?next=%2Fhome HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: curl/8.0\r\n\
Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n\r\nuser=admin'--&pass=x&z=1234";

    #[test]
    fn parses_request_split_anywhere() {
        for split in 1..REQ.len() {
            let mut s = HttpStream::new(8192, 16);
            let mut out = None;
            let a = s.feed(&REQ[..split], &mut out);
            let b = s.feed(&REQ[split..], &mut out);
            assert!(a == HttpStatus::Parsed || b == HttpStatus::Parsed, "split {split}");
            let r = out.expect("request");
            assert_eq!(r.method, "POST");
            assert_eq!(r.uri, "/login.php?next=%2Fhome");
            assert_eq!(r.host.as_deref(), Some("shop.example"));
            assert_eq!(r.user_agent.as_deref(), Some("curl/8.0"));
            assert_eq!(r.content_length, Some(27));
            assert_eq!(r.body_prefix, b"user=admin'--&pa", "split {split}");
        }
    }

    #[test]
    fn oversized_and_invalid() {
        let mut s = HttpStream::new(64, 16);
        let mut out = None;
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(s.feed(&long, &mut out), HttpStatus::Oversized);
        let mut s = HttpStream::new(64, 16);
        assert_eq!(s.feed(b"\x16\x03\x01\x00\x10garbage\r\n\r\n", &mut out), HttpStatus::Invalid);
        assert!(out.is_none());
    }

    #[test]
    fn crowded_and_oversized_heads_keep_their_request_line() {
        let mut crowded =
            b"GET /admin/config.php?id=1%27 HTTP/1.1\r\nHost: victim.example\r\nUser-Agent: sqlmap/1.7\r\n".to_vec();
        for i in 0..70 {
            crowded.extend_from_slice(format!("X-Pad-{i}: a\r\n").as_bytes());
        }
        crowded.extend_from_slice(b"\r\n");
        let mut s = HttpStream::new(8192, 16);
        let mut out = None;
        assert_eq!(s.feed(&crowded, &mut out), HttpStatus::TooManyHeaders);
        let r = out.take().expect("salvaged request");
        assert_eq!((r.method.as_str(), r.uri.as_str()), ("GET", "/admin/config.php?id=1%27"));
        assert_eq!(r.host.as_deref(), Some("victim.example"));
        assert_eq!(r.user_agent.as_deref(), Some("sqlmap/1.7"));
        assert_eq!(r.header_count, 72);
        assert!(r.head_truncated);

        // Over the buffer: the complete lines are kept, a duplicate Host does not win.
        let mut big = b"POST /upload HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\nCookie: ".to_vec();
        big.extend(std::iter::repeat_n(b'c', 9000));
        let mut s = HttpStream::new(8192, 16);
        assert_eq!(s.feed(&big, &mut out), HttpStatus::Oversized);
        let r = out.take().expect("salvaged request");
        assert_eq!((r.method.as_str(), r.version_minor, r.host.as_deref()), ("POST", 0, Some("a.example")));
        assert!(!r.has_cookie, "the cookie line never completed");
        assert_eq!(r.header_count, 2);

        // A request line that did not fit is not invented.
        let mut s = HttpStream::new(64, 16);
        let long = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(s.feed(&long, &mut out), HttpStatus::Oversized);
        assert!(out.is_none());
    }

    #[test]
    fn request_detection() {
        assert_eq!(request_prefix(b"GET / HTTP/1.1"), Prefix::Yes);
        assert_eq!(request_prefix(b"PO"), Prefix::Maybe);
        assert_eq!(request_prefix(b"GETX"), Prefix::No);
        assert_eq!(request_prefix(b"\x16\x03\x01"), Prefix::No);
        assert_eq!(request_prefix(b""), Prefix::No);
    }
}
