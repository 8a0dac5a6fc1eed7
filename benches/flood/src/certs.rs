//! Certificates for the servers: a local root CA, an intermediate, and leaves of every
//! kind the profiles name (EC P-256, RSA-2048/4096, self-signed, expired, wrong host).
//! Generated once per run with OpenSSL; keys are fresh each run (they do not change any
//! feature the sensor computes: key sizes, algorithms and chain shapes stay the same).

use std::collections::HashMap;

use anyhow::Result;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Name, X509NameRef};

use crate::config::CertKind;

/// A chain (leaf first, as sent) and the leaf's key.
#[derive(Clone)]
pub struct Chain {
    /// Leaf, then intermediates.
    pub certs: Vec<X509>,
    /// The leaf's private key.
    pub key: PKey<Private>,
}

/// Every chain the catalogue may ask for.
pub struct CertStore {
    chains: HashMap<CertKind, Chain>,
}

/// The host name the leaves are issued for (clients send other names too; no client
/// verifies, as scanners and most malware do not).
pub const SERVER_NAME: &str = "www.flood.test";

fn ec_key() -> Result<PKey<Private>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

fn rsa_key(bits: u32) -> Result<PKey<Private>> {
    Ok(PKey::from_rsa(Rsa::generate(bits)?)?)
}

fn name(cn: &str) -> Result<X509Name> {
    let mut b = X509Name::builder()?;
    b.append_entry_by_text("O", "Nightjar Flood")?;
    b.append_entry_by_text("CN", cn)?;
    Ok(b.build())
}

struct Spec<'a> {
    subject: &'a str,
    san: Option<&'a str>,
    /// Days from now: (not_before, not_after).
    validity: (i64, i64),
    ca: bool,
}

fn days_from_now(days: i64) -> Result<Asn1Time> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    Ok(Asn1Time::from_unix(now + days * 86_400)?)
}

fn issue(
    spec: &Spec<'_>,
    key: &PKey<Private>,
    issuer: Option<(&X509NameRef, &PKey<Private>)>,
    serial: u32,
) -> Result<X509> {
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = BigNum::from_u32(serial)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    b.set_serial_number(&serial)?;
    let subject = name(spec.subject)?;
    b.set_subject_name(&subject)?;
    let (issuer_name, issuer_key) = issuer.unwrap_or((&subject, key));
    b.set_issuer_name(issuer_name)?;
    b.set_pubkey(key)?;
    let (nb, na) = (days_from_now(spec.validity.0)?, days_from_now(spec.validity.1)?);
    b.set_not_before(&nb)?;
    b.set_not_after(&na)?;
    if spec.ca {
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    } else {
        b.append_extension(BasicConstraints::new().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().key_encipherment().build()?)?;
    }
    if let Some(san) = spec.san {
        let ctx = b.x509v3_context(None, None);
        let ext = SubjectAlternativeName::new().dns(san).build(&ctx)?;
        b.append_extension(ext)?;
    }
    b.sign(issuer_key, MessageDigest::sha256())?;
    Ok(b.build())
}

impl CertStore {
    /// Generates every chain (an RSA-4096 key takes about a second).
    pub fn generate() -> Result<Self> {
        let root_key = ec_key()?;
        let root = issue(
            &Spec { subject: "Nightjar Flood Root CA", san: None, validity: (-400, 3650), ca: true },
            &root_key,
            None,
            1,
        )?;
        let inter_key = rsa_key(2048)?;
        let inter = issue(
            &Spec { subject: "Nightjar Flood Issuing CA", san: None, validity: (-300, 1800), ca: true },
            &inter_key,
            Some((root.subject_name(), &root_key)),
            2,
        )?;
        let leaf = |key: PKey<Private>, subject: &str, validity: (i64, i64), serial: u32| -> Result<Chain> {
            let cert = issue(
                &Spec { subject, san: Some(subject), validity, ca: false },
                &key,
                Some((root.subject_name(), &root_key)),
                serial,
            )?;
            Ok(Chain { certs: vec![cert, root.clone()], key })
        };
        let self_signed = |key: PKey<Private>, serial: u32| -> Result<Chain> {
            let cert = issue(
                &Spec { subject: SERVER_NAME, san: Some(SERVER_NAME), validity: (-10, 365), ca: false },
                &key,
                None,
                serial,
            )?;
            Ok(Chain { certs: vec![cert], key })
        };
        let mut chains = HashMap::new();
        chains.insert(CertKind::CaEc256, leaf(ec_key()?, SERVER_NAME, (-30, 90), 10)?);
        chains.insert(CertKind::CaRsa2048, leaf(rsa_key(2048)?, SERVER_NAME, (-30, 365), 11)?);
        chains.insert(CertKind::CaRsa4096, leaf(rsa_key(4096)?, SERVER_NAME, (-30, 730), 12)?);
        chains.insert(CertKind::ExpiredEc256, leaf(ec_key()?, SERVER_NAME, (-500, -130), 13)?);
        chains.insert(CertKind::WrongHostRsa2048, leaf(rsa_key(2048)?, "intranet.other.test", (-30, 365), 14)?);
        chains.insert(CertKind::SelfSignedRsa2048, self_signed(rsa_key(2048)?, 15)?);
        chains.insert(CertKind::SelfSignedEc256, self_signed(ec_key()?, 16)?);
        let key = rsa_key(2048)?;
        let cert = issue(
            &Spec { subject: SERVER_NAME, san: Some(SERVER_NAME), validity: (-30, 365), ca: false },
            &key,
            Some((inter.subject_name(), &inter_key)),
            17,
        )?;
        chains.insert(CertKind::CaChainRsa2048, Chain { certs: vec![cert, inter, root.clone()], key });
        Ok(Self { chains })
    }

    /// The chain of `kind`.
    pub fn chain(&self, kind: CertKind) -> &Chain {
        &self.chains[&kind]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_have_the_promised_shapes() {
        let store = CertStore::generate().unwrap();
        let bits = |k: CertKind| store.chain(k).key.bits();
        assert_eq!(bits(CertKind::CaRsa4096), 4096);
        assert_eq!(bits(CertKind::CaRsa2048), 2048);
        assert_eq!(bits(CertKind::CaEc256), 256);
        assert_eq!(store.chain(CertKind::CaChainRsa2048).certs.len(), 3);
        let ss = &store.chain(CertKind::SelfSignedEc256).certs[0];
        assert_eq!(ss.issuer_name().to_der().unwrap(), ss.subject_name().to_der().unwrap());
        let expired = &store.chain(CertKind::ExpiredEc256).certs[0];
        assert!(expired.not_after() < Asn1Time::days_from_now(0).unwrap());
        // Every leaf is signed by the next certificate of its chain.
        for kind in [CertKind::CaEc256, CertKind::CaChainRsa2048, CertKind::WrongHostRsa2048] {
            let c = &store.chain(kind).certs;
            assert!(c[0].verify(&c[1].public_key().unwrap()).unwrap(), "{kind:?}");
        }
    }
}
