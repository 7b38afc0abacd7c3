//! A device's identity: an Ed25519 signing key (its [`MemberId`]) and a
//! separate X25519 key to which document keys are sealed.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::crypto::{ExchangeKey, ExchangeSecret, random_array};
use crate::error::{DecodeError, VerifyError};
use crate::ids::MemberId;

/// Length of [`DeviceIdentity::to_secret_bytes`].
pub const IDENTITY_SECRET_LEN: usize = 64;

/// The secret keys of one device.
///
/// ```
/// use synkro_core::DeviceIdentity;
/// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
/// let id = DeviceIdentity::generate(&mut ChaCha20Rng::from_seed([7; 32]));
/// let restored = DeviceIdentity::from_secret_bytes(&id.to_secret_bytes()[..])?;
/// assert_eq!(id.member_id(), restored.member_id());
/// # Ok::<(), synkro_core::DecodeError>(())
/// ```
#[derive(Clone)]
pub struct DeviceIdentity {
    signing: SigningKey,
    exchange: ExchangeSecret,
}

impl core::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DeviceIdentity({})", self.member_id())
    }
}

impl DeviceIdentity {
    /// A new identity from the caller's randomness.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_seeds(random_array(rng), random_array(rng))
    }

    /// Rebuild from the two 32-byte seeds.
    pub fn from_seeds(signing: [u8; 32], exchange: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&signing),
            exchange: ExchangeSecret::from_bytes(exchange),
        }
    }

    /// Serialise both secrets (keep these bytes secret: a 0600 file natively).
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; IDENTITY_SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; IDENTITY_SECRET_LEN]);
        out[..32].copy_from_slice(&self.signing.to_bytes());
        out[32..].copy_from_slice(self.exchange.as_bytes());
        out
    }

    /// Parse what [`to_secret_bytes`](Self::to_secret_bytes) produced.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: &[u8; IDENTITY_SECRET_LEN] = bytes.try_into().map_err(|_| DecodeError::Malformed {
            what: "device identity",
            detail: format!("expected {IDENTITY_SECRET_LEN} bytes, found {}", bytes.len()),
        })?;
        let mut s = [0u8; 32];
        let mut x = [0u8; 32];
        s.copy_from_slice(&arr[..32]);
        x.copy_from_slice(&arr[32..]);
        Ok(Self::from_seeds(s, x))
    }

    /// This device's member id (its Ed25519 public key).
    pub fn member_id(&self) -> MemberId {
        MemberId(self.signing.verifying_key().to_bytes())
    }

    /// The Ed25519 secret seed, e.g. to derive the libp2p keypair from.
    pub fn signing_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public key document keys are sealed to.
    pub fn exchange_key(&self) -> ExchangeKey {
        self.exchange.public()
    }

    /// The secret half of [`exchange_key`](Self::exchange_key): opens the
    /// document keys sealed to this device (see
    /// [`AccessLog::key_material`](crate::AccessLog::key_material)).
    pub fn exchange_secret(&self) -> &ExchangeSecret {
        &self.exchange
    }

    /// Sign `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl MemberId {
    /// Check `signature` over `message` by this member (strict RFC 8032
    /// verification: no malleable or small-order keys).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), VerifyError> {
        let key = verifying_key(&self.0).ok_or(VerifyError::BadSignature)?;
        key.verify_strict(message, &Signature::from_bytes(signature))
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// Members' keys as curve points, for the members whose signatures were
/// checked lately: decompressing a key is about a third of the work of a
/// verification, and the same few members sign most of what a device or
/// a relay sees. Bounded: emptied when it holds this many.
const KEY_CACHE: usize = 4096;

fn verifying_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    static CACHE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifyingKey>>> =
        std::sync::LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(k) = cache.get(bytes) {
        return Some(*k);
    }
    let key = VerifyingKey::from_bytes(bytes).ok()?;
    if cache.len() >= KEY_CACHE {
        cache.clear();
    }
    cache.insert(*bytes, key);
    Some(key)
}
