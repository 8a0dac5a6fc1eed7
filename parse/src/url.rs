//! URL tokens for the HTTP branch of the model: the request target is percent-decoded
//! (twice, to undo double encoding), lowercased, and split into words (runs of letters
//! and digits; long digit runs become `<num>`) and single punctuation characters, which
//! carry most of the signal of injection payloads (`'`, `<`, `(`, `;`, `..`).
//! The TF-IDF weights of these tokens are fitted in `model/` and stored in the schema.

/// Most tokens taken from one URL.
pub const MAX_TOKENS: usize = 256;

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Tokens of a request target.
pub fn tokens(uri: &str) -> Vec<String> {
    let decoded = percent_decode(&percent_decode(uri)).to_lowercase();
    let mut out = Vec::new();
    let mut word = String::new();
    let push_word = |word: &mut String, out: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        if word.len() > 3 && word.bytes().all(|b| b.is_ascii_digit()) {
            out.push("<num>".to_owned());
        } else {
            out.push(std::mem::take(word));
        }
        word.clear();
    };
    for ch in decoded.chars() {
        if out.len() >= MAX_TOKENS {
            break;
        }
        if ch.is_alphanumeric() || ch == '_' {
            word.push(ch);
        } else {
            push_word(&mut word, &mut out);
            if !ch.is_whitespace() {
                out.push(ch.to_string());
            }
        }
    }
    push_word(&mut word, &mut out);
    out.truncate(MAX_TOKENS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenises_injection() {
        assert_eq!(
            tokens("/item.php?id=1%27%20OR%201=1--"),
            vec!["/", "item", ".", "php", "?", "id", "=", "1", "'", "or", "1", "=", "1", "-", "-"]
        );
        assert_eq!(tokens("/a/%253Cscript%253E"), vec!["/", "a", "/", "<", "script", ">"]);
        assert_eq!(tokens("/p?t=1700000000"), vec!["/", "p", "?", "t", "=", "<num>"]);
        assert!(tokens("%").len() == 1);
        assert!(tokens("%zz%4").len() >= 3);
    }
}
