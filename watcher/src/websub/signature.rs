//! websub/signature.rs: checks a delivery's `X-Hub-Signature` (`method=hex`, method one of
//! sha1, sha256, sha384, sha512): an HMAC of the raw body with the subscription's secret,
//! compared in constant time. Pure.

use hmac::{Hmac, Mac};

/// Why a delivery's signature does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("the delivery is not signed")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature uses an unsupported method")]
    Method,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks `header` (the `X-Hub-Signature` value, if any) against `body` signed with `secret`.
pub fn verify(header: Option<&[u8]>, secret: &[u8], body: &[u8]) -> Result<(), BadSignature> {
    let header = header.ok_or(BadSignature::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| BadSignature::Malformed)?;
    let (method, hex_sig) = header
        .trim()
        .split_once('=')
        .ok_or(BadSignature::Malformed)?;
    // The longest is sha512's: 64 bytes.
    if hex_sig.len() > 128 {
        return Err(BadSignature::Malformed);
    }
    let sig = hex::decode(hex_sig).map_err(|_| BadSignature::Malformed)?;
    let ok = match method.to_ascii_lowercase().as_str() {
        "sha1" => check::<Hmac<sha1::Sha1>>(secret, body, &sig),
        "sha256" => check::<Hmac<sha2::Sha256>>(secret, body, &sig),
        "sha384" => check::<Hmac<sha2::Sha384>>(secret, body, &sig),
        "sha512" => check::<Hmac<sha2::Sha512>>(secret, body, &sig),
        _ => return Err(BadSignature::Method),
    };
    if ok {
        Ok(())
    } else {
        Err(BadSignature::Mismatch)
    }
}

/// `verify_slice` compares in constant time (and refuses a truncated tag).
fn check<M: Mac + hmac::digest::KeyInit>(secret: &[u8], body: &[u8], sig: &[u8]) -> bool {
    let Ok(mut mac) = <M as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(sig).is_ok()
}

/// The `X-Hub-Signature` value of `body` signed with `secret` by sha256 (for tests and the hub
/// double).
pub fn sign_sha256(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign<M: Mac + hmac::digest::KeyInit>(name: &str, secret: &[u8], body: &[u8]) -> String {
        let mut mac = <M as Mac>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("{name}={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn every_method_is_checked_over_the_raw_body() {
        let (secret, body) = (b"s3cret".as_slice(), b"<feed/>\r\n".as_slice());
        let sigs = [
            sign::<Hmac<sha1::Sha1>>("sha1", secret, body),
            sign::<Hmac<sha2::Sha256>>("sha256", secret, body),
            sign::<Hmac<sha2::Sha384>>("sha384", secret, body),
            sign::<Hmac<sha2::Sha512>>("SHA512", secret, body),
        ];
        for sig in &sigs {
            assert_eq!(verify(Some(sig.as_bytes()), secret, body), Ok(()), "{sig}");
            assert_eq!(
                verify(Some(sig.as_bytes()), secret, b"<feed/>\n"),
                Err(BadSignature::Mismatch)
            );
            assert_eq!(
                verify(Some(sig.as_bytes()), b"other", body),
                Err(BadSignature::Mismatch)
            );
        }
        assert_eq!(sign_sha256(secret, body), sigs[1]);
    }

    #[test]
    fn missing_malformed_and_unknown_methods_are_refused() {
        let body = b"x";
        assert_eq!(verify(None, b"k", body), Err(BadSignature::Missing));
        assert_eq!(
            verify(Some(b"sha256"), b"k", body),
            Err(BadSignature::Malformed)
        );
        assert_eq!(
            verify(Some(b"sha256=zz"), b"k", body),
            Err(BadSignature::Malformed)
        );
        assert_eq!(
            verify(Some(b"md5=00"), b"k", body),
            Err(BadSignature::Method)
        );
        // A truncated tag does not pass.
        let sig = sign_sha256(b"k", body);
        assert_eq!(
            verify(Some(&sig.as_bytes()[..21]), b"k", body),
            Err(BadSignature::Mismatch)
        );
    }
}
