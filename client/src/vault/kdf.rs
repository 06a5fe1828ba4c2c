//! Passphrase → key-encryption key (KEK), by Argon2id (RFC 9106).
//!
//! The parameters are fixed by the vault format version and stored nowhere: a file
//! that said "Argon2id, 128 MiB" would no longer look random, and a stored cost is one
//! an attacker could lower. A new cost means a new format version.
//!
//! The inputs map onto RFC 9106 §3.1 as: password `P` = the passphrase, salt `S` = the
//! key-slot file's 32 random bytes, secret `K` = the platform secret (absent in the
//! CLI), associated data `X` = a fixed label naming this format version.

use argon2::{Algorithm, Argon2, AssociatedData, Block, ParamsBuilder, Version};
use passage_crypto::primitives::Secret32;
use zeroize::{Zeroize, Zeroizing};

use super::secret::Credentials;

/// Argon2id memory, in MiB (`m` = 131,072 KiB): twice RFC 9106's second recommended
/// option (64 MiB), the most a low-end phone can spare for half a second.
pub const ARGON2_MEMORY_MIB: u32 = 128;
/// Argon2id passes over memory (`t`), RFC 9106 §4's second option. With the memory above
/// it costs about a third to half a second on the development machine (see the README).
pub const ARGON2_PASSES: u32 = 3;
/// Argon2id lanes (`p`), RFC 9106 §4. Computed one after another here (no thread pool),
/// so the cost is the same for one lane or four; four keep the memory layout the RFC's,
/// and let a later format version compute them in parallel (argon2's `parallel`
/// feature) to afford more memory in the same time on a phone's many cores.
pub const ARGON2_LANES: u32 = 4;
/// Length of the key-slot file's salt.
pub const SALT_LEN: usize = 32;

/// Argon2's associated data `X`: names the format, so a key derived for another purpose
/// from the same passphrase and salt can never be this one. Not stored.
const ARGON2_CONTEXT: &[u8] = b"passage/vault/v1/kek";

/// Which cost to derive with. Release builds have only [`KdfCost::Standard`]: the weak
/// set exists only under `cfg(test)`, so no switch in a shipped binary lowers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KdfCost {
    /// The format's parameters: [`ARGON2_MEMORY_MIB`], [`ARGON2_PASSES`], [`ARGON2_LANES`].
    Standard,
    /// 32 KiB, one pass, one lane: for the test suite's hundreds of opens.
    #[cfg(test)]
    TestOnly,
}

impl KdfCost {
    /// (memory in KiB, passes, lanes).
    fn parameters(self) -> (u32, u32, u32) {
        match self {
            Self::Standard => (ARGON2_MEMORY_MIB * 1024, ARGON2_PASSES, ARGON2_LANES),
            #[cfg(test)]
            Self::TestOnly => (32, 1, 1),
        }
    }
}

/// The key-encryption key: wraps the key slots, never anything else.
pub(crate) struct Kek(Secret32);

impl core::fmt::Debug for Kek {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

impl Kek {
    /// A KEK kept inside another profile's payload (the decoy's, in the real one).
    pub(crate) fn from_secret(secret: Secret32) -> Self {
        Self(secret)
    }

    /// The KEK itself, to be stored in the real profile's payload or compared.
    pub(crate) fn secret(&self) -> &Secret32 {
        &self.0
    }

