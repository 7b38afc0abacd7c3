//! Invitation tokens: how a device joins a document.
//!
//! An admin creates an `Invite` op for a fresh secret and hands the secret
//! out as a token. Whoever holds the token derives the invitation's keys,
//! signs a `Claim` op naming its own device, and so becomes a member with
//! the invited role. The invitation is single-use and revocable.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::access::Role;
use crate::crypto::hash;
use crate::encoding::{decode, encode};
use crate::error::CoreError;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, OpHash};

const TOKEN_PREFIX: &str = "synkro1";
const TOKEN_VERSION: u16 = 1;

/// A secret invitation to a document.
///
/// Its text form (`synkro1…`) is what people pass around: it carries key
/// material, so it belongs in a URL fragment or a private message, never in
/// a server log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteToken {
    version: u16,
    /// Document.
    pub doc: DocId,
    /// The `Invite` op in the document's access log.
    pub invite_op: OpHash,
    /// Role given on claim.
    pub role: Role,
    secret: [u8; 32],
}

impl fmt::Debug for InviteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteToken({}, {})", self.doc, self.role)
    }
}

impl InviteToken {
    pub(crate) fn new(doc: DocId, invite_op: OpHash, role: Role, secret: [u8; 32]) -> Self {
        Self {
            version: TOKEN_VERSION,
            doc,
            invite_op,
            role,
            secret,
        }
    }

    /// The secret behind the token.
    pub(crate) fn secret(&self) -> [u8; 32] {
        self.secret
    }

    /// The invitation's own identity, derived from the secret.
    pub(crate) fn identity(&self) -> DeviceIdentity {
        invite_identity(&self.secret)
    }
}

/// Keys of an invitation, derived from its secret.
pub(crate) fn invite_identity(secret: &[u8; 32]) -> DeviceIdentity {
    DeviceIdentity::from_seeds(
        hash("synkro 2026 invite signing key", &[secret]),
        hash("synkro 2026 invite exchange key", &[secret]),
    )
}

impl fmt::Display for InviteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = Zeroizing::new(encode(self));
        write!(f, "{TOKEN_PREFIX}{}", bs58::encode(&*bytes).into_string())
    }
}

impl FromStr for InviteToken {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        let body = s
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| CoreError::BadInvite(format!("a token starts with {TOKEN_PREFIX:?}")))?;
        if body.len() > 512 {
            return Err(CoreError::BadInvite("token is too long".into()));
        }
        let bytes = Zeroizing::new(
            bs58::decode(body)
                .into_vec()
                .map_err(|_| CoreError::BadInvite("not base58; was it cut short?".into()))?,
        );
        let token: InviteToken = decode("invitation", &bytes, 512).map_err(|e| CoreError::BadInvite(e.to_string()))?;
        if token.version != TOKEN_VERSION {
            return Err(CoreError::BadInvite(format!(
                "token version {} is not supported",
                token.version
            )));
        }
        Ok(token)
    }
}