    /// The key that seals key-slot position `index`: each position has its own, so a
    /// sealed slot cannot be moved to another position.
    pub(crate) fn slot_key(&self, salt: &[u8; SALT_LEN], index: usize) -> Secret32 {
        let index = u8::try_from(index).unwrap_or(u8::MAX);
        let okm = passage_crypto::primitives::hkdf_sha256::<32>(
            salt,
            self.0.as_bytes(),
            &[b"passage/vault/v1/slot-position", &[index]],
        );
        Secret32::from_bytes(*okm)
    }
}

/// Argon2id could not run: its memory could not be allocated. (Its other errors are
/// for lengths past 2^32 − 1 bytes, which no passphrase or platform secret reaches.)
#[derive(Debug)]
pub(crate) struct OutOfMemory;

/// Runs Argon2id once. Its memory is ours, so it is wiped before it is freed.
pub(crate) fn derive_kek(
    cost: KdfCost,
    credentials: &Credentials,
    salt: &[u8; SALT_LEN],
) -> Result<Kek, OutOfMemory> {
    let (memory_kib, passes, lanes) = cost.parameters();
    let context = AssociatedData::new(ARGON2_CONTEXT).map_err(|_| OutOfMemory)?;
    let params = ParamsBuilder::new()
        .m_cost(memory_kib)
        .t_cost(passes)
        .p_cost(lanes)
        .output_len(32)
        .data(context)
        .build()
        .map_err(|_| OutOfMemory)?;
    let argon2 = match &credentials.platform_secret {
        Some(secret) => Argon2::new_with_secret(
            secret.as_bytes(),
            Algorithm::Argon2id,
            Version::V0x13,
            params,
        )
        .map_err(|_| OutOfMemory)?,
        None => Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
    };
    let block_count = usize::try_from(memory_kib).map_err(|_| OutOfMemory)?;
    let mut blocks: Vec<Block> = Vec::new();
    blocks
        .try_reserve_exact(block_count)
        .map_err(|_| OutOfMemory)?;
    blocks.resize(block_count, Block::new());
    let mut out = Zeroizing::new([0u8; 32]);
    let result = argon2.hash_password_into_with_memory(
        credentials.passphrase.as_bytes(),
        salt,
        out.as_mut(),
        &mut blocks[..],
    );
    blocks.iter_mut().for_each(Zeroize::zeroize);
    result.map_err(|_| OutOfMemory)?;
    Ok(Kek(Secret32::from_bytes(*out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::secret::{Passphrase, PlatformSecret};

    /// RFC 9106 §5.3, the Argon2id test vector: m = 32 KiB, t = 3, p = 4, with a secret
    /// and associated data. Checks that the crate computes Argon2id version 0x13 with the
    /// secret and associated data where the RFC puts them.
    #[test]
    fn argon2id_matches_rfc9106_test_vector() {
        let params = ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .output_len(32)
            .data(AssociatedData::new(&[0x04; 12]).unwrap())
            .build()
            .unwrap();
        let secret = [0x03; 8];
        let argon2 =
            Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params).unwrap();
        let mut tag = [0u8; 32];
        argon2
            .hash_password_into(&[0x01; 32], &[0x02; 16], &mut tag)
            .unwrap();
        let expected = [
            0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b,
            0x53, 0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9,
            0x6b, 0x01, 0xe6, 0x59,
        ];
        assert_eq!(tag, expected);
        assert_eq!(Version::default(), Version::V0x13);
    }

    /// Our own path (own memory, wiped) gives what the crate's one-call path gives.
    #[test]
    fn own_memory_path_matches_the_crate() {
        let salt = [9u8; SALT_LEN];
        let creds = Credentials::new(Passphrase::from("correct horse"))
            .with_platform_secret(PlatformSecret::from_bytes(vec![5; 16]));
        let kek = derive_kek(KdfCost::TestOnly, &creds, &salt).unwrap();
        let params = ParamsBuilder::new()
            .m_cost(32)
            .t_cost(1)
            .p_cost(1)
            .output_len(32)
            .data(AssociatedData::new(ARGON2_CONTEXT).unwrap())
            .build()
            .unwrap();
        let argon2 =
            Argon2::new_with_secret(&[5; 16], Algorithm::Argon2id, Version::V0x13, params).unwrap();
        let mut expected = [0u8; 32];
        argon2
            .hash_password_into(b"correct horse", &salt, &mut expected)
            .unwrap();
        assert_eq!(kek.0.as_bytes(), &expected);
        // Without the platform secret the key differs.
        let bare =
            derive_kek(KdfCost::TestOnly, &Credentials::new("correct horse"), &salt).unwrap();
        assert!(!bare.0.ct_eq(&kek.0));
    }

    /// The format's real cost is the documented one (no timing here: the figure is
    /// printed by `cargo bench -p passage-client --bench vault_open`), and it derives
    /// a key different from the test-only cost's.
    #[test]
    fn standard_cost_is_the_documented_one() {
        assert_eq!(
            KdfCost::Standard.parameters(),
            (ARGON2_MEMORY_MIB * 1024, ARGON2_PASSES, ARGON2_LANES)
        );
        assert_eq!(
            (ARGON2_MEMORY_MIB, ARGON2_PASSES, ARGON2_LANES),
            (128, 3, 4)
        );
        let standard =
            derive_kek(KdfCost::Standard, &Credentials::new("x"), &[1; SALT_LEN]).unwrap();
        let weak = derive_kek(KdfCost::TestOnly, &Credentials::new("x"), &[1; SALT_LEN]).unwrap();
        assert!(!standard.0.ct_eq(&weak.0));
    }
}
